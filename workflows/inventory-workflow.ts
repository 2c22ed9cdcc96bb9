import { proxyActivities } from '@temporalio/workflow';
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
