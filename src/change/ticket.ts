/**
 * The change ticket as the core sees it, whatever system it came from. Pure data and pure functions: the workflow
 * bundle, the activities and the API all import it, and it imports nothing above it.
 */
import type { IdentityRef } from '../kinds/spec';
import type { ExceptionTerms } from './exception';

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

/** A registered ticket source's name (`servicenow`, `jira`, ...); part of every workflow id and evidence key. */
export type SourceName = string;

/**
 * Where a change stands. `implement` means the work may be done now: authorized (or pre-approved) and inside its
 * window. `rejected` is not final: the approvers said no, and the ticket may be revised and resubmitted. `unknown`:
 * the source sent a state its configuration does not map (a legacy or custom state); such a change is never
 * authorized and never final, so grants wait and revocations still run.
 */
export const PHASES = ['draft', 'authorization', 'implement', 'review', 'closed', 'cancelled', 'rejected', 'unknown'] as const;
export type Phase = (typeof PHASES)[number];

/**
 * One validated identity action as the workflow receives it: what every kind carries, plus its kind's own fields
 * (grants already in the connector's canonical form). Each kind declares its planned shape with the kind
 * (src/kinds/<kind>/edge.ts) and reads it back in its workflow half.
 */
export interface PlannedAction {
  actionId: string;
  kind: string;
  system: string;
  identity: IdentityRef;
  /** Who answers for the identity and what it serves, as the action says: recorded in the inventory. */
  owner?: string;
  workload?: string;
  /** Grants (canonical text) the governance policy marks privileged: they wait for a change manager's decision. */
  privileged?: string[];
  /** A selecting action (decommission, leaver by owner): its identities come from the inventory when it runs. */
  select?: Selection;
  /** A step a selecting step planned from the inventory: that step's id. */
  via?: string;
  /** Runs before the change is authorized although its kind waits for authorization (an emergency the policy allows). */
  startsAtOnce?: boolean;
  /**
   * A grant an emergency change makes before it is authorized (the policy allows it): once verified it opens an
   * emergency exception under these terms, which a security reviewer accepts or revokes after the fact.
   */
  exception?: ExceptionTerms;
  [field: string]: unknown;
}

/** How write-backs address a ticket: the source's own record id (ServiceNow sys_id, Jira issue id) and its key. */
export interface TicketRef {
  source: SourceName;
  key: string;
  recordId: string;
}

export interface Ticket extends TicketRef {
  phase: Phase;
  emergency: boolean;
  requester?: string;
  /** Who implements it (ServiceNow `assigned_to`), as the source's user id. */
  implementer?: string;
  /** The end of the change window (ISO 8601), where the source has one: `until: window-end` grants end there. */
  windowEnd?: string;
  /** Orders deliveries of one ticket: an older version never moves the workflow back. */
  version: number;
  /** The source's own word for its state, reported back to people; the core never interprets it. */
  sourceState: string;
  actions: PlannedAction[];
  /**
   * Digest of the ticket's identity-actions text: the closure gate is written for exactly this text. Absent in
   * deliveries accepted before gates carried a digest.
   */
  actionsDigest?: string;
  /**
   * The closure gate as the ticket carried it when this delivery was sent (ServiceNow: u_identity_cleanup and its
   * digest), when the source reports it. Values are the ticket's own, not necessarily one the gateway writes.
   */
  gateShown?: { value: string; digest: string };
}

/** What one delivery said about the ticket. */
export interface TicketSnapshot extends Ticket {
  eventId: string;
  receivedAt: string;
}

export function isFinal(phase: Phase | ''): boolean {
  return phase === 'closed' || phase === 'cancelled';
}

export function ticketKey(source: SourceName, key: string): string {
  return `${source}:${key}`;
}

export function workflowIdFor(source: SourceName, key: string): string {
  return `change-${source}-${key}`;
}
