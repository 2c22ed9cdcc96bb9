import type { KindClosureRules } from '../../src/change';
import { joinerKind } from './joiner';
import { deployKind } from './deploy';
import type { KindHost, WorkflowKind } from './kind';
import { decommissionKind } from './decommission';
import { leaverKind, reassignKind } from './leaver';
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

/** Lets each kind that takes its own events set its handlers on the ticket's workflow. */
export function installKindHandlers(host: KindHost): void {
  for (const kind of kinds.values()) kind.install?.(host);
}

// One line per kind.
registerWorkflowKind(joinerKind);
registerWorkflowKind(leaverKind);
registerWorkflowKind(moverKind);
registerWorkflowKind(rotateKind);
registerWorkflowKind(deployKind);
registerWorkflowKind(decommissionKind);
registerWorkflowKind(reassignKind);
