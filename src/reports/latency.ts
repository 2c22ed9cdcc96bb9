import type { ReportWindow } from './report-window';
import { type StepEnd, quantile } from './step-ends';
import type { LatencyPoint } from './shapes';

export const BUCKETS = { hour: 3_600_000, day: 86_400_000 } as const;
export type Bucket = keyof typeof BUCKETS;

/**
 * Event to verified: from the ticket event a step came from to its verified read-back, per bucket of the window
 * (by when the step ended), with the step throughput of each bucket; and the same quantiles over the whole window.
 */
export function latencySeries(ends: readonly StepEnd[], window: ReportWindow, bucket: Bucket) {
  const size = BUCKETS[bucket];
  const first = Math.floor(window.since.getTime() / size) * size;
  const points = new Map<number, { verified: number[]; failed: number }>();
  for (let t = first; t < window.until.getTime(); t += size) points.set(t, { verified: [], failed: 0 });
  const all: number[] = [];
  for (const end of ends) {
    const at = Date.parse(end.verifiedAt ?? end.recordedAt);
    const slot = points.get(Math.floor(at / size) * size);
    if (!slot) continue;
    if (!end.verified || !end.verifiedAt) {
      slot.failed++;
      continue;
    }
    const ms = Math.max(0, Date.parse(end.verifiedAt) - Date.parse(end.eventReceivedAt));
    if (!Number.isFinite(ms)) continue;
    slot.verified.push(ms);
    all.push(ms);
  }
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  const whole = sorted(all);
  return {
    bucket,
    overall: { verified: whole.length, p50Ms: quantile(whole, 0.5), p95Ms: quantile(whole, 0.95) },
    points: [...points.entries()].map(([t, p]): LatencyPoint => {
      const s = sorted(p.verified);
      return { at: new Date(t).toISOString(), verified: s.length, failed: p.failed, p50Ms: quantile(s, 0.5), p95Ms: quantile(s, 0.95) };
    }),
  };
}
