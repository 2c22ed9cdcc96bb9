/** A workflows entry point for the outbox tests: the real workflows, plus the test-only `stamp` kind's workflow half. */
import { registerWorkflowKind } from '../../workflows/kinds/registry';
import { stampKind } from './stamp-kind';

registerWorkflowKind(stampKind);

export * from '../../workflows';
