import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { freePort, spawnServer, type SpawnedServer } from './process';

/**
 * A private redis-server for one test file, on a free port, nothing persisted. The built-in `default` user is
 * switched off once an administrator exists, so everything afterwards authenticates as a named user, as in a
 * hardened deployment.
 */
export interface RedisTestServer {
  host: string;
  port: number;
  /** Connected as the administrator (+@all). */
  admin: Redis;
  /** Creates an ACL user with exactly these rules and a random password; returns the password. */
  createUser(name: string, rules: string[]): Promise<string>;
  /** A client authenticated as `name`; closed by stop(). */
  connectAs(name: string, password: string): Promise<Redis>;
  stop(): Promise<void>;
}

export const REDIS_ADMIN = 'cg_admin';

export async function startRedis(): Promise<RedisTestServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'cg-redis-'));
  const bootstrap = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  bootstrap.on('error', () => undefined);
  let server: SpawnedServer | undefined;
  const clients: Redis[] = [];
  const adminPassword = randomBytes(18).toString('base64url');
  try {
    server = await spawnServer(
      'redis-server',
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes'],
      async () => {
        if (bootstrap.status === 'wait' || bootstrap.status === 'end') await bootstrap.connect();
        return (await bootstrap.ping()) === 'PONG';
      },
    );
    await bootstrap.call('ACL', 'SETUSER', REDIS_ADMIN, 'on', `>${adminPassword}`, '~*', '&*', '+@all');
    await bootstrap.call('ACL', 'SETUSER', 'default', 'off', 'resetpass', 'resetkeys', 'resetchannels', '-@all');
  } catch (err) {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  } finally {
    bootstrap.disconnect();
  }
  const connectAs = async (name: string, password: string): Promise<Redis> => {
    const c = new Redis({ host: '127.0.0.1', port, username: name, password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableReadyCheck: false, disableClientInfo: true });
    c.on('error', () => undefined);
    clients.push(c);
    await c.connect();
    return c;
  };
  const admin = await connectAs(REDIS_ADMIN, adminPassword);
  return {
    host: '127.0.0.1',
    port,
    admin,
    async createUser(name, rules) {
      const password = randomBytes(18).toString('base64url');
      await admin.call('ACL', 'SETUSER', name, 'reset', 'on', `>${password}`, ...rules);
      return password;
    },
    connectAs,
    async stop() {
      for (const c of clients) if (c.status !== 'end') c.disconnect();
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
