import type { NotifySettings } from './exceptions/notify';
import type { KeyObject } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NativeConnection, type Worker, type WorkerOptions } from '@temporalio/worker';
import type express from 'express';
import type { DataSource } from 'typeorm';
import { type AppDeps, createApp } from './api/app';
import { dashboardDeps, type DashboardSettings } from './api/dashboard';
import { acceptDelivery } from './api/deliveries';
import type { OidcSettings } from './auth/jwt-verifier';
import { type ConnectorsFile, ConnectorRegistry, GrammarRegistry } from './connectors/registry';
import { ClosureVerdictStore } from './closure/verdict-store';
import { evidenceSigner } from './evidence/evidence-signing';
import { evidenceSealer } from './evidence/evidence-seal';
import { EvidenceStore } from './evidence/evidence-store';
import { ServiceNowClient, type ServiceNowClientOptions } from './itsm/servicenow/servicenow-client';
import type { BackoffPolicy } from './itsm/retry-timing';
import { ServiceNowReconciler } from './itsm/servicenow/servicenow-reconciler';
import type { ServiceNowSettings } from './itsm/servicenow/servicenow-source';
import { servicenow as servicenowSource, servicenowWriteBack } from './itsm/servicenow/servicenow-source';
import { type JiraAuth, JiraClient } from './itsm/jira/jira-client';
import { closeRevertRecorder } from './itsm/jira/jira-evidence';
import { JiraRuntime } from './itsm/jira/jira-runtime';
import { JiraReconciler } from './itsm/jira/jira-reconciler';
import { jira as jiraSource } from './itsm/jira/jira-source';
import type { JiraSettings } from './itsm/jira/jira-settings';
import { type JiraSimulator, type JiraSimulatorOptions, createJiraSimulator } from './itsm/jira/jira-simulator';
import { createLogger, type Logger } from './logger';
import { EMPTY_POLICY, Policy, type PolicyInput } from './policy/policy';
import { migrateDatabase, openDatabase } from './persistence/data-source';
import { createServiceNowSimulator, type ServiceNowSimulator, type SimulatorOptions } from './itsm/servicenow/servicenow-simulator';
import { type DevServerOptions, startDevServer } from './temporal/dev-server';
import { ensureDiscoverySchedule } from './temporal/discovery-schedule';
import { ChangeWorkflows } from './temporal/temporal-client';
import { createWorker } from './worker';
import { createMetrics, listenMetrics, registerTableGauges, type GatewayMetrics } from './metrics/metrics';
import { startTracing } from './telemetry/tracing';

/**
 * The in-process gateway: API, worker, and — where nothing real is configured — a Temporal dev server and the
 * ServiceNow simulator. `npm start`'s launcher, the test stack, the history recorder and every benchmark build it
 * through this one function; production runs the API and the worker as separate processes (api-main, worker-main).
 */
