/**
 * The change workflow's own types: its input, and the shapes that histories recorded before tickets were
 * normalised carry (every one of them came from ServiceNow). Pure data: safe to import into workflow code.
 */
import type { ChangeState, PlannedAction, SourceName, StepState, TicketRef, TicketSnapshot } from '../src/change';

export interface ChangeWorkflowInput {
  source: SourceName;
  key: string;
  recordId: string;
  /** Carried across continue-as-new. */
  carried?: ChangeState;
}

/** A delivery as ServiceNow snapshots were signalled before tickets were normalised. */
export interface LegacySnapshot {
  eventId: string;
  modCount: number;
  receivedAt: string;
  state: string;
  approval: string;
  type: string;
  actions: PlannedAction[];
  actionsDigest?: string;
}

/** The workflow's state before tickets were normalised, as a continued-as-new run carries it. */
export interface LegacyChangeState extends Omit<ChangeState, 'key' | 'recordId' | 'version' | 'phase' | 'emergency' | 'sourceState' | 'steps'> {
  ticketNumber: string;
  sysId: string;
  modCount: number;
  state: string;
  approval: string;
  type: string;
  steps: StepState[];
}

export interface LegacyChangeWorkflowInput {
  source: 'servicenow';
  ticketNumber: string;
  sysId: string;
  carried?: LegacyChangeState;
}

export type AnySnapshot = TicketSnapshot | LegacySnapshot;

export type { TicketRef };
