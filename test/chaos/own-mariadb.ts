import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { waitFor } from '../support/wait';

const run = promisify(execFile);

/** A MariaDB server of the run's own, on its own port and data directory, that the run may stop and start. */
export interface OwnMariadb {
  port: number;
  /** Stops the server and starts it again on its data: gracefully, or (`crash`) by SIGKILL, so that InnoDB recovers. */
  restart(how: 'graceful' | 'crash'): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The fault suite's own MariaDB: restarting the machine's server would pull it from under everything else on the
 * machine (another suite, `npm start`). Made from nothing each run (mariadb-install-db, the machine's MariaDB
 * binaries, none of the machine's option files), root without a password on 127.0.0.1 as the suite expects.
 */
export async function startOwnMariadb(opts: { dir: string; port: number }): Promise<OwnMariadb> {
  rmSync(opts.dir, { recursive: true, force: true });
  mkdirSync(opts.dir, { recursive: true });
  const data = join(opts.dir, 'data');
  const user = userInfo().username;
  await run('mariadb-install-db', ['--no-defaults', `--datadir=${data}`, '--auth-root-authentication-method=normal', '--skip-test-db', `--user=${user}`]);
  let server: ChildProcess | undefined;

  const answers = async (): Promise<boolean> => {
    const c = await mysql.createConnection({ host: '127.0.0.1', port: opts.port, user: 'root', connectTimeout: 1_000 }).catch(() => undefined);
    if (!c) return false;
    await c.end().catch(() => undefined);
    return true;
  };
  const start = async () => {
    const child = spawn(
      '/usr/sbin/mariadbd',
      [
        '--no-defaults', `--datadir=${data}`, `--port=${opts.port}`, '--bind-address=127.0.0.1', `--socket=${join(opts.dir, 'mariadb.sock')}`,
        `--pid-file=${join(opts.dir, 'mariadb.pid')}`, `--user=${user}`, '--skip-log-bin', '--innodb-buffer-pool-size=256M',
        '--max-connections=500', `--log-error=${join(opts.dir, 'error.log')}`,
      ],
      { stdio: 'ignore' },
    );
    server = child;
    await waitFor(`MariaDB answering on ${opts.port} (log: ${join(opts.dir, 'error.log')})`, async () => {
      if (child.exitCode !== null) throw new Error(`mariadbd exited with ${child.exitCode}; see ${join(opts.dir, 'error.log')}`);
      return (await answers()) ? true : null;
    }, 120_000, 200);
  };
  const halt = async (signal: NodeJS.Signals) => {
    const child = server;
    server = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    // A graceful shutdown that does not end within a minute is ended the hard way.
    const hard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    await exited;
    clearTimeout(hard);
  };

  await start();
  // mariadb-install-db leaves anonymous accounts (''@localhost, ''@host): for a TCP connection from 127.0.0.1 they are
  // a closer match than an account at '%', so every other account's password would be refused. Dropped, as
  // mariadb-secure-installation does.
  const root = await mysql.createConnection({ host: '127.0.0.1', port: opts.port, user: 'root' });
  try {
    const anonymous = (await root.query("SELECT Host AS host FROM mysql.user WHERE User = ''"))[0] as Array<{ host: string }>;
    for (const a of anonymous) await root.query("DROP USER ''@?", [a.host]);
  } finally {
    await root.end();
  }
  return {
    port: opts.port,
    async restart(how) {
      await halt(how === 'crash' ? 'SIGKILL' : 'SIGTERM');
      await start();
    },
    async stop() {
      await halt('SIGTERM');
      rmSync(opts.dir, { recursive: true, force: true });
    },
  };
}
