/**
 * npm run bench:burst [-- --n 1000] [-- --concurrency 100]
 *
 * N leavers arrive at once: N MariaDB accounts, then N change tickets POSTed to the ServiceNow simulator's Table API
 * with at most `concurrency` requests in flight (its business rule fires the signed webhook at the gateway, as a real
 * instance would). Prints one JSON line: the rate (tickets verified per second, first webhook received → last
 * revocation verified), p50/p99 of webhook received → revocation verified (the evidence rows' own timestamps), and —
 * on the same dev server in the same run — the rate and latency of N bare one-activity workflows started by
 * signal-with-start with the same concurrency, and the ratio.
 */
import { randomBytes } from 'node:crypto';
import axios from 'axios';
import mysql from 'mysql2/promise';
import { ADMIN_URL, BENCH_DATABASE_URL, arg, bareFloor, benchGateway, percentile, pool } from './common';

const N = Number(arg('n', '1000'));
const CONCURRENCY = Number(arg('concurrency', '100'));

async function main(): Promise<void> {
  const gw = await benchGateway();
  const admin = await mysql.createConnection({ uri: ADMIN_URL });
  const db = await mysql.createConnection({ uri: BENCH_DATABASE_URL });
  try {
    const floor = await bareFloor(gw.temporalAddress, N, CONCURRENCY);

    const run = randomBytes(3).toString('hex');
    const names = Array.from({ length: N }, (_, i) => `burst_${run}_${i}`);
    await pool(names, 8, async (name) => {
      await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [name, '%', randomBytes(12).toString('hex')]);
      await admin.query('GRANT SELECT ON `billing`.* TO ?@?', [name, '%']);
    });
    const tableApi = axios.create({ baseURL: `${gw.servicenowUrl}/api/now/table`, auth: { username: 'bench', password: 'bench-password' } });
    const ticket = (i: number) => `CHG${run.replace(/[a-f]/g, '7')}${String(i).padStart(5, '0')}`;
    // Warm-up ticket, unmeasured: the worker's first workflow task loads the bundle.
    await admin.query("CREATE USER IF NOT EXISTS 'burst_warm'@'%'");
    await tableApi.post('/change_request', { number: `CHG${run.replace(/[a-f]/g, '7')}99999`, state: '-5', type: 'emergency', u_identity_actions: JSON.stringify([{ kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: 'burst_warm', host: '%' } }]) });

    await pool(names, CONCURRENCY, (name, i) =>
      tableApi.post('/change_request', {
        number: ticket(i),
        state: '-5',
        type: 'emergency',
        short_description: `burst leaver ${i}`,
        u_identity_actions: JSON.stringify([{ kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' } }]),
      }),
    );
    const keys = names.map((_, i) => `servicenow:${ticket(i)}`);
    const deadline = Date.now() + Math.max(120_000, N * 500);
    let rows: mysql.RowDataPacket[] = [];
    for (;;) {
      [rows] = await db.query<mysql.RowDataPacket[]>(
        `SELECT ticket_key, verified, TIMESTAMPDIFF(MICROSECOND, event_received_at, verified_at) AS us,
                UNIX_TIMESTAMP(event_received_at) AS rx, UNIX_TIMESTAMP(verified_at) AS vx
           FROM evidence_records WHERE ticket_key IN (?)`,
        [keys],
      );
      if (rows.length >= N) break;
      if (Date.now() > deadline) throw new Error(`only ${rows.length} of ${N} leavers recorded before the deadline`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const unverified = rows.filter((r) => !r.verified).length;
    if (unverified > 0) throw new Error(`${unverified} leavers were not verified`);
    const latencies = rows.map((r) => Number(r.us) / 1000).sort((a, b) => a - b);
    const first = Math.min(...rows.map((r) => Number(r.rx)));
    const last = Math.max(...rows.map((r) => Number(r.vx)));
    const rate = N / (last - first);
    console.log(
      JSON.stringify({
        bench: 'burst',
        measure: 'N leavers at once through the simulator: rate = N / (first webhook received -> last revocation verified); latency webhook received -> verified',
        n: N,
        concurrency: CONCURRENCY,
        rate_per_s: Number(rate.toFixed(1)),
        p50_ms: percentile(latencies, 50),
        p99_ms: percentile(latencies, 99),
        floor: { what: 'bare one-activity workflow, signal-with-start, same server, same concurrency', ...floor },
        ratio_rate_vs_floor: Number((rate / floor.rate_per_s).toFixed(2)),
        target: 'ratio >= 0.5',
      }),
    );
  } finally {
    await admin.end();
    await db.end();
    await gw.stop();
  }
}

main().catch((err: unknown) => {
  console.error('bench failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
