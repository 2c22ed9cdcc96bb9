import { randomBytes, X509Certificate } from 'node:crypto';
import type { RowDataPacket } from 'mysql2/promise';
import { inspect } from 'node:util';
import type { IdentityRef } from '../../src/actions/identity-action';
import { type Connector, GONE, type RevokeMode, verifyAccount } from '../../src/connectors/connector';
import { revokeTarget } from '../../src/connectors/revoke-policy';
import { ConnectorRefusal, FailureType } from '../../src/connectors/connector-errors';
import { GrammarRegistry, parseConnectorsFile } from '../../src/connectors/registry';
import { Secret } from '../../src/connectors/secret';
import { vaultConnectorType, vaultInstanceSchema } from '../../src/connectors/vault';
import type { VaultConnector } from '../../src/connectors/vault/vault-connector';
import { VaultError } from '../../src/connectors/vault/vault-http';
import { databaseReadFailure, VaultDatabaseView } from '../../src/connectors/vault/vault-db-users';
import { type ContractHarness, describeConnectorContract } from './contract';
import { gatewayPolicy, type OpenBao, setupVaultFixture, startOpenBao, type VaultFixture } from '../support/servers/openbao';
import { freePort } from '../support/servers/process';
import { underPolicy, type UnderPolicy } from './under-policy';

let bao: OpenBao;
let fx: VaultFixture;
let deadPort: number;
const opened: Connector[] = [];

/** Built through the type module, as the worker builds it: schema defaults, token only from the named env var. */
function vault(over: Record<string, unknown> = {}, token?: string): UnderPolicy<VaultConnector> {
  const cfg = vaultInstanceSchema.parse({
    name: 'vault-test',
    type: 'vault',
    address: bao.address,
    tokenEnv: 'CG_TEST_VAULT_TOKEN',
    kvPrefix: fx.kvPrefix,
    databaseRoles: [fx.dbRole, fx.dbRoleNoDrop],
    pkiRole: fx.pkiRole,
    pkiTtl: '24h',
    databaseUsers: fx.databaseUsers('CG_TEST_VAULT_DB_PASSWORD'),
    policy: {},
    ...over,
  });
  const c = vaultConnectorType.create(cfg, (key) => {
    if (key === 'CG_TEST_VAULT_DB_PASSWORD') return process.env[key]!;
    if (key !== 'CG_TEST_VAULT_TOKEN') throw new Error(`unexpected env key ${key}`);
    return token ?? fx.gatewayToken;
  }) as VaultConnector;
  opened.push(c);
  return underPolicy(c, cfg.policy.revokeMode);
}

const hex = (): string => randomBytes(5).toString('hex');
const sid = (name: string): IdentityRef => ({ type: 'service_account', name });

beforeAll(async () => {
  bao = await startOpenBao();
  fx = await setupVaultFixture(bao);
  deadPort = await freePort();
}, 120_000);

afterAll(async () => {
  for (const c of opened) await c.close();
  await fx?.cleanup();
  await bao?.stop();
});

/** What identity-related state Vault holds, read as root: kv tree and metadata, certificates, leases. */
async function snapshot(): Promise<unknown> {
  const kv: Record<string, unknown> = {};
  const walk = async (folder: string): Promise<void> => {
    const res = await bao.root<{ data?: { keys: string[] } }>('LIST', `secret/metadata/${folder}`, undefined, [404]);
    for (const key of res.body.data?.keys ?? []) {
      if (key.endsWith('/')) await walk(`${folder}/${key.slice(0, -1)}`);
      else {
        const meta = await bao.root<{ data: { current_version: number; custom_metadata: unknown; versions: unknown } }>('GET', `secret/metadata/${folder}/${key}`);
        kv[`${folder}/${key}`] = { v: meta.body.data.current_version, m: meta.body.data.custom_metadata, versions: meta.body.data.versions };
      }
    }
  };
  await walk(fx.kvPrefix);
  const certs = (await bao.root<{ data?: { keys: string[] } }>('LIST', 'pki/certs', undefined, [404])).body.data?.keys ?? [];
  const revoked = (await bao.root<{ data?: { keys: string[] } }>('LIST', 'pki/certs/revoked', undefined, [404])).body.data?.keys ?? [];
  const leases: Record<string, string[]> = {};
  for (const role of [fx.dbRole, fx.dbRoleNoDrop]) {
    leases[role] = (await bao.root<{ data?: { keys: string[] } }>('LIST', `sys/leases/lookup/database/creds/${role}/`, undefined, [404])).body.data?.keys ?? [];
  }
  return { kv, certs: [...certs].sort(), revoked: [...revoked].sort(), leases, dbUsers: await fx.dbUsers() };
}

async function kvCleanup(id: IdentityRef): Promise<void> {
  if (!id.name.startsWith('kv/') || /\.\.|\/\/|\s/.test(id.name)) return;
  await bao.root('DELETE', `secret/metadata/${fx.kvPrefix}/${id.name.slice(3)}`, undefined, [404]);
}

/** Revokes, as root, every live certificate with this CN. */
async function pkiCleanup(id: IdentityRef): Promise<void> {
  if (!id.name.startsWith('pki/')) return;
  const cn = id.name.slice(4);
  const serials = (await bao.root<{ data?: { keys: string[] } }>('LIST', 'pki/certs', undefined, [404])).body.data?.keys ?? [];
  for (const serial of serials) {
    const cert = await bao.root<{ data: { certificate: string; revocation_time: number } }>('GET', `pki/cert/${serial}`);
    if (cert.body.data.revocation_time === 0 && new X509Certificate(cert.body.data.certificate).subject === `CN=${cn}`) {
      await bao.root('POST', 'pki/revoke', { serial_number: serial });
    }
  }
}

