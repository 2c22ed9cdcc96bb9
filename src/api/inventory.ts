import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { GrammarRegistry } from '../connectors/registry';
import { AppError, formatPath } from '../errors';
import type { InventoryReport } from '../inventory/inventory';
import type { ChangeWorkflows } from '../temporal/temporal-client';

const scanRequest = z.object({ systems: z.array(z.string().min(1).max(100)).max(100).optional() }).strict();

/** `POST /api/inventory/scan`: discovers the named systems (default: all) and reports orphans. */
export async function scanInventory(deps: { workflows: ChangeWorkflows; grammars: GrammarRegistry }, body: unknown): Promise<InventoryReport> {
  const parsed = scanRequest.safeParse(body ?? {});
  if (!parsed.success) {
    throw new AppError(400, 'VALIDATION_FAILED', 'the scan request is invalid', parsed.error.issues.map((i) => ({ path: formatPath(i.path) || '(body)', message: i.message })));
  }
  const issues = (parsed.data.systems ?? []).flatMap((s, i) =>
    deps.grammars.get(s) ? [] : [{ path: `systems[${i}]`, message: `unknown system '${s.slice(0, 100)}' (configured: ${deps.grammars.names().join(', ')})` }],
  );
  if (issues.length > 0) throw new AppError(400, 'VALIDATION_FAILED', 'the scan request names unknown systems', issues);
  return deps.workflows.scanInventory(parsed.data.systems, randomUUID());
}
