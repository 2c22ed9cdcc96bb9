import type { ClosureGate } from './closure';
import type { Phase, PlannedAction, SourceName } from './ticket';

export type StepStatus = 'pending' | 'waiting-authorization' | 'running' | 'verified' | 'failed' | 'cancelled' | 'withdrawn';

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
  /** Markers of the work notes written to the ticket in loop write-backs, so that each is written once. */
  notesWritten?: string[];
  /** Write-backs to the ticket that failed for good (e.g. the ticket is gone or the integration user lacks rights). */
  writeBackErrors: string[];
  deliveries: number;
  ignoredStale: number;
}
