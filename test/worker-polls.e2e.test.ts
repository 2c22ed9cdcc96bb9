import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import axios from 'axios';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { type DevServer, startDevServer } from '../src/temporal/dev-server';
import { type PollKind, lastPolls, pollReport, watchPolls } from '../src/temporal/poll-watch';
import { type FlakyPort, startFlakyPort } from './support/flaky-port';
import { type Stack, startStack, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';
import { killHard, startWorkerProcess } from './support/worker-process';

/**
 * A worker whose process lives while its polls no longer reach Temporal takes no work and says nothing (seen after a
 * Temporal restart: the workflow poller went silent while activities were still polled). The worker watches that
 * Temporal keeps seeing its polls and ends itself (exit 1) for its supervisor to restart it; /readyz says whether any
 * worker polls the task queue.
 */
describe('workers whose polls stop reaching Temporal', () => {
  it('/readyz says workflow and activity tasks are polled while a worker runs, and says no worker polls a queue none serves, still ready', async () => {
    // The second stack's task queue is one of its own that no worker serves: deliveries would wait in Temporal, so the
    // API stays ready.
    for (const [inProcessWorker, said] of [[true, 'ok'], [false, 'no worker polling']] as const) {
      const stack = await startStack({ inProcessWorker });
      try {
        const res = await axios.get(`${stack.apiUrl}/readyz`, { validateStatus: () => true });
        expect(res.status).toBe(200);
        expect(res.data).toMatchObject({ status: 'ready', workers: { workflow: said, activity: said } });
      } finally {
        await stack.stop();
      }
    }
  });

  it('pollReport says how long no poll was seen once that exceeds the limit', () => {
    const now = Date.parse('2026-12-01T10:00:00Z');
    const at = (agoMs: number) => new Date(now - agoMs);
    expect(pollReport({ workflow: at(150_000), activity: at(1_000) }, 150_000, now)).toEqual({ workflow: 'ok', activity: 'ok' });
    expect(pollReport({ workflow: at(151_000), activity: null }, 150_000, now)).toEqual({ workflow: 'no poll for 151 s', activity: 'no worker polling' });
  });

  describe('the watch, on a Temporal server whose idle long polls last 2 s', () => {
    let server: DevServer;
    let logDir: string;
    let port: FlakyPort;
    let client: Client;
    beforeAll(async () => {
      logDir = mkdtempSync(join(tmpdir(), 'cg-polls-'));
      // The server's own long poll is a minute: here an idle worker polls again every 2 s, so a short limit is fair.
      server = await startDevServer({ port: TEST_ENV.temporalPort + 7, logFile: join(logDir, 'temporal.log'), dynamicConfig: ['matching.longPollExpirationInterval="2s"'] });
      const [host, serverPort] = server.address.split(':');
      port = await startFlakyPort({ host: host!, port: Number(serverPort) });
      // The watch asks on a connection of its own, straight to the server; the worker goes through the port.
      client = new Client({ connection: await Connection.connect({ address: server.address }) });
    });
    afterAll(async () => {
      await client?.connection.close();
      await port?.stop();
      await server?.stop();
      rmSync(logDir, { recursive: true, force: true });
    });

    /** A worker on a task queue of its own, reaching Temporal through `via`. */
    const workerThrough = async (via: FlakyPort) => {
      const taskQueue = `polls-${randomUUID()}`;
      const connection = await NativeConnection.connect({ address: `127.0.0.1:${via.port}` });
      const worker = await Worker.create({ connection, taskQueue, workflowBundle: { codePath: process.env.CG_TEST_BUNDLE as string }, activities: { noop: async () => undefined } });
      return { worker, run: worker.run(), connection, taskQueue };
    };

    it("names the worker's silent poller once its polls stop reaching Temporal while it runs, and not while they reach it", async () => {
      const { worker, run, connection, taskQueue } = await workerThrough(port);
      const silent: Array<{ kind: PollKind; silentForMs: number }> = [];
      const watch = watchPolls({ client, taskQueue, identity: worker.options.identity, maxSilenceMs: 8_000, everyMs: 500, onSilent: (kind, silentForMs) => silent.push({ kind, silentForMs }) });
      try {
        // Healthy and idle: Temporal sees new polls of both kinds again and again, and the watch says nothing.
        const seen: Record<PollKind, Set<number>> = { workflow: new Set(), activity: new Set() };
        await waitFor('three distinct polls of each kind', async () => {
          const last = await lastPolls(client, taskQueue, worker.options.identity);
          for (const kind of ['workflow', 'activity'] as const) if (last[kind]) seen[kind].add(last[kind]!.getTime());
          return seen.workflow.size >= 3 && seen.activity.size >= 3;
        }, 30_000);
        expect(silent).toEqual([]);

        // The worker's path to Temporal stalls: nothing it sends arrives, the process and its pollers run on.
        port.hold();
        const found = await waitFor('the watch to name a silent poller', () => silent[0], 30_000);
        expect(['workflow', 'activity']).toContain(found.kind);
        expect(found.silentForMs).toBeGreaterThan(8_000);
        expect(silent).toHaveLength(1);
      } finally {
        watch.stop();
        port.release();
        worker.shutdown();
        await run;
        await connection.close();
      }
    });

    it('does not count the time Temporal could not be asked: the silence it names starts when the watch reaches Temporal again', async () => {
      // The watch's questions go through a port of their own this time, so that they too can reach nothing.
      const [host, serverPort] = server.address.split(':');
      const watchPath = await startFlakyPort({ host: host!, port: Number(serverPort) });
      const workerPath = port;
      const watchClient = new Client({ connection: await Connection.connect({ address: `127.0.0.1:${watchPath.port}` }) });
      const { worker, run, connection, taskQueue } = await workerThrough(workerPath);
      const silent: Array<{ kind: PollKind; silentForMs: number }> = [];
      const watch = watchPolls({ client: watchClient, taskQueue, identity: worker.options.identity, maxSilenceMs: 4_000, everyMs: 500, onSilent: (kind, silentForMs) => silent.push({ kind, silentForMs }) });
      try {
        await waitFor('the worker seen polling', async () => {
          const last = await lastPolls(watchClient, taskQueue, worker.options.identity);
          return last.workflow !== null && last.activity !== null;
        });
        // Temporal away for both: the worker's polls and the watch's questions reach nothing, for longer than the limit.
        workerPath.hold();
        watchPath.hold();
        const away = Date.now();
        await waitFor('three times the limit to pass', () => Date.now() - away > 12_000 || null, 20_000, 500);
        expect(silent).toEqual([]);
        // The watch reaches Temporal again, the worker's path stays stalled: it is named, for the time since the watch's return.
        watchPath.release();
        const back = Date.now();
        const found = await waitFor('the watch to name a silent poller', () => silent[0], 30_000);
        expect(found.silentForMs).toBeGreaterThan(4_000);
        // Counted from the last question that went unanswered: at most one question (2 s deadline) and one interval
        // before the watch's path came back, never from when Temporal went away.
        expect(found.silentForMs).toBeLessThanOrEqual(Date.now() - back + 2_000 + 500 + 100);
        expect(found.silentForMs).toBeLessThan(Date.now() - away - 4_000);
      } finally {
        watch.stop();
        workerPath.release();
        worker.shutdown();
        await run;
        await connection.close();
        await watchClient.connection.close();
        await watchPath.stop();
      }
    });
  });

  describe('the worker process', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({ inProcessWorker: false });
    });
    afterAll(async () => {
      await stack?.stop();
    });

    it('ends itself with exit status 1, naming the silent task kind, once its polls go unseen for longer than TEMPORAL_WORKER_POLL_SILENCE', async () => {
      // The shared test server keeps an idle long poll open for a minute and sees a poll when it starts: with a 3 s
      // limit, an idle worker's polls go unseen for longer than allowed, as a stalled poller's would.
      const child = await startWorkerProcess(stack, [], {}, { TEMPORAL_WORKER_POLL_SILENCE: 'PT3S' });
      let output = '';
      child.stdout?.on('data', (b: Buffer) => (output += b.toString()));
      child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
      let code: number | null;
      try {
        code = await waitFor('the worker process to exit', () => (child.exitCode !== null ? { code: child.exitCode } : null), 30_000).then((e) => e.code);
      } finally {
        await killHard(child);
      }
      expect(code).toBe(1);
      const line = output.split('\n').find((l) => l.includes('worker stopping'));
      expect(line).toBeDefined();
      expect(JSON.parse(line!)).toMatchObject({ level: 'error', taskKind: expect.stringMatching(/^(workflow|activity)$/), limitSeconds: 3 });
      expect(JSON.parse(line!).silentForSeconds).toBeGreaterThanOrEqual(3);
    }, 60_000);
  });
});
