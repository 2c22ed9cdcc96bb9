import type { Phase } from '../../change/ticket';

/** change_request `state` values as the Table API sends them (strings). */
export const SERVICENOW_STATE = {
  new: '-5',
  assess: '-4',
  authorize: '-3',
  scheduled: '-2',
  implement: '-1',
  review: '0',
  closed: '3',
  canceled: '4',
} as const;

export interface ServiceNowStateFields {
  state: string;
  approval: string;
  type: string;
}

/**
 * Maps a change's state, approval and type to its phase. `implement` needs the Implement state and an approval (a
 * standard change is pre-approved): the work window alone does not authorize a grant. A rejected change is sent back
 * to New by ServiceNow and may be resubmitted, so `rejected` is not final. Pure: the workflow bundle uses it to read
 * snapshots recorded before tickets were normalised.
 */
export function servicenowPhase({ state, approval, type }: ServiceNowStateFields): Phase {
  if (state === SERVICENOW_STATE.closed) return 'closed';
  if (state === SERVICENOW_STATE.canceled) return 'cancelled';
  if (state === SERVICENOW_STATE.implement && (approval === 'approved' || type === 'standard')) return 'implement';
  if (approval === 'rejected') return 'rejected';
  if (state === SERVICENOW_STATE.review) return 'review';
  if (state === SERVICENOW_STATE.new) return 'draft';
  return 'authorization';
}

export function servicenowEmergency(type: string): boolean {
  return type === 'emergency';
}
