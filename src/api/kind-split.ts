import { z } from 'zod';
import type { EvidenceStore } from '../evidence/evidence-store';
import { kindNames } from '../kinds/registry';
import { kindSplit } from '../reports/kind-split';
import { stepEnds } from '../reports/step-ends';
import { parseReportQuery, reportFilters } from './report-query';

export const kindSplitQuery = z.object(reportFilters).strict();

/** `GET /api/reports/kinds`: the steps that ended in the window by action kind (joiner … decommission), and each kind's success rate. */
export async function reportKinds(deps: { evidence: EvidenceStore }, query: unknown) {
  const { window, system } = parseReportQuery(kindSplitQuery, query, 'kind report');
  const kinds = kindNames();
  const rows = await deps.evidence.listRecorded({ ...window, actionKinds: kinds, ...(system ? { system } : {}) });
  return { since: window.since.toISOString(), until: window.until.toISOString(), ...kindSplit(stepEnds(rows, kinds), kinds) };
}
