import type { Actor } from '../auth/principal';
import type { StepException } from './exception';
import type { ClosureGate } from './closure';
import type { Phase, PlannedAction, SourceName } from './ticket';

export type StepStatus =
  | 'pending'
  | 'waiting-authorization'
  /** Authorized, but a privileged grant waits for a change manager's decision (the governance policy). */
  | 'waiting-approval'
  | 'running'
  | 'verified'
  | 'failed'
  | 'cancelled'
  | 'withdrawn'
  /** A change manager rejected its privileged grants: nothing was granted. */
  | 'rejected'
  /**
   * Cannot run as planned until a person changes something (a selected identity on a system this gateway does not
   * configure, one the policy protects, a non-human identity still serving a workload): blocks closure with why.
   */
  | 'blocked';

/** A change manager's decision on a step's privileged grants, as the workflow recorded it (and evidence holds). */
export interface StepDecision {
  decision: 'approve' | 'reject';
  by: Actor;
  at: string;
  justification: string;
  /** The privileged grants the decision was about. */
  grants: string[];
  evidenceHash: string;
}

/** `standing`: standing access the policy allows, owned by `owner`: it ends with the owner's leaver or certification. */
export type ExpiryStatus = 'none' | 'scheduled' | 'running' | 'verified' | 'failed' | 'standing';

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
  expiry?: {
    status: ExpiryStatus;
    expiresAt?: string;
    until?: 'ticket-closed' | 'window-end';
    /** `until: ticket-closed` ends when the change moves to Review (or closes), and closure waits for the take-back. */
    endsAtReview?: boolean;
    /** Standing access: who answers for it. */
    owner?: string;
    detail?: string;
    verifiedAt?: string;
  };
  /** The decision on its privileged grants, once one was made. */
  decision?: StepDecision;
  /** Movers only: what the move kept, removed and added, as planned from the target's read-back. */
  move?: { kept: string[]; removed: string[]; added: string[]; unmanaged: string[]; toAdd: string[] };
  /** Deploys only: each pipeline run's own credential (facts, never the value). */
  deploy?: { runs: DeployRunRecord[] };
  /** A selecting step (decommission, leaver by owner): the plan read from the inventory, as its evidence records it. */
  plan?: SelectionPlanSummary;
  /** The ticket no longer carries this (verified) step's action: a selecting step plans nothing more for it. */
  dropped?: boolean;
  /** A step that could not reach its target: it is tried again at `nextAttemptAt`, and closure says why it waits. */
  retrying?: { reason: string; attempts: number; nextAttemptAt: string };
  /** Started before the change was authorized, as the policy allows an emergency grant: it opens an exception once verified. */
  grantedEarly?: boolean;
  /** A grant an emergency change made before it was authorized: its review (an emergency exception). */
  exception?: StepException;
}

/** What a selecting step planned: how many identities, on which systems, and what happens to each. */
export interface SelectionPlanSummary {
  size: number;
  revoke: number;
  reassign: number;
  blocked: number;
  systems: string[];
  plannedAt: string;
  evidenceHash: string;
}

/** One pipeline run's credential for one deploy action. */
export interface DeployRunRecord {
  runId: string;
  /** The run's own identity on the target (the action's base name plus the run suffix). */
  identity: string;
  /** Where its secret was delivered (the action's path plus the run id). */
  path: string;
  /** minting → live → revoking → revoked; `failed`: the revocation could not be verified, so it may still be live. */
  status: 'minting' | 'live' | 'revoking' | 'revoked' | 'failed';
  startedEventId: string;
  startedAt: string;
  fingerprint?: string;
  version?: number;
  expiresAt?: string;
  /** What ended it: `finished:<outcome>`, `ttl`, `cancelled`, `mint-failed`. */
  endedBy?: string;
  revokedAt?: string;
  detail?: string;
  /**
   * A `failed` revocation that gave up on a fault that may pass (the target unreachable): it is tried again at
   * `nextAttemptAt`, and closure says so. Absent on a revocation the target refused: nothing retries that on its own.
   */
  retrying?: { reason: string; attempts: number; nextAttemptAt: string };
}

