import { z } from 'zod';
import type { DriftStore } from '../drift/drift-store';
import type { EvidenceStore } from '../evidence/evidence-store';
import { kindNames } from '../kinds/registry';
import { stepEnds } from '../reports/step-ends';
import { targetHealth, UNMATCHED } from '../reports/target-health';
import { parseReportQuery, reportFilters } from './report-query';

export const targetHealthQuery = z.object(reportFilters).strict();

/** The evidence chain of a leak report names this action kind (activities/leak-activities.ts). */
const LEAK_REPORT = 'leak-report';

/**
 * `GET /api/reports/targets`: per target system, the steps that ended in the window (verified, failed, retried),
 * its open drift findings now, and the leaked-secret reports that matched one of its credentials.
 */
export async function reportTargets(deps: { evidence: EvidenceStore; drift: DriftStore }, query: unknown) {
  const { window, system } = parseReportQuery(targetHealthQuery, query, 'target report');
  const kinds = kindNames();
  const rows = await deps.evidence.listRecorded({ ...window, actionKinds: [...kinds, LEAK_REPORT], ...(system ? { system } : {}) });
  const leaks = rows.filter((r) => r.actionKind === LEAK_REPORT);
  const drift = await deps.drift.openBySystem(system);
  return {
    since: window.since.toISOString(),
    until: window.until.toISOString(),
    unmatchedLeaks: UNMATCHED,
    systems: targetHealth(stepEnds(rows, kinds), leaks, drift),
  };
}
