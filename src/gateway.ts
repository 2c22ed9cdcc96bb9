import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NativeConnection, type Worker, type WorkerOptions } from '@temporalio/worker';
import type express from 'express';
import type { DataSource } from 'typeorm';
import { createApp } from './api/app';
import type { OidcSettings } from './auth/jwt-verifier';
import { type ConnectorsFile, ConnectorRegistry, GrammarRegistry } from './connectors/registry';
import { ClosureVerdictStore } from './closure/verdict-store';
import { EvidenceStore } from './evidence/evidence-store';
import { ServiceNowClient, type ServiceNowClientOptions } from './itsm/servicenow/servicenow-client';
import type { BackoffPolicy } from './itsm/retry-timing';
import { createLogger, type Logger } from './logger';
import { EMPTY_POLICY, Policy, type PolicyInput } from './policy/policy';
import { openDatabase } from './persistence/data-source';
import { createServiceNowSimulator, type ServiceNowSimulator, type SimulatorOptions } from './itsm/servicenow/servicenow-simulator';
import { type DevServerOptions, startDevServer } from './temporal/dev-server';
import { ensureDiscoverySchedule } from './temporal/discovery-schedule';
import { ChangeWorkflows } from './temporal/temporal-client';
import { createWorker } from './worker';

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
  databaseUrl: string;
  /** Run migrations at start (creating the database if it is missing). */
  migrate?: boolean;
  connectors: ConnectorsFile;
  /** The governance policy (who is who, privileged grants); none by default. */
  policy?: PolicyInput;
  /** A real instance, or the simulator (its business rule fires signed webhooks at this gateway's API). */
  servicenow:
    | { url: string; username: string; password: string; oauth?: ServiceNowClientOptions['oauth'] }
    | { simulator: { username: string; password: string; port?: number; oauth?: SimulatorOptions['oauth'] }; clientOAuth?: ServiceNowClientOptions['oauth'] };
  webhookSecret: string;
  /** Pipelines' run events (POST /webhooks/deploy); without it they are refused. */
  deployWebhookSecret?: string;
  adminToken: string;
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
  log?: Logger;
}

export interface Gateway {
  apiUrl: string;
  /** The API's express app (undefined with `api: false`). */
  app?: express.Express;
  servicenowUrl: string;
  temporalAddress: string;
  ds: DataSource;
  evidence: EvidenceStore;
  workflows: ChangeWorkflows;
  sim?: ServiceNowSimulator;
  worker?: Worker;
  taskQueue: string;
  /** The discovery schedule's id (unset with `discovery: false`). */
  discoveryScheduleId?: string;
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

    const ds = await openDatabase(opts.databaseUrl, { migrate: opts.migrate ?? false });
    stops.push(() => ds.destroy());
    const evidence = new EvidenceStore(ds);
    const workflows = await ChangeWorkflows.connect(temporalAddress, namespace, opts.taskQueue);
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

    let apiUrl = '';
    let app: express.Express | undefined;
    if (opts.api !== false) {
      const listen = opts.api ?? { port: 0 };
      const policy = new Policy(opts.policy ?? EMPTY_POLICY);
      app = createApp({
        ds,
        workflows,
        grammars: new GrammarRegistry(opts.connectors, policy),
        policy,
        evidence,
        webhookSecret: opts.webhookSecret,
        deployWebhookSecret: opts.deployWebhookSecret,
        adminToken: opts.adminToken,
        oidc: opts.oidc,
        maxBodyBytes: opts.maxBodyBytes ?? 256 * 1024,
        log: log,
      });
      const api = app;
      const server: Server = await new Promise((res, rej) => {
        const s = api.listen(listen.port, listen.host ?? '127.0.0.1', () => res(s));
        s.once('error', rej);
      });
      stops.push(() => new Promise<void>((res) => server.close(() => res())));
      apiUrl = `http://${listen.host ?? '127.0.0.1'}:${(server.address() as AddressInfo).port}`;
    }

    let sim: ServiceNowSimulator | undefined;
    let servicenow: { url: string; username: string; password: string; oauth?: ServiceNowClientOptions['oauth'] };
    if ('simulator' in opts.servicenow) {
      const { username, password, port, oauth } = opts.servicenow.simulator;
      sim = createServiceNowSimulator({ username, password, ...(oauth ? { oauth } : {}), webhook: apiUrl ? { url: `${apiUrl}/webhooks/servicenow`, secret: opts.webhookSecret } : undefined });
      const listening = await sim.listen(port ?? 0);
      const simulator = sim;
      // Work notes fire the simulated business rule's webhook; those land before the API closes.
      stops.push(async () => {
        await simulator.waitForDeliveries();
        await listening.close();
      });
      servicenow = { url: listening.url, username, password, ...(opts.servicenow.clientOAuth ? { oauth: opts.servicenow.clientOAuth } : {}) };
    } else {
      servicenow = opts.servicenow;
    }

    let worker: Worker | undefined;
    if (opts.worker !== false) {
      const registry = new ConnectorRegistry(opts.connectors);
      stops.push(() => registry.close());
      const connection = await NativeConnection.connect({ address: temporalAddress });
      stops.push(() => connection.close());
      const w = await createWorker({
        connection,
        namespace,
        taskQueue: opts.taskQueue,
        registry,
        evidence,
        verdicts: new ClosureVerdictStore(ds),
        servicenow: new ServiceNowClient({ baseUrl: servicenow.url, username: servicenow.username, password: servicenow.password, ...(servicenow.oauth ? { oauth: servicenow.oauth } : {}) }),
        ...(opts.worker?.writeBackBackoff ? { writeBackBackoff: opts.worker.writeBackBackoff } : {}),
        workflowBundle: opts.worker?.workflowBundle,
        maxCachedWorkflows: opts.worker?.maxCachedWorkflows,
      });
      const running = w.run();
      stops.push(async () => {
        if (w.getState() === 'RUNNING') w.shutdown();
        await running;
      });
      worker = w;
    }

    return { apiUrl, app, servicenowUrl: servicenow.url, temporalAddress, ds, evidence, workflows, sim, worker, taskQueue: opts.taskQueue, discoveryScheduleId, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
