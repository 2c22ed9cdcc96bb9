import { patched, proxyActivities, uuid4 } from '@temporalio/workflow';
import type { DriftActivities, InventoryActivities } from '../activities';
import { certifications } from './activity-proxies';
import type { InventoryReport, InventoryScanInput } from '../src/inventory/inventory';

const inventory = proxyActivities<InventoryActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 5 },
});

const drift = proxyActivities<DriftActivities>({
  startToCloseTimeout: '2 minutes',
  // The ticket system may be down for a while; a change opened before its answer was lost is found by its correlation id.
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
});

/** After its scan, a run opens the changes that remediate the drift the policy says to remediate. */
const DRIFT_REMEDIATION = 'drift-remediation';

/** After its remediation, a run opens certification items for the drift the policy says to certify. */
const DRIFT_CERTIFICATION = 'drift-certification';

async function afterScan(): Promise<void> {
  if (patched(DRIFT_REMEDIATION)) await drift.remediateDrift();
  if (patched(DRIFT_CERTIFICATION)) await certifications.certifyDrift();
}

/**
 * One inventory scan: runs on the worker, which holds the connector credentials; the API only starts it. The
 * activity records what it found, per system, with the principal who asked.
 */
export async function inventoryWorkflow(input: InventoryScanInput): Promise<InventoryReport> {
  const report = await inventory.scanInventory(input);
  await afterScan();
  return report;
}

/**
 * One run of the discovery schedule (src/temporal/discovery-schedule.ts): a scan of every configured system with no
 * principal behind it. Its scan id comes from the workflow's deterministic uuid, so a replay names the same scan.
 */
export async function discoveryWorkflow(): Promise<InventoryReport> {
  const report = await inventory.scanInventory({ scanId: uuid4(), trigger: 'schedule', requestedAt: new Date().toISOString() });
  await afterScan();
  return report;
}
