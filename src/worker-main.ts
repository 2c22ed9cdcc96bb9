import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { discoveryIntervalMs, loadConfig, servicenowCredentials, writeBackBackoff } from './config';
import { ConnectorRegistry, loadConnectorsFile } from './connectors/registry';
import { ClosureVerdictStore } from './closure/verdict-store';
import { EvidenceStore } from './evidence/evidence-store';
import { ServiceNowClient } from './itsm/servicenow/servicenow-client';
import { createLogger, temporalLogSink } from './logger';
import { openDatabase } from './persistence/data-source';
import { ensureDiscoverySchedule } from './temporal/discovery-schedule';
import { createWorker } from './worker';

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger('worker', config.LOG_LEVEL);
  const temporalLevel = ({ debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR' } as const)[config.LOG_LEVEL];
  Runtime.install({ logger: new DefaultLogger(temporalLevel, temporalLogSink(log.child('temporal'))) });
  const ds = await openDatabase(config.DATABASE_URL, { migrate: false });
  const registry = new ConnectorRegistry(loadConnectorsFile(config.CONNECTORS_CONFIG));
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const worker = await createWorker({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    maxCachedWorkflows: config.TEMPORAL_MAX_CACHED_WORKFLOWS,
    registry,
    evidence: new EvidenceStore(ds),
    verdicts: new ClosureVerdictStore(ds),
    servicenow: new ServiceNowClient({ baseUrl: config.SERVICENOW_URL, ...servicenowCredentials(config) }),
    writeBackBackoff: writeBackBackoff(config),
  });
  // The discovery schedule runs on this worker's task queue; every worker start brings it to the configured interval.
  const client = new Client({ connection: await Connection.connect({ address: config.TEMPORAL_ADDRESS }), namespace: config.TEMPORAL_NAMESPACE });
  await ensureDiscoverySchedule(client, { taskQueue: config.TEMPORAL_TASK_QUEUE, intervalMs: discoveryIntervalMs(config) });
  await client.connection.close();
  log.info('worker started', { taskQueue: config.TEMPORAL_TASK_QUEUE, namespace: config.TEMPORAL_NAMESPACE });
  // The SDK's runtime turns SIGINT/SIGTERM into a graceful shutdown that ends run().
  await worker.run();
  await registry.close();
  await connection.close();
  await ds.destroy();
  log.info('worker stopped');
}

main().catch((err: unknown) => {
  console.error('changegate worker failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