const HOSTILE_NAMES = [
  'kv/../x', 'kv/a/../../sys', 'kv/.', 'kv/..', 'kv/...', 'kv/a//b', 'kv/', 'kv', 'kv/a%2fb', 'kv/a b', 'kv/a\nb', 'kv/x ',
  `kv/${'a/'.repeat(8)}a`, `kv/${'a'.repeat(65)}`, 'KV/x', ' kv/x', 'db/a/b', 'db/..', 'db/', 'db/a.b', 'pki/*.svc.test',
  'pki/a..svc.test', 'pki/-a.svc.test', 'pki/A.svc.test', 'pki/localhost', 'pki/a.svc.test/../x', 'pki/a_b.svc.test',
  'token/token-changegate-gateway', 'sys/policies/acl/root', 'secret/data/changegate/x', 'auth/token/create',
];
const HOSTILE_GRANTS = [
  'reader=', 'reader=../x', 'reader=a/b', 'reader=a,b', 'reader=x=y', 'reader=.x', 'dns=*.svc.test', 'dns=a.svc.test,b.svc.test',
  'dns=A.svc.test', 'dns=', 'dns=a.svc.test\n', 'login ', 'LOGIN', 'policy=root', 'capabilities=sudo', 'path=sys/*',
];

/** What seedOutOfBand stored or was handed for each identity: a workload's Vault token, a certificate's private key. */
const seeded = new Map<string, { what: string; value: string }>();

function harness(kind: 'kv' | 'pki'): () => ContractHarness {
  const byMode = new Map<RevokeMode, VaultConnector>();
  return () => ({
    connector: (mode = 'delete') => byMode.get(mode) ?? byMode.set(mode, vault({ policy: { revokeMode: mode } })).get(mode)!,
    freshIdentity: () => sid(kind === 'kv' ? `kv/contract/s-${hex()}` : `pki/c-${hex()}.${fx.domain}`),
    grants: kind === 'kv' ? ['reader=app-billing', 'reader=app-reporting'] : [`dns=api.${fx.domain}`, `dns=admin.${fx.domain}`],
    async seedOutOfBand(id) {
      if (kind === 'kv') {
        // What KV secrets typically hold: a workload's own Vault token, with a declared reader.
        const token = (await bao.root<{ auth: { client_token: string } }>('POST', 'auth/token/create', { policies: ['default'], ttl: '10m' })).body.auth.client_token;
        seeded.set(id.name, { what: 'an OpenBao token (auth/token/create)', value: token });
        await bao.root('POST', `secret/data/${fx.kvPrefix}/${id.name.slice(3)}`, { data: { value: token } });
        await bao.root('PATCH', `secret/metadata/${fx.kvPrefix}/${id.name.slice(3)}`, { custom_metadata: { 'changegate.reader.app-billing': 'granted' } });
      } else {
        const issued = await bao.root<{ data: { private_key: string } }>('POST', `pki/issue/${fx.pkiRole}`, { common_name: id.name.slice(4), alt_names: `api.${fx.domain}`, ttl: '1h' });
        seeded.set(id.name, { what: 'a certificate private key (pki/issue)', value: issued.body.data.private_key });
      }
    },
    storedSecrets: async (id) => [seeded.get(id.name)!],
    // A certificate cannot be deleted, only revoked; a KV secret can be either.
    ...(kind === 'pki' ? { revokeDeviations: { delete: /certificate cannot be deleted, only revoked/ } } : {}),
    snapshot,
    ownIdentityName: `token/${fx.gatewayDisplayName}`,
    hostileNames: HOSTILE_NAMES,
    hostileGrants: HOSTILE_GRANTS,
    unreachable: () => vault({ address: `http://127.0.0.1:${deadPort}`, timeoutMs: 2_000 }),
    async targetRefusal() {
      if (kind === 'kv') {
        // A database role outside the token's policy: Vault's ACL says no, not the grammar.
        return { run: () => vault().provision(sid('db/not-in-policy'), ['login']), causeMatches: /permission denied/ };
      }
      return { run: () => vault().provision(sid('pki/app.example.org'), ['dns=app.example.org']), causeMatches: /not allowed by this role/ };
    },
    async acceptedButNotApplied() {
      if (kind === 'kv') {
        // `bao kv delete` answers 204 but only soft-deletes the latest version: the secret, its history and its
        // metadata are all still there. A leaver that trusted it would be wrong; inspect says so.
        const id = sid(`kv/contract/softdel-${hex()}`);
        await vault().provision(id, ['reader=app-billing']);
        const res = await bao.root('DELETE', `secret/data/${fx.kvPrefix}/${id.name.slice(3)}`);
        expect(res.status).toBe(204);
        return { identity: id, desired: { exists: false } };
      }
      // A PKI role with no_store=true: Vault issues the certificate (200, serial and key) but records nothing, so
      // it can be neither listed nor revoked by serial. The gateway's inspect cannot find what it was told exists.
      const id = sid(`pki/nostore-${hex()}.${fx.domain}`);
      const out = await vault({ pkiRole: fx.pkiRoleNoStore }, fx.noStoreToken).provision(id, [`dns=api.${fx.domain}`]);
      expect(out.created).toBe(true);
      return { identity: id, desired: { exists: true, mustHave: [`dns=api.${fx.domain}`] } };
    },
    async cleanup(id) {
      if (kind === 'kv') await kvCleanup(id);
      else await pkiCleanup(id);
    },
    rotates: true,
  });
}

describeConnectorContract('vault kv/ secrets', harness('kv'));
describeConnectorContract('vault pki/ certificates', harness('pki'));

