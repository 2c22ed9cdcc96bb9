import { proxyActivities } from '@temporalio/workflow';
import type { InventoryActivities } from '../activities';
import type { InventoryReport } from '../src/inventory/inventory';

const inventory = proxyActivities<InventoryActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 5 },
});

/** One inventory scan: runs on the worker, which holds the connector credentials; the API only starts it. */
export async function inventoryWorkflow(input: { systems?: string[] }): Promise<InventoryReport> {
  return inventory.scanInventory(input);
}
