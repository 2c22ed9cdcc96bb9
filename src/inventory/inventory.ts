import type { Actor } from '../auth/principal';
import type { DiscoveredIdentity } from '../connectors/connector';

/**
 * How the inventory sees one identity in a target:
 * - `managed`: the gateway granted it (its latest verified evidence is a grant or rotation) and it is still there;
 * - `protected`: built in, the gateway's own credential, or protected by policy;
 * - `revoked`: revoked by a change and kept on purpose (revoke policy `disable`);
 * - `orphan`: present in the target with no change that accounts for it — someone made it behind the gateway's
 *   back, or a revoke did not take. Orphans are what a reviewer needs to look at.
 */
export type InventoryStatus = 'managed' | 'protected' | 'revoked' | 'orphan';

export interface InventoryEntry extends DiscoveredIdentity {
  status: InventoryStatus;
  /** The change whose evidence accounts for the identity, when one does. */
  ticketKey?: string;
}

export interface SystemInventory {
  system: string;
  entries: InventoryEntry[];
  orphans: number;
  /** Set when discovery failed; the other systems are still reported. */
  error?: string;
}

export interface InventoryReport {
  /** Names the scan's evidence chain (`inventory:<scanId>`) and its workflow (`inventory-<scanId>`). */
  scanId: string;
  scannedAt: string;
  systems: SystemInventory[];
  orphans: number;
}

export interface InventoryScanInput {
  scanId: string;
  /** Default: every configured system. */
  systems?: string[];
  /** Who asked for the scan; recorded in its evidence. A scheduled discovery has no principal. */
  principal?: Actor;
  /** `schedule` for the discovery schedule's runs; absent for a scan someone asked for. */
  trigger?: 'schedule';
  requestedAt: string;
}

export function scanTicketKey(scanId: string): string {
  return `inventory:${scanId}`;
}

const GRANTED = new Set(['granted', 'rotated']);
const REVOKED = new Set(['revoked', 'expired']);

export function classify(
  system: string,
  discovered: DiscoveredIdentity[],
  latest: (system: string, name: string) => { outcome: string; ticketKey: string } | undefined,
): SystemInventory {
  const entries = discovered.map((d): InventoryEntry => {
    if (d.protected) return { ...d, status: 'protected' };
    const last = latest(system, d.name);
    if (last && GRANTED.has(last.outcome)) return { ...d, status: 'managed', ticketKey: last.ticketKey };
    if (last && REVOKED.has(last.outcome) && d.locked) return { ...d, status: 'revoked', ticketKey: last.ticketKey };
    return { ...d, status: 'orphan', ...(last ? { ticketKey: last.ticketKey } : {}) };
  });
  return { system, entries, orphans: entries.filter((e) => e.status === 'orphan').length };
}
