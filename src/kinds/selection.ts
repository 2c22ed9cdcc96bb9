import { EVERY_SYSTEM } from '../change/selection';
import type { PlannedAction, Selection } from '../change/ticket';

/**
 * The planned form of a selecting action (src/change/selection.ts). `system` and `identity` say what is selected
 * (every system; the workload or the owner), so that everything that lists steps lists this one too.
 */
export function selectionAction(actionId: string, kind: string, select: Selection): PlannedAction {
  return {
    actionId,
    kind,
    system: EVERY_SYSTEM,
    identity: { type: select.by === 'owner' ? 'person' : 'service_account', name: select.value },
    select,
  };
}