export interface GatewayOptions {
  /** An existing frontend, or a dev server to start (and stop with the gateway). */
  temporal: { address: string } | { devServer: DevServerOptions };
  namespace?: string;
  taskQueue: string;
  /** The application account's database URL (what the API and the worker run with). */
  databaseUrl: string;
  /** Run migrations at start as this account (creating the database if it is missing); none by default. */
  migrationDatabaseUrl?: string;
  connectors: ConnectorsFile;
  /** The governance policy (who is who, privileged grants); none by default. */
  policy?: PolicyInput;
  /** A real instance, or the simulator (its business rule fires signed webhooks at this gateway's API). */
  servicenow:
    | { url: string; username: string; password: string; oauth?: ServiceNowClientOptions['oauth'] }
    | { simulator: { username: string; password: string; port?: number; numberBase?: number; oauth?: SimulatorOptions['oauth'] }; clientOAuth?: ServiceNowClientOptions['oauth'] };
  webhookSecret: string;
  /**
   * Jira Service Management as a second ticket source: a real site (basic auth or OAuth), or the simulator (its
   * webhooks signed with `webhookSecret` at this gateway's /webhooks/jira). Without it, /webhooks/jira refuses.
   */
  jira?: {
    site: { auth: JiraAuth } | { simulator: Omit<JiraSimulatorOptions, 'webhook'> & { port?: number } };
    settings: JiraSettings;
    webhookSecret: string;
  };
  /** Pipelines' run events (POST /webhooks/deploy); without it they are refused. */
  deployWebhookSecret?: string;
  /** Where emergency-exception escalations are announced; without it the ledger says none is configured. */
  notify?: NotifySettings;
  /** Secret scanners' leak reports (POST /webhooks/secret-scanning); without a secret they are refused. */
  leaks?: AppDeps['leaks'];
  adminToken: string;
  /** Signs evidence exports (CHANGEGATE_EVIDENCE_SIGNING_KEY); without it they are refused. */
  evidenceSigningKey?: KeyObject;
  /** Seals every evidence row written and is required to check one (CHANGEGATE_EVIDENCE_SEAL_KEY, at least 32 bytes). */
  evidenceSealKey: string;
  /** People's bearer tokens (OIDC); without it only API tokens and the admin token are accepted. */
  oidc?: OidcSettings;
  maxBodyBytes?: number;
  /** Listen address of the API; port 0 picks a free one. `false`: no API. */
  api?: { port: number; host?: string } | false;
  /** `false`: no worker (e.g. a test that runs its own worker process). */
  worker?: { workflowBundle?: WorkerOptions['workflowBundle']; maxCachedWorkflows?: number; writeBackBackoff?: BackoffPolicy } | false;
  /**
   * The discovery schedule, created or updated at start (default: every hour, id `changegate-discovery`); `false`
   * leaves schedules alone.
   */
  discovery?: { intervalMs?: number; scheduleId?: string } | false;
  /** ServiceNow's state mapping and reopen state (SERVICENOW_STATE_PHASES, SERVICENOW_REOPEN_STATE). */
  servicenowSettings?: ServiceNowSettings;
  /**
   * Reconciliation with the worker (it reads changes back through the Table API): every `intervalMs`, or only when
   * `gateway.reconciler.runOnce()` is called (no interval). `false`: none.
   */
  reconcile?: { intervalMs?: number; firstLookbackMs?: number } | false;
  /** How long a passed ticket-source access check holds for /readyz (default ten minutes). */
  sourceCheckTtlMs?: number;
  /** Prometheus metrics on a listener of their own (CHANGEGATE_METRICS_PORT); port 0 picks a free one. Unset: none. */
  metrics?: { port: number; host?: string };
  /** OpenTelemetry traces over OTLP/HTTP to this endpoint (OTEL_EXPORTER_OTLP_ENDPOINT); unset: none. */
  traces?: { endpoint: string; service?: string };
  /**
   * The dashboard at /dashboard/: its build folder (default dist/dashboard), its public client at the OIDC issuer
   * (default `changegate-dashboard`, scope `openid profile`), and Temporal's Web UI to link workflows to.
   */
  dashboard?: DashboardSettings;
  log?: Logger;
}

