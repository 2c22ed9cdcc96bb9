import type { Server } from 'node:http';
import { createApp } from './api/app';
import { dashboardDeps } from './api/dashboard';
import { dashboardSettings, evidenceSealKey, jiraSite, loadConfig, metricsListen, migrationDatabaseUrl, oidcSettings, servicenowSettings, workerPollSilenceMs } from './config';
import { ClosureVerdictStore } from './closure/verdict-store';
import { JiraClient } from './itsm/jira/jira-client';
import { closeRevertRecorder } from './itsm/jira/jira-evidence';
import { JiraRuntime } from './itsm/jira/jira-runtime';
import { loadJiraSettings } from './itsm/jira/jira-settings';
import { ServiceNowClient } from './itsm/servicenow/servicenow-client';
import { GrammarRegistry, loadConnectorsFile } from './connectors/registry';
import { evidenceSigner } from './evidence/evidence-signing';
import { evidenceSealer } from './evidence/evidence-seal';
import { EvidenceStore } from './evidence/evidence-store';
import { createLogger } from './logger';
import { createMetrics, listenMetrics, registerTableGauges } from './metrics/metrics';
import { startTracing } from './telemetry/tracing';
import { migrateDatabase, openDatabase } from './persistence/data-source';
import { loadPolicyFile, Policy } from './policy/policy';
import { ChangeWorkflows } from './temporal/temporal-client';

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger('api', config.LOG_LEVEL);
  const sealer = evidenceSealer(evidenceSealKey(config));
  if (config.RUN_MIGRATIONS) await migrateDatabase(migrationDatabaseUrl(config), { evidenceSealer: sealer });
  const ds = await openDatabase(config.DATABASE_URL);
  const evidence = new EvidenceStore(ds, sealer, log.child('evidence'));
  const verdicts = new ClosureVerdictStore(ds, sealer, log.child('verdicts'));
  const connectors = loadConnectorsFile(config.CONNECTORS_CONFIG);
  const policy = new Policy(loadPolicyFile(config.CHANGEGATE_POLICY, connectors.connectors.map((c) => c.name)));
  const grammars = new GrammarRegistry(connectors, policy);
  const tracing = startTracing(config.OTEL_EXPORTER_OTLP_ENDPOINT, 'changegate-api');
  const workflows = await ChangeWorkflows.connect(config.TEMPORAL_ADDRESS, config.TEMPORAL_NAMESPACE, config.TEMPORAL_TASK_QUEUE, tracing?.tracer);
  // Jira, when a site is configured: its statuses are read now; /readyz names any configured status it lacks.
  const site = jiraSite(config);
  let jira: JiraRuntime | undefined;
  if (site) {
    jira = new JiraRuntime({
      client: new JiraClient(site),
      settings: loadJiraSettings(config.JIRA_SETTINGS),
      verdicts: async (key) => {
        const v = await verdicts.latest('jira', key);
        return v ? { allowed: v.view.allowed, reasons: v.view.reasons } : null;
      },
      recordRevert: closeRevertRecorder(evidence),
      log: log.child('jira'),
    });
    await jira.loadStatuses();
  }
  // The API process serves the gauges read from the database, so that they are counted once per deployment.
  const metricsAt = metricsListen(config);
  const metrics = metricsAt ? createMetrics() : undefined;
  if (metrics) registerTableGauges(metrics, ds);
  const app = createApp({
    ...(metrics ? { metrics } : {}),
    ...(tracing ? { tracer: tracing.tracer } : {}),
    ds,
    workflows,
    grammars,
    policy,
    evidence,
    verdicts,
    webhookSecret: config.SERVICENOW_WEBHOOK_SECRET,
    deployWebhookSecret: config.DEPLOY_WEBHOOK_SECRET,
    leaks: {
      webhookSecret: config.SECRET_SCANNING_WEBHOOK_SECRET,
      ...(config.GITHUB_TOKEN ? { github: { apiUrl: config.GITHUB_API_URL, token: config.GITHUB_TOKEN } } : {}),
    },
    ...(jira && config.JIRA_WEBHOOK_SECRET ? { sourceSecrets: { jira: config.JIRA_WEBHOOK_SECRET } } : {}),
    adminToken: config.CHANGEGATE_ADMIN_TOKEN,
    ...(config.CHANGEGATE_EVIDENCE_SIGNING_KEY ? { evidenceSigner: evidenceSigner(config.CHANGEGATE_EVIDENCE_SIGNING_KEY) } : {}),
    oidc: oidcSettings(config),
    dashboard: dashboardDeps(dashboardSettings(config), { oidc: oidcSettings(config), namespace: config.TEMPORAL_NAMESPACE, servicenowUrl: config.SERVICENOW_URL, ...(config.JIRA_URL ? { jiraUrl: config.JIRA_URL } : {}) }),
    maxBodyBytes: config.WEBHOOK_MAX_BODY_BYTES,
    workerPollSilenceMs: workerPollSilenceMs(config),
    log,
    sourceSettings: { servicenow: { ...servicenowSettings(config) } },
    // The edge tells a requester on the ticket why a delivery was refused; /readyz checks the integration user's rights.
    sourceClients: {
      servicenow: new ServiceNowClient({ baseUrl: config.SERVICENOW_URL, username: config.SERVICENOW_USERNAME, password: config.SERVICENOW_PASSWORD }),
      servicenowSettings: servicenowSettings(config),
      ...(jira ? { jira } : {}),
    },
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(config.PORT, config.HOST, () => resolve(s));
  });
  const metricsServer = metrics && metricsAt ? await listenMetrics(metrics, metricsAt) : undefined;
  if (metricsServer) log.info('metrics listening', { url: metricsServer.url });
  log.info('api listening', { url: `http://${config.HOST}:${config.PORT}`, oidcIssuer: config.OIDC_ISSUER ?? 'none (API tokens only)' });
  const stop = () => {
    void metricsServer?.close();
    server.close(() => {
      void Promise.all([workflows.close(), ds.destroy(), tracing?.shutdown()]).then(() => process.exit(0));
    });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  console.error('changegate api failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
