import type { PlannedAction, Selection } from './ticket';

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
