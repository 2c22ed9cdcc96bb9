import mysql from 'mysql2/promise';
import { ConnectorRegistry } from '../src/connectors/registry';
import type { Connector } from '../src/connectors/connector';
import { verifyAccount } from '../src/connectors/connector';
import { MysqlGrammar } from '../src/connectors/mysql/mysql-grammar';
import { fromRegistry, type UnderPolicy } from './connectors/under-policy';
import { connectorsFile, createAccount, uniqueAccount } from './support/stack';
import { TEST_ENV } from './support/test-env';

describe('MySQL connector against the real MariaDB, with its least-privilege account', () => {
  let registry: ConnectorRegistry;
  let mysqlConn: UnderPolicy<Connector>;
  let admin: mysql.Connection;
  beforeAll(async () => {
    registry = new ConnectorRegistry(connectorsFile());
    mysqlConn = fromRegistry(registry, 'mysql-local');
    admin = await mysql.createConnection({ uri: TEST_ENV.adminUrl });
  });
  afterAll(async () => {
    await registry.close();
    await admin.end();
  });

  it('revoke locks, ends sessions, revokes and drops; a second revoke reports the account already absent', async () => {
    const name = uniqueAccount();
    const password = 'pw-' + name;
    await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [name, '%', password]);
    await admin.query('GRANT SELECT ON `cgt_billing`.* TO ?@?', [name, '%']);
    const session = await mysql.createConnection({ host: '127.0.0.1', user: name, password });
    const before = await mysqlConn.inspect({ type: 'service_account', name, host: '%' });
    expect(before).toMatchObject({ exists: true, locked: false, grants: ['SELECT ON `cgt_billing`.*'], activeSessions: 1 });

    const first = await mysqlConn.leave({ type: 'service_account', name, host: '%' });
    expect(first.changed).toBe(true);
    expect(first.detail).toMatch(/ended 1 session/);
    await expect(session.query('SELECT 1')).rejects.toThrow();
    session.destroy();
    expect(await mysqlConn.inspect({ type: 'service_account', name, host: '%' })).toEqual({ exists: false, grants: [] });

    const second = await mysqlConn.leave({ type: 'service_account', name, host: '%' });
    expect(second).toEqual({ changed: false, detail: `account '${name}'@'%' was already absent`, expected: { exists: false } });
  });

  it('provision creates the account with exactly the requested grants, and is idempotent', async () => {
    const name = uniqueAccount('new');
    const grants = ['INSERT ON `cgt\\_billing`.*', 'SELECT ON `cgt\\_billing`.*'];
    const first = await mysqlConn.provision({ type: 'person', name, host: '%' }, grants);
    expect(first.created).toBe(true);
    const second = await mysqlConn.provision({ type: 'person', name, host: '%' }, grants);
    expect(second.created).toBe(false);
    const observed = await mysqlConn.inspect({ type: 'person', name, host: '%' });
    expect(observed.grants).toEqual(grants);
    expect(verifyAccount({ exists: true, mustHave: grants }, observed).verified).toBe(true);
    const back = await mysqlConn.expire({ type: 'person', name, host: '%' }, grants, false);
    expect(back.changed).toBe(true);
    const after = await mysqlConn.inspect({ type: 'person', name, host: '%' });
    expect(verifyAccount({ exists: true, mustNotHave: grants }, after)).toEqual({ verified: true, mismatches: [] });
    await mysqlConn.leave({ type: 'person', name, host: '%' });
  });

  it('a database-level grant covers exactly the named database: `_` is escaped, not a wildcard', async () => {
    const name = uniqueAccount('wild');
    const grammar = new MysqlGrammar({ protectedAccounts: [] });
    const parsed = grammar.parseGrant('SELECT ON cgt_billing.*');
    expect(parsed).toEqual({ canonical: ['SELECT ON `cgt\\_billing`.*'] });
    await mysqlConn.provision({ type: 'service_account', name, host: '%' }, ['SELECT ON `cgt\\_billing`.*']);
    const observed = await mysqlConn.inspect({ type: 'service_account', name, host: '%' });
    expect(observed.grants).toEqual(['SELECT ON `cgt\\_billing`.*']);
    // A look-alike database (cgtXbilling) must not be readable through that grant.
    await admin.query('CREATE DATABASE IF NOT EXISTS cgtXbilling');
    await admin.query('CREATE TABLE IF NOT EXISTS cgtXbilling.t (id INT)');
    await admin.query('SET PASSWORD FOR ?@? = PASSWORD(?)', [name, '%', 'pw-' + name]);
    const session = await mysql.createConnection({ host: '127.0.0.1', user: name, password: 'pw-' + name });
    try {
      await expect(session.query('SELECT * FROM cgtXbilling.t')).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
      await expect(session.query('SELECT * FROM cgt_billing.invoices')).resolves.toBeDefined();
    } finally {
      await session.end();
      await admin.query('DROP DATABASE cgtXbilling');
      await mysqlConn.leave({ type: 'service_account', name, host: '%' });
    }
  });

  it('a grant the target accepts but does not hold is caught as unverified', async () => {
    const name = uniqueAccount();
    await createAccount(admin, name, ['SELECT ON `cgt_billing`.*']);
    const identity = { type: 'service_account', name, host: '%' } as const;
    // The target accepts the grant; before the read-back an administrator takes it away again (what a target that
    // silently drops a write looks like from the gateway's side).
    const applied = await mysqlConn.provision(identity, ['UPDATE ON `cgt\\_billing`.*']);
    expect(applied).toMatchObject({ created: false, detail: expect.stringContaining('granted 1 privilege') });
    expect((await mysqlConn.inspect(identity)).grants).toContain('UPDATE ON `cgt\\_billing`.*');
    await admin.query('REVOKE UPDATE ON `cgt\\_billing`.* FROM ?@?', [name, '%']);
    const observed = await mysqlConn.inspect(identity);
    expect(observed).toMatchObject({ exists: true, grants: ['SELECT ON `cgt_billing`.*'] });
    const check = verifyAccount({ exists: true, mustHave: ['UPDATE ON `cgt\\_billing`.*'] }, observed);
    expect(check).toEqual({ verified: false, mismatches: ['missing grant: UPDATE ON `cgt\\_billing`.*'] });
    await mysqlConn.leave({ type: 'service_account', name, host: '%' });
  });

  it('a grant on a schema outside the connector’s scope is refused by the target, with its message kept as cause', async () => {
    const name = uniqueAccount();
    const attempt = mysqlConn.provision({ type: 'service_account', name, host: '%' }, ['SELECT ON `mysql`.*']);
    await expect(attempt).rejects.toMatchObject({ name: 'ConnectorRefusal', type: 'TargetRefused' });
    await expect(attempt).rejects.toHaveProperty('cause.code', 'ER_DBACCESS_DENIED_ERROR');
    await mysqlConn.leave({ type: 'service_account', name, host: '%' });
  });

  it.each([
    ["svc'; DROP USER root; --"],
    ['svc`x'],
    ['svc%'],
    ['svc\nx'],
    ['a'.repeat(33)],
    ['root'],
  ])('refuses the hostile or protected account name %j before anything is sent', async (name) => {
    // The accounts the name could reach (itself, or what an injection in it names); not the whole server, where
    // other test files create accounts meanwhile.
    const reachable = async () => (await admin.query<mysql.RowDataPacket[]>('SELECT User, Host FROM mysql.user WHERE User IN (?) ORDER BY User, Host', [[name, 'root', 'mysql', 'mariadb.sys']]))[0];
    const before = await reachable();
    await expect(mysqlConn.leave({ type: 'service_account', name, host: '%' })).rejects.toMatchObject({ type: 'InvalidIdentity' });
    expect(await reachable()).toEqual(before);
  });

  it('a host pattern is sent as a literal, so a quote in it cannot escape', async () => {
    const grammar = new MysqlGrammar({ protectedAccounts: [] });
    expect(grammar.validateIdentity({ type: 'service_account', name: 'svc', host: "%' OR 1=1" })).toEqual([
      { path: 'identity.host', message: expect.stringContaining('host') },
    ]);
  });
});
