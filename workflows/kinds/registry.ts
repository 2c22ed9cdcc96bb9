import type { KindClosureRules } from '../../src/change';
import { joinerKind } from './joiner';
import type { WorkflowKind } from './kind';
import { leaverKind } from './leaver';
import { moverKind } from './mover';
import { rotateKind } from './rotate';

const kinds = new Map<string, WorkflowKind>();

/**
 * Adds a kind's workflow half. Call it at module load of the workflows entry point (the bundle evaluates it the same
 * way on every replay); the name must be new.
 */
export function registerWorkflowKind(kind: WorkflowKind): void {
  if (kinds.has(kind.kind)) throw new Error(`workflow kind '${kind.kind}' is already registered`);
  kinds.set(kind.kind, kind);
}

export function workflowKind(kind: string): WorkflowKind | undefined {
  return kinds.get(kind);
}

/** The closure rules closureVerdict and closureView ask, one kind at a time. */
export const closureRules = (kind: string): KindClosureRules | undefined => kinds.get(kind);

// One line per kind.
registerWorkflowKind(joinerKind);
registerWorkflowKind(leaverKind);
registerWorkflowKind(moverKind);
registerWorkflowKind(rotateKind);
