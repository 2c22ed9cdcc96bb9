import type { ChangeState, TicketRef, TicketSnapshot } from '../src/change';
// A pure mapping with no I/O: the one piece of a source the workflow bundle may hold, for histories that predate normalising.
// eslint-disable-next-line no-restricted-imports
import { servicenowEmergency, servicenowPhase } from '../src/itsm/servicenow/servicenow-phase';
import type { AnySnapshot, ChangeWorkflowInput, LegacyChangeState, LegacyChangeWorkflowInput, LegacySnapshot } from './change-types';

/**
 * Runs started before tickets were normalised replay with ServiceNow-shaped inputs, signals and carried state. They
 * are read here, deterministically, with the same mapping the ServiceNow source applies to new deliveries, so the
 * rest of the workflow only ever sees the normalised ticket.
 */
export function isLegacySnapshot(snap: AnySnapshot): snap is LegacySnapshot {
  return (snap as Partial<TicketSnapshot>).phase === undefined && (snap as Partial<LegacySnapshot>).modCount !== undefined;
}

export function normaliseSnapshot(snap: AnySnapshot, ref: TicketRef): TicketSnapshot {
  if (!isLegacySnapshot(snap)) return snap;
  return {
    ...ref,
    eventId: snap.eventId,
    receivedAt: snap.receivedAt,
    phase: servicenowPhase(snap),
    emergency: servicenowEmergency(snap.type),
    version: snap.modCount,
    sourceState: snap.state,
    actions: snap.actions,
    ...(snap.actionsDigest !== undefined ? { actionsDigest: snap.actionsDigest } : {}),
  };
}

function isLegacyState(state: ChangeState | LegacyChangeState): state is LegacyChangeState {
  return (state as Partial<LegacyChangeState>).sysId !== undefined;
}

function normaliseState(state: ChangeState | LegacyChangeState): ChangeState {
  if (!isLegacyState(state)) return state;
  const { ticketNumber, sysId, modCount, state: code, approval, type, ...rest } = state;
  return {
    ...rest,
    key: ticketNumber,
    recordId: sysId,
    version: modCount,
    phase: modCount < 0 ? '' : servicenowPhase({ state: code, approval, type }),
    emergency: servicenowEmergency(type),
    sourceState: code,
  };
}

export function normaliseInput(input: ChangeWorkflowInput | LegacyChangeWorkflowInput): ChangeWorkflowInput {
  if (!('ticketNumber' in input)) return input;
  return {
    source: input.source,
    key: input.ticketNumber,
    recordId: input.sysId,
    ...(input.carried ? { carried: normaliseState(input.carried) } : {}),
  };
}
