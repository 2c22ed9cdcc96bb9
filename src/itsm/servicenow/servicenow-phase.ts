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

/** The phases a configured state may map to: `rejected` comes from the approval, `unknown` from no mapping. */
export type MappedPhase = Exclude<Phase, 'rejected' | 'unknown'>;

/**
 * Which phase each `state` value stands for. Instances add states of their own (and keep legacy ones); those are
 * configured here (SERVICENOW_STATE_PHASES), and every state mapped to `closed` is a closed-like state the block-close
 * rule must gate too (its `x_changegate.closed_states` property lists the same values).
 */
export type ServiceNowStatePhases = Readonly<Record<string, MappedPhase>>;

/** The base system's state model (reference/itsm-contracts.md). */
export const DEFAULT_STATE_PHASES: ServiceNowStatePhases = {
  [SERVICENOW_STATE.new]: 'draft',
  [SERVICENOW_STATE.assess]: 'authorization',
  [SERVICENOW_STATE.authorize]: 'authorization',
  [SERVICENOW_STATE.scheduled]: 'authorization',
  [SERVICENOW_STATE.implement]: 'implement',
  [SERVICENOW_STATE.review]: 'review',
  [SERVICENOW_STATE.closed]: 'closed',
  [SERVICENOW_STATE.canceled]: 'cancelled',
};

/** The states that close a change: the block-close rule refuses each of them until the gate allows it. */
export function closedLikeStates(phases: ServiceNowStatePhases = DEFAULT_STATE_PHASES): string[] {
  return Object.keys(phases).filter((state) => phases[state] === 'closed');
}

export interface ServiceNowStateFields {
  state: string;
  approval: string;
  type: string;
}

/**
 * Maps a change's state, approval and type to its phase. `implement` needs a state mapped to implement and an approval
 * (a standard change is pre-approved): the work window alone does not authorize a grant. A rejected change is sent
 * back to New by ServiceNow and may be resubmitted, so `rejected` is not final. A state the configuration does not
 * map is `unknown`, whatever the approval says. Pure: the workflow bundle uses it (with the default mapping) to read
 * snapshots recorded before tickets were normalised.
 */
export function servicenowPhase({ state, approval, type }: ServiceNowStateFields, phases: ServiceNowStatePhases = DEFAULT_STATE_PHASES): Phase {
  const base = Object.prototype.hasOwnProperty.call(phases, state) ? phases[state] : undefined;
  if (base === undefined) return 'unknown';
  if (base === 'closed' || base === 'cancelled') return base;
  if (base === 'implement' && (approval === 'approved' || type === 'standard')) return 'implement';
  if (approval === 'rejected') return 'rejected';
  if (base === 'implement') return 'authorization';
  return base;
}

export function servicenowEmergency(type: string): boolean {
  return type === 'emergency';
}
