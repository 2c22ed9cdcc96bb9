/**
 * npm run bench:open [-- --n 10000] [-- --rate 200] [-- --callers 20] [-- --seconds 10]
 *
 * Many open tickets: N normal changes, each with a joiner waiting for authorization, enter through the ServiceNow
 * simulator. The worker runs as its own process (src/worker-main.ts, as in production), so its resident memory is
 * its own. Then closure-check is called (a) one at a time on random tickets, and (b) at a fixed offered rate with a
 * bounded number of concurrent callers. Prints one JSON line: worker RSS before and after, closure-check p50/p99 in
 * both modes and the rate achieved; targets: RSS < 1 GiB at 10,000 open tickets, p99 < 10 ms at 200/s.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import axios from 'axios';
import { waitFor } from '../test/support/wait';
import { ARG_DEFAULTS } from './open-defaults';
import { BENCH_ADMIN_TOKEN, BENCH_SEAL_KEY, BENCH_DATABASE_URL, BENCH_CONNECTORS, BENCH_WEBHOOK_SECRET, arg, benchGateway, percentile, pool, rssMiB } from './common';

const N = Number(arg('n', ARG_DEFAULTS.n));
const RATE = Number(arg('rate', ARG_DEFAULTS.rate));
const CALLERS = Number(arg('callers', ARG_DEFAULTS.callers));
const SECONDS = Number(arg('seconds', ARG_DEFAULTS.seconds));
// Tickets created at once while the open set builds up; more than the webhook path sustains on 2 cores makes the
// simulator's 5 s delivery timeout drop deliveries, which is an ingest measure (bench:burst), not this one.
const INGEST_CONCURRENCY = Number(arg('ingest-concurrency', '3'));

async function main(): Promise<void> {
  const gw = await benchGateway({ worker: false });
  const dir = resolve(__dirname, '../.data/bench');
  mkdirSync(dir, { recursive: true });
  const connectorsPath = resolve(dir, 'open-connectors.json');
  writeFileSync(connectorsPath, JSON.stringify(BENCH_CONNECTORS));
  const worker: ChildProcess = spawn(process.execPath, ['--import', 'tsx', resolve(__dirname, '../src/worker-main.ts')], {
    env: {
      ...process.env,
      DATABASE_URL: BENCH_DATABASE_URL,
      TEMPORAL_ADDRESS: gw.temporalAddress,
      TEMPORAL_TASK_QUEUE: gw.taskQueue,
      SERVICENOW_URL: gw.servicenowUrl,
      SERVICENOW_USERNAME: 'bench',
      SERVICENOW_PASSWORD: 'bench-password',
      SERVICENOW_WEBHOOK_SECRET: BENCH_WEBHOOK_SECRET,
      CHANGEGATE_ADMIN_TOKEN: BENCH_ADMIN_TOKEN,
      CHANGEGATE_EVIDENCE_SEAL_KEY: BENCH_SEAL_KEY,
      CONNECTORS_CONFIG: connectorsPath,
      LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const stopWorker = () =>
    new Promise<void>((res) => {
      if (worker.exitCode !== null) return res();
      worker.once('exit', () => res());
      worker.kill('SIGTERM');
    });
  try {
    const tableApi = axios.create({ baseURL: `${gw.servicenowUrl}/api/now/table`, auth: { username: 'bench', password: 'bench-password' } });
    const api = axios.create({ baseURL: gw.apiUrl, headers: { authorization: `Bearer ${BENCH_ADMIN_TOKEN}` }, validateStatus: () => true });
    const run = randomBytes(3).toString('hex').replace(/[a-f]/g, '3');
    const ticket = (i: number) => `CHG${run}${String(i).padStart(6, '0')}`;
    await waitFor('the worker process', () => worker.pid !== undefined && rssMiB(worker.pid) > 0, 30_000, 500);
    const rssBefore = rssMiB(worker.pid as number);

    // Peak resident memory of the worker, sampled every 500 ms from here to the end.
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      if (worker.exitCode === null) rssPeak = Math.max(rssPeak, rssMiB(worker.pid as number));
    }, 500);
    const t0 = Date.now();
    // Each lane creates its next ticket only once the gateway has answered the previous one's webhook: the open set
    // is built at the rate the delivery path sustains, since neither ServiceNow nor the simulator retries a delivery
    // that timed out.
    const answered = new Set<string>();
    let seen = 0;
    const deliveredFor = (sysId: string) => {
      const all = gw.sim?.deliveries ?? [];
      for (; seen < all.length; seen++) answered.add(all[seen]!.sysId);
      return answered.has(sysId);
    };
    await pool(Array.from({ length: N }, (_, i) => i), INGEST_CONCURRENCY, async (i) => {
      const created = await tableApi.post('/change_request', {
        number: ticket(i),
        state: '-4',
        type: 'normal',
        approval: 'requested',
        short_description: `open joiner ${i}`,
        u_identity_actions: JSON.stringify([
          { kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: `open_${run}_${i}`, host: '%' }, grants: ['SELECT ON billing.*'], ttl: 'PT8H' },
        ]),
      });
      const sysId = (created.data as { result: { sys_id: string } }).result.sys_id;
      await waitFor(`the delivery of ticket ${i}`, () => deliveredFor(sysId), 60_000, 5);
    });
    // Every ticket's delivery has landed (the simulator's business rule fires asynchronously), and each workflow
    // has run its first task once closure-check of the last ticket answers.
    await gw.sim?.waitForDeliveries();
    const refused = (gw.sim?.deliveries ?? []).filter((d) => d.status !== 202);
    if (refused.length > 0) {
      const all = gw.sim?.deliveries ?? [];
      const idx = refused.map((d) => all.indexOf(d));
      throw new Error(`${refused.length} of ${all.length} deliveries were refused (first at ${idx[0]}, last at ${idx[idx.length - 1]}), e.g. ${JSON.stringify(refused[0])}`);
    }
    await waitFor('the last ticket to answer closure-check', async () => {
      const r = await api.get(`/api/changes/servicenow/${ticket(N - 1)}/closure-check`);
      return r.status === 200;
    }, 600_000, 500);
    const ingestS = (Date.now() - t0) / 1000;
    const rssAfter = rssMiB(worker.pid as number);

    const pick = () => ticket(Math.floor(Math.random() * N));
    const check = async () => {
      const t = performance.now();
      const r = await api.get(`/api/changes/servicenow/${pick()}/closure-check`);
      if (r.status !== 200) throw new Error(`closure-check answered ${r.status}`);
      if ((r.data as { allowed: boolean }).allowed) throw new Error('a ticket waiting for authorization was allowed to close');
      return performance.now() - t;
    };
    const sequential: number[] = [];
    for (let i = 0; i < 500; i++) sequential.push(await check());
    sequential.sort((a, b) => a - b);

    // Offered load: one request every 1000/RATE ms, at most CALLERS in flight (a request that finds none free waits).
    const loaded: number[] = [];
    let inFlight = 0;
    let waiting = 0;
    const loadStart = performance.now();
    const total = RATE * SECONDS;
    const pending: Array<Promise<void>> = [];
    for (let i = 0; i < total; i++) {
      const due = loadStart + (i * 1000) / RATE;
      const delay = due - performance.now();
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      while (inFlight >= CALLERS) {
        waiting++;
        await new Promise((r) => setTimeout(r, 1));
      }
      inFlight++;
      pending.push(
        check().then((ms) => {
          loaded.push(ms);
          inFlight--;
        }),
      );
    }
    await Promise.all(pending);
    const loadS = (performance.now() - loadStart) / 1000;
    clearInterval(sampler);
    loaded.sort((a, b) => a - b);

    console.log(
      JSON.stringify({
        bench: 'open',
        n: N,
        ingest_s: Number(ingestS.toFixed(1)),
        worker_rss_mib: { before: rssBefore, after_ingest: rssAfter, peak: rssPeak, target: 'peak < 1024' },
        closure_check_sequential: { n: sequential.length, p50_ms: percentile(sequential, 50), p99_ms: percentile(sequential, 99) },
        closure_check_loaded: {
          offered_per_s: RATE,
          callers: CALLERS,
          achieved_per_s: Number((loaded.length / loadS).toFixed(1)),
          p50_ms: percentile(loaded, 50),
          p99_ms: percentile(loaded, 99),
          waits_for_a_free_caller: waiting,
          target: 'p99 < 10 ms at 200/s',
        },
      }),
    );
  } finally {
    await stopWorker();
    await gw.stop();
  }
}

main().catch((err: unknown) => {
  console.error('bench failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
