/**
 * A deploy's pipeline runs, as the API and the workflow both speak of them: the update the deploy webhook sends to
 * the ticket's workflow, its reply, the refusals it maps to HTTP statuses, and how a run's own credential is named.
 * Pure and deterministic: the workflow bundle imports it.
 */

/** The workflow update a deploy event becomes (workflows/kinds/deploy.ts handles it). */
export const DEPLOY_RUN_UPDATE = 'deployRun';

/** A pipeline's run id: it names the run's credential and the last segment of its delivery path. */
export const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export type DeployEvent = 'started' | 'finished';
export type DeployOutcome = 'success' | 'failure' | 'cancelled';

export interface DeployRunRequest {
  runId: string;
  event: DeployEvent;
  outcome?: DeployOutcome;
  /** Delivery id of the webhook (X-Changegate-Event-Id), kept with the run. */
  eventId: string;
  receivedAt: string;
}

/** One credential a run holds: facts about it, never the value. */
export interface DeployCredentialFacts {
  actionId: string;
  system: string;
  /** The run's own identity on the target. */
  identity: string;
  deliveredTo: { system: string; path: string };
  fingerprint?: string;
  version?: number;
  expiresAt?: string;
  status: DeployRunStatus;
  detail?: string;
}

export type DeployRunStatus = 'minting' | 'live' | 'revoking' | 'revoked' | 'failed';

export interface DeployRunReply {
  runId: string;
  event: DeployEvent;
  /** `started`: minted now. `existing`: this run was started before, nothing new was minted. `revoked`, `already-revoked`. */
  result: 'started' | 'existing' | 'revoked' | 'already-revoked';
  credentials: DeployCredentialFacts[];
}

/** Why the workflow refused a deploy event; the API maps each to its status. */
export const DeployRefusal = {
  NotAuthorized: 'DeployNotAuthorized',
  NoDeployAction: 'DeployNoAction',
  UnknownRun: 'DeployUnknownRun',
  RunEnded: 'DeployRunEnded',
  MintFailed: 'DeployMintFailed',
  /** The run's identity already existed before the run minted it: someone else's account, never taken over or removed. */
  IdentityTaken: 'DeployIdentityTaken',
} as const;

/** 64-bit FNV-1a: deterministic in the workflow sandbox (no node:crypto there), and enough to tell runs apart. */
function fnv1a64(text: string): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash;
}

/** `_d` and 10 hex digits: what every run's identity adds to the action's base name. */
export const RUN_SUFFIX_LENGTH = 12;
export const RUN_SUFFIX_EXAMPLE = '_d0123456789';

/**
 * A run's own identity: the action's base name plus `_d` and 40 bits of a hash of the ticket, the action and the
 * run id. The same run always gets the same name (a retried mint finds its own account); different runs get
 * different ones, and the edge has checked that the base name plus a suffix of this shape fits the target's grammar.
 */
export function runIdentityName(base: string, ticketKey: string, actionId: string, runId: string): string {
  const hex = fnv1a64(`${ticketKey}\n${actionId}\n${runId}`).toString(16).padStart(16, '0').slice(0, 10);
  return `${base}_d${hex}`;
}

/** Each run's secret lives under the action's path, in a segment named by the run id. */
export function runSecretPath(path: string, runId: string): string {
  return `${path}/${runId}`;
}