export interface Gateway {
  apiUrl: string;
  /** The API's express app (undefined with `api: false`). */
  app?: express.Express;
  servicenowUrl: string;
  /** The Jira site or simulator (unset without `jira`). */
  jiraUrl?: string;
  jiraSim?: JiraSimulator;
  jira?: JiraRuntime;
  temporalAddress: string;
  /** Where this gateway's metrics are scraped (unset without `metrics`). */
  metricsUrl?: string;
  ds: DataSource;
  evidence: EvidenceStore;
  verdicts: ClosureVerdictStore;
  workflows: ChangeWorkflows;
  sim?: ServiceNowSimulator;
  worker?: Worker;
  taskQueue: string;
  /** The discovery schedule's id (unset with `discovery: false`). */
  discoveryScheduleId?: string;
  /** Reconciliation with ServiceNow (with the worker, unless `reconcile: false`). */
  reconciler?: ServiceNowReconciler;
  /** Reconciliation with the Jira site (with the worker and a Jira source, unless `reconcile: false`). */
  jiraReconciler?: JiraReconciler;
  /** Stops everything it started, in reverse order of start. */
  stop(): Promise<void>;
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const log = opts.log ?? createLogger('gateway');
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await s().catch((err: unknown) => log.warn('stop step failed', { error: (err as Error).message }));
  };
  try {
    let temporalAddress: string;
    if ('devServer' in opts.temporal) {
      const server = await startDevServer(opts.temporal.devServer);
      stops.push(() => server.stop());
      temporalAddress = server.address;
    } else {
      temporalAddress = opts.temporal.address;
    }
    const namespace = opts.namespace ?? 'default';
    // Started before what it traces and stopped after it, so that the last spans are exported.
    const tracing = startTracing(opts.traces?.endpoint, opts.traces?.service ?? 'changegate');
    if (tracing) stops.push(() => tracing.shutdown());

    const sealer = evidenceSealer(opts.evidenceSealKey);
    if (opts.migrationDatabaseUrl) await migrateDatabase(opts.migrationDatabaseUrl, { evidenceSealer: sealer });
    const ds = await openDatabase(opts.databaseUrl);
    stops.push(() => ds.destroy());
    const evidence = new EvidenceStore(ds, sealer, log.child('evidence'));
    const verdicts = new ClosureVerdictStore(ds, sealer, log.child('verdicts'));
    const workflows = await ChangeWorkflows.connect(temporalAddress, namespace, opts.taskQueue, tracing?.tracer);
    stops.push(() => workflows.close());
    let discoveryScheduleId: string | undefined;
    if (opts.discovery !== false) {
      const handle = await ensureDiscoverySchedule(workflows.client, {
        taskQueue: opts.taskQueue,
        intervalMs: opts.discovery?.intervalMs ?? 3_600_000,
        scheduleId: opts.discovery?.scheduleId,
      });
      discoveryScheduleId = handle.scheduleId;
    }

    // The simulator first, so that the API can reach it (refused deliveries are told on the ticket); its webhook
    // properties are set once the API listens. It stops after the API, so that its last deliveries still land.
    let sim: ServiceNowSimulator | undefined;
    let servicenow: { url: string; username: string; password: string; oauth?: ServiceNowClientOptions['oauth'] };
    if ('simulator' in opts.servicenow) {
      const { username, password, port, numberBase, oauth } = opts.servicenow.simulator;
      sim = createServiceNowSimulator({ username, password, ...(numberBase !== undefined ? { numberBase } : {}), ...(oauth ? { oauth } : {}) });
      const listening = await sim.listen(port ?? 0);
      const simulator = sim;
      stops.push(async () => {
        await simulator.waitForDeliveries();
        await listening.close();
      });
      servicenow = { url: listening.url, username, password, ...(opts.servicenow.clientOAuth ? { oauth: opts.servicenow.clientOAuth } : {}) };
    } else {
      servicenow = opts.servicenow;
    }
    const snClient = () =>
      new ServiceNowClient({ baseUrl: servicenow.url, username: servicenow.username, password: servicenow.password, ...(servicenow.oauth ? { oauth: servicenow.oauth } : {}) });
    // Jira before the API: the edge reads the project's statuses at start and asks Jira about approvals and gates.
    let jiraSim: JiraSimulator | undefined;
    let jira: JiraRuntime | undefined;
    let jiraUrl: string | undefined;
    if (opts.jira) {
      let auth: JiraAuth;
      if ('simulator' in opts.jira.site) {
        const { port, ...simOpts } = opts.jira.site.simulator;
        const simulator = createJiraSimulator(simOpts);
        const listening = await simulator.listen(port ?? 0);
        stops.push(async () => {
          simulator.setWebhook(undefined);
          await simulator.waitForDeliveries();
          await listening.close();
        });
        jiraSim = simulator;
        auth = { kind: 'basic', siteUrl: listening.url, email: simOpts.email, apiToken: simOpts.apiToken };
      } else {
        auth = opts.jira.site.auth;
      }
      const client = new JiraClient(auth);
      jiraUrl = client.baseUrl;
      jira = new JiraRuntime({
        client,
        settings: opts.jira.settings,
        verdicts: async (key) => {
          const v = await verdicts.latest('jira', key);
          return v ? { allowed: v.view.allowed, reasons: v.view.reasons } : null;
        },
        evidenceHead: async (ticketKey) => (await evidence.list(ticketKey)).at(-1)?.hash,
        recordRevert: closeRevertRecorder(evidence),
        log: log.child('jira'),
      });
      // Not fatal: /readyz names what is wrong (a status that does not exist, a site that does not answer).
      await jira.loadStatuses();
    }
    const sourceClients = { servicenow: snClient(), servicenowSettings: opts.servicenowSettings ?? {}, ...(jira ? { jira } : {}) };
    const sourceSettings = { servicenow: { ...(opts.servicenowSettings ?? {}) } };
    const policy = new Policy(opts.policy ?? EMPTY_POLICY);
    const grammars = new GrammarRegistry(opts.connectors, policy);
    let metrics: GatewayMetrics | undefined;
    let metricsUrl: string | undefined;
    if (opts.metrics) {
      metrics = createMetrics();
      registerTableGauges(metrics, ds);
      const listening = await listenMetrics(metrics, opts.metrics);
      stops.push(() => listening.close());
      metricsUrl = listening.url;
    }

    let apiUrl = '';
    let app: express.Express | undefined;
    if (opts.api !== false) {
      const listen = opts.api ?? { port: 0 };
      app = createApp({
        ds,
        workflows,
        grammars,
        policy,
        sourceSettings,
        sourceClients,
        ...(opts.sourceCheckTtlMs !== undefined ? { sourceCheckTtlMs: opts.sourceCheckTtlMs } : {}),
        evidence,
        verdicts,
        webhookSecret: opts.webhookSecret,
        deployWebhookSecret: opts.deployWebhookSecret,
        ...(opts.leaks ? { leaks: opts.leaks } : {}),
        ...(opts.jira ? { sourceSecrets: { jira: opts.jira.webhookSecret } } : {}),
        adminToken: opts.adminToken,
        ...(opts.evidenceSigningKey ? { evidenceSigner: evidenceSigner(opts.evidenceSigningKey) } : {}),
        oidc: opts.oidc,
        maxBodyBytes: opts.maxBodyBytes ?? 256 * 1024,
        log: log,
        ...(metrics ? { metrics } : {}),
        ...(tracing ? { tracer: tracing.tracer } : {}),
        dashboard: dashboardDeps(opts.dashboard ?? { clientId: 'changegate-dashboard', scope: 'openid profile' }, { oidc: opts.oidc, namespace, servicenowUrl: servicenow.url, jiraUrl }),
      });
      const api = app;
      const server: Server = await new Promise((res, rej) => {
        const s = api.listen(listen.port, listen.host ?? '127.0.0.1', () => res(s));
        s.once('error', rej);
      });
      stops.push(() => new Promise<void>((res) => server.close(() => res())));
      apiUrl = `http://${listen.host ?? '127.0.0.1'}:${(server.address() as AddressInfo).port}`;
      sim?.setProperty('x_changegate.webhook_url', `${apiUrl}/webhooks/servicenow`);
      sim?.setProperty('x_changegate.webhook_secret', opts.webhookSecret);
      // Work notes and state changes fire the simulated webhook: those land before the API closes.
      const simulator = sim;
      if (simulator) stops.push(() => simulator.waitForDeliveries());
    }

    if (jiraSim && apiUrl && opts.jira) jiraSim.setWebhook({ url: `${apiUrl}/webhooks/jira`, secret: opts.jira.webhookSecret });

    let worker: Worker | undefined;
    if (opts.worker !== false) {
      const registry = new ConnectorRegistry(opts.connectors);
      stops.push(() => registry.close());
      const connection = await NativeConnection.connect({ address: temporalAddress });
      stops.push(() => connection.close());
      const w = await createWorker({
        connection,
        policy: new Policy(opts.policy ?? EMPTY_POLICY),
        endRun: (ticketKey, request) => workflows.deployRun(ticketKey, request),
        ...(opts.notify ? { notify: opts.notify } : {}),
        startCertification: (request) => workflows.certify(request),
        namespace,
        taskQueue: opts.taskQueue,
        registry,
        evidence,
        verdicts,
        servicenow: sourceClients.servicenow,
        sourceClients: { servicenowSettings: sourceClients.servicenowSettings, ...(jira ? { jira } : {}) },
        ...(opts.worker?.writeBackBackoff ? { writeBackBackoff: opts.worker.writeBackBackoff } : {}),
        workflowBundle: opts.worker?.workflowBundle,
        maxCachedWorkflows: opts.worker?.maxCachedWorkflows,
        ...(metrics ? { metrics } : {}),
        ...(tracing ? { tracing } : {}),
      });
      const running = w.run();
      stops.push(async () => {
        if (w.getState() === 'RUNNING') w.shutdown();
        await running;
      });
      worker = w;
    }

    let reconciler: ServiceNowReconciler | undefined;
    if (opts.worker !== false && opts.reconcile !== false) {
      const client = snClient();
      const tell = servicenowWriteBack(client, opts.servicenowSettings);
      reconciler = new ServiceNowReconciler({
        client,
        ds,
        instanceUrl: servicenow.url,
        accept: (delivery) => acceptDelivery({ ds, workflows, grammars, secret: undefined, log, sourceSettings, writeBackFor: (name) => (name === 'servicenow' ? tell : undefined) }, servicenowSource, delivery),
        log: log.child('reconcile'),
        ...(opts.reconcile?.firstLookbackMs !== undefined ? { firstLookbackMs: opts.reconcile.firstLookbackMs } : {}),
      });
      const r = reconciler;
      if (opts.reconcile?.intervalMs !== undefined) r.start(opts.reconcile.intervalMs);
      stops.push(() => r.stop());
    }
    let jiraReconciler: JiraReconciler | undefined;
    if (jira && opts.worker !== false && opts.reconcile !== false) {
      const runtime = jira;
      jiraReconciler = new JiraReconciler({
        client: runtime.client,
        projectKey: runtime.settings.projectKey,
        ds,
        accept: (delivery) => acceptDelivery({ ds, workflows, grammars, secret: undefined, log, sourceSettings, sourceClients }, jiraSource, delivery),
        log: log.child('reconcile'),
        ...(opts.reconcile?.firstLookbackMs !== undefined ? { firstLookbackMs: opts.reconcile.firstLookbackMs } : {}),
      });
      const r = jiraReconciler;
      if (opts.reconcile?.intervalMs !== undefined) r.start(opts.reconcile.intervalMs);
      stops.push(() => r.stop());
    }

    return { apiUrl, app, servicenowUrl: servicenow.url, jiraUrl, jiraSim, jira, temporalAddress, metricsUrl, ds, evidence, verdicts, workflows, sim, worker, taskQueue: opts.taskQueue, discoveryScheduleId, reconciler, jiraReconciler, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