/** One save of updates for the ticket: the gate (when it changes) and the notes that go with it, each marker once. */
export interface OutboxBatch {
  gate?: ClosureGate;
  notes: Array<{ marker: string; text: string }>;
  /** Updates of other kinds (a property, a transition, an attachment), each with its marker; see src/itsm/source.ts. */
  updates?: Array<{ marker: string; kind: string; body: Record<string, unknown> }>;
  /** Delivery attempts so far; a batch never attempted may still take on later updates. */
  attempts: number;
  /** The marker of the "closure allowed" note written with a verified gate, dropped if that gate is replaced unsent. */
  gateNote?: string;
}

export interface TicketOutbox {
  /** Oldest first; the first is the one being delivered. */
  pending: OutboxBatch[];
  /** The last transient failure of the first batch while it is retried (cleared once it lands). */
  waiting?: { reason: string; attempts: number; since: string; nextAttemptAt: string };
  /** A gate write the source refused: not asked for again until the ticket's next delivery. */
  refused?: { gate: ClosureGate; version: number };
  /**
   * Batches the source refused (their reasons are in writeBackErrors): held until the ticket's next delivery, which
   * may mean a person fixed the cause, and then sent once more (and their reasons withdrawn) — refused again, held again.
   */
  held?: Array<{ batch: OutboxBatch; reason: string; version: number }>;
}

/** A change as its workflow keeps it and reports it (the `status` query). */
export interface ChangeState {
  source: SourceName;
  key: string;
  recordId: string;
  /** -1 until the first delivery. */
  version: number;
  phase: Phase | '';
  emergency: boolean;
  sourceState: string;
  requester?: string;
  implementer?: string;
  windowEnd?: string;
  steps: StepState[];
  /** True while the gate last written to the ticket lets it close (`verified` or `not_applicable`). */
  gateSet: boolean;
  /**
   * The gate the ticket is known to carry: the one last written to it, or, before the first write, the one the newest
   * delivery showed when it was the gate wanted (one-write-back-per-turn). Absent until then.
   */
  gate?: ClosureGate;
  /** actionsDigest of the newest delivery. */
  actionsDigest?: string;
  /** Markers of the work notes (and, on the outbox, other updates) delivered to the ticket, so that each lands once. */
  notesWritten?: string[];
  /** The ticket reached a closed state without proven cleanup and was reopened (or the reopen failed) at this version. */
  reopened?: { version: number; ok: boolean };
  /** File names of the evidence bundles attached to the ticket (one per verified identity-actions text). */
  evidenceAttached?: string[];
  /** Write-backs to the ticket that failed for good (e.g. the ticket is gone or the integration user lacks rights). */
  writeBackErrors: string[];
  /** The ticket outbox (ticket-outbox): updates recorded for the ticket and not yet delivered. Absent before it. */
  outbox?: TicketOutbox;
  deliveries: number;
  ignoredStale: number;
}

/** Grant late: only once the change is authorized and in its window (a standard change is pre-approved). */
export function isAuthorized(state: Pick<ChangeState, 'phase'>): boolean {
  return state.phase === 'implement';
}

/**
 * The privileged grants the step's next run would make: all of them for a grant, only those a move still has to add.
 * Empty when the policy marks none.
 */
export function privilegedPending(step: StepState): string[] {
  const privileged = step.action.privileged ?? [];
  if (privileged.length === 0) return [];
  return step.move ? privileged.filter((g) => step.move?.toAdd.includes(g)) : privileged;
}

/** Authorized is not enough for a privileged grant: it also needs a change manager's approval. */
export function needsDecision(step: StepState): boolean {
  return privilegedPending(step).length > 0 && step.decision?.decision !== 'approve';
}
