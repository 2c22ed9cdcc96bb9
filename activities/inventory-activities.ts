import type { ConnectorRegistry } from '../src/connectors/registry';
import { driftOf, type Finding } from '../src/drift/drift';
import type { DriftStore } from '../src/drift/drift-store';
import type { AlongsideEvidence } from '../src/evidence/evidence-store';
import { isManaged } from '../src/kinds/mover/move-plan';
import type { Policy } from '../src/policy/policy';
import { type EvidenceStore, identityKey } from '../src/evidence/evidence-store';
import { assertNoSecrets, EvidenceRefusal } from '../src/evidence/redaction';
import { classify, type InventoryEntry, type InventoryReport, type InventoryScanInput, scanTicketKey, type SystemInventory } from '../src/inventory/inventory';
import { identityOfRow, type InventoryStore, type ReconcileSummary } from '../src/inventory/inventory-store';

export interface InventoryActivityDeps {
  registry: ConnectorRegistry;
  evidence: EvidenceStore;
  /** The identity inventory each scan reconciles, in the transaction of the scan's evidence row per system. */
  inventory?: InventoryStore;
  /** The worker's identity, as recorded in evidence. */
  actor: string;
  /** Drift findings, kept with each system's scan row; without it a scan finds no drift. */
  drift?: DriftStore;
  /** What the governance policy does with each kind of drift (report by default). */
  policy?: Policy;
}