describe('vault: least privilege', () => {
  it("the gateway's token is refused outside its paths, and the refusal keeps Vault's 403 as cause", async () => {
    for (const [method, path] of [
      ['GET', 'secret/data/other/x'],
      ['POST', 'sys/policies/acl/changegate-gateway'],
      ['GET', 'database/creds/not-in-policy'],
      ['POST', 'pki/root/generate/internal'],
      ['POST', 'auth/token/create'],
      ['LIST', 'sys/leases/lookup/database/creds/'],
    ] as const) {
      const res = await bao.as<{ errors: string[] }>(fx.gatewayToken, method, path, method === 'POST' ? {} : undefined);
      expect([path, res.status]).toEqual([path, 403]);
    }
    const err = await vault().inspect(sid('db/not-in-policy')).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorRefusal);
    expect((err as ConnectorRefusal).type).toBe(FailureType.TargetRefused);
    const cause = (err as Error).cause as VaultError;
    expect(cause).toBeInstanceOf(VaultError);
    expect(cause.status).toBe(403);
    expect(cause.message).toMatch(/permission denied/);
  });

  it('errors never carry the token, neither in the message nor anywhere in the error chain', async () => {
    const refused = await vault().inspect(sid('db/not-in-policy')).then(() => null, (e: unknown) => e);
    expect(refused).toBeInstanceOf(ConnectorRefusal);
    const unreachable = vault({ address: `http://127.0.0.1:${deadPort}`, timeoutMs: 2_000 });
    const down = await unreachable.inspect(sid('kv/x')).then(() => null, (e: unknown) => e);
    expect(down).toBeInstanceOf(Error);
    expect((down as { transient?: boolean }).transient).toBe(true);
    for (const err of [refused, down]) {
      const printed = inspect(err, { depth: 10, showHidden: true }) + JSON.stringify(err) + String((err as Error).stack);
      expect(printed).not.toContain(fx.gatewayToken);
    }
  });
});

describe('vault: transient answers', () => {
  it('a rate-limited (429) and a sealed (503) Vault are transient, not refusals', async () => {
    // A server of its own: sealing it must not disturb the other tests.
    const other = await startOpenBao();
    try {
      await other.root('PUT', 'sys/policies/acl/kv-only', { policy: gatewayPolicy({ kvPrefix: 'changegate', dbRoles: [], pkiRole: 'none' }) });
      const token = (await other.root<{ auth: { client_token: string } }>('POST', 'auth/token/create', { policies: ['kv-only'], ttl: '10m' })).body.auth.client_token;
      const c = vault({ address: other.address }, token);
      await other.root('POST', 'sys/quotas/rate-limit/tight', { path: 'secret/', rate: 1, interval: '1h' });
      const errors: unknown[] = [];
      for (let i = 0; i < 5 && errors.length === 0; i++) await c.inspect(sid('kv/limited')).catch((e: unknown) => errors.push(e));
      expect(errors).toHaveLength(1);
      expect(errors[0]).not.toBeInstanceOf(ConnectorRefusal);
      expect(((errors[0] as Error).cause as VaultError).status).toBe(429);
      await other.root('DELETE', 'sys/quotas/rate-limit/tight');

      await other.root('PUT', 'sys/seal');
      const sealed = await c.inspect(sid('kv/x')).then(() => null, (e: unknown) => e);
      expect(sealed).toBeInstanceOf(Error);
      expect(sealed).not.toBeInstanceOf(ConnectorRefusal);
      expect(((sealed as Error).cause as VaultError).status).toBe(503);
      expect((sealed as { transient?: boolean }).transient).toBe(true);
    } finally {
      await other.stop();
    }
  });
});

