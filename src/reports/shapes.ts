/**
 * What the report routes answer, item by item: plain shapes with no imports, so that the dashboard reads the same
 * types the server computes (it imports them as types only; nothing of the server reaches its bundle).
 */

/** Open drift findings of one system, by finding type, as the drift table holds them now. */
export type DriftCounts = Record<string, number>;

export interface TargetHealth {
  system: string;
  steps: number;
  verified: number;
  failed: number;
  failureRate: number | null;
  /** Activity attempts after the first (transient faults Temporal retried), and extra read-back rounds. */
  retries: number;
  reReads: number;
  drift: { open: number; byType: DriftCounts };
  leaks: { reports: number; byOutcome: Record<string, number> };
  /** The newest failures, newest first (at most five). */
  recentFailures: Array<{ source: string; ticket: string; stepId: string; kind: string; at: string; detail: string }>;
}

export interface KindShare {
  kind: string;
  /** Distinct tickets with a step of this kind that ended in the window. */
  changes: number;
  steps: number;
  verified: number;
  failed: number;
  successRate: number | null;
  /** This kind's share of all steps that ended. */
  share: number | null;
}

export interface LatencyPoint {
  /** Start of the bucket (UTC). */
  at: string;
  /** Steps verified in the bucket. */
  verified: number;
  failed: number;
  p50Ms: number | null;
  p95Ms: number | null;
}

export interface LiveCredential {
  source: string;
  ticket: string;
  runId: string;
  system: string;
  identity: string;
  deliveredTo: string | null;
  mintedAt: string;
  /** The revocation was tried and failed: the credential is live and closure is blocked on it. */
  revocationFailed: boolean;
}
