/** A workflows entry point for the fault suite's own check: the real workflows, plus the test-only `twice` kind's workflow half. */
import { registerWorkflowKind } from '../../workflows/kinds/registry';
import { twiceKind } from './twice-kind';

registerWorkflowKind(twiceKind);

export * from '../../workflows';
