import type { ConnectorRegistry } from '../src/connectors/registry';
import { type EvidenceStore, identityKey } from '../src/evidence/evidence-store';
import { classify, type InventoryReport, type SystemInventory } from '../src/inventory/inventory';

export interface InventoryActivityDeps {
  registry: ConnectorRegistry;
  evidence: EvidenceStore;
}

export function createInventoryActivities({ registry, evidence }: InventoryActivityDeps) {
  return {
    /** Discovers every configured system and sets what it finds against the evidence. One failing system is reported, not fatal. */
    async scanInventory(input: { systems?: string[] }): Promise<InventoryReport> {
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
      return { scannedAt: new Date().toISOString(), systems, orphans: systems.reduce((n, s) => n + s.orphans, 0) };
    },
  };
}

export type InventoryActivities = ReturnType<typeof createInventoryActivities>;
