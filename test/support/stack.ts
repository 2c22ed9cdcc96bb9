import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type express from 'express';
import type { AddressInfo } from 'node:net';
import { NativeConnection, Runtime, type Worker, makeTelemetryFilterString } from '@temporalio/worker';
import axios, { type AxiosResponse } from 'axios';
import mysql from 'mysql2/promise';
import type { DataSource } from 'typeorm';
import { createApp } from '../../src/api/app';
import { ApiTokenStore } from '../../src/auth/api-tokens';
import type { OidcSettings } from '../../src/auth/oidc-settings';
import type { Role } from '../../src/auth/principal';
import { signWebhook } from '../../src/itsm/servicenow/webhook-signature';
import type { ConnectorsFile } from '../../src/connectors/registry';
import { ConnectorRegistry, GrammarRegistry } from '../../src/connectors/registry';
import { EvidenceStore } from '../../src/evidence/evidence-store';
import { ServiceNowClient } from '../../src/itsm/servicenow/servicenow-client';
import { createLogger, type Logger } from '../../src/logger';
import { openDatabase } from '../../src/persistence/data-source';
import { createServiceNowSimulator, type ServiceNowSimulator } from '../../src/itsm/servicenow/servicenow-simulator';
import { ChangeWorkflows } from '../../src/temporal/temporal-client';
import { createWorker } from '../../src/worker';
import { TEST_ENV, temporalAddress } from './test-env';

let runtimeInstalled = false;
export function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined }, telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } } });
}

export function connectorsFile(): ConnectorsFile {
  return {
    connectors: [
      {
        name: 'mysql-local',
        type: 'mysql',
        host: '127.0.0.1',
        port: 3306,
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

export interface Stack {
  apiUrl: string;
  app: express.Express;
  tokens: ApiTokenStore;
  /** A fresh API token holding exactly these roles, under a unique name. */
  tokenFor(...roles: Role[]): Promise<{ name: string; token: string }>;
  sim: ServiceNowSimulator;
  simUrl: string;
  ds: DataSource;
  evidence: EvidenceStore;
  workflows: ChangeWorkflows;
  taskQueue: string;
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
  opts: { inProcessWorker?: boolean; extraConnectors?: ConnectorsFile['connectors']; oidc?: OidcSettings; log?: Logger } = {},
): Promise<Stack> {
  quietRuntime();
  const taskQueue = `cg-test-${randomUUID()}`;
  const log = opts.log ?? createLogger('test', 'error');
  const ds = await openDatabase(TEST_ENV.databaseUrl, { migrate: false });
  const evidence = new EvidenceStore(ds);
  const file = connectorsFile();
  file.connectors.push(...(opts.extraConnectors ?? []));
  const workflows = await ChangeWorkflows.connect(temporalAddress, 'default', taskQueue);
  const app = createApp({
    ds,
    workflows,
    grammars: new GrammarRegistry(file),
    evidence,
    webhookSecret: TEST_ENV.webhookSecret,
    adminToken: TEST_ENV.adminToken,
    oidc: opts.oidc,
    maxBodyBytes: 64 * 1024,
    log,
  });
  const server: Server = await new Promise((res) => {
    const s = app.listen(0, '127.0.0.1', () => res(s));
  });
  const apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const sim = createServiceNowSimulator({
    username: TEST_ENV.snUser,
    password: TEST_ENV.snPassword,
    webhook: { url: `${apiUrl}/webhooks/servicenow`, secret: TEST_ENV.webhookSecret },
  });
  const listening = await sim.listen(0);
  const admin = await mysql.createConnection({ uri: TEST_ENV.adminUrl });

  let worker: Worker | undefined;
  let workerRun: Promise<void> | undefined;
  let registry: ConnectorRegistry | undefined;
  let connection: NativeConnection | undefined;
  if (opts.inProcessWorker !== false) {
    registry = new ConnectorRegistry(file);
    connection = await NativeConnection.connect({ address: temporalAddress });
    worker = await createWorker({
      connection,
      namespace: 'default',
      taskQueue,
      registry,
      evidence,
      servicenow: new ServiceNowClient({ baseUrl: listening.url, username: TEST_ENV.snUser, password: TEST_ENV.snPassword }),
      workflowBundle: { codePath: process.env.CG_TEST_BUNDLE as string },
    });
    workerRun = worker.run();
  }

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
    simUrl: listening.url,
    ds,
    evidence,
    workflows,
    taskQueue,
    admin,
    worker,
    async deliver(record, o = {}) {
      const raw = o.raw ?? Buffer.from(JSON.stringify(record));
      const ts = String(o.timestamp ?? Math.floor(Date.now() / 1000));
      return axios.post(`${apiUrl}/webhooks/servicenow`, raw, {
        headers: {
          'content-type': 'application/json',
          'x-changegate-timestamp': ts,
          'x-changegate-event-id': o.eventId ?? randomBytes(16).toString('hex'),
          'x-changegate-signature': o.signature ?? signWebhook(o.secret ?? TEST_ENV.webhookSecret, ts, raw),
        },
        validateStatus: () => true,
      });
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
      if (worker && worker.getState() === 'RUNNING') worker.shutdown();
      await workerRun;
      await registry?.close();
      await connection?.close();
      await sim.waitForDeliveries();
      await listening.close();
      await new Promise<void>((res) => server.close(() => res()));
      await workflows.close();
      await admin.end();
      await ds.destroy();
    },
  };
  return stack;
}

/** Creates a MariaDB account with one grant, as a pre-existing service account to be revoked. */
export async function createAccount(admin: mysql.Connection, name: string, grants = ['SELECT ON `cgt_billing`.*']): Promise<void> {
  await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [name, '%', randomBytes(12).toString('hex')]);
  for (const g of grants) await admin.query(`GRANT ${g} TO ?@?`, [name, '%']);
}
