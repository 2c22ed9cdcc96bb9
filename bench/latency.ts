/**
 * npm run bench:latency [-- --n 200] [-- --url http://127.0.0.1:3000]
 *
 * Creates N MariaDB accounts and N change tickets (Table API POST to ServiceNow — the simulator's business rule
 * then fires the signed webhook, as a real instance would) one after another, each carrying one leaver, then
 * prints one JSON line: p50/p95/p99 of webhook-received → revocation-verified, taken from the evidence rows'
 * own timestamps, and the throughput; and, on the same server in the same run, the floor — N bare one-activity
 * workflows started one after another by signal-with-start — with the ratio of the medians. Without --url it starts
 * its own gateway (startGateway: a dev server without the self-throttle on its own port, a fresh `changegate_bench_<pid>`
 * database, the simulator, API and worker); with --url it uses a running gateway (e.g. `npm start`) and needs that
 * gateway's DATABASE_URL, TEMPORAL_ADDRESS and the SERVICENOW_URL/SERVICENOW_USERNAME/SERVICENOW_PASSWORD of the
 * ServiceNow it listens to.
 */
import { randomBytes } from 'node:crypto';
import axios from 'axios';
import mysql from 'mysql2/promise';
import { ADMIN_URL, BENCH_DATABASE_URL, arg, bareFloor, benchGateway, percentile } from './common';

const N = Number(arg('n', '200'));
const URL_ARG = arg('url');

interface Target {
  databaseUrl: string;
  temporalAddress: string;
  servicenow: { url: string; username: string; password: string };
  stop: () => Promise<void>;
}

async function target(): Promise<Target> {
  const env = process.env;
  if (URL_ARG) {
    return {
      databaseUrl: env.DATABASE_URL ?? '',
      temporalAddress: env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
      servicenow: { url: env.SERVICENOW_URL ?? '', username: env.SERVICENOW_USERNAME ?? '', password: env.SERVICENOW_PASSWORD ?? '' },
      stop: async () => undefined,
    };
  }
  const gw = await benchGateway();
  return {
    databaseUrl: BENCH_DATABASE_URL,
    temporalAddress: gw.temporalAddress,
    servicenow: { url: gw.servicenowUrl, username: 'bench', password: 'bench-password' },
    stop: () => gw.stop(),
  };
}

async function main(): Promise<void> {
  const stack = await target();
  if (!stack.databaseUrl || !stack.servicenow.url) throw new Error('--url needs DATABASE_URL and SERVICENOW_URL/_USERNAME/_PASSWORD of that gateway');
  const floor = await bareFloor(stack.temporalAddress, N, 1);
  const tableApi = axios.create({
    baseURL: `${stack.servicenow.url}/api/now/table`,
    auth: { username: stack.servicenow.username, password: stack.servicenow.password },
    headers: { accept: 'application/json' },
  });
  const admin = await mysql.createConnection({ uri: ADMIN_URL });
  const db = await mysql.createConnection({ uri: stack.databaseUrl });
  const run = randomBytes(3).toString('hex');
  const names = Array.from({ length: N + 1 }, (_, i) => `bench_${run}_${i}`);
  for (const name of names) {
    await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [name, '%', randomBytes(12).toString('hex')]);
    await admin.query('GRANT SELECT ON `billing`.* TO ?@?', [name, '%']);
  }

  const leaver = async (name: string, i: number): Promise<number> => {
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
        return Number(rows[0].us) / 1000;
      }
      if (Date.now() > deadline) throw new Error(`leaver ${name} not verified within 30 s`);
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  // One unmeasured leaver warms the worker (bundle load, first connector connection), as the floor's warm-up does.
  await leaver(names[N] as string, N);
  const started = Date.now();
  const latencies: number[] = [];
  for (const [i, name] of names.slice(0, N).entries()) latencies.push(await leaver(name, i));
  const wallS = (Date.now() - started) / 1000;
  const sorted = [...latencies].sort((a, b) => a - b);
  const p50 = percentile(sorted, 50);
  console.log(JSON.stringify({
    bench: 'latency',
    measure: 'webhook received -> revocation verified (evidence timestamps), sequential leavers',
    n: N,
    p50_ms: p50,
    p95_ms: percentile(sorted, 95),
    p99_ms: percentile(sorted, 99),
    max_ms: sorted[sorted.length - 1],
    throughput_per_s: Number((N / wallS).toFixed(2)),
    floor: { what: 'bare one-activity workflow, signal-with-start -> result, sequential, same server', ...floor },
    ratio_p50_vs_floor: Number((p50 / floor.p50_ms).toFixed(2)),
    target: 'ratio <= 1.5',
    server: URL_ARG ? URL_ARG : 'own gateway (startGateway): temporal start-dev (unthrottled flags), in-process API + worker',
  }));
  await admin.end();
  await db.end();
  await stack.stop();
}

main().catch((err: unknown) => {
  console.error('bench failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
