/**
 * Event-driven certification: something changed about an identity (its owner, a mover, a rotation, drift, a hand-over
 * by a decommission or a leaver), so a person re-certifies its access now, grant by grant. Pure (no I/O): the API and
 * the activities use it; the certification workflow imports its types.
 */
import { createHash } from 'node:crypto';
import type { Actor } from '../auth/principal';
import type { IdentityRef } from '../kinds/spec';

/** What opened an item. `drift` is governed by the drift policy's `certify` action; the others by `certification.triggers`. */
export const CERTIFICATION_TRIGGERS = ['owner-change', 'reassign', 'mover', 'rotation', 'drift'] as const;
export type CertificationTrigger = (typeof CERTIFICATION_TRIGGERS)[number];
/** The triggers the policy switches on and off (drift follows the drift policy). */
export const SWITCHED_TRIGGERS = ['owner-change', 'reassign', 'mover', 'rotation'] as const;
export type SwitchedTrigger = (typeof SWITCHED_TRIGGERS)[number];

export const ON_TIMEOUT = ['keep-and-escalate', 'revoke'] as const;
export type OnTimeout = (typeof ON_TIMEOUT)[number];

/**
 * open: waiting for its reviewer. escalated: past its due date under keep-and-escalate, the access kept and the item
 * still waiting for its reviewer. certified: every grant kept. revoking: some revoked (`change` names the change once
 * opened). revocation-failed: some revoked, but the ticket system refused the revocation change (`revocationError` says
 * why); a person has to carry it out.
 */
export const CERTIFICATION_STATUSES = ['open', 'certified', 'revoking', 'escalated', 'revocation-failed'] as const;
export type CertificationStatus = (typeof CERTIFICATION_STATUSES)[number];

/** Who reviews an item: a role, a named group (people mapping source `group`), or the owner's manager from the directory. */
export type Reviewer = { kind: 'role'; role: string } | { kind: 'group'; group: string } | { kind: 'manager'; user: string; directory: string };

/** An event that asks for a certification, as a trigger sends it (the workflow's input). */
export interface CertificationRequest {
  trigger: CertificationTrigger;
  /** What it was: a ticket key and step, a finding id, an inventory evidence row. */
  reference: string;
  system: string;
  identity: IdentityRef;
  /** When the event happened (the evidence row's eventReceivedAt). */
  at: string;
  /** Why, in a line (the item and its evidence show it). */
  detail?: string;
}

export interface GrantDecision {
  grant: string;
  decision: 'keep' | 'revoke';
}

/** An item as stored and listed. */
export interface CertificationItem {
  id: string;
  system: string;
  name: string;
  host: string;
  type: string;
  owner: string | null;
  workload: string | null;
  grants: string[];
  trigger: CertificationTrigger;
  reference: string;
  detail: string;
  reviewer: Reviewer;
  dueAt: string;
  onTimeout: OnTimeout;
  status: CertificationStatus;
  decisions: GrantDecision[] | null;
  decidedBy: Actor | null;
  decidedAt: string | null;
  justification: string | null;
  change: string | null;
  /** Why the revocation change could not be opened (status revocation-failed). */
  revocationError: string | null;
  openedAt: string;
}

/** The same event asks for the same item: trigger, reference and identity (a retry or a repeated delivery opens nothing new). */
export function certificationId(r: Pick<CertificationRequest, 'trigger' | 'reference' | 'system' | 'identity'>): string {
  return createHash('sha256').update([r.trigger, r.reference, r.system, r.identity.name, r.identity.host ?? ''].join('\u0000')).digest('hex').slice(0, 32);
}

export const CERTIFICATION_ID = /^[0-9a-f]{32}$/;

/** The update a decision is sent as (workflows/certification-workflow.ts). */
export const DECIDE_CERTIFICATION = 'decideCertification';

export const certificationWorkflowId = (id: string) => `certification-${id}`;
/** The evidence chain of one item: its opening, its decision (or the policy's at the due date), its revocation change. */
export const certificationChain = (id: string) => `certification:${id}`;

/** The reviewer as a line of text (listing filter, notes). */
export function reviewerText(r: Reviewer): string {
  return r.kind === 'role' ? `role:${r.role}` : r.kind === 'group' ? `group:${r.group}` : `user:${r.user}`;
}

/**
 * What a revocation change carries: a mover to the managed grants the identity holds now less the revoked ones (no kind
 * removes exactly some grants; a mover computed from a fresh read-back comes closest). Never a leaver: revoking every
 * grant leaves the identity itself to its owner.
 */
export function revocationAction(item: Pick<CertificationItem, 'system' | 'name' | 'host' | 'type'>, held: string[], revoked: string[]): Record<string, unknown> {
  const identity = { type: item.type === 'person' ? 'person' : 'service_account', name: item.name, ...(item.host ? { host: item.host } : {}) };
  const gone = new Set(revoked);
  return { kind: 'mover', system: item.system, identity, grants: [...new Set(held.filter((g) => !gone.has(g)))].sort() };
}
