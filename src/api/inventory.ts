import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import type { Principal } from '../auth/principal';
import type { GrammarRegistry } from '../connectors/registry';
import type { EvidenceStore } from '../evidence/evidence-store';
import { AppError, formatPath } from '../errors';
import { EvidenceRefusal } from '../evidence/redaction';
import { type InventoryReport, scanTicketKey } from '../inventory/inventory';
import { INVENTORY_STATUSES, type InventoryStore, toItem } from '../inventory/inventory-store';
import { attributionSchema } from '../kinds/spec';
import { pageCursor, pageLimit, queryIssues } from './paging';
import type { ChangeWorkflows } from '../temporal/temporal-client';

export const scanRequest = z.object({ systems: z.array(z.string().min(1).max(100)).max(100).optional() }).strict();
export const SCAN_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

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

export const INVENTORY_ID = /^[1-9][0-9]{0,17}$/;

export const inventoryListQuery = z
  .object({
    system: z.string().min(1).max(100).optional(),
    name: z.string().min(1, 'must not be empty').max(256, 'must be at most 256 characters').optional(),
    owner: attributionSchema.optional(),
    workload: attributionSchema.optional(),
    status: z.enum(INVENTORY_STATUSES, { errorMap: () => ({ message: `must be one of ${INVENTORY_STATUSES.join(', ')}` }) }).optional(),
    limit: pageLimit,
    cursor: pageCursor(INVENTORY_ID),
  })
  .strict();

/** `GET /api/inventory`: identities the gateway knows, filtered and paged by id. */
export async function listInventory(deps: { inventory: InventoryStore }, query: unknown) {
  const parsed = inventoryListQuery.safeParse(query ?? {});
  if (!parsed.success) throw new AppError(400, 'VALIDATION_FAILED', 'the inventory query is invalid', queryIssues(parsed.error, ['system', 'name', 'owner', 'workload', 'status', 'limit', 'cursor']));
  const { cursor, limit = 100, ...filters } = parsed.data;
  const page = await deps.inventory.list({ ...filters, ...(cursor ? { afterId: cursor } : {}), limit });
  return { ...page, limit };
}

export const ownershipBody = z
  .object({ owner: attributionSchema.optional(), workload: attributionSchema.optional() })
  .strict()
  .refine((b) => b.owner !== undefined || b.workload !== undefined, { message: 'set owner, workload or both' });

/**
 * `PATCH /api/inventory/{id}`: an operator names an orphan's owner and workload. It stays an orphan (naming an owner
 * is not a change that grants it anything); the decision is an evidence row in the identity's own chain
 * (`inventory-identity:<id>`) naming the principal, and the row changes in that row's transaction.
 */
export async function setOwnership(deps: { inventory: InventoryStore; evidence: EvidenceStore }, id: string, body: unknown, principal: Principal) {
  if (!INVENTORY_ID.test(id)) throw new AppError(400, 'VALIDATION_FAILED', 'invalid inventory id', [{ path: 'path.id', message: 'must be the id an inventory listing returned' }]);
  const parsed = ownershipBody.safeParse(body ?? {});
  if (!parsed.success) {
    throw new AppError(400, 'VALIDATION_FAILED', 'the ownership request is invalid', parsed.error.issues.map((i) => ({ path: formatPath(i.path) || '(body)', message: i.message })));
  }
  const row = await deps.inventory.get(id);
  if (!row) throw new AppError(404, 'NOT_FOUND', `no identity ${id} is in the inventory`);
  const conflict = (status: string) => new AppError(409, 'CONFLICT', `identity ${id} is ${status}, not an orphan: its owner and workload come from the changes that manage it`);
  if (row.status !== 'orphan') throw conflict(row.status);
  const now = new Date().toISOString();
  const chain = `inventory-identity:${id}`;
  const set = parsed.data;
  const event = `${[set.owner !== undefined ? 'owner' : '', set.workload !== undefined ? 'workload' : ''].filter(Boolean).join(' and ')} set by ${principal.actor.name}`;
  const recorded = await refuseSecrets(() => deps.evidence.append(
    {
      ticketKey: chain,
      stepId: `ownership:${randomUUID()}`,
      outcome: 'ownership-set',
      actionKind: 'inventory-ownership',
      system: row.system,
      identity: { type: row.type, name: row.name, ...(row.host ? { host: row.host } : {}) },
      desiredState: { ...set },
      observedState: { status: row.status, previous: { owner: row.owner, ownerSource: row.ownerSource, workload: row.workload, workloadSource: row.workloadSource } },
      // A decision, not a read-back: it proves who said so, not what the target holds.
      verified: false,
      verification: {},
      actor: `changegate-api@${hostname()}`,
      principal: principal.actor,
      eventReceivedAt: now,
      startedAt: now,
      verifiedAt: null,
    },
    deps.inventory.ownershipProjection(id, set, event, chain, conflict),
  ));
  const updated = await deps.inventory.get(id);
  return { identity: updated ? toItem(updated) : null, evidence: { ticketKey: chain, seq: recorded.seq, hash: recorded.hash } };
}

/** A value in the shape of a credential is the caller's mistake: a 400 naming the field, never the value. */
async function refuseSecrets<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof EvidenceRefusal)) throw err;
    const field = /desiredState\.(owner|workload)/.exec(err.path)?.[1] ?? '(body)';
    throw new AppError(400, 'VALIDATION_FAILED', 'the ownership request holds a credential', [{ path: field, message: `must not hold ${err.reason}` }], { cause: err });
  }
}
