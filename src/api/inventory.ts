import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Principal } from '../auth/principal';
import type { GrammarRegistry } from '../connectors/registry';
import type { EvidenceStore } from '../evidence/evidence-store';
import { AppError, formatPath } from '../errors';
import { type InventoryReport, scanTicketKey } from '../inventory/inventory';
import type { ChangeWorkflows } from '../temporal/temporal-client';

const scanRequest = z.object({ systems: z.array(z.string().min(1).max(100)).max(100).optional() }).strict();
const SCAN_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** `POST /api/inventory/scan`: discovers the named systems (default: all) and reports orphans; the scan's evidence names the caller. */
export async function scanInventory(
  deps: { workflows: ChangeWorkflows; grammars: GrammarRegistry },
  body: unknown,
  principal: Principal,
): Promise<InventoryReport> {
  const requestedAt = new Date().toISOString();
  const parsed = scanRequest.safeParse(body ?? {});
  if (!parsed.success) {
    throw new AppError(400, 'VALIDATION_FAILED', 'the scan request is invalid', parsed.error.issues.map((i) => ({ path: formatPath(i.path) || '(body)', message: i.message })));
  }
  const issues = (parsed.data.systems ?? []).flatMap((s, i) =>
    deps.grammars.get(s) ? [] : [{ path: `systems[${i}]`, message: `unknown system '${s.slice(0, 100)}' (configured: ${deps.grammars.names().join(', ')})` }],
  );
  if (issues.length > 0) throw new AppError(400, 'VALIDATION_FAILED', 'the scan request names unknown systems', issues);
  return deps.workflows.scanInventory({ scanId: randomUUID(), systems: parsed.data.systems, principal: principal.actor, requestedAt });
}

/** `GET /api/inventory/scans/{scanId}`: what a past scan found, per system, and who asked for it, from its evidence. */
export async function scanRecord(deps: { evidence: EvidenceStore }, scanId: string) {
  if (!SCAN_ID.test(scanId)) throw new AppError(400, 'VALIDATION_FAILED', 'invalid scan id', [{ path: 'path.scanId', message: 'must be the scanId a scan returned' }]);
  const { rows, chain } = await deps.evidence.listVerified(scanTicketKey(scanId));
  if (rows.length === 0) throw new AppError(404, 'NOT_FOUND', `no inventory scan ${scanId} is recorded`);
  return { scanId, chain, rows };
}
