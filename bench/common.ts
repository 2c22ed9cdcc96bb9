import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import mysql from 'mysql2/promise';
import { createLogger } from '../src/logger';
import { type Gateway, startGateway } from '../src/gateway';
import { freePort } from '../test/support/servers/process';
import * as bareActivities from './bare/activities';

export const ADMIN_URL = process.env.BENCH_ADMIN_DB_URL ?? 'mysql://root@127.0.0.1:3306/';

export function arg(name: string, fallback?: string): string | undefined {
  const args = process.argv.slice(2);
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
}

export function percentile(sorted: number[], p: number): number {
  const idx = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Number((sorted[Math.max(0, idx)] ?? NaN).toFixed(1));
}

export function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function pool<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= items.length) return;
        out[i] = await fn(items[i] as T, i);
      }
    }),
  );
  return out;
}

/** The gateway as `npm start` wires it, on its own dev server (throttle lifted), database and ports. */
export const BENCH_ADMIN_TOKEN = randomBytes(24).toString('hex');
/** The run's evidence seal key: the gateway and a worker process the benchmark starts share it, as in production. */
export const BENCH_SEAL_KEY = randomBytes(32).toString('hex');
export const BENCH_WEBHOOK_SECRET = randomBytes(24).toString('hex');
export const BENCH_CONNECTORS = {
  connectors: [{ name: 'mysql-local', type: 'mysql', host: '127.0.0.1', port: 3306, user: 'root', passwordEnv: 'BENCH_TARGET_PASSWORD', policy: { protectedAccounts: ['root'] } }],
};

/** This run's own database (dropped again by the gateway's stop), so two benchmarks never share one. */
export const BENCH_DATABASE = `changegate_bench_${process.pid}`;
export const BENCH_DATABASE_URL = `mysql://root@127.0.0.1:3306/${BENCH_DATABASE}`;

export async function benchGateway(opts: { worker?: boolean } = {}): Promise<Gateway> {
  const database = BENCH_DATABASE;
  const silent = () => undefined;
  Runtime.install({ logger: { log: silent, trace: silent, debug: silent, info: silent, warn: silent, error: silent }, shutdownSignals: [] });
  const admin = await mysql.createConnection({ uri: ADMIN_URL });
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await admin.end();
  process.env.BENCH_TARGET_PASSWORD ??= '';
  const gw = await startGateway({
    temporal: { devServer: { port: await freePort(), logFile: resolve(__dirname, '../.data/bench/temporal.log') } },
    taskQueue: 'changegate-bench',
    // One account does both on the benchmark's throwaway database.
    databaseUrl: BENCH_DATABASE_URL,
    migrationDatabaseUrl: BENCH_DATABASE_URL,
    connectors: BENCH_CONNECTORS,
    servicenow: { simulator: { username: 'bench', password: 'bench-password' } },
    webhookSecret: BENCH_WEBHOOK_SECRET,
    adminToken: BENCH_ADMIN_TOKEN,
    // The run's own database, so a key of its own.
    evidenceSealKey: BENCH_SEAL_KEY,
    worker: opts.worker === false ? false : {},
    log: createLogger('bench', 'error'),
  });
  return {
    ...gw,
    stop: async () => {
      await gw.stop();
      const conn = await mysql.createConnection({ uri: ADMIN_URL });
      await conn.query(`DROP DATABASE IF EXISTS \`${database}\``);
      await conn.end();
    },
  };
}

export interface FloorResult {
  n: number;
  rate_per_s: number;
  p50_ms: number;
  p99_ms: number;
}

/**
 * The floor on the same server in the same run: N bare workflows (signal-with-start, one trivial activity) with at
 * most `concurrency` in flight, each timed from the start call to its result.
 */
export async function bareFloor(address: string, n: number, concurrency: number): Promise<FloorResult> {
  const taskQueue = `bench-bare-${randomBytes(4).toString('hex')}`;
  const nativeConnection = await NativeConnection.connect({ address });
  const worker = await Worker.create({ connection: nativeConnection, taskQueue, workflowsPath: require.resolve('./bare/workflows'), activities: bareActivities });
  const running = worker.run();
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  const run = randomBytes(3).toString('hex');
  // One unmeasured workflow warms the worker (bundle load, pollers) as the gateway's own warm-up ticket does.
  await (await client.workflow.signalWithStart('bareWorkflow', { workflowId: `bare-${run}-warm`, taskQueue, signal: 'go', signalArgs: ['x'] })).result();
  const started = Date.now();
  const latencies = await pool(Array.from({ length: n }, (_, i) => i), concurrency, async (i) => {
    const t0 = performance.now();
    const handle = await client.workflow.signalWithStart('bareWorkflow', { workflowId: `bare-${run}-${i}`, taskQueue, signal: 'go', signalArgs: ['x'] });
    await handle.result();
    return performance.now() - t0;
  });
  const wallS = (Date.now() - started) / 1000;
  worker.shutdown();
  await running;
  await nativeConnection.close();
  await connection.close();
  const sorted = latencies.sort((a, b) => a - b);
  return { n, rate_per_s: Number((n / wallS).toFixed(1)), p50_ms: percentile(sorted, 50), p99_ms: percentile(sorted, 99) };
}

export function rssMiB(pid: number): number {
  // VmRSS from /proc, in kB.
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN);
  return Math.round(kb / 1024);
}