describe('vault: reading the database users behind db/ leases fails as a refusal only when access is denied', () => {
  it('access denied (1044, 1045, 1142, 1143) is a refusal; too many connections, shutdown, lock wait, deadlock and connection errors are transient', () => {
    for (const [errno, code] of [[1044, 'ER_DBACCESS_DENIED_ERROR'], [1045, 'ER_ACCESS_DENIED_ERROR'], [1142, 'ER_TABLEACCESS_DENIED_ERROR'], [1143, 'ER_COLUMNACCESS_DENIED_ERROR']] as const) {
      const err = databaseReadFailure('vault-x', 'app-ro', { errno, code, sqlMessage: 'denied' });
      expect([errno, err instanceof ConnectorRefusal && err.type]).toEqual([errno, FailureType.TargetRefused]);
    }
    const passing: Array<[number | undefined, string, string | undefined]> = [
      [1040, 'ER_CON_COUNT_ERROR', 'Too many connections'],
      [1053, 'ER_SERVER_SHUTDOWN', 'Server shutdown in progress'],
      [1205, 'ER_LOCK_WAIT_TIMEOUT', 'Lock wait timeout exceeded; try restarting transaction'],
      [1213, 'ER_LOCK_DEADLOCK', 'Deadlock found when trying to get lock; try restarting transaction'],
      [-111, 'ECONNREFUSED', undefined],
      [undefined, 'PROTOCOL_CONNECTION_LOST', undefined],
    ];
    for (const [errno, code, sqlMessage] of passing) {
      const err = databaseReadFailure('vault-x', 'app-ro', { errno, code, sqlMessage, message: sqlMessage ?? 'connection failed' });
      expect([code, err instanceof ConnectorRefusal, (err as { transient?: boolean }).transient]).toEqual([code, false, true]);
      expect(err.message).toContain(`(${code})`);
    }
  });

  it('on the real MariaDB: a wrong password (1045) and a table the account may not read (1142) are refusals; an account at its connection limit and a closed port are transient', async () => {
    const view = fx.databaseUsers('CG_TEST_VAULT_DB_PASSWORD');
    const base = { name: 'vault-test', host: view.host, port: view.port, user: view.user, password: process.env.CG_TEST_VAULT_DB_PASSWORD!, tls: false, table: 'mysql.global_priv' as const, userPrefixes: view.userPrefixes };
    const read = async (over: Partial<typeof base> | { table: 'mysql.user' }): Promise<string[] | Error> => {
      const v = new VaultDatabaseView({ ...base, ...over });
      try {
        return await v.usersOf(fx.dbRole).catch((e: unknown) => e as Error);
      } finally {
        await v.close();
      }
    };
    const errnoOf = (e: unknown): number | undefined => ((e as Error).cause as { errno?: number } | undefined)?.errno;
    const refusal = (e: unknown): [boolean, FailureType | undefined] => [e instanceof ConnectorRefusal, (e as ConnectorRefusal).type];
    const wrongPassword = await read({ password: 'not-the-password' });
    expect([errnoOf(wrongPassword), ...refusal(wrongPassword)]).toEqual([1045, true, FailureType.TargetRefused]);
    const noTable = await read({ table: 'mysql.user' });
    expect([errnoOf(noTable), ...refusal(noTable)]).toEqual([1142, true, FailureType.TargetRefused]);
    // An account allowed one connection, holding it elsewhere: the server refuses the second with an errno that is
    // not access denied, and it passes once the first is closed.
    const limited = `cgvlim_${hex()}`;
    const password = randomBytes(12).toString('hex');
    await fx.mariadb.query('CREATE USER ?@? IDENTIFIED BY ? WITH MAX_USER_CONNECTIONS 1', [limited, '127.0.0.1', password]);
    try {
      await fx.mariadb.query('GRANT SELECT (User) ON mysql.global_priv TO ?@?', [limited, '127.0.0.1']);
      const mysql = (await import('mysql2/promise')).default;
      const held = await mysql.createConnection({ host: view.host, port: view.port, user: limited, password });
      let busy: string[] | Error;
      try {
        busy = await read({ user: limited, password });
      } finally {
        await held.end();
      }
      expect(busy).toBeInstanceOf(Error);
      expect([1203, 1226]).toContain(errnoOf(busy));
      expect([busy instanceof ConnectorRefusal, (busy as { transient?: boolean }).transient]).toEqual([false, true]);
      expect(await read({ user: limited, password })).toEqual(expect.any(Array));
    } finally {
      await fx.mariadb.query('DROP USER IF EXISTS ?@?', [limited, '127.0.0.1']);
    }
    const closed = await read({ port: deadPort });
    expect([closed instanceof ConnectorRefusal, (closed as { transient?: boolean }).transient]).toEqual([false, true]);
  });
});

describe('vault: secret sink (KV v2 delivery)', () => {
  it('delivers a value as a new version, reports its fingerprint, and a retried delivery writes nothing new', async () => {
    const c = vault();
    const path = `mysql-local/svc_${hex()}`;
    expect(await c.currentFingerprint(path)).toBeNull();
    const s1 = Secret.generate();
    const first = await c.deliver(path, s1, { system: 'mysql-local', ticket: 'CHG0000001' });
    expect(first.version).toBe(1);
    expect(await c.currentFingerprint(path)).toEqual({ version: 1, fingerprint: s1.fingerprint });
    // The administrator's read-back: Vault serves exactly the value, and the metadata sits beside it.
    const served = await bao.root<{ data: { data: Record<string, string> } }>('GET', `secret/data/${fx.kvPrefix}/${path}`);
    expect(served.body.data.data).toEqual({ value: s1.reveal() });
    const meta = await bao.root<{ data: { custom_metadata: Record<string, string> } }>('GET', `secret/metadata/${fx.kvPrefix}/${path}`);
    expect(meta.body.data.custom_metadata).toEqual({ 'changegate.meta.system': 'mysql-local', 'changegate.meta.ticket': 'CHG0000001' });

    expect(await c.deliver(path, s1, { system: 'mysql-local' })).toEqual({ version: 1 });
    const s2 = Secret.generate();
    expect(await c.deliver(path, s2, {})).toEqual({ version: 2 });
    expect(await c.currentFingerprint(path)).toEqual({ version: 2, fingerprint: s2.fingerprint });
    expect(await c.authenticates(sid(`kv/${path}`), s2)).toBe(true);
    expect(await c.authenticates(sid(`kv/${path}`), s1)).toBe(false);
  });

  it('refuses paths that climb out of the prefix or are not plain segments, before any request', async () => {
    const c = vault();
    const before = await snapshot();
    for (const path of ['../x', 'a/../../b', '', 'a//b', '/abs', 'a/./b', 'a b', 'a%2f..', 'a\u0000b']) {
      const checked = await c.checkDestination(path).then(() => null, (e: unknown) => e);
      expect([path, (checked as ConnectorRefusal).type]).toEqual([path, FailureType.InvalidIdentity]);
      const err = await c.deliver(path, Secret.generate(), {}).then(() => null, (e: unknown) => e);
      expect([path, (err as ConnectorRefusal).type]).toEqual([path, FailureType.InvalidIdentity]);
      const err2 = await c.currentFingerprint(path).then(() => null, (e: unknown) => e);
      expect([path, (err2 as ConnectorRefusal).type]).toEqual([path, FailureType.InvalidIdentity]);
    }
    const err = await c.deliver('ok/path', Secret.generate(), { 'bad key': 'x' }).then(() => null, (e: unknown) => e);
    expect((err as ConnectorRefusal).type).toBe(FailureType.InvalidIdentity);
    expect(await snapshot()).toEqual(before);
  });

  it('a secret that is not in the gateway shape has no fingerprint: refused, and its value appears nowhere', async () => {
    const path = `foreign/${hex()}`;
    await bao.root('POST', `secret/data/${fx.kvPrefix}/${path}`, { data: { username: 'u', password: 'hunter2-not-for-logs' } });
    const err = await vault().currentFingerprint(path).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorRefusal);
    expect(inspect(err, { depth: 5 })).not.toContain('hunter2');
  });
});