export function createInventoryActivities({ registry, evidence, inventory, actor, drift, policy }: InventoryActivityDeps) {
  /**
   * Reads back every identity whose approved state the inventory holds on `system` and says what differs. An identity
   * that cannot be read is counted, not guessed at.
   */
  async function findDrift(system: string, listedAt: Date): Promise<{ findings: Finding[]; unread: number }> {
    if (!inventory || !drift) return { findings: [], unread: 0 };
    const connector = registry.get(system);
    const findings: Finding[] = [];
    let unread = 0;
    for (const row of await inventory.approvedRows(system, listedAt)) {
      try {
        const observed = await connector.inspect(identityOfRow(row));
        findings.push(...driftOf(row, observed, (g) => isManaged(connector.grammar, g)));
      } catch {
        unread += 1;
      }
    }
    return { findings, unread };
  }

  return {
    /**
     * Discovers every configured system and sets what it finds against the evidence and the inventory. One failing
     * system is reported, not fatal (and its inventory rows are left alone: a failed listing proves nothing gone).
     * Each system's findings become one evidence row in the scan's own chain, naming the principal who asked (none
     * for a scheduled run), and the inventory's reconcile commits with that row; a retried attempt finds those rows
     * already there.
     */
    async scanInventory(input: InventoryScanInput): Promise<InventoryReport> {
      const startedAt = new Date().toISOString();
      const latest = await evidence.latestOutcomes();
      const names = input.systems && input.systems.length > 0 ? input.systems : registry.names();
      const systems: SystemInventory[] = [];
      const listings = new Map<string, { listedAt: Date; found: Awaited<ReturnType<ReturnType<ConnectorRegistry['get']>['discover']>> }>();
      for (const system of names) {
        try {
          const listedAt = new Date();
          const found = await registry.get(system).discover();
          listings.set(system, { listedAt, found });
          const report = classify(system, found, (s, n) => latest.get(identityKey(s, n)));
          // Attribute values are for ownership rules only: they stay in this activity.
          systems.push({ ...report, entries: report.entries.map(({ attributes: _attributes, ...e }) => e) });
        } catch (err) {
          systems.push({ system, entries: [], orphans: 0, error: err instanceof Error ? err.message : 'discovery failed' });
        }
      }
      const scanKey = scanTicketKey(input.scanId);
      for (const s of systems) {
        const count = (status: string) => s.entries.filter((e) => e.status === status).length;
        const listing = listings.get(s.system);
        const byKey = new Map(s.entries.map((e) => [`${e.name}\u0000${e.host ?? ''}`, e]));
        const reconcile = inventory && listing && !s.error
          ? {
              system: s.system, found: listing.found, listedAt: listing.listedAt, scanKey, rules: registry.ownershipRules(s.system),
              typeOf: (d: { name: string; type?: string }) => registry.get(s.system).grammar.inventoryType?.(d.name) ?? d.type ?? 'service_account',
              fromEvidence: (d: { name: string; host?: string }) => evidenceStatus(byKey.get(`${d.name}\u0000${d.host ?? ''}`)),
            }
          : undefined;
        const summary: ReconcileSummary | undefined = reconcile && inventory ? await inventory.previewReconcile(reconcile) : undefined;
        const found = reconcile && listing ? await findDrift(s.system, listing.listedAt) : undefined;
        const at = new Date();
        const alongside = reconcile && inventory
          ? combine(inventory.reconcileProjection(reconcile), found && drift ? drift.scanProjection(s.system, found.findings, scanKey, at, (t) => policy?.driftAction(s.system, t) ?? 'report') : undefined)
          : undefined;
        await evidence.append({
          ticketKey: scanKey,
          stepId: `scan:${s.system}`,
          outcome: 'scanned',
          actionKind: 'inventory-scan',
          system: s.system,
          identity: {},
          desiredState: {},
          observedState: {
            discovered: s.entries.length,
            managed: count('managed'),
            protected: count('protected'),
            revoked: count('revoked'),
            ...listable(s.entries.filter((e) => e.status === 'orphan').map((e) => (e.host === undefined ? { name: e.name } : { name: e.name, host: e.host }))),
            ...(summary ? { inventory: { added: summary.added, missing: summary.missing, reappeared: summary.reappeared, skipped: summary.skipped } } : {}),
            ...(found && drift ? { drift: { findings: found.findings.map((f) => ({ id: f.id, type: f.type, name: f.name, ...(f.grant ? { grant: f.grant } : {}) })), unread: found.unread } } : {}),
            ...(input.trigger === 'schedule' ? { trigger: 'schedule' } : {}),
            ...(s.error ? { error: s.error } : {}),
          },
          // A scan observes; it verifies no desired state, so it never counts as a grant or revoke of anything.
          verified: false,
          verification: {},
          actor,
          ...(input.principal ? { principal: input.principal } : {}),
          eventReceivedAt: input.requestedAt,
          startedAt,
          verifiedAt: null,
        }, alongside);
      }
      return { scanId: input.scanId, scannedAt: new Date().toISOString(), systems, orphans: systems.reduce((n, s) => n + s.orphans, 0) };
    },
  };
}

/**
 * The orphans a scan row names. A name in the shape of a credential (an account someone called `*<40 hex>`) would make
 * the evidence store refuse the whole row, and with it the system's reconcile: such names are counted, not written.
 */
function listable(orphans: Array<{ name: string; host?: string }>): { orphans: Array<{ name: string; host?: string }>; withheldOrphans?: number } {
  const shown = orphans.filter((o) => {
    try {
      assertNoSecrets(o);
      return true;
    } catch (err) {
      if (err instanceof EvidenceRefusal) return false;
      throw err;
    }
  });
  return { orphans: shown, ...(shown.length < orphans.length ? { withheldOrphans: orphans.length - shown.length } : {}) };
}

/** Two projections in one evidence transaction, in order. */
function combine(first: AlongsideEvidence, second: AlongsideEvidence | undefined): AlongsideEvidence {
  if (!second) return first;
  return async (tx) => {
    await first(tx);
    await second(tx);
  };
}

function evidenceStatus(entry: InventoryEntry | undefined): { status: 'managed' | 'revoked' | 'orphan' | 'protected'; ticketKey?: string } {
  if (!entry) return { status: 'orphan' };
  return { status: entry.status, ...(entry.status !== 'orphan' && entry.ticketKey ? { ticketKey: entry.ticketKey } : {}) };
}

export type InventoryActivities = ReturnType<typeof createInventoryActivities>;
