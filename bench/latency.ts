/**
 * npm run bench:latency [-- --n 200] [-- --url http://127.0.0.1:3000]
 *
 * Creates N MariaDB accounts and N change tickets (Table API POST to ServiceNow — the simulator's business rule
 * then fires the signed webhook, as a real instance would) one after another, each carrying one leaver, then
 * prints one JSON line: p50/p95/p99 of webhook-received → revocation-verified, taken from the evidence rows'
 * own timestamps, and the throughput. Without --url it starts its own stack (Temporal dev server without the
 * self-throttle on its own port, a fresh `changegate_bench` database, the ServiceNow simulator, API and worker);
 * with --url it uses a running gateway (e.g. `npm start`) and needs that gateway's DATABASE_URL and the
 * SERVICENOW_URL/SERVICENOW_USERNAME/SERVICENOW_PASSWORD of the ServiceNow it listens to.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import axios from 'axios';
import mysql from 'mysql2/promise';
import { createApp } from '../src/api/app';
import type { ConnectorsFile } from '../src/connectors/registry';
import { ConnectorRegistry, GrammarRegistry } from '../src/connectors/registry';
import { EvidenceStore } from '../src/evidence/evidence-store';
import { ServiceNowClient } from '../src/itsm/servicenow-client';
import { createLogger } from '../src/logger';
import { openDatabase } from '../src/persistence/data-source';
import { createServiceNowSimulator } from '../src/simulators/servicenow-simulator';
import { startDevServer } from '../src/temporal/dev-server';
import { ChangeWorkflows } from '../src/temporal/temporal-client';
import { createWorker } from '../src/worker';

const args = process.argv.slice(2);
const arg = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const N = Number(arg('n') ?? 200);
const URL_ARG = arg('url');
const ADMIN_URL = process.env.BENCH_ADMIN_DB_URL ?? 'mysql://root@127.0.0.1:3306/';

function percentile(sorted: number[], p: number): number {
  const idx = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, idx)] ?? NaN;
}

interface BenchStack {
  databaseUrl: string;
  servicenow: { url: string; username: string; password: string };
  stop: () => Promise<void>;
}

async function ownStack(): Promise<BenchStack> {
  const silent = () => undefined;
  Runtime.install({ logger: { log: silent, trace: silent, debug: silent, info: silent, warn: silent, error: silent } });
  const databaseUrl = 'mysql://root@127.0.0.1:3306/changegate_bench';
  const admin = await mysql.createConnection({ uri: ADMIN_URL });
  await admin.query('DROP DATABASE IF EXISTS changegate_bench');
  await admin.end();
  const temporal = await startDevServer({ port: 7266, logFile: resolve(__dirname, '../.data/bench/temporal.log') });
  const ds = await openDatabase(databaseUrl, { migrate: true });
  const secret = randomBytes(24).toString('hex');
  const file: ConnectorsFile = {
    connectors: [{ name: 'mysql-local', type: 'mysql', host: '127.0.0.1', port: 3306, user: 'root', passwordEnv: 'BENCH_TARGET_PASSWORD', policy: { protectedAccounts: ['root'] } }],
  };
  process.env.BENCH_TARGET_PASSWORD ??= '';
  const taskQueue = 'changegate-bench';
  const workflows = await ChangeWorkflows.connect(temporal.address, 'default', taskQueue);
  const evidence = new EvidenceStore(ds);
  const app = createApp({ ds, workflows, grammars: new GrammarRegistry(file), evidence, webhookSecret: secret, adminToken: randomBytes(24).toString('hex'), maxBodyBytes: 256 * 1024, log: createLogger('bench', 'error') });
  const server: Server = await new Promise((res) => {
    const s = app.listen(0, '127.0.0.1', () => res(s));
  });
  const apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const sim = createServiceNowSimulator({ username: 'bench', password: 'bench-password', webhook: { url: `${apiUrl}/webhooks/servicenow`, secret } });
  const simListening = await sim.listen(0);
  const registry = new ConnectorRegistry(file);
  const connection = await NativeConnection.connect({ address: temporal.address });
  const worker: Worker = await createWorker({
    connection, namespace: 'default', taskQueue, registry, evidence,
    servicenow: new ServiceNowClient({ baseUrl: simListening.url, username: 'bench', password: 'bench-password' }),
  });
  const running = worker.run();
  return {
    databaseUrl,
    servicenow: { url: simListening.url, username: 'bench', password: 'bench-password' },
    stop: async () => {
      worker.shutdown();
      await running;
      await registry.close();
      await connection.close();
      // Work notes fire the simulated business rule's webhook; let those land before the API's client closes.
      await sim.waitForDeliveries();
      await simListening.close();
      await new Promise<void>((r) => server.close(() => r()));
      await workflows.close();
      await ds.destroy();
      await temporal.stop();
    },
  };
}

async function main(): Promise<void> {
  const env = process.env;
  const stack: BenchStack = URL_ARG
    ? {
        databaseUrl: env.DATABASE_URL ?? '',
        servicenow: { url: env.SERVICENOW_URL ?? '', username: env.SERVICENOW_USERNAME ?? '', password: env.SERVICENOW_PASSWORD ?? '' },
        stop: async () => undefined,
      }
    : await ownStack();
  if (!stack.databaseUrl || !stack.servicenow.url) throw new Error('--url needs DATABASE_URL and SERVICENOW_URL/_USERNAME/_PASSWORD of that gateway');
  const tableApi = axios.create({
    baseURL: `${stack.servicenow.url}/api/now/table`,
    auth: { username: stack.servicenow.username, password: stack.servicenow.password },
    headers: { accept: 'application/json' },
  });
  const admin = await mysql.createConnection({ uri: ADMIN_URL });
  const db = await mysql.createConnection({ uri: stack.databaseUrl });
  const run = randomBytes(3).toString('hex');
  const names = Array.from({ length: N }, (_, i) => `bench_${run}_${i}`);
  for (const name of names) {
    await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [name, '%', randomBytes(12).toString('hex')]);
    await admin.query('GRANT SELECT ON `billing`.* TO ?@?', [name, '%']);
  }

  const started = Date.now();
  const latencies: number[] = [];
  for (const [i, name] of names.entries()) {
    const number = `CHG${run.replace(/[a-f]/g, '9')}${String(i).padStart(5, '0')}`;
    await tableApi.post('/change_request', {
      number, state: '-5', type: 'emergency', short_description: `bench leaver ${i}`,
      u_identity_actions: JSON.stringify([{ kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' } }]),
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const [rows] = await db.query<mysql.RowDataPacket[]>(
        'SELECT TIMESTAMPDIFF(MICROSECOND, event_received_at, verified_at) AS us, verified FROM evidence_records WHERE ticket_key = ?',
        [`servicenow:${number}`],
      );
      if (rows[0]) {
        if (!rows[0].verified) throw new Error(`leaver ${name} was not verified`);
        latencies.push(Number(rows[0].us) / 1000);
        break;
      }
      if (Date.now() > deadline) throw new Error(`leaver ${name} not verified within 30 s`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }
  const wallS = (Date.now() - started) / 1000;
  const sorted = [...latencies].sort((a, b) => a - b);
  console.log(JSON.stringify({
    bench: 'latency',
    measure: 'webhook received -> revocation verified (evidence timestamps), sequential leavers',
    n: N,
    p50_ms: percentile(sorted, 50),
    p95_ms: percentile(sorted, 95),
    p99_ms: percentile(sorted, 99),
    max_ms: sorted[sorted.length - 1],
    throughput_per_s: Number((N / wallS).toFixed(2)),
    server: URL_ARG ? URL_ARG : 'own stack: temporal start-dev (unthrottled flags), in-process API + worker',
  }));
  await admin.end();
  await db.end();
  await stack.stop();
}

main().catch((err: unknown) => {
  console.error('bench failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
