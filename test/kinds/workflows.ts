/** A workflows entry point for the tests: the real workflows, plus the test-only `attest` kind's workflow half. */
import { registerWorkflowKind } from '../../workflows/kinds/registry';
import { attestKind } from './attest-kind';

registerWorkflowKind(attestKind);

export * from '../../workflows';
