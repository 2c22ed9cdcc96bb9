import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, spawnServer, type SpawnedServer } from './process';

/**
 * A private PostgreSQL instance per test file: initdb into a temporary directory, started on a free port with
 * scram-sha-256 for every connection. The machine's own cluster (5432) trusts every local TCP login, so a password
 * check there would prove nothing; here `authenticates()` meets real password authentication, and no other test
 * can see or collide with the roles these tests create.
 */
export interface PostgresServer {
  host: string;
  port: number;
  /** The bootstrap superuser; its password exists only in this process. */
  adminUser: string;
  /** A connected superuser client on `database` (default `postgres`); the caller ends it. */
  admin(database?: string): Promise<pg.Client>;
  /** Runs statements as the superuser on one database, on a connection of their own. */
  adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(database: string, sql: string, values?: unknown[]): Promise<R[]>;
  /** What the server has written to its log so far (the last few kB). */
  log(): string;
  stop(): Promise<void>;
}

export interface PostgresServerOptions {
  /** pg_hba.conf lines placed before the scram-sha-256 defaults (first match wins). */
  hbaFirst?: string[];
  /** Extra server settings (`-c name=value`). */
  settings?: Record<string, string>;
}

const execFileP = promisify(execFile);

/** PostgreSQL's binaries: 15 as installed by scripts/setup.d/20-postgres.sh, else the newest installed major. */
export function postgresBinDir(): string {
  const preferred = '/usr/lib/postgresql/15/bin';
  if (existsSync(join(preferred, 'initdb'))) return preferred;
  const majors = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a)) : [];
  const found = majors.map((m) => `/usr/lib/postgresql/${m}/bin`).find((d) => existsSync(join(d, 'initdb')));
  if (!found) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql: run `bash scripts/setup.sh`');
  return found;
}

/** PostgreSQL refuses to run as root: as root, the server runs as the `postgres` OS user the package created. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) throw new Error('running as root, but there is no postgres OS user to run the server as');
  return { uid: Number(uid), gid: Number(gid) };
}

export async function startPostgres(opts: PostgresServerOptions = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const user = runAs();
  const dir = mkdtempSync(join(tmpdir(), 'cg-pg-'));
  const data = join(dir, 'data');
  const adminUser = 'postgres';
  const adminPassword = randomBytes(18).toString('hex');
  const host = '127.0.0.1';
  let server: SpawnedServer | undefined;
  try {
    if (user) chownSync(dir, user.uid, user.gid);
    const pwfile = join(dir, 'pw');
    writeFileSync(pwfile, `${adminPassword}\n`, { mode: 0o600 });
    if (user) chownSync(pwfile, user.uid, user.gid);
    await execFileP(
      join(bin, 'initdb'),
      ['-D', data, '-U', adminUser, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync', '--no-instructions'],
      { ...(user ?? {}), cwd: dir, timeout: 60_000 },
    );
    rmSync(pwfile);
    if (opts.hbaFirst?.length) {
      const hba = join(data, 'pg_hba.conf');
      writeFileSync(hba, `${opts.hbaFirst.join('\n')}\n${readFileSync(hba, 'utf8')}`);
    }

    const port = await freePort();
    const serverArgs = [
      '-D', data, '-p', String(port), '-k', dir, '-c', `listen_addresses=${host}`,
      // A throwaway cluster: durability off, small footprint (the machine is shared).
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
      '-c', 'shared_buffers=16MB', '-c', 'max_connections=60', '-c', 'log_min_messages=warning',
      ...Object.entries(opts.settings ?? {}).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    ];
    const connect = (database = 'postgres'): Promise<pg.Client> =>
      connectPg({ host, port, user: adminUser, password: adminPassword, database, connectionTimeoutMillis: 2_000 });
    const ready = async (): Promise<boolean> => {
      const c = await connect();
      await c.end();
      return true;
    };
    server = user
      ? await spawnServer('postgres', 'setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', join(bin, 'postgres'), ...serverArgs], ready, { cwd: dir })
      : await spawnServer('postgres', join(bin, 'postgres'), serverArgs, ready, { cwd: dir });
    const running = server;

    return {
      host,
      port,
      adminUser,
      admin: connect,
      async adminQuery<R extends pg.QueryResultRow>(database: string, sql: string, values: unknown[] = []) {
        const c = await connect(database);
        try {
          return (await c.query<R>(sql, values)).rows;
        } finally {
          await c.end();
        }
      },
      log: () => running.output(),
      async stop() {
        // SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave).
        running.child.kill('SIGINT');
        await running.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (server) {
      server.child.kill('SIGINT');
      await server.stop();
    }
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A connected client, or the connection error with the half-open client closed. */
export async function connectPg(config: pg.ClientConfig): Promise<pg.Client> {
  const client = new pg.Client(config);
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}