describe('vault: rotation destinations are checked before anything is rotated', () => {
  const refusedType = async (p: Promise<unknown>): Promise<FailureType | 'resolved' | 'not a refusal'> => {
    const err = await p.then(() => 'resolved' as const, (e: unknown) => e);
    if (err === 'resolved') return err;
    return err instanceof ConnectorRefusal ? err.type : 'not a refusal';
  };

  it('protected kv/ entries protect their path and everything under it, in the grammar, checkDestination and deliver', async () => {
    const c = vault({ policy: { protectedAccounts: ['kv/gateway/bootstrap'] } });
    const before = await snapshot();
    for (const path of ['gateway/bootstrap', 'gateway/bootstrap/token', 'gateway/bootstrap/a/b']) {
      expect(c.grammar.validateSecretPath(path)).toMatch(/protected/);
      expect(c.grammar.validateIdentity(sid(`kv/${path}`))[0]?.message).toMatch(/protected/);
      expect([path, await refusedType(c.checkDestination(path))]).toEqual([path, FailureType.InvalidIdentity]);
      expect([path, await refusedType(c.deliver(path, Secret.generate(), {}))]).toEqual([path, FailureType.InvalidIdentity]);
      expect([path, await refusedType(c.rotate(sid(`kv/${path}`)))]).toEqual([path, FailureType.InvalidIdentity]);
    }
    expect(await snapshot()).toEqual(before);
    // A sibling that merely shares the prefix is not under the protected path.
    expect(c.grammar.validateSecretPath('gateway/bootstrapped')).toBeNull();
    await expect(c.checkDestination(`gateway/bootstrapped-${hex()}`)).resolves.toBeUndefined();
  });

  it("discovery flags secrets under a protected kv/ entry as protected", async () => {
    const path = `guarded-${hex()}`;
    await bao.root('POST', `secret/data/${fx.kvPrefix}/${path}/inner`, { data: { value: 'x' } });
    const found = await vault({ policy: { protectedAccounts: [`kv/${path}`] } }).discover();
    expect(found.find((d) => d.name === `kv/${path}/inner`)?.protected).toBe(true);
    await kvCleanup(sid(`kv/${path}/inner`));
  });

  it("a path the token's policy may not write is refused from Vault's own capabilities, before any write", async () => {
    const frozen = `${gatewayPolicy({ kvPrefix: fx.kvPrefix, dbRoles: [], pkiRole: fx.pkiRole })}\npath "secret/data/${fx.kvPrefix}/frozen/*" { capabilities = ["read"] }`;
    await bao.root('PUT', 'sys/policies/acl/changegate-frozen', { policy: frozen });
    const token = (await bao.root<{ auth: { client_token: string } }>('POST', 'auth/token/create', { policies: ['changegate-frozen'], ttl: '10m' })).body.auth.client_token;
    const c = vault({}, token);
    const before = await snapshot();
    const err = await c.checkDestination(`frozen/${hex()}`).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorRefusal);
    expect((err as ConnectorRefusal).type).toBe(FailureType.TargetRefused);
    expect((err as Error).message).toMatch(new RegExp(`lacks create on secret/data/${fx.kvPrefix}/frozen/`));
    await expect(c.checkDestination(`thawed/${hex()}`)).resolves.toBeUndefined();
    expect(await snapshot()).toEqual(before);
  });

  it('a disabled secret, or one holding other fields, is refused as a destination and left as it was', async () => {
    const c = vault({ policy: { revokeMode: 'disable' } });
    const disabled = `disabled-dest/${hex()}`;
    await c.provision(sid(`kv/${disabled}`), []);
    await c.leave(sid(`kv/${disabled}`));
    const foreign = `foreign-dest/${hex()}`;
    await bao.root('POST', `secret/data/${fx.kvPrefix}/${foreign}`, { data: { username: 'u', password: 'p' } });
    const before = await snapshot();
    for (const path of [disabled, foreign]) {
      expect([path, await refusedType(c.checkDestination(path))]).toEqual([path, FailureType.TargetRefused]);
      expect([path, await refusedType(c.deliver(path, Secret.generate(), { ticket: 'CHG1' }))]).toEqual([path, FailureType.TargetRefused]);
    }
    expect(await snapshot()).toEqual(before);
    await kvCleanup(sid(`kv/${disabled}`));
    await kvCleanup(sid(`kv/${foreign}`));
  });

  it('a path the connector manages as a kv/ identity is a valid destination: the delivery becomes its served value', async () => {
    const c = vault();
    const path = `managed/${hex()}`;
    await c.provision(sid(`kv/${path}`), ['reader=app-billing']);
    await expect(c.checkDestination(path)).resolves.toBeUndefined();
    await expect(c.checkDestination(`new/${hex()}`)).resolves.toBeUndefined();
    const s = Secret.generate();
    expect(await c.deliver(path, s, { system: 'mysql-local' })).toEqual({ version: 2 });
    expect(await c.authenticates(sid(`kv/${path}`), s)).toBe(true);
    expect((await c.inspect(sid(`kv/${path}`))).grants).toEqual(['reader=app-billing']);
    await kvCleanup(sid(`kv/${path}`));
  });
});

