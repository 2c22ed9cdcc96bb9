import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { discoveryIntervalMs, evidenceSealKey, jiraSite, loadConfig, metricsListen, notifySettings, reconcileIntervalMs, servicenowCredentials, servicenowSettings, workerPollSilenceMs, writeBackBackoff } from './config';
import { acceptDelivery } from './api/deliveries';
import { GrammarRegistry } from './connectors/registry';
import { JiraClient } from './itsm/jira/jira-client';
import { closeRevertRecorder } from './itsm/jira/jira-evidence';
import { JiraReconciler } from './itsm/jira/jira-reconciler';
import { JiraRuntime } from './itsm/jira/jira-runtime';
import { jira as jiraSource } from './itsm/jira/jira-source';
import { loadJiraSettings } from './itsm/jira/jira-settings';
import { ServiceNowReconciler } from './itsm/servicenow/servicenow-reconciler';
import { servicenow as servicenowSource, servicenowWriteBack } from './itsm/servicenow/servicenow-source';
import { loadPolicyFile, Policy } from './policy/policy';
import { ChangeWorkflows } from './temporal/temporal-client';
import { ConnectorRegistry, loadConnectorsFile } from './connectors/registry';
import { ClosureVerdictStore } from './closure/verdict-store';
import { evidenceSealer } from './evidence/evidence-seal';
import { EvidenceStore } from './evidence/evidence-store';
import { ServiceNowClient } from './itsm/servicenow/servicenow-client';
import { createLogger, temporalLogSink } from './logger';
import { createMetrics, listenMetrics } from './metrics/metrics';
import { startTracing } from './telemetry/tracing';
import { openDatabase } from './persistence/data-source';
import { ensureDiscoverySchedule } from './temporal/discovery-schedule';
import { watchPolls } from './temporal/poll-watch';
import { createWorker } from './worker';

