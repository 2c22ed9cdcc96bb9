import type { ConnectorRegistry } from '../src/connectors/registry';
import { type EvidenceStore, identityKey } from '../src/evidence/evidence-store';
import { classify, type InventoryReport, type InventoryScanInput, scanTicketKey, type SystemInventory } from '../src/inventory/inventory';

export interface InventoryActivityDeps {
  registry: ConnectorRegistry;
  evidence: EvidenceStore;
  /** The worker's identity, as recorded in evidence. */
  actor: string;
}

export function createInventoryActivities({ registry, evidence, actor }: InventoryActivityDeps) {
  return {
    /**
     * Discovers every configured system and sets what it finds against the evidence. One failing system is
     * reported, not fatal. Each system's findings become one evidence row in the scan's own chain, naming the
     * principal who asked; a retried attempt finds those rows already there.
     */
    async scanInventory(input: InventoryScanInput): Promise<InventoryReport> {
      const startedAt = new Date().toISOString();
      const latest = await evidence.latestOutcomes();
      const names = input.systems && input.systems.length > 0 ? input.systems : registry.names();
      const systems: SystemInventory[] = [];
      for (const system of names) {
        try {
          const found = await registry.get(system).discover();
          systems.push(classify(system, found, (s, n) => latest.get(identityKey(s, n))));
        } catch (err) {
          systems.push({ system, entries: [], orphans: 0, error: err instanceof Error ? err.message : 'discovery failed' });
        }
      }
      for (const s of systems) {
        const count = (status: string) => s.entries.filter((e) => e.status === status).length;
        await evidence.append({
          ticketKey: scanTicketKey(input.scanId),
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
            orphans: s.entries.filter((e) => e.status === 'orphan').map((e) => (e.host === undefined ? { name: e.name } : { name: e.name, host: e.host })),
            ...(s.error ? { error: s.error } : {}),
          },
          // A scan observes; it verifies no desired state, so it never counts as a grant or revoke of anything.
          verified: false,
          verification: {},
          actor,
          principal: input.principal,
          eventReceivedAt: input.requestedAt,
          startedAt,
          verifiedAt: null,
        });
      }
      return { scanId: input.scanId, scannedAt: new Date().toISOString(), systems, orphans: systems.reduce((n, s) => n + s.orphans, 0) };
    },
  };
}

export type InventoryActivities = ReturnType<typeof createInventoryActivities>;
