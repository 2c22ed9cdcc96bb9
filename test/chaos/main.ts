import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type OwnMariadb, startOwnMariadb } from './own-mariadb';

/**
 * `npm run chaos -- --tickets N --seed S [--restart-mariadb] [--restart-temporal]`: one run of the randomized fault suite; prints its figures as one JSON line
 * (progress on stderr) and exits 1 when an invariant was violated, a step was done twice, a note was written twice,
 * or a ticket did not end as its faults say it must. It brings up what the test suite does (its own Temporal dev
 * server, database and connector account) on test slot 9 unless CG_TEST_SLOT says otherwise, so it never touches a
 * running `npm start` or a suite run on the default slot. `--restart-mariadb` runs everything on a MariaDB server of the
 * run's own (port 13300 + slot, data under .data/test) and restarts it now and then, alternately shut down and
 * killed; without it the machine's server is used and never restarted. `--restart-temporal`
 * restarts the run's Temporal dev server on its file; the dev server's own start-up on a file it just released fails
 * now and then (SQLite busy, then a cluster-metadata version mismatch on every later start), so it is not the default.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({ options: { tickets: { type: 'string', default: '100' }, seed: { type: 'string', default: '1' }, 'restart-mariadb': { type: 'boolean', default: false }, 'restart-temporal': { type: 'boolean', default: false } } });
  const tickets = Number(values.tickets);
  const seed = Number(values.seed);
  if (!Number.isInteger(tickets) || tickets < 1 || tickets > 10_000) throw new Error(`--tickets must be an integer from 1 to 10000, got ${values.tickets}`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`--seed must be an integer from 0 to 4294967295, got ${values.seed}`);
  process.env.CG_TEST_SLOT ??= '9';
  // ServiceNow sends a change once: one the gateway could not take (its database down) comes back by reconciliation,
  // which the worker runs at start and then every SERVICENOW_RECONCILE_INTERVAL (default five minutes, the shortest
  // allowed ten seconds); a run this short would otherwise end before the pass.
  process.env.SERVICENOW_RECONCILE_INTERVAL ??= 'PT10S';
  let mariadb: OwnMariadb | undefined;
  if (values['restart-mariadb']) {
    mariadb = await startOwnMariadb({ dir: resolve(__dirname, `../../.data/test/chaos-mariadb-${process.pid}`), port: 13_300 + Number(process.env.CG_TEST_SLOT) });
    process.env.CG_TEST_MARIADB_PORT = String(mariadb.port);
  }
  /**
   * One restart of a server at a time: the plan's windows overlap, and two restarts at once would each start a server
   * and lose track of one (seen in a 1000-ticket run: three Temporal restarts at once, a dev server left holding the
   * port, and the worker's workflow poller gone quiet while its activity poller went on).
   */
  const oneAtATime = () => {
    let chain: Promise<void> = Promise.resolve();
    return (job: () => Promise<void>) => (chain = chain.then(job, job));
  };
  const mariadbQueue = oneAtATime();
  let mariadbRestarts = 0;
  const restartMariadb = () =>
    mariadbQueue(async () => {
      mariadbRestarts += 1;
      await mariadb?.restart(mariadbRestarts % 2 === 1 ? 'graceful' : 'crash');
    });
  // Imported once the slot is set: the test environment reads it when loaded.
  const { default: globalSetup } = await import('../support/global-setup');
  const { default: globalTeardown } = await import('../support/global-teardown');
  const { runChaos } = await import('./run');
  const { startDevServer } = await import('../../src/temporal/dev-server');
  const { TEST_ENV } = await import('../support/test-env');
  await globalSetup();
  // The run's own Temporal server, on a file, so that it can be restarted mid-run with its state: the suite's
  // in-memory one goes first.
  const holder = globalThis as { __temporal?: Awaited<ReturnType<typeof startDevServer>> };
  await holder.__temporal?.stop();
  const dataDir = resolve(__dirname, '../../.data/test');
  const dbFile = resolve(dataDir, `chaos-temporal-${process.pid}.db`);
  const start = () => startDevServer({ port: TEST_ENV.temporalPort, dbFile, logFile: resolve(dataDir, 'chaos-temporal.log') });
  holder.__temporal = await start();
  const temporalQueue = oneAtATime();
  const restartTemporal = () => temporalQueue(restartTemporalNow);
  const restartTemporalNow = async () => {
    await holder.__temporal?.stop();
    // As a supervisor would: the dev server now and then fails its start-up on a file just released (SQLite busy);
    // it is started again.
    for (let attempt = 1; ; attempt += 1) {
      try {
        holder.__temporal = await start();
        return;
      } catch (err) {
        if (attempt >= 5) throw err;
        process.stderr.write(`[chaos] temporal start-up failed (${(err as Error).message}), starting it again\n`);
      }
    }
  };
  let failed = true;
  try {
    const report = await runChaos({ seed, tickets, ...(values['restart-temporal'] ? { restartTemporal } : {}), ...(mariadb ? { restartMariadb } : {}), log: (line) => process.stderr.write(`[chaos] ${line}\n`) });
    process.stdout.write(`${JSON.stringify(report)}\n`);
    failed = report.invariantViolations > 0 || report.stepsDoneTwice > 0 || report.notesDuplicated > 0 || report.notesMissing > 0 || report.unfinished.length > 0;
  } finally {
    await globalTeardown();
    rmSync(dbFile, { force: true });
    await mariadb?.stop();
  }
  process.exit(failed ? 1 : 0);
}

main().catch((err: unknown) => {
  process.stderr.write(`chaos run failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(2);
});
