import { proxyActivities, uuid4 } from '@temporalio/workflow';
import type { InventoryActivities } from '../activities';
import type { InventoryReport, InventoryScanInput } from '../src/inventory/inventory';

const inventory = proxyActivities<InventoryActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 5 },
});

/**
 * One inventory scan: runs on the worker, which holds the connector credentials; the API only starts it. The
 * activity records what it found, per system, with the principal who asked.
 */
export async function inventoryWorkflow(input: InventoryScanInput): Promise<InventoryReport> {
  return inventory.scanInventory(input);
}

/**
 * One run of the discovery schedule (src/temporal/discovery-schedule.ts): a scan of every configured system with no
 * principal behind it. Its scan id comes from the workflow's deterministic uuid, so a replay names the same scan.
 */
export async function discoveryWorkflow(): Promise<InventoryReport> {
  return inventory.scanInventory({ scanId: uuid4(), trigger: 'schedule', requestedAt: new Date().toISOString() });
}
