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
  /**
   * identityActionsDigest() of the ticket's raw identity-actions text: the closure gate is written for exactly this
   * text. Absent in deliveries accepted before gates carried a digest.
   */
  actionsDigest?: string;
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
  /** True while the gate last written to the ticket lets it close (`verified` or `not_applicable`). */
  gateSet: boolean;
  /** The gate last written to the ticket; absent until the first write. */
  gate?: ClosureGate;
  /** actionsDigest of the newest delivery. */
  actionsDigest?: string;
  /** Write-backs to the ticket that failed for good (e.g. the ticket is gone or the integration user lacks rights). */
  writeBackErrors: string[];
  deliveries: number;
  ignoredStale: number;
}

/**
 * The ticket's closure gate as the gateway writes it (integrations/servicenow/INSTALL.md): `pending` while any
 * identity step is open, `verified` once every one is verified, `not_applicable` when the change never had a step
 * to run. `digest` names the identity-actions text the value is about ('' with `pending`).
 */
export type ClosureGateValue = 'pending' | 'verified' | 'not_applicable';

export interface ClosureGate {
  value: ClosureGateValue;
  digest: string;
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
