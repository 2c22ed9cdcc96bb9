import { generateKeyPairSync, type KeyObject, randomBytes, randomInt, randomUUID } from 'node:crypto';
import type express from 'express';
import { DefaultLogger, Runtime, type Worker, makeTelemetryFilterString } from '@temporalio/worker';
import axios, { type AxiosResponse } from 'axios';
import mysql from 'mysql2/promise';
import type { DataSource } from 'typeorm';
import { ApiTokenStore } from '../../src/auth/api-tokens';
import type { OidcSettings } from '../../src/auth/oidc-settings';
import type { Role } from '../../src/auth/principal';
import type { ConnectorsFile } from '../../src/connectors/registry';
import type { ClosureVerdictStore } from '../../src/closure/verdict-store';
import { EvidenceStore } from '../../src/evidence/evidence-store';
import { createLogger, type Logger } from '../../src/logger';
import type { ServiceNowSimulator } from '../../src/itsm/servicenow/servicenow-simulator';
import { type GatewayOptions, startGateway } from '../../src/gateway';
import type { JiraRuntime } from '../../src/itsm/jira/jira-runtime';
import { DEMO_JIRA_SETTINGS, type JiraSettings } from '../../src/itsm/jira/jira-settings';
import type { JiraSimulator, SimWorkflow } from '../../src/itsm/jira/jira-simulator';
import { ChangeWorkflows } from '../../src/temporal/temporal-client';
import { TEST_ENV, temporalAddress } from './test-env';
import type { PolicyInput } from '../../src/policy/policy';
import type { ReconcileReport } from '../../src/itsm/servicenow/servicenow-reconciler';
import type { ServiceNowSettings } from '../../src/itsm/servicenow/servicenow-source';
import type { BackoffPolicy } from '../../src/itsm/retry-timing';
import { postSigned } from './signed-webhook';

let runtimeInstalled = false;
export function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined }, telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } } });
}

/**
 * Instead of quietRuntime, for a test file that reads what the worker logs (activity and workflow logs through the
 * SDK's runtime logger, at debug): every entry is handed to `sink` as one JSON line. Call it before startStack.
 */
export function captureRuntimeLog(sink: (line: string) => void): void {
  if (runtimeInstalled) throw new Error('the runtime logger is already installed in this test file');
  runtimeInstalled = true;
  Runtime.install({
    logger: new DefaultLogger('DEBUG', (entry) => sink(JSON.stringify({ level: entry.level, message: entry.message, meta: entry.meta }))),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } },
  });
}

export function connectorsFile(): ConnectorsFile {
  return {
    connectors: [
      {
        name: 'mysql-local',
        type: 'mysql',
        host: '127.0.0.1',
        port: TEST_ENV.mariadbPort,
        user: TEST_ENV.connectorUser,
        passwordEnv: 'CG_TEST_CONNECTOR_PASSWORD',
        policy: { maxTtl: 'P30D', protectedAccounts: ['root', 'mysql', 'mariadb.sys'] },
      },
    ],
  };
}

export function uniqueTicketNumber(): string {
  return `CHG${String(Math.floor(Math.random() * 1e9)).padStart(9, '0')}`;
}

export function uniqueAccount(prefix = 'svc'): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

export { waitFor } from './wait';
export { leaverActions } from './actions';