describe('vault: kv/ identities under the disable policy', () => {
  it('disable soft-deletes every version and strips readers; an operator can undelete; rotation is refused meanwhile', async () => {
    const c = vault({ policy: { revokeMode: 'disable' } });
    const id = sid(`kv/disable/${hex()}`);
    await c.provision(id, ['reader=app-a', 'reader=app-b']);
    await c.rotate(id);
    const out = await c.leave(id);
    expect(out).toMatchObject({ changed: true, expected: { exists: true, locked: true, noGrants: true } });
    expect(verifyAccount(out.expected!, await c.inspect(id))).toEqual({ verified: true, mismatches: [] });
    const meta = await bao.root<{ data: { versions: Record<string, { deletion_time: string; destroyed: boolean }> } }>('GET', `secret/metadata/${fx.kvPrefix}/${id.name.slice(3)}`);
    expect(Object.values(meta.body.data.versions).map((v) => v.deletion_time !== '' && !v.destroyed)).toEqual([true, true]);
    expect((await c.rotate(id).then(() => null, (e: unknown) => e)) as ConnectorRefusal).toBeInstanceOf(ConnectorRefusal);
    expect((await c.leave(id)).changed).toBe(false);
    await bao.root('POST', `secret/undelete/${fx.kvPrefix}/${id.name.slice(3)}`, { versions: [2] });
    expect((await c.inspect(id)).locked).toBe(false);
    await kvCleanup(id);
  });
});

