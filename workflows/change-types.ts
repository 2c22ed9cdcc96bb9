/**
 * Types shared by the change workflow, its activities and the API. Pure data: safe to import into workflow code.
 */
import type { IdentityRef, SecretDestination } from '../src/actions/identity-action';

export type TicketSource = 'servicenow';

/** One validated identity action as the workflow receives it: grants already in the connector's canonical form. */
export type PlannedAction =
  | { actionId: string; kind: 'leaver'; system: string; identity: IdentityRef }
  | { actionId: string; kind: 'joiner'; system: string; identity: IdentityRef; grants: string[]; ttlMs?: number; ttl?: string }
  | { actionId: string; kind: 'rotate'; system: string; identity: IdentityRef; deliverTo: SecretDestination };

/** What one delivery said about the ticket. `modCount` orders deliveries; older ones never move the workflow back. */
export interface TicketSnapshot {
  eventId: string;
  modCount: number;
  receivedAt: string;
  state: string;
  approval: string;
  type: string;
  actions: PlannedAction[];
}

export interface ChangeWorkflowInput {
  source: TicketSource;
  ticketNumber: string;
  sysId: string;
  /** Carried across continue-as-new. */
  carried?: ChangeState;
}

export type StepStatus =
  | 'pending'
  | 'waiting-authorization'
  | 'running'
  | 'verified'
  | 'failed'
  | 'cancelled'
  | 'withdrawn';

export type ExpiryStatus = 'none' | 'scheduled' | 'running' | 'verified' | 'failed';

export interface StepState {
  stepId: string;
  action: PlannedAction;
  status: StepStatus;
  detail?: string;
  /** Receipt time of the delivery that caused this step: the start of the latency the benchmark measures. */
  eventReceivedAt: string;
  verifiedAt?: string;
  /** Joiners only. */
  accountCreated?: boolean;
  /** Rotations only: which credential version the store now serves (never the value). */
  rotation?: { fingerprint: string; version: number; credentialId?: string };
  expiry?: { status: ExpiryStatus; expiresAt?: string; detail?: string; verifiedAt?: string };
}

export interface ChangeState {
  source: TicketSource;
  ticketNumber: string;
  sysId: string;
  modCount: number;
  state: string;
  approval: string;
  type: string;
  steps: StepState[];
  gateSet: boolean;
  /** Write-backs to the ticket that failed for good (e.g. the ticket is gone or the integration user lacks rights). */
  writeBackErrors: string[];
  deliveries: number;
  ignoredStale: number;
}

export interface ClosureVerdict {
  allowed: boolean;
  reasons: string[];
}

export const TICKET_STATE = { implement: '-1', closed: '3', canceled: '4' } as const;

export function ticketKey(source: TicketSource, number: string): string {
  return `${source}:${number}`;
}

export function workflowIdFor(source: TicketSource, number: string): string {
  return `change-${source}-${number}`;
}
