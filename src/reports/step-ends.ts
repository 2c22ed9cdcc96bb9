import type { EvidenceView } from '../evidence/evidence-store';

/**
 * How each identity step ended, read from its evidence rows: the reports (failures per target system, the split by
 * kind, event-to-verified latency) all count these, never the workflows.
 */
export interface StepEnd {
  ticketKey: string;
  stepId: string;
  kind: string;
  system: string;
  verified: boolean;
  eventReceivedAt: string;
  verifiedAt: string | null;
  recordedAt: string;
  /** Temporal attempts of the activity after the first, and read-back rounds after the first (rows since they were recorded). */
  retries: number;
  reReads: number;
  /** Why it failed, when it did. */
  detail?: string;
}

/**
 * Rows that prove something before or beside a step's end: a deploy run claiming its name, a selection's plan, a
 * hand-over of ownership. They are not the step's outcome.
 */
const NOT_AN_END = new Set(['claimed', 'planned', 'planned-at-authorization']);

/**
 * One end per (ticket, step): a verified row wins over a failed one (a step retried after its failure was recorded,
 * as an unreachable target's revocation is), and among failures the last recorded stands.
 */
export function stepEnds(rows: readonly EvidenceView[], kinds: readonly string[]): StepEnd[] {
  const ends = new Map<string, StepEnd>();
  for (const row of rows) {
    if (!kinds.includes(row.actionKind) || NOT_AN_END.has(row.outcome)) continue;
    const failed = row.outcome === 'failed' || !row.verified;
    if (failed && row.outcome !== 'failed') continue;
    const key = `${row.ticketKey}\u0000${row.stepId}`;
    const earlier = ends.get(key);
    if (earlier?.verified && failed) continue;
    const attempts = (row.verification as { attempts?: { activity?: unknown; readBack?: unknown } }).attempts;
    const extra = (n: unknown) => (typeof n === 'number' && Number.isInteger(n) && n > 1 ? n - 1 : 0);
    ends.set(key, {
      ticketKey: row.ticketKey,
      stepId: row.stepId,
      kind: row.actionKind,
      system: row.system,
      verified: !failed,
      eventReceivedAt: row.eventReceivedAt,
      verifiedAt: row.verifiedAt,
      recordedAt: row.recordedAt,
      // A failure recorded before the step was retried and verified counts its attempts too.
      retries: extra(attempts?.activity) + (earlier?.retries ?? 0),
      reReads: extra(attempts?.readBack) + (earlier?.reReads ?? 0),
      ...(failed ? { detail: failureDetail(row) } : {}),
    });
  }
  return [...ends.values()];
}

function failureDetail(row: EvidenceView): string {
  const v = row.verification as { error?: unknown; mismatches?: unknown };
  if (typeof v.error === 'string') return v.error;
  if (Array.isArray(v.mismatches) && v.mismatches.length > 0) return `not verified: ${v.mismatches.map(String).join('; ')}`;
  return 'failed';
}

/** The share of `part` in `whole`, or null when there is nothing to divide (no steps is not 0 % success). */
export function rate(part: number, whole: number): number | null {
  return whole === 0 ? null : part / whole;
}

/** Nearest-rank quantile of sorted values; null for none. */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** `servicenow:CHG0030001` → its source and key; a chain of another kind (leak:…, inventory:…) has no source. */
export function ticketOf(ticketKey: string): { source: string; ticket: string } {
  const at = ticketKey.indexOf(':');
  return at < 0 ? { source: '', ticket: ticketKey } : { source: ticketKey.slice(0, at), ticket: ticketKey.slice(at + 1) };
}