async function main(): Promise<void> {
  const config = loadConfig();
  const sealer = evidenceSealer(evidenceSealKey(config));
  const log = createLogger('worker', config.LOG_LEVEL);
  const temporalLevel = ({ debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR' } as const)[config.LOG_LEVEL];
  Runtime.install({ logger: new DefaultLogger(temporalLevel, temporalLogSink(log.child('temporal'))) });
  const ds = await openDatabase(config.DATABASE_URL);
  const connectors = loadConnectorsFile(config.CONNECTORS_CONFIG);
  const registry = new ConnectorRegistry(connectors);
  // The governance policy: what discovery does with drift, and the grammars reconciliation plans with.
  const policy = new Policy(loadPolicyFile(config.CHANGEGATE_POLICY, connectors.connectors.map((c) => c.name)));
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const snSettings = servicenowSettings(config);
  const snClient = () =>
    new ServiceNowClient({ baseUrl: config.SERVICENOW_URL, ...servicenowCredentials(config) });
  const workflows = await ChangeWorkflows.connect(config.TEMPORAL_ADDRESS, config.TEMPORAL_NAMESPACE, config.TEMPORAL_TASK_QUEUE);
  const evidence = new EvidenceStore(ds, sealer, log.child('evidence'));
  const verdicts = new ClosureVerdictStore(ds, sealer, log.child('verdicts'));
  const site = jiraSite(config);
  // Also the edge of Jira reconciliation, which takes the webhook's path here: a close it finds is judged as the API's is.
  const jira = site
    ? new JiraRuntime({
        client: new JiraClient(site),
        settings: loadJiraSettings(config.JIRA_SETTINGS),
        verdicts: async (key) => {
          const v = await verdicts.latest('jira', key);
          return v ? { allowed: v.view.allowed, reasons: v.view.reasons } : null;
        },
        recordRevert: closeRevertRecorder(evidence),
        evidenceHead: async (ticketKey) => (await evidence.list(ticketKey)).at(-1)?.hash,
        log: log.child('jira'),
      })
    : undefined;
  // The worker counts what its activities do (steps, latency, retries); the API process serves the database gauges.
  const metricsAt = metricsListen(config);
  const metrics = metricsAt ? createMetrics() : undefined;
  const metricsServer = metrics && metricsAt ? await listenMetrics(metrics, metricsAt) : undefined;
  if (metricsServer) log.info('metrics listening', { url: metricsServer.url });
  const tracing = startTracing(config.OTEL_EXPORTER_OTLP_ENDPOINT, 'changegate-worker');
  const worker = await createWorker({
    ...(metrics ? { metrics } : {}),
    ...(tracing ? { tracing } : {}),
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    maxCachedWorkflows: config.TEMPORAL_MAX_CACHED_WORKFLOWS,
    registry,
    policy,
    endRun: (ticketKey, request) => workflows.deployRun(ticketKey, request),
    notify: notifySettings(config),
    startCertification: (request) => workflows.certify(request),
    evidence,
    verdicts,
    servicenow: snClient(),
    sourceClients: { servicenowSettings: snSettings, ...(jira ? { jira } : {}) },
    writeBackBackoff: writeBackBackoff(config),
  });
  // The discovery schedule runs on this worker's task queue; every worker start brings it to the configured interval.
  const client = new Client({ connection: await Connection.connect({ address: config.TEMPORAL_ADDRESS }), namespace: config.TEMPORAL_NAMESPACE });
  await ensureDiscoverySchedule(client, { taskQueue: config.TEMPORAL_TASK_QUEUE, intervalMs: discoveryIntervalMs(config) });
  await client.connection.close();
  // Reconciliation: changes the webhook lost are read back through the Table API and delivered the webhook's way.
  const grammars = new GrammarRegistry(connectors, policy);
  const reconcileClient = snClient();
  const tell = servicenowWriteBack(reconcileClient, snSettings);
  const sourceSettings = { servicenow: { ...snSettings } };
  const reconciler = new ServiceNowReconciler({
    client: reconcileClient,
    ds,
    instanceUrl: config.SERVICENOW_URL,
    accept: (delivery) =>
      acceptDelivery({ ds, workflows, grammars, secret: undefined, log, sourceSettings, writeBackFor: (name) => (name === 'servicenow' ? tell : undefined) }, servicenowSource, delivery),
    log: log.child('reconcile'),
  });
  reconciler.start(reconcileIntervalMs(config));
  // Jira gives up on a webhook after a while: issues updated since the cursor are read back by JQL the same way.
  const jiraReconciler = jira
    ? new JiraReconciler({
        client: jira.client,
        projectKey: jira.settings.projectKey,
        ds,
        accept: (delivery) => acceptDelivery({ ds, workflows, grammars, secret: undefined, log, sourceSettings, sourceClients: { jira } }, jiraSource, delivery),
        log: log.child('reconcile'),
      })
    : undefined;
  jiraReconciler?.start(reconcileIntervalMs(config));
  log.info('worker started', { taskQueue: config.TEMPORAL_TASK_QUEUE, namespace: config.TEMPORAL_NAMESPACE });
  // A poller that stops while the process lives takes no work and says nothing: the worker ends itself instead, with
  // exit status 1, for its supervisor to restart it (the watch asks Temporal on the API client's own connection).
  const maxSilenceMs = workerPollSilenceMs(config);
  const watch = watchPolls({
    client: workflows.client,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    identity: worker.options.identity,
    maxSilenceMs,
    everyMs: Math.min(15_000, Math.max(500, Math.floor(maxSilenceMs / 5))),
    onSilent(kind, silentForMs) {
      log.error('worker stopping: Temporal has seen none of its polls for a while although the process runs; exiting for a restart', {
        taskKind: kind, silentForSeconds: Math.round(silentForMs / 1000), limitSeconds: Math.round(maxSilenceMs / 1000),
      });
      process.exitCode = 1;
      if (worker.getState() === 'RUNNING') worker.shutdown();
    },
  });
  // The SDK's runtime turns SIGINT/SIGTERM into a graceful shutdown that ends run().
  await worker.run();
  watch.stop();
  await reconciler.stop();
  await jiraReconciler?.stop();
  await metricsServer?.close();
  await tracing?.shutdown();
  await workflows.close();
  await registry.close();
  await connection.close();
  await ds.destroy();
  log.info('worker stopped');
}

main().catch((err: unknown) => {
  console.error('changegate worker failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
