import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { IdentityRef } from '../../src/actions/identity-action';
import { type Connector, type RevokeMode, verifyAccount } from '../../src/connectors/connector';
import { ConnectorRefusal, FailureType } from '../../src/connectors/connector-errors';
import { type PostgresInstanceConfig, postgresConnectorType, postgresInstanceSchema } from '../../src/connectors/postgres';
import { classifyPgError, createPostgresConnector, type PostgresConnector } from '../../src/connectors/postgres/postgres-connector';
import { PostgresGrammar } from '../../src/connectors/postgres/postgres-grammar';
import { Secret } from '../../src/connectors/secret';
import { freePort } from '../support/servers/process';
import { connectPg, type PostgresServer, startPostgres } from '../support/servers/postgres';
import { type ContractHarness, describeConnectorContract } from './contract';
import { underPolicy, type UnderPolicy } from './under-policy';

/*
 * Runs against a private PostgreSQL instance (scram-sha-256 everywhere, see test/support/servers/postgres.ts), with the
 * connector logged in as a least-privilege role this file creates as the superuser, exactly as the connector's
 * header comment documents. Only the role `cg_trusted` is let in without a password, to show `authenticates()`
 * refusing to vouch for such a login.
 */
const CONNECTOR = 'changegate_connector';
const PASSWORD_ENV = 'CG_PG_CONNECTOR_PASSWORD';
const MANAGED = ['cg_app', 'cg_audit'];
const ALL_DBS = ['postgres', 'cg_app', 'cg_audit', 'cg_other'];

let server: PostgresServer;
let connectorPassword: string;
const opened: Connector[] = [];
const touched = new Set<string>();

/** The connector as the worker would build it: config through the type's own schema, password from the "environment". */
function connector(over: Record<string, unknown> = {}, policy: Record<string, unknown> = {}): UnderPolicy<PostgresConnector> {
  const cfg = postgresInstanceSchema.parse({
    name: 'postgres-test',
    type: 'postgres',
    host: server.host,
    port: server.port,
    database: 'postgres',
    databases: MANAGED,
    user: CONNECTOR,
    passwordEnv: PASSWORD_ENV,
    ownedObjects: 'reassign',
    reassignTo: 'cg_orphans',
    grantableRoles: ['cg_readers'],
    ...over,
    policy: { protectedAccounts: ['cg_ops'], ...policy },
  }) as PostgresInstanceConfig;
  const c = postgresConnectorType.create(cfg, (key) => {
    if (key !== PASSWORD_ENV) throw new Error(`unexpected secret ${key}`);
    return connectorPassword;
  }) as PostgresConnector;
  opened.push(c);
  return underPolicy(c, cfg.policy.revokeMode);
}

const fresh = (prefix = 'cg'): IdentityRef => {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  touched.add(name);
  return { type: 'service_account', name };
};