export interface Stack {
  apiUrl: string;
  app: express.Express;
  tokens: ApiTokenStore;
  /** A fresh API token holding exactly these roles, under a unique name. */
  tokenFor(...roles: Role[]): Promise<{ name: string; token: string }>;
  sim: ServiceNowSimulator;
  simUrl: string;
  /** The Jira simulator, its webhooks signed at this stack's /webhooks/jira, and the runtime the gateway built. */
  jiraSim: JiraSimulator;
  jiraUrl: string;
  jira: JiraRuntime;
  ds: DataSource;
  evidence: EvidenceStore;
  /** The published closure verdicts, sealed with the run's evidence seal key. */
  verdicts: ClosureVerdictStore;
  workflows: ChangeWorkflows;
  taskQueue: string;
  /** This stack's Prometheus endpoint, on a listener of its own (a free port). */
  metricsUrl: string;
  /** This stack's discovery schedule (trigger it instead of waiting an interval). */
  discoveryScheduleId: string;
  /** One reconciliation pass with the simulator (the stack runs none on its own). */
  reconcile(): Promise<ReconcileReport>;
  /** One pass of Jira reconciliation (JQL for issues updated since its cursor). */
  reconcileJira(): Promise<ReconcileReport>;
  admin: mysql.Connection;
  worker?: Worker;
  /** POSTs a signed delivery of a record to the webhook, as the installed business rule would. */
  deliver(record: unknown, opts?: { eventId?: string; timestamp?: number; secret?: string; raw?: Buffer; signature?: string }): Promise<AxiosResponse>;
  closureCheck(number: string): Promise<AxiosResponse>;
  accountExists(name: string, host?: string): Promise<boolean>;
  grantsOf(name: string, host?: string): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startStack(
  opts: {
    inProcessWorker?: boolean;
    extraConnectors?: ConnectorsFile['connectors'];
    oidc?: OidcSettings;
    log?: Logger;
    /** A test-specific workflow bundle (e.g. with a test-only action kind); the run's shared bundle otherwise. */
    workflowBundle?: { code: string } | { codePath: string };
    /** The governance policy (who is who, privileged grants); none by default. */
    policy?: PolicyInput;
    /** Secret scanners' reports: their shared secret and where GitHub alerts are fetched. */
    leaks?: GatewayOptions['leaks'];
    /** ServiceNow's state mapping and reopen state. */
    servicenowSettings?: ServiceNowSettings;
    /** How long a passed /readyz source check holds (default ten minutes). */
    sourceCheckTtlMs?: number;
    /**
     * The Jira project's settings (default: the demo's), the simulated workflow (default: JSM-like), and how the
     * simulated site retries a webhook the gateway could not take (default: 5 attempts, 50 ms apart and growing).
     */
    jira?: { settings?: JiraSettings; workflow?: SimWorkflow; webhookRetry?: { attempts: number; delayMs: number } };
    /** The simulator issues OAuth tokens and the worker's client uses them instead of basic auth. */
    oauth?: { clientId: string; clientSecret: string; tokenLifetimeSeconds?: number };
    /** The ticket outbox's back-off (short in tests that outlast many attempts). */
    writeBackBackoff?: BackoffPolicy;
    /** Where emergency-exception escalations are announced. */
    notify?: GatewayOptions['notify'];
    /** The key evidence exports are signed with: a fresh one per stack by default, `false` for none. */
    evidenceSigningKey?: KeyObject | false;
    /** OpenTelemetry traces to this OTLP/HTTP endpoint (the workflow bundle must include the tracing interceptors). */
    traces?: GatewayOptions['traces'];
    /** The gateway's database URL (default the slot's database; a test may put a port of its own in front). */
    databaseUrl?: string;
    /** The dashboard's build folder, login client and links. */
    dashboard?: GatewayOptions['dashboard'];
    /** A Temporal server of the test's own (host:port); the run's shared dev server otherwise. */
    temporalAddress?: string;
  } = {},
): Promise<Stack> {
  quietRuntime();
  const file = connectorsFile();
  file.connectors.push(...(opts.extraConnectors ?? []));
  // The same wiring as `npm start` and the benchmarks (src/gateway.ts), on the test run's dev server and database.
  const taskQueue = `cg-test-${randomUUID()}`;
  const gw = await startGateway({
    temporal: { address: opts.temporalAddress ?? temporalAddress },
    taskQueue,
    // Each stack its own discovery schedule, on its own task queue; deleted again by stop().
    discovery: { scheduleId: `discovery-${taskQueue}` },
    databaseUrl: opts.databaseUrl ?? TEST_ENV.databaseUrl,
    connectors: file,
    ...(opts.policy ? { policy: opts.policy } : {}),
    ...(opts.leaks ? { leaks: opts.leaks } : {}),
    ...(opts.notify ? { notify: opts.notify } : {}),
    ...(opts.servicenowSettings ? { servicenowSettings: opts.servicenowSettings } : {}),
    ...(opts.sourceCheckTtlMs !== undefined ? { sourceCheckTtlMs: opts.sourceCheckTtlMs } : {}),
    // Passes only when a test asks (stack.reconcile()), so that a test decides when one happens.
    reconcile: {},
    // Changes the simulator numbers itself (a remediation, a leak's rotation) must not reuse a number another stack's
    // change had on the run's shared Temporal server: each stack numbers from its own 11-digit base (test numbers
    // from uniqueTicketNumber have 9).
    servicenow: {
      simulator: { username: TEST_ENV.snUser, password: TEST_ENV.snPassword, numberBase: 10_000_000_000 + randomInt(80_000_000_000), ...(opts.oauth ? { oauth: opts.oauth } : {}) },
      ...(opts.oauth ? { clientOAuth: { clientId: opts.oauth.clientId, clientSecret: opts.oauth.clientSecret } } : {}),
    },
    webhookSecret: TEST_ENV.webhookSecret,
    jira: {
      site: { simulator: { email: TEST_ENV.jiraEmail, apiToken: TEST_ENV.jiraApiToken, webhookRetryDelayMs: opts.jira?.webhookRetry?.delayMs ?? 50, ...(opts.jira?.webhookRetry ? { webhookAttempts: opts.jira.webhookRetry.attempts } : {}), ...(opts.jira?.workflow ? { workflow: opts.jira.workflow } : {}) } },
      settings: opts.jira?.settings ?? DEMO_JIRA_SETTINGS,
      webhookSecret: TEST_ENV.jiraWebhookSecret,
    },
    deployWebhookSecret: TEST_ENV.deployWebhookSecret,
    adminToken: TEST_ENV.adminToken,
    // The run's one key (global-setup also hands it to worker processes a test starts itself), as the API and worker share one.
    evidenceSealKey: TEST_ENV.evidenceSealKey,
    ...(opts.evidenceSigningKey === false ? {} : { evidenceSigningKey: opts.evidenceSigningKey ?? generateKeyPairSync('ed25519').privateKey }),
    oidc: opts.oidc,
    maxBodyBytes: 64 * 1024,
    metrics: { port: 0 },
    ...(opts.traces ? { traces: opts.traces } : {}),
    ...(opts.dashboard ? { dashboard: opts.dashboard } : {}),
    worker:
      opts.inProcessWorker === false
        ? false
        : { workflowBundle: opts.workflowBundle ?? { codePath: process.env.CG_TEST_BUNDLE as string }, ...(opts.writeBackBackoff ? { writeBackBackoff: opts.writeBackBackoff } : {}) },
    log: opts.log ?? createLogger('test', 'error'),
  });
  const { apiUrl, ds, evidence, verdicts, workflows, worker } = gw;
  const discoveryScheduleId = gw.discoveryScheduleId as string;
  const app = gw.app as express.Express;
  const sim = gw.sim as ServiceNowSimulator;
  const admin = await mysql.createConnection({ uri: TEST_ENV.adminUrl });

  const tokens = new ApiTokenStore(ds);
  const stack: Stack = {
    apiUrl,
    app,
    tokens,
    async tokenFor(...roles) {
      const name = `t-${roles[0] ?? 'none'}-${randomBytes(6).toString('hex')}`;
      const { token } = await tokens.create(name, roles, 'test');
      return { name, token };
    },
    sim,
    simUrl: gw.servicenowUrl,
    jiraSim: gw.jiraSim as JiraSimulator,
    jiraUrl: gw.jiraUrl as string,
    jira: gw.jira as JiraRuntime,
    ds,
    evidence,
    verdicts,
    workflows,
    taskQueue,
    metricsUrl: gw.metricsUrl as string,
    discoveryScheduleId,
    async reconcile() {
      if (!gw.reconciler) throw new Error('this stack runs no reconciliation (no in-process worker)');
      return gw.reconciler.runOnce();
    },
    async reconcileJira() {
      if (!gw.jiraReconciler) throw new Error('this stack runs no Jira reconciliation (no in-process worker or no Jira)');
      return gw.jiraReconciler.runOnce();
    },
    admin,
    worker,
    async deliver(record, o = {}) {
      return postSigned(`${apiUrl}/webhooks/servicenow`, o.raw ?? Buffer.from(JSON.stringify(record)), o.secret ?? TEST_ENV.webhookSecret, o);
    },
    closureCheck(number) {
      return axios.get(`${apiUrl}/api/changes/servicenow/${number}/closure-check`, {
        headers: { authorization: `Bearer ${TEST_ENV.adminToken}` },
        validateStatus: () => true,
      });
    },
    async accountExists(name, host = '%') {
      const [rows] = await admin.query<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n FROM mysql.user WHERE User = ? AND Host = ?', [name, host]);
      return Number(rows[0]?.n) > 0;
    },
    async grantsOf(name, host = '%') {
      const [rows] = await admin.query<mysql.RowDataPacket[]>('SHOW GRANTS FOR ?@?', [name, host]);
      return rows.map((r) => String(Object.values(r)[0]));
    },
    async stop() {
      await workflows.client.schedule.getHandle(discoveryScheduleId).delete().catch(() => undefined);
      await gw.stop();
      await admin.end();
    },
  };
  return stack;
}

/** The MariaDB accounts deploy runs of the action named `base` got (`<base>_d<suffix>`), by name. */
export async function runAccounts(admin: mysql.Connection, base: string): Promise<string[]> {
  const [rows] = await admin.query<mysql.RowDataPacket[]>('SELECT User AS u FROM mysql.user WHERE User LIKE ? ORDER BY User', [`${base}\\_d%`]);
  return rows.map((r) => String(r.u));
}

/** Drops what deploy runs of the action named `base` left on MariaDB (a failing test must not leave them to others). */
export async function dropRunAccounts(admin: mysql.Connection, base: string): Promise<void> {
  for (const user of await runAccounts(admin, base)) await admin.query('DROP USER IF EXISTS ?@?', [user, '%']);
}

/** Creates a MariaDB account with one grant, as a pre-existing service account to be revoked. */
export async function createAccount(admin: mysql.Connection, name: string, grants = ['SELECT ON `cgt_billing`.*']): Promise<void> {
  await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [name, '%', randomBytes(12).toString('hex')]);
  for (const g of grants) await admin.query(`GRANT ${g} TO ?@?`, [name, '%']);
}
