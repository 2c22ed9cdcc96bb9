import { z } from 'zod';
import type { EvidenceStore } from '../evidence/evidence-store';
import { deployCredentials } from '../reports/deploy-credentials';
import { parseReportQuery, reportFilters } from './report-query';

export const deployCredentialsQuery = z.object({ system: reportFilters.system }).strict();

/**
 * `GET /api/reports/deploy-credentials`: pipeline runs' credentials minted and revoked, from deploy evidence of all
 * time (a credential minted long ago and never revoked is the one to see), and each one still live.
 */
export async function reportDeployCredentials(deps: { evidence: EvidenceStore }, query: unknown) {
  const { system } = parseReportQuery(deployCredentialsQuery, query, 'deploy credential report');
  const rows = await deps.evidence.listRecorded({ since: new Date(0), until: new Date(Date.now() + 1), actionKinds: ['deploy'], ...(system ? { system } : {}) });
  return deployCredentials(rows);
}