async function roleExists(name: string): Promise<boolean> {
  return (await server.adminQuery('postgres', 'SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).length > 0;
}

/**
 * As the superuser: whatever the role holds or owns, everywhere, then the role. A superuser's REVOKE (and so its
 * DROP OWNED) acts as the object's owner and removes only the owner's grants; grants the connector made must be
 * revoked as the connector, hence SET ROLE to each grantor.
 */
async function dropRole(name: string): Promise<void> {
  if (!(await roleExists(name))) return;
  for (const db of ALL_DBS) {
    const revokes = await server.adminQuery<{ sql: string }>(
      db,
      `SELECT DISTINCT format('SET ROLE %I; REVOKE ALL ON %s %s FROM %I CASCADE; RESET ROLE', g.rolname, x.kind, x.obj, $1::text) AS sql
         FROM (SELECT CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind, format('%I.%I', n.nspname, c.relname) AS obj, a.grantor
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN LATERAL aclexplode(c.relacl) a
                WHERE a.grantee = $1::text::regrole
               UNION ALL
               SELECT 'SCHEMA', format('%I', n.nspname), a.grantor FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
                WHERE a.grantee = $1::text::regrole
               UNION ALL
               SELECT 'DATABASE', format('%I', d.datname), a.grantor FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) a
                WHERE a.grantee = $1::text::regrole) x
         JOIN pg_roles g ON g.oid = x.grantor`,
      [name],
    );
    for (const { sql } of revokes) await server.adminQuery(db, sql);
    await server.adminQuery(db, `DROP OWNED BY ${pg.escapeIdentifier(name)} CASCADE`);
  }
  await server.adminQuery('postgres', `DROP ROLE IF EXISTS ${pg.escapeIdentifier(name)}`);
}

/** Runs statements as the connector's own role, outside the connector (what a crashed worker or a person could leave). */
async function asConnector(database: string, sql: string): Promise<void> {
  const c = await connectPg({ host: server.host, port: server.port, user: CONNECTOR, password: connectorPassword, database, connectionTimeoutMillis: 5_000 });
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** Whether `member` (the connector, by default) is a member of the role `name`. */
async function isMemberOf(name: string, member = CONNECTOR): Promise<boolean> {
  const rows = await server.adminQuery('postgres', 'SELECT 1 FROM pg_auth_members WHERE roleid = $1::text::regrole AND member = $2::text::regrole', [name, member]);
  return rows.length > 0;
}

function login(name: string, secret: Secret, database: string): Promise<pg.Client> {
  return connectPg({ host: server.host, port: server.port, user: name, password: secret.reveal(), database, connectionTimeoutMillis: 5_000 });
}

async function tableOwner(database: string, table: string): Promise<string | null> {
  const rows = await server.adminQuery<{ owner: string }>(database, 'SELECT relowner::regrole::text AS owner FROM pg_class WHERE oid = to_regclass($1)', [table]);
  return rows[0]?.owner ?? null;
}

/** Everything identity-related, read as the superuser. */
async function snapshot(): Promise<unknown> {
  const shared = {
    roles: await server.adminQuery(
      'postgres',
      'SELECT rolname, rolcanlogin, rolvaliduntil::text AS valid, rolpassword IS NOT NULL AS has_password, rolconnlimit FROM pg_authid ORDER BY 1',
    ),
    members: await server.adminQuery('postgres', 'SELECT roleid::regrole::text AS role, member::regrole::text AS member FROM pg_auth_members ORDER BY 1, 2'),
    databases: await server.adminQuery('postgres', 'SELECT datname, datacl::text AS acl FROM pg_database ORDER BY 1'),
  };
  const perDb: Record<string, unknown> = {};
  for (const db of MANAGED) {
    perDb[db] = await server.adminQuery(
      db,
      `SELECT n.nspname, n.nspacl::text AS schema_acl, c.relname, c.relowner::regrole::text AS owner, c.relacl::text AS acl
         FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid
        WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' ORDER BY 1, 3`,
    );
  }
  return { shared, perDb };
}

beforeAll(async () => {
  server = await startPostgres({
    hbaFirst: ['host all cg_trusted 127.0.0.1/32 trust'],
    // Every statement is logged, so a test can show the password value never reached the server.
    settings: { log_statement: 'all' },
  });
  connectorPassword = randomBytes(18).toString('hex');
  const admin = await server.admin();
  try {
    // One statement each: CREATE DATABASE refuses the implicit transaction of a multi-statement query.
    for (const db of ['cg_app', 'cg_audit', 'cg_other']) await admin.query(`CREATE DATABASE ${db}`);
    await admin.query(`
      REVOKE CONNECT ON DATABASE cg_app, cg_audit FROM PUBLIC;
      CREATE ROLE cg_readers NOLOGIN; CREATE ROLE cg_orphans NOLOGIN; CREATE ROLE cg_ops NOLOGIN;
      CREATE ROLE cg_trusted LOGIN;
      -- The connector's least privilege (see src/connectors/postgres/postgres-connector.ts).
      CREATE ROLE ${CONNECTOR} LOGIN CREATEROLE PASSWORD ${pg.escapeLiteral(connectorPassword)};
      GRANT pg_signal_backend TO ${CONNECTOR};
      GRANT cg_orphans TO ${CONNECTOR};
      GRANT CONNECT ON DATABASE cg_app, cg_audit TO ${CONNECTOR} WITH GRANT OPTION;
    `);
  } finally {
    await admin.end();
  }
  const app = await server.admin('cg_app');
  try {
    await app.query(`
      CREATE SCHEMA sales; CREATE SCHEMA reports; CREATE SCHEMA work;
      CREATE TABLE sales.orders (id int PRIMARY KEY, total numeric); INSERT INTO sales.orders VALUES (1, 9.5);
      CREATE TABLE sales.invoices (id int); CREATE TABLE sales.ledger (id int); CREATE TABLE sales.payroll (id int);
      CREATE TABLE reports.daily (id int); CREATE TABLE reports.monthly (id int);
      GRANT USAGE ON SCHEMA sales, reports TO ${CONNECTOR} WITH GRANT OPTION;
      GRANT USAGE, CREATE ON SCHEMA work TO ${CONNECTOR} WITH GRANT OPTION;
      GRANT SELECT, INSERT, UPDATE, DELETE ON sales.orders, sales.invoices TO ${CONNECTOR} WITH GRANT OPTION;
      -- Readable, but not with grant option: granting it is accepted by PostgreSQL and does nothing.
      GRANT SELECT ON sales.ledger TO ${CONNECTOR};
      GRANT SELECT ON ALL TABLES IN SCHEMA reports TO ${CONNECTOR} WITH GRANT OPTION;
      GRANT USAGE ON SCHEMA sales TO cg_readers; GRANT SELECT ON sales.invoices TO cg_readers;
    `);
  } finally {
    await app.end();
  }
  await server.adminQuery('cg_audit', `CREATE SCHEMA work; GRANT USAGE, CREATE ON SCHEMA work TO ${CONNECTOR} WITH GRANT OPTION;`);
}, 120_000);

// Connectors reopen their pools on next use: closing after every test keeps the server's connection count low.
afterEach(async () => {
  await Promise.all(opened.map((c) => c.close()));
});

afterAll(async () => {
  await Promise.all(opened.map((c) => c.close()));
  if (!server) return;
  try {
    for (const name of touched) await dropRole(name);
  } finally {
    await server.stop();
  }
});

function harness() {
  const live = new Map<RevokeMode, Connector>();
  return (): ContractHarness => ({
    connector: (mode: RevokeMode = 'delete') => live.get(mode) ?? live.set(mode, connector({}, { revokeMode: mode })).get(mode)!,
    freshIdentity: () => fresh(),
    grants: [
      'SELECT ON TABLE cg_app.sales.orders',
      'USAGE ON SCHEMA cg_app.sales',
      'CONNECT ON DATABASE cg_app',
      'MEMBER OF cg_readers',
      'SELECT ON ALL TABLES IN SCHEMA cg_app.reports',
    ] as [string, string, ...string[]],
    seedOutOfBand: async (id: IdentityRef) => {
      const role = pg.escapeIdentifier(id.name);
      await server.adminQuery('postgres', `CREATE ROLE ${role} LOGIN PASSWORD ${pg.escapeLiteral(randomBytes(12).toString('base64url'))} VALID UNTIL 'infinity'`);
      // Granted as the connector's role: PostgreSQL revokes per grantor, and a leaver can only take back what the gateway may.
      await server.adminQuery('cg_app', `SET ROLE ${pg.escapeIdentifier(CONNECTOR)}; GRANT SELECT ON TABLE sales.orders TO ${role}`);
    },
    storedSecrets: async (id: IdentityRef) => {
      const rows = await server.adminQuery<{ hash: string }>('postgres', 'SELECT rolpassword AS hash FROM pg_authid WHERE rolname = $1', [id.name]);
      return rows.map((r) => ({ what: 'a PostgreSQL SCRAM-SHA-256 verifier (pg_authid)', value: r.hash }));
    },
    snapshot,
    ownIdentityName: CONNECTOR,
    hostileNames: ['Alice', 'pg_monitor', 'pg_x', 'public', 'postgres', 'none', 'current_user', CONNECTOR, 'cg_orphans', 'cg_ops', 'cg_readers', '1abc', 'a-b', 'å', 'a'.repeat(64)],
    hostileGrants: [
      'SELECT ON TABLE sales.orders',
      'SELECT ON TABLE cg_other.public.t',
      'SELECT ON TABLE cg_app."Sales".orders',
      'SELECT ON TABLE cg_app.sales.*',
      'ALL ON TABLE cg_app.sales.orders',
      'TRUNCATE ON TABLE cg_app.sales.orders',
      'SELECT ON TABLE cg_app.sales.orders TO public',
      'SELECT ON TABLE cg_app.sales.orders WITH GRANT OPTION',
      'CONNECT ON DATABASE cg_app; DROP ROLE cg_ops',
      'CREATE ON DATABASE cg_app',
      'MEMBER OF pg_read_server_files',
      'MEMBER OF pg_execute_server_program',
      'MEMBER OF cg_ops',
      `MEMBER OF ${CONNECTOR}`,
      'MEMBER OF cg_readers WITH ADMIN OPTION',
      'USAGE ON SCHEMA cg_app.sales\tx',
    ],
    unreachable: () => connector({ port: unusedPort }),
    targetRefusal: async () => {
      // The leaver owns a table in a database the connector does not manage: DROP ROLE is refused by PostgreSQL.
      const id = fresh('leaver');
      const role = pg.escapeIdentifier(id.name);
      await server.adminQuery('postgres', `CREATE ROLE ${role} LOGIN`);
      await server.adminQuery('cg_other', `CREATE TABLE public.kept_${id.name} (id int); ALTER TABLE public.kept_${id.name} OWNER TO ${role}`);
      return { run: () => connector({}, { revokeMode: 'delete' }).leave(id), causeMatches: /cannot be dropped because some objects depend on it/ };
    },
    acceptedButNotApplied: async () => {
      const id = fresh();
      const c = connector({}, { revokeMode: 'delete' });
      await c.provision(id, ['SELECT ON TABLE cg_app.sales.orders']);
      // PostgreSQL accepts this GRANT from the connector's own credential (no error), with only a WARNING ...
      const raw = new pg.Client({ host: server.host, port: server.port, user: CONNECTOR, password: connectorPassword, database: 'cg_app' });
      const notices: string[] = [];
      raw.on('notice', (n) => notices.push(`${n.code}: ${n.message}`));
      await raw.connect();
      try {
        await raw.query(`GRANT SELECT ON TABLE sales.ledger TO ${pg.escapeIdentifier(id.name)}`);
      } finally {
        await raw.end();
      }
      expect(notices).toEqual(['01007: no privileges were granted for "ledger"']);
      // ... which the connector's provision turns into a refusal instead of reporting success.
      const err = await c.provision(id, ['SELECT ON TABLE cg_app.sales.ledger']).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectorRefusal);
      expect((err as ConnectorRefusal).type).toBe(FailureType.TargetRefused);
      expect(((err as Error).cause as Error).message).toBe('no privileges were granted for "ledger"');
      return { identity: id, desired: { exists: true, mustHave: ['SELECT ON TABLE cg_app.sales.orders', 'SELECT ON TABLE cg_app.sales.ledger'] } };
    },
    cleanup: (id: IdentityRef) => dropRole(id.name),
    rotates: true,
  });
}

let unusedPort = 1;
beforeAll(async () => {
  unusedPort = await freePort();
});

describeConnectorContract('PostgreSQL (owned objects reassigned on delete)', harness());

describe('PostgreSQL grammar', () => {
  const grammar = new PostgresGrammar({ protectedAccounts: [CONNECTOR, 'cg_orphans'], databases: MANAGED, grantableRoles: ['cg_readers'] });

  it('writes every grant in the canonical text inspect reports: one privilege each, database always named', () => {
    expect(grammar.parseGrant('select, insert on table cg_app.sales.orders')).toEqual({
      canonical: ['INSERT ON TABLE cg_app.sales.orders', 'SELECT ON TABLE cg_app.sales.orders'],
    });
    expect(grammar.parseGrant('  USAGE ON SCHEMA cg_app.sales ')).toEqual({ canonical: ['USAGE ON SCHEMA cg_app.sales'] });
    expect(grammar.parseGrant('Connect on Database cg_audit')).toEqual({ canonical: ['CONNECT ON DATABASE cg_audit'] });
    expect(grammar.parseGrant('SELECT ON ALL TABLES IN SCHEMA cg_app.reports')).toEqual({ canonical: ['SELECT ON ALL TABLES IN SCHEMA cg_app.reports'] });
    expect(grammar.parseGrant('member of cg_readers')).toEqual({ canonical: ['MEMBER OF cg_readers'] });
  });

  it('refuses what it cannot map, naming why', () => {
    const problem = (t: string) => ('problem' in grammar.parseGrant(t) ? (grammar.parseGrant(t) as { problem: string }).problem : 'accepted');
    expect(problem('SELECT ON TABLE sales.orders')).toMatch(/db\.schema\.table/);
    expect(problem('SELECT ON TABLE cg_other.s.t')).toMatch(/not managed by this connector/);
    expect(problem('SELECT ON TABLE cg_app.Sales.orders')).toMatch(/lower-case/);
    expect(problem('MEMBER OF pg_read_server_files')).toMatch(/built-in and protected/);
    expect(problem('MEMBER OF cg_ops')).toMatch(/grantableRoles/);
    expect(problem('USAGE ON TABLE cg_app.sales.orders')).toMatch(/not allowed ON TABLE/);
  });

  it('refuses reserved, built-in and protected role names and any host part', () => {
    const messages = (name: string, host?: string) => grammar.validateIdentity({ type: 'person', name, host }).map((p) => p.message).join('; ');
    expect(messages('alice')).toBe('');
    expect(messages('pg_signal_backend')).toMatch(/reserved for PostgreSQL/);
    expect(messages('public')).toMatch(/protected or reserved/);
    expect(messages('cg_orphans')).toMatch(/protected or reserved/);
    expect(messages('cg_readers')).toMatch(/grantableRoles/);
    expect(messages('alice', '%')).toMatch(/no host part/);
  });

  it("accepts any role name PostgreSQL can hold as the connector's own user, and refuses the rest at config load", () => {
    const base = {
      name: 'pg', type: 'postgres', host: '127.0.0.1', passwordEnv: PASSWORD_ENV, ownedObjects: 'reassign', reassignTo: 'cg_orphans', policy: {},
    };
    const userProblem = (user: string) => {
      const parsed = postgresInstanceSchema.safeParse({ ...base, user });
      return parsed.success ? 'accepted' : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    };
    expect(userProblem('changegate-connector')).toBe('accepted');
    expect(userProblem('Changegate Connector')).toBe('accepted');
    expect(userProblem('a\nb')).toMatch(/^user: .*control characters/);
    expect(userProblem('x'.repeat(64))).toMatch(/^user: .*1-63 bytes/);
    expect(userProblem('é'.repeat(32))).toMatch(/^user: .*1-63 bytes/);
    expect(userProblem('')).toMatch(/^user: /);
    expect(postgresInstanceSchema.safeParse({ ...base, user: 'c', reassignTo: 'cg-orphans' }).success).toBe(false);
    expect(postgresInstanceSchema.safeParse({ ...base, user: 'c', grantableRoles: ['Readers'] }).success).toBe(false);
    // Built without the schema, the connector checks the same names when it is made, not half-way through a revoke.
    const direct = { name: 'pg', host: '127.0.0.1', port: 1, database: 'postgres', databases: ['cg_app'], user: 'c', password: 'x', protectedAccounts: [], grantableRoles: [], ownedObjects: 'drop' as const };
    expect(() => createPostgresConnector({ ...direct, user: 'a\u0000b' })).toThrow(/connector 'pg': user must not contain control characters/);
    expect(() => createPostgresConnector({ ...direct, ownedObjects: 'reassign', reassignTo: 'cg-orphans' })).toThrow(/reassignTo 'cg-orphans' must be a lower-case PostgreSQL identifier/);
    expect(() => createPostgresConnector({ ...direct, grantableRoles: ['Readers'] })).toThrow(/grantableRoles\[0\]/);
    expect(() => createPostgresConnector({ ...direct, databases: ['cg_app', 'cg app'] })).toThrow(/databases\[1\]/);
  });
});

describe('PostgreSQL connector against a real server, with its least-privilege role', () => {
  it('provisioned grants take effect for the role: it reads what it was given, nothing else, only in databases it may connect to', async () => {
    const c = connector();
    const id = fresh();
    await c.provision(id, ['CONNECT ON DATABASE cg_app', 'USAGE ON SCHEMA cg_app.sales', 'SELECT ON TABLE cg_app.sales.orders']);
    const { secret } = await c.rotate(id);
    const session = await login(id.name, secret, 'cg_app');
    try {
      expect((await session.query('SELECT total FROM sales.orders')).rows).toEqual([{ total: '9.5' }]);
      await expect(session.query('SELECT * FROM sales.payroll')).rejects.toMatchObject({ code: '42501' });
      await expect(session.query('INSERT INTO sales.orders VALUES (2, 1)')).rejects.toMatchObject({ code: '42501' });
    } finally {
      await session.end();
    }
    await expect(login(id.name, secret, 'cg_audit')).rejects.toMatchObject({ code: '42501' });
  });

  it("inspect reports the role's own ACL entries: not PUBLIC's rights, not rights inherited through a membership", async () => {
    const c = connector();
    const id = fresh();
    await c.provision(id, ['MEMBER OF cg_readers', 'SELECT ON TABLE cg_app.sales.orders']);
    await server.adminQuery('cg_app', 'GRANT SELECT ON sales.payroll TO PUBLIC');
    try {
      const observed = await c.inspect(id);
      // cg_readers holds SELECT on sales.invoices: that is the membership's, not a grant to this role.
      expect(observed.grants).toEqual(['MEMBER OF cg_readers', 'SELECT ON TABLE cg_app.sales.orders']);
      expect(observed).toMatchObject({ exists: true, locked: false, activeSessions: 0, attributes: { canLogin: true, validUntil: null, ownedObjects: 0 } });
    } finally {
      await server.adminQuery('cg_app', 'REVOKE SELECT ON sales.payroll FROM PUBLIC');
    }
  });

  it('ALL TABLES IN SCHEMA reads back while the role holds every table there, and stops when a new table appears', async () => {
    const c = connector();
    const id = fresh();
    await c.provision(id, ['SELECT ON ALL TABLES IN SCHEMA cg_app.reports']);
    expect((await c.inspect(id)).grants).toEqual([
      'SELECT ON ALL TABLES IN SCHEMA cg_app.reports',
      'SELECT ON TABLE cg_app.reports.daily',
      'SELECT ON TABLE cg_app.reports.monthly',
    ]);
    await server.adminQuery('cg_app', `CREATE TABLE reports.weekly_${id.name} (id int)`);
    try {
      // PostgreSQL expands ALL TABLES once; a later table is not covered, and inspect says so.
      expect((await c.inspect(id)).grants).not.toContain('SELECT ON ALL TABLES IN SCHEMA cg_app.reports');
    } finally {
      await server.adminQuery('cg_app', `DROP TABLE reports.weekly_${id.name}`);
    }
    const out = await c.expire(id, ['SELECT ON ALL TABLES IN SCHEMA cg_app.reports'], false);
    expect(out.changed).toBe(true);
    expect((await c.inspect(id)).grants).toEqual([]);
  });

  it('a refused grant in provision removes the role that same call created, so a retry creates it again', async () => {
    const c = connector();
    const id = fresh();
    const err = await c.provision(id, ['SELECT ON TABLE cg_app.sales.orders', 'SELECT ON TABLE cg_app.sales.payroll']).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorRefusal);
    expect(((err as Error).cause as Error).message).toBe('permission denied for table payroll');
    expect(await roleExists(id.name)).toBe(false);
    expect((await c.provision(id, ['SELECT ON TABLE cg_app.sales.orders'])).created).toBe(true);
  });

  /** A joiner with create rights in both managed databases, who then creates a table in each and keeps sessions open. */
  async function leaverWithTables(c: PostgresConnector): Promise<{ id: IdentityRef; secret: Secret; sessions: pg.Client[]; table: string }> {
    const id = fresh('leaver');
    const grants = MANAGED.flatMap((db) => [`CONNECT ON DATABASE ${db}`, `USAGE, CREATE ON SCHEMA ${db}.work`]);
    await c.provision(id, grants);
    const { secret } = await c.rotate(id);
    const table = `work.made_by_${id.name}`;
    const sessions: pg.Client[] = [];
    for (const db of MANAGED) {
      const s = await login(id.name, secret, db);
      sessions.push(s);
      await s.query(`CREATE TABLE ${table} (id int); INSERT INTO ${table} VALUES (42)`);
    }
    return { id, secret, sessions, table };
  }

  it('delete with ownedObjects reassign: ends sessions, hands the tables it created in every managed database to cg_orphans, drops the role', async () => {
    const c = connector({ ownedObjects: 'reassign', reassignTo: 'cg_orphans' });
    const { id, secret, sessions, table } = await leaverWithTables(c);
    const before = await c.inspect(id);
    expect(before).toMatchObject({ activeSessions: 2, attributes: { ownedObjects: 2, ownsObjectsIn: MANAGED } });

    const out = await c.leave(id);
    expect(out.detail).toMatch(/ended 2 session\(s\), reassigned 2 owned object\(s\) to 'cg_orphans'/);
    for (const s of sessions) {
      await expect(s.query('SELECT 1')).rejects.toThrow();
      await s.end().catch(() => undefined);
    }
    expect(await c.inspect(id)).toEqual({ exists: false, grants: [] });
    for (const db of MANAGED) {
      expect(await tableOwner(db, table)).toBe('cg_orphans');
      expect(await server.adminQuery(db, `SELECT id FROM ${table}`)).toEqual([{ id: 42 }]);
    }
    await expect(login(id.name, secret, 'postgres')).rejects.toMatchObject({ code: '28P01' });
    expect((await c.leave(id)).changed).toBe(false);
  });

  it('delete with ownedObjects drop: the tables the leaver created are dropped in every managed database', async () => {
    const c = connector({ ownedObjects: 'drop', reassignTo: undefined });
    const { id, sessions, table } = await leaverWithTables(c);
    await Promise.all(sessions.map((s) => s.end()));
    const out = await c.leave(id);
    expect(out.detail).toMatch(/dropped 2 owned object\(s\)/);
    for (const db of MANAGED) expect(await tableOwner(db, table)).toBeNull();
    expect(await roleExists(id.name)).toBe(false);
  });

  it('disable: NOLOGIN and VALID UNTIL -infinity, sessions ended, grants stripped, owned tables kept, the password no longer logs in', async () => {
    const c = connector({}, { revokeMode: 'disable' });
    const { id, secret, sessions, table } = await leaverWithTables(c);
    await c.provision(id, ['SELECT ON TABLE cg_app.sales.orders', 'MEMBER OF cg_readers']);
    const out = await c.leave(id);
    expect(out.expected).toEqual({ exists: true, locked: true, noGrants: true });
    for (const s of sessions) {
      await expect(s.query('SELECT 1')).rejects.toThrow();
      await s.end().catch(() => undefined);
    }
    const observed = await c.inspect(id);
    expect(observed).toEqual({
      exists: true,
      locked: true,
      grants: [],
      activeSessions: 0,
      attributes: { canLogin: false, validUntil: '-infinity', ownedObjects: 2, ownsObjectsIn: MANAGED },
    });
    for (const db of MANAGED) expect(await tableOwner(db, table)).toBe(id.name);
    expect(await c.authenticates(id, secret)).toBe(false);
  });

  it('delete is refused, naming the privilege, when another grantor gave the leaver something the connector cannot revoke; the role is left unable to log in', async () => {
    const c = connector();
    const id = fresh('leaver');
    await c.provision(id, ['SELECT ON TABLE cg_app.sales.orders']);
    await server.adminQuery('cg_app', `GRANT SELECT ON sales.payroll TO ${pg.escapeIdentifier(id.name)}`);
    expect((await c.inspect(id)).grants).toContain('SELECT ON TABLE cg_app.sales.payroll');
    const err = await c.leave(id).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorRefusal);
    // PostgreSQL names dependents of the current database only ("1 object in database cg_app"); the connector adds what is left.
    expect((err as Error).message).toMatch(/cannot be dropped because some objects depend on it.*still held \(granted by another role\): SELECT ON TABLE cg_app\.sales\.payroll/);
    const after = await c.inspect(id);
    expect(after).toMatchObject({ exists: true, locked: true, grants: ['SELECT ON TABLE cg_app.sales.payroll'] });
    // The connector does not keep the leaver's privileges it borrowed for DROP OWNED.
    expect(await server.adminQuery('postgres', 'SELECT 1 FROM pg_auth_members WHERE roleid = $1::regrole AND member = $2::regrole', [id.name, CONNECTOR])).toEqual([]);
  });

  it('a membership of the leaver that a crashed attempt left to the connector is revoked when the retried delete is refused', async () => {
    const c = connector();
    const id = fresh('leaver');
    const role = pg.escapeIdentifier(id.name);
    await c.provision(id, ['SELECT ON TABLE cg_app.sales.orders']);
    // What a worker that died right after lending itself the leaver's privileges leaves behind.
    await asConnector('postgres', `GRANT ${role} TO ${CONNECTOR}`);
    expect(await isMemberOf(id.name)).toBe(true);
    await server.adminQuery('cg_app', `GRANT SELECT ON sales.payroll TO ${role}`);
    const err = await c.leave(id).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorRefusal);
    expect((err as Error).message).toMatch(/cannot be dropped because some objects depend on it/);
    expect(await roleExists(id.name)).toBe(true);
    expect(await isMemberOf(id.name)).toBe(false);
    // Once the other grantor has taken its privilege back, the retry completes.
    await server.adminQuery('cg_app', `REVOKE SELECT ON sales.payroll FROM ${role}`);
    expect((await c.leave(id)).changed).toBe(true);
    expect(await roleExists(id.name)).toBe(false);
  });

  it("a connector role whose name needs quoting ('changegate-connector') drops a leaver and reassigns its table", async () => {
    const user = 'changegate-connector';
    const q = pg.escapeIdentifier(user);
    touched.add(user);
    await server.adminQuery(
      'postgres',
      `CREATE ROLE ${q} LOGIN CREATEROLE PASSWORD ${pg.escapeLiteral(connectorPassword)};
       GRANT pg_signal_backend TO ${q}; GRANT cg_orphans TO ${q}; GRANT CONNECT ON DATABASE cg_app, cg_audit TO ${q};`,
    );
    const c = connector({ user });
    const id = fresh('leaver');
    await c.provision(id, []);
    const table = `work.kept_${id.name}`;
    await server.adminQuery('cg_app', `CREATE TABLE ${table} (id int); ALTER TABLE ${table} OWNER TO ${pg.escapeIdentifier(id.name)}`);
    const out = await c.leave(id);
    expect(out.detail).toMatch(/reassigned 1 owned object\(s\) to 'cg_orphans', revoked 0 grant\(s\), dropped role/);
    expect(await roleExists(id.name)).toBe(false);
    expect(await tableOwner('cg_app', table)).toBe('cg_orphans');
    expect((await c.discover()).find((d) => d.name === user)?.protected).toBe(true);
    await server.adminQuery('cg_app', `DROP TABLE ${table}`);
  });

  it('a grantable role is no identity: leaver and rotation tickets for cg_readers are refused before any I/O, in both modes', async () => {
    const id: IdentityRef = { type: 'service_account', name: 'cg_readers' };
    const before = await snapshot();
    for (const revokeMode of ['delete', 'disable']) {
      const c = connector({}, { revokeMode });
      for (const op of [() => c.leave(id), () => c.rotate(id), () => c.expire(id, [], true), () => c.provision(id, [])]) {
        const err = await op().then(() => null, (e: unknown) => e);
        expect(err).toBeInstanceOf(ConnectorRefusal);
        expect((err as ConnectorRefusal).type).toBe(FailureType.InvalidIdentity);
        expect((err as Error).message).toMatch(/grantableRoles/);
      }
    }
    expect(await snapshot()).toEqual(before);
    expect(await server.adminQuery('postgres', "SELECT rolpassword FROM pg_authid WHERE rolname = 'cg_readers'")).toEqual([{ rolpassword: null }]);
  });

  it('disable: a leaver whose role is already gone succeeds with nothing to do, and the read-back expects it absent', async () => {
    const c = connector({}, { revokeMode: 'disable' });
    const id = fresh('leaver');
    const out = await c.leave(id);
    expect(out).toEqual({ changed: false, detail: `role '${id.name}' was already absent`, expected: { exists: false } });
    expect(verifyAccount(out.expected!, await c.inspect(id))).toEqual({ verified: true, mismatches: [] });
  });

  it('inspect reports column, function and default privileges another grantor gave; disable is refused naming them and never verifies with them held', async () => {
    const c = connector({}, { revokeMode: 'disable' });
    const id = fresh('leaver');
    const role = pg.escapeIdentifier(id.name);
    const fn = `public.f_${id.name}`;
    await c.provision(id, ['SELECT ON TABLE cg_app.sales.orders']);
    await server.adminQuery(
      'cg_app',
      `GRANT UPDATE (total) ON sales.orders TO ${role};
       CREATE FUNCTION ${fn}(x int) RETURNS int LANGUAGE sql AS 'SELECT x'; REVOKE ALL ON FUNCTION ${fn}(int) FROM PUBLIC;
       GRANT EXECUTE ON FUNCTION ${fn}(int) TO ${role};
       ALTER DEFAULT PRIVILEGES IN SCHEMA work GRANT SELECT ON TABLES TO ${role};`,
    );
    const others = [
      'OTHER PRIVILEGE IN DATABASE cg_app ON column total of table sales.orders',
      'OTHER PRIVILEGE IN DATABASE cg_app ON default privileges on new relations belonging to role postgres in schema work',
      `OTHER PRIVILEGE IN DATABASE cg_app ON function f_${id.name}(integer)`,
    ];
    try {
      expect((await c.inspect(id)).grants).toEqual([...others, 'SELECT ON TABLE cg_app.sales.orders']);
      const err = await c.leave(id).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectorRefusal);
      expect((err as ConnectorRefusal).type).toBe(FailureType.TargetRefused);
      expect((err as Error).message).toContain(`role '${id.name}' is disabled (NOLOGIN, VALID UNTIL -infinity, ended 0 session(s), revoked 1 grant(s))`);
      expect((err as Error).message).toContain(`still holds privileges the connector cannot revoke: ${others.join(', ')}`);
      // Its own grant is gone and the role is locked; what only the other grantor can revoke keeps verification failing.
      const observed = await c.inspect(id);
      expect(observed).toMatchObject({ exists: true, locked: true, grants: others });
      expect(verifyAccount({ exists: true, locked: true, noGrants: true }, observed).verified).toBe(false);
    } finally {
      await server.adminQuery(
        'cg_app',
        `REVOKE UPDATE (total) ON sales.orders FROM ${role}; DROP FUNCTION ${fn}(int);
         ALTER DEFAULT PRIVILEGES IN SCHEMA work REVOKE SELECT ON TABLES FROM ${role};`,
      );
    }
    // Once the grantor has taken them back, the retried leaver completes and verifies.
    const out = await c.leave(id);
    expect(out.changed).toBe(false);
    expect(verifyAccount(out.expected!, await c.inspect(id))).toEqual({ verified: true, mismatches: [] });
  });

  it('disable takes back a column privilege the connector itself granted, and then verifies', async () => {
    const c = connector({}, { revokeMode: 'disable' });
    const id = fresh('leaver');
    await c.provision(id, []);
    // Granted with the connector's credential outside a ticket (it holds SELECT on sales.orders WITH GRANT OPTION).
    await asConnector('cg_app', `GRANT SELECT (total) ON sales.orders TO ${pg.escapeIdentifier(id.name)}`);
    expect((await c.inspect(id)).grants).toEqual(['OTHER PRIVILEGE IN DATABASE cg_app ON column total of table sales.orders']);
    const out = await c.leave(id);
    expect(out.detail).toMatch(/revoked 1 grant\(s\)/);
    expect(verifyAccount(out.expected!, await c.inspect(id))).toEqual({ verified: true, mismatches: [] });
  });

  it("a lock on the leaver's table fails revoke transiently (lock_timeout), and the retry after release completes", async () => {
    const c = connector({ ownedObjects: 'drop', reassignTo: undefined, lockTimeoutMs: 300 });
    const { id, sessions, table } = await leaverWithTables(c);
    await Promise.all(sessions.map((s) => s.end()));
    const holder = await server.admin('cg_app');
    try {
      await holder.query('BEGIN');
      await holder.query(`LOCK TABLE ${table} IN ACCESS SHARE MODE`);
      const err = await c.leave(id).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(ConnectorRefusal);
      expect(((err as Error).cause as { code?: string }).code).toBe('55P03');
      // The membership it lent itself for DROP OWNED is taken back before the error is raised.
      expect(await isMemberOf(id.name)).toBe(false);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    expect((await c.leave(id)).changed).toBe(true);
    expect(await roleExists(id.name)).toBe(false);
  });

  it('too_many_connections (53300) for the connector is transient, not a refusal', async () => {
    await server.adminQuery('postgres', `ALTER ROLE ${CONNECTOR} CONNECTION LIMIT 0`);
    try {
      const err = await connector().inspect(fresh()).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(ConnectorRefusal);
      expect(((err as Error).cause as { code?: string }).code).toBe('53300');
    } finally {
      await server.adminQuery('postgres', `ALTER ROLE ${CONNECTOR} CONNECTION LIMIT -1`);
    }
  });

  it('classifies SQLSTATEs: shutdowns, deadlocks, lock and connection limits retry; permission and dependency errors refuse', () => {
    const serverError = (code: string) => Object.assign(new pg.DatabaseError('server says no', 0, 'error'), { code });
    for (const code of ['57P01', '53300', '40P01', '40001', '55P03', '08006', '57014']) {
      expect(classifyPgError('pg', serverError(code))).not.toBeInstanceOf(ConnectorRefusal);
    }
    for (const code of ['42501', '2BP01', '42704', '28P01', '0LP01']) {
      expect(classifyPgError('pg', serverError(code))).toBeInstanceOf(ConnectorRefusal);
    }
    expect(classifyPgError('pg', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).not.toBeInstanceOf(ConnectorRefusal);
    expect(classifyPgError('pg', serverError('42601'), { secret: true }).message).not.toContain('server says no');
  });

  it('rotation sends only a SCRAM verifier: the server stores it, its statement log shows it, and the password value appears nowhere', async () => {
    const c = connector();
    const id = fresh();
    await c.provision(id, []);
    const { secret } = await c.rotate(id);
    const [stored] = await server.adminQuery<{ pw: string }>('postgres', 'SELECT rolpassword AS pw FROM pg_authid WHERE rolname = $1', [id.name]);
    expect(stored?.pw).toMatch(/^SCRAM-SHA-256\$4096:/);
    expect(server.log()).toContain(`ALTER ROLE "${id.name}" PASSWORD 'SCRAM-SHA-256$4096:`);
    expect(server.log()).not.toContain(secret.reveal());
    expect(await c.authenticates(id, secret)).toBe(true);
  });

  it('authenticates() will not vouch for a login the server never challenged (pg_hba trust)', async () => {
    const err = await connector().authenticates({ type: 'service_account', name: 'cg_trusted' }, Secret.generate()).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorRefusal);
    expect((err as Error).message).toMatch(/without asking for a password/);
  });

  it('discovery flags built-in, superuser, protected and grantable roles, and reports disabled roles as locked', async () => {
    const found = await connector().discover();
    const byName = new Map(found.map((d) => [d.name, d]));
    for (const name of ['postgres', 'pg_signal_backend', CONNECTOR, 'cg_orphans', 'cg_ops']) expect(byName.get(name)?.protected).toBe(true);
    expect(byName.get('cg_trusted')).toEqual({ name: 'cg_trusted', locked: false });
    // A role the gateway hands out as a grant is part of its set-up, not an orphan.
    expect(byName.get('cg_readers')).toEqual({ name: 'cg_readers', locked: true, protected: true });
  });
});