describe('vault: db/ dynamic credentials against MariaDB', () => {
  it('provision issues a lease whose MariaDB user exists; revoke ends it and the user is gone from mysql.user', async () => {
    const c = vault();
    const id = sid(`db/${fx.dbRole}`);
    const before = await fx.dbUsers();
    const out = await c.provision(id, ['login']);
    expect(out.created).toBe(true);
    const added = (await fx.dbUsers()).filter((u) => !before.includes(u));
    expect(added).toHaveLength(1);
    expect(out.detail).toContain(added[0]);
    const [grants] = await fx.mariadb.query<RowDataPacket[]>('SHOW GRANTS FOR ?@?', [added[0], '%']);
    expect(grants.map((r) => String(Object.values(r)[0])).join('\n')).toContain(`SELECT ON \`${fx.schema}\`.*`);
    expect(await c.inspect(id)).toMatchObject({ exists: true, grants: ['login'], attributes: { leases: 1 } });
    expect((await c.provision(id, ['login'])).created).toBe(false);
    expect((await c.discover()).map((d) => d.name)).toContain(`db/${fx.dbRole}`);

    const revoked = await c.leave(id);
    expect(revoked.changed).toBe(true);
    expect(verifyAccount(revoked.expected ?? { exists: false }, await c.inspect(id)).verified).toBe(true);
    expect(await fx.dbUsers()).not.toContain(added[0]);
    expect((await c.leave(id)).changed).toBe(false);
  });

  it.each(['delete', 'disable'] as const)('a %s-policy leaver of a role whose revocation statements keep the user: Vault answers the revoke OK, the read-back finds the MariaDB user and it is not verified', async (mode) => {
    const c = vault({ policy: { revokeMode: mode } });
    const id = sid(`db/${fx.dbRoleNoDrop}`);
    const before = await fx.dbUsers();
    await c.provision(id, ['login']);
    const [user] = (await fx.dbUsers()).filter((u) => !before.includes(u));
    expect(user).toBeDefined();
    try {
      const out = await c.leave(id);
      // What the step must find comes from the policy (gone, under disable the declared deviation), not from Vault's OK.
      expect(out).toMatchObject({ changed: true, expected: GONE, detail: expect.stringMatching(/^revoked 1 lease\(s\) of db\/app-nodrop; 1 database user\(s\) its leases created remain \((\w+)\): the role's revocation statements did not drop them/) });
      expect(out.detail).toContain(`(${user})`);
      // Vault holds no lease any more: a Vault-only read-back would call this done.
      const leases = await bao.root<{ data?: { keys: string[] } }>('LIST', `sys/leases/lookup/database/creds/${fx.dbRoleNoDrop}/`, undefined, [404]);
      expect(leases.body.data?.keys ?? []).toEqual([]);
      // The read-back looks in the database, and so does the administrator: the account outlived its lease.
      const observed = await c.inspect(id);
      expect(observed).toMatchObject({ exists: true, grants: ['login'], attributes: { leases: 0, databaseUsers: [user] } });
      expect(verifyAccount(out.expected, observed)).toEqual({ verified: false, mismatches: ['account still exists'] });
      expect(await fx.dbUsers()).toContain(user);
      // A repeat has no lease to revoke, says what is left, and is no more verified.
      const again = await c.leave(id);
      expect(again).toEqual({ changed: false, detail: expect.stringMatching(new RegExp(`^db/${fx.dbRoleNoDrop} has no live lease, but 1 database user\\(s\\) its leases created remain \\(${user}\\): Vault cannot revoke them`)), expected: GONE });
      expect(verifyAccount(again.expected, await c.inspect(id)).verified).toBe(false);
      expect((await c.discover()).map((d) => d.name)).toContain(`db/${fx.dbRoleNoDrop}`);
    } finally {
      await fx.mariadb.query('DROP USER IF EXISTS ?@?', [user, '%']);
    }
    expect(await c.inspect(id)).toEqual({ exists: false, grants: [] });
  });

  it("reads the leases' database users with an account that sees their names and nothing else, and refuses a role it has no prefix for", async () => {
    const view = fx.databaseUsers('CG_TEST_VAULT_DB_PASSWORD');
    const mysql = (await import('mysql2/promise')).default;
    const conn = await mysql.createConnection({ host: view.host, port: view.port, user: view.user, password: process.env.CG_TEST_VAULT_DB_PASSWORD });
    try {
      const denied = await conn.query('SELECT Priv FROM mysql.global_priv LIMIT 1').then(() => null, (e: { code?: string }) => e.code);
      expect(denied).toBe('ER_COLUMNACCESS_DENIED_ERROR');
    } finally {
      await conn.end();
    }
    const c = vault({ databaseUsers: { ...view, userPrefixes: { [fx.dbRole]: view.userPrefixes[fx.dbRole] } }, databaseRoles: [fx.dbRole] });
    const err = await c.inspect(sid(`db/${fx.dbRoleNoDrop}`)).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorRefusal);
    expect((err as Error).message).toMatch(/database role 'app-nodrop' has no entry in databaseUsers\.userPrefixes/);
    // A role the connector lists for discovery must have one: the worker does not start without it.
    expect(() => vault({ databaseUsers: undefined })).toThrow(/databaseRoles app-ro, app-nodrop need a user name prefix in databaseUsers\.userPrefixes/);
  });

  it.each(['delete', 'disable'] as const)('a %s-policy leaver of db/<role> revokes every lease and drops its users, verified gone (under disable, the declared deviation); a second is already absent', async (mode) => {
    const c = vault({ policy: { revokeMode: mode } });
    const id = sid(`db/${fx.dbRole}`);
    const target = revokeTarget(c.grammar, id, mode);
    expect(target.leaves).toEqual(GONE);
    if (mode === 'disable') expect(target.deviation?.reason).toMatch(/lease cannot be suspended, only revoked/);
    else expect(target.deviation).toBeUndefined();
    const before = await fx.dbUsers();
    await c.provision(id, ['login']);
    const [user] = (await fx.dbUsers()).filter((u) => !before.includes(u));
    const out = await c.leave(id);
    expect(out).toMatchObject({ changed: true, expected: GONE });
    expect(verifyAccount(out.expected!, await c.inspect(id))).toEqual({ verified: true, mismatches: [] });
    expect(await fx.dbUsers()).not.toContain(user);
    const again = await c.leave(id);
    expect(again).toEqual({ changed: false, detail: `db/${fx.dbRole} (no live lease) was already absent`, expected: GONE });
    expect(verifyAccount(again.expected!, await c.inspect(id))).toEqual({ verified: true, mismatches: [] });
  });

  it('db identities take only the login grant and cannot be rotated through Vault', async () => {
    const c = vault();
    const err = await c.provision(sid(`db/${fx.dbRole}`), ['reader=x']).then(() => null, (e: unknown) => e);
    expect((err as ConnectorRefusal).type).toBe(FailureType.InvalidIdentity);
    const rot = await c.rotate(sid(`db/${fx.dbRole}`)).then(() => null, (e: unknown) => e);
    expect((rot as ConnectorRefusal).type).toBe(FailureType.TargetRefused);
  });
});

describe('vault: pki/ certificates', () => {
  const revocationTime = async (serial: string): Promise<number> =>
    (await bao.root<{ data: { revocation_time: number } }>('GET', `pki/cert/${serial}`)).body.data.revocation_time;

  it('rotation issues a new key and leaves the old certificate valid; retireOthers revokes it only then', async () => {
    const c = vault();
    const id = sid(`pki/rot-${hex()}.${fx.domain}`);
    await c.provision(id, [`dns=web.${fx.domain}`]);
    const oldSerials = (await c.inspect(id)).attributes?.liveSerials as string[];
    // The provisioned certificate: without it every check of the old one below would hold vacuously.
    expect(oldSerials).toHaveLength(1);
    const r = await c.rotate(id);
    expect(r.secret.reveal()).toMatch(/^-----BEGIN (EC )?PRIVATE KEY-----/);
    expect(JSON.stringify(r) + inspect(r, { depth: 5 })).not.toContain(r.secret.reveal().split('\n')[1]);
    // Phase one: the workload's current certificate keeps working until the new key is delivered and verified.
    for (const serial of oldSerials) expect(await revocationTime(serial)).toBe(0);
    const fresh = await bao.root<{ data: { revocation_time: number; certificate: string } }>('GET', `pki/cert/${r.credentialId}`);
    expect(fresh.body.data.revocation_time).toBe(0);
    expect(new X509Certificate(fresh.body.data.certificate).subjectAltName).toBe(`DNS:web.${fx.domain}`);
    expect(await c.authenticates(id, r.secret)).toBe(true);

    // Phase two.
    const retired = await c.retireOthers(id, r.credentialId!);
    expect(retired.retired).toBe(oldSerials.length);
    for (const serial of oldSerials) expect(await revocationTime(serial)).toBeGreaterThan(0);
    expect(await revocationTime(r.credentialId!)).toBe(0);
    expect(await c.inspect(id)).toMatchObject({ exists: true, locked: false, grants: [`dns=web.${fx.domain}`] });
    expect(await c.authenticates(id, r.secret)).toBe(true);
    expect((await c.retireOthers(id, r.credentialId!)).retired).toBe(0);
    await pkiCleanup(id);
  });

  it('between the phases both keys authenticate; retireOthers keeping a serial that is not live revokes nothing', async () => {
    const c = vault();
    const id = sid(`pki/two-${hex()}.${fx.domain}`);
    await c.provision(id, [`dns=web.${fx.domain}`]);
    const [provisioned] = (await c.inspect(id)).attributes?.liveSerials as string[];
    const first = await c.rotate(id);
    await c.retireOthers(id, first.credentialId!);
    const second = await c.rotate(id);
    expect(await c.authenticates(id, first.secret)).toBe(true);
    expect(await c.authenticates(id, second.secret)).toBe(true);

    // Keeping something that is not a live certificate of the CN (a typo, a revoked one, another CN's) would leave
    // the workload with none: refused, and nothing is revoked.
    const before = await snapshot();
    const foreign = await bao.root<{ data: { serial_number: string } }>('POST', `pki/issue/${fx.pkiRole}`, { common_name: `else-${hex()}.${fx.domain}`, ttl: '1h' });
    const afterSeed = await snapshot();
    expect(afterSeed).not.toEqual(before);
    for (const keep of ['aa:bb:cc', provisioned!, foreign.body.data.serial_number]) {
      const err = await c.retireOthers(id, keep).then(() => null, (e: unknown) => e);
      expect([keep, (err as ConnectorRefusal | null)?.type]).toEqual([keep, FailureType.TargetRefused]);
    }
    const bad = await c.retireOthers(id, 'not-a-serial').then(() => null, (e: unknown) => e);
    expect((bad as ConnectorRefusal).type).toBe(FailureType.InvalidIdentity);
    expect(await snapshot()).toEqual(afterSeed);
    expect(await c.authenticates(id, first.secret)).toBe(true);

    expect((await c.retireOthers(id, second.credentialId!)).retired).toBe(1);
    expect(await c.authenticates(id, first.secret)).toBe(false);
    expect(await c.authenticates(id, second.secret)).toBe(true);
    await pkiCleanup(id);
    await bao.root('POST', 'pki/revoke', { serial_number: foreign.body.data.serial_number });
  });

  it('Vault records no issuing role: a certificate another role of the mount issued with the same CN is the same identity', async () => {
    // The documented limit (vault-grammar.ts, README): inspect and revoke match CN within the mount, not the role.
    const c = vault();
    const cn = `shared-${hex()}.${fx.domain}`;
    const other = await bao.root<{ data: { serial_number: string } }>('POST', `pki/issue/${fx.pkiRoleOther}`, { common_name: cn, ttl: '1h' });
    const seen = await c.inspect(sid(`pki/${cn}`));
    expect(seen).toMatchObject({ exists: true, locked: false });
    const read = await bao.root<{ data: Record<string, unknown> }>('GET', `pki/cert/${other.body.data.serial_number}`);
    expect(Object.keys(read.body.data).filter((k) => /role/i.test(k))).toEqual([]);
    await c.leave(sid(`pki/${cn}`));
    expect(await revocationTime(other.body.data.serial_number)).toBeGreaterThan(0);
  });

  it("discovery marks the CA protected and never lists a key, only names", async () => {
    const found = await vault().discover();
    const ca = found.find((d) => d.name === `pki/changegate test root ${fx.run}`);
    expect(ca?.protected).toBe(true);
    expect(JSON.stringify(found)).not.toMatch(/PRIVATE KEY|BEGIN/);
  });
});

describe('vault: configuration', () => {
  it('takes the documented config entry, and refuses a token written into the file', () => {
    const entry = {
      name: 'vault-local', type: 'vault', address: 'http://127.0.0.1:8200', tokenEnv: 'VAULT_LOCAL_TOKEN',
      kvMount: 'secret', kvPrefix: 'changegate', databaseMount: 'database', pkiMount: 'pki',
    };
    expect(vaultInstanceSchema.parse(entry)).toMatchObject({ ...entry, databaseRoles: [], policy: { revokeMode: 'delete' } });
    expect(vaultInstanceSchema.safeParse({ ...entry, token: 'hvs.x' }).success).toBe(false);
    expect(vaultInstanceSchema.safeParse({ ...entry, kvPrefix: '../sys' }).success).toBe(false);
  });

  it('refuses plain http off loopback, where the token would travel in clear, unless allowPlain says so', () => {
    const entry = (address: string, extra: Record<string, unknown> = {}) => ({
      connectors: [{ name: 'vault-x', type: 'vault', address, tokenEnv: 'VAULT_X_TOKEN', kvPrefix: 'changegate', ...extra }],
    });
    const load = (address: string, extra?: Record<string, unknown>) => () => new GrammarRegistry(parseConnectorsFile(entry(address, extra)));
    for (const remote of ['http://vault.internal:8200', 'http://10.0.0.5:8200', 'http://[fd00::5]:8200', 'http://127.example.com:8200']) {
      expect(load(remote)).toThrow(/unencrypted; use an https:\/\/ address, or set "allowPlain": true/);
    }
    for (const ok of ['http://127.0.0.1:8200', 'http://127.3.4.5:8200', 'http://localhost:8200', 'http://[::1]:8200', 'https://vault.internal:8200']) {
      expect(load(ok)().names()).toEqual(['vault-x']);
    }
    expect(load('http://vault.internal:8200', { allowPlain: true })().names()).toEqual(['vault-x']);
    // A connector built without the registry checks the same before it ever holds the token.
    const cfg = vaultInstanceSchema.parse(entry('http://vault.internal:8200').connectors[0]);
    expect(() => vaultConnectorType.create(cfg, () => 'token-must-not-be-read')).toThrow(/unencrypted/);
  });

  it('refuses at load two database roles whose user name prefixes are the same or one begins the other, naming both roles', () => {
    const entry = (userPrefixes: Record<string, string>) => ({
      connectors: [{
        name: 'vault-x', type: 'vault', address: 'http://127.0.0.1:8200', tokenEnv: 'VAULT_X_TOKEN', kvPrefix: 'changegate', databaseRoles: Object.keys(userPrefixes),
        databaseUsers: { host: '127.0.0.1', user: 'reader', passwordEnv: 'VAULT_X_DB_PASSWORD', userPrefixes },
      }],
    });
    const load = (userPrefixes: Record<string, string>) => () => new GrammarRegistry(parseConnectorsFile(entry(userPrefixes)));
    expect(load({ 'app-rw': 'v_app_rw_', 'app-ro': 'v_app_' })).toThrow(
      /connectors\.0\.databaseUsers\.userPrefixes\.app-rw: the user name prefix of database role 'app-rw' \(v_app_rw_\) starts with that of database role 'app-ro' \(v_app_\): the read-back of 'app-ro' would see the users of 'app-rw'/,
    );
    expect(load({ b: 'v_', a: 'v_' })).toThrow(/userPrefixes\.b: the user name prefix of database role 'b' \(v_\) is the same as that of database role 'a' \(v_\)/);
    expect(load({ 'app-ro': 'v_app_ro_', 'app-rw': 'v_app_rw_' })().names()).toEqual(['vault-x']);
  });
});
