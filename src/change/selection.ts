import type { PlannedAction } from './ticket';

/**
 * An action that names its identities through the inventory instead of one system and identity: every identity
 * linked to a workload (decommission), or held by an owner (leaver by owner). The workflow reads the inventory when
 * the step runs, records that plan as evidence and runs one verified step per identity.
 */
export interface Selection {
  by: 'workload' | 'owner';
  value: string;
  /** Leaver by owner: who answers for the owner's non-human identities that still serve a workload. */
  reassignTo?: string;
}

/** What stands in a selecting action's system: every system the inventory names. */
export const EVERY_SYSTEM = '*';

export function selectionOf(action: PlannedAction): Selection | undefined {
  const s = action.select as Selection | undefined;
  return s && (s.by === 'workload' || s.by === 'owner') && typeof s.value === 'string' ? s : undefined;
}

/** How people read a selecting step: "decommission of workload billing-api", "leaver of everything jdoe owns". */
export function describeSelection(kind: string, select: Selection): string {
  return select.by === 'workload' ? `${kind} of workload ${select.value} (every system)` : `${kind} of everything ${select.value} owns (every system)`;
}
