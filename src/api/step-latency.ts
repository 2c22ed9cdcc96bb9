import { z } from 'zod';
import type { EvidenceStore } from '../evidence/evidence-store';
import { kindNames } from '../kinds/registry';
import { BUCKETS, type Bucket, latencySeries } from '../reports/latency';
import { stepEnds } from '../reports/step-ends';
import { AppError } from '../errors';
import { kindFilter, parseReportQuery, reportFilters } from './report-query';

const BUCKET_NAMES = Object.keys(BUCKETS) as [Bucket, ...Bucket[]];

export const latencyQuery = z
  .object({
    ...reportFilters,
    kind: kindFilter,
    bucket: z.enum(BUCKET_NAMES, { errorMap: () => ({ message: `must be one of ${BUCKET_NAMES.join(', ')}` }) }).optional(),
  })
  .strict();

/** Points a series may have: hourly over a month, daily over a year. */
const MAX_POINTS = 800;

/**
 * `GET /api/reports/latency`: event-to-verified p50/p95 and steps verified (throughput) per hour or day of the
 * window, by when each step ended; for one system and one kind when asked.
 */
export async function reportLatency(deps: { evidence: EvidenceStore }, query: unknown) {
  const { window, system, kind, bucket = 'hour' } = parseReportQuery(latencyQuery, query, 'latency report');
  if ((window.until.getTime() - window.since.getTime()) / BUCKETS[bucket] > MAX_POINTS) {
    throw new AppError(400, 'VALIDATION_FAILED', 'the latency report query is invalid', [{ path: 'query.bucket', message: `the window holds more than ${MAX_POINTS} ${bucket}s: use a longer bucket or a shorter window` }]);
  }
  const kinds = kind ? [kind] : kindNames();
  const rows = await deps.evidence.listRecorded({ ...window, actionKinds: kinds, ...(system ? { system } : {}) });
  return { since: window.since.toISOString(), until: window.until.toISOString(), ...latencySeries(stepEnds(rows, kinds), window, bucket) };
}
