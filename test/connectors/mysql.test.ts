import { randomBytes } from 'node:crypto';
import type mysql from 'mysql2/promise';
import type { IdentityRef } from '../../src/actions/identity-action';
import type { Connector, RevokeMode } from '../../src/connectors/connector';
import { parseConnectorsFile } from '../../src/connectors/registry';
import { ConnectorRegistry } from '../../src/connectors/registry';
import { freePort } from '../support/servers/process';
import { type MariadbTarget, mariadbTarget } from '../support/servers/mariadb';
import { COMMON_HOSTILE_NAMES, describeConnectorContract } from './contract';
import { MysqlGrammar } from '../../src/connectors/mysql/mysql-grammar';
import { ConnectorRefusal } from '../../src/connectors/connector-errors';
import { fromRegistry, type UnderPolicy } from './under-policy';

let target: MariadbTarget;
let registry: ConnectorRegistry;
let unreachablePort: number;

function file(port: number, revokeMode: 'delete' | 'disable' = 'delete') {
  return parseConnectorsFile({
    connectors: [
      {
        name: 'mysql-under-test',
        type: 'mysql',
        host: '127.0.0.1',
        port,
        user: target.connectorUser,
        passwordEnv: 'CG_MYSQL_CONTRACT_PASSWORD',
        policy: { protectedAccounts: ['root', 'mysql', 'mariadb.sys'], revokeMode },
      },
    ],
  });
}

beforeAll(async () => {
  target = await mariadbTarget();
  process.env.CG_MYSQL_CONTRACT_PASSWORD = target.connectorPassword;
  registry = new ConnectorRegistry(file(3306));
  unreachablePort = await freePort();
});
afterAll(async () => {
  await registry.close();
  await target.dispose();
});

/** This file's own accounts start with it: other files and other slots make accounts on the same server meanwhile. */
const OWN = `cgc${randomBytes(3).toString('hex')}`;
const fresh = (): IdentityRef => ({ type: 'service_account', name: `${OWN}${randomBytes(4).toString('hex')}`, host: '%' });
const rows = async (sql: string, params: unknown[] = []): Promise<unknown[]> => (await target.admin.query<mysql.RowDataPacket[]>(sql, params))[0];
const HOSTILE_NAMES = ['root', 'mariadb.sys', "x'@'%", 'a'.repeat(33)];
/**
 * The accounts a contract check could touch: this file's own, its connector's, and every literal name it sends
 * (a hostile name must reach the server as that name or not at all). Anyone else's accounts are not its to watch.
 */
const OWNED = `(User LIKE ? OR User = ? OR User IN (?))`;
const ownedParams = () => [`${OWN}%`, target.connectorUser, [...COMMON_HOSTILE_NAMES, ...HOSTILE_NAMES]];

/** One registry per leaver policy, as one configuration entry each. */
const registries = new Map<RevokeMode, ConnectorRegistry>();
const byMode = (mode: RevokeMode): UnderPolicy<Connector> => {
  if (mode === 'delete') return fromRegistry(registry, 'mysql-under-test');
  if (!registries.has(mode)) registries.set(mode, new ConnectorRegistry(file(3306, mode)));
  return fromRegistry(registries.get(mode)!, 'mysql-under-test');
};
afterAll(async () => {
  for (const r of registries.values()) await r.close();
});

describeConnectorContract('MySQL/MariaDB', () => ({
  connector: (mode = 'delete') => byMode(mode),
  freshIdentity: fresh,
  grants: [`SELECT ON \`${target.schemas[0]}\`.*`, `INSERT ON \`${target.schemas[1]}\`.*`],
  seedOutOfBand: async (id) => {
    await target.admin.query('CREATE USER ?@? IDENTIFIED BY ?', [id.name, id.host ?? '%', randomBytes(12).toString('hex')]);
    await target.admin.query(`GRANT SELECT ON \`${target.schemas[0]}\`.* TO ?@?`, [id.name, id.host ?? '%']);
  },
  storedSecrets: async (id) => {
    const [found] = await target.admin.query<mysql.RowDataPacket[]>('SELECT authentication_string AS hash FROM mysql.user WHERE User = ? AND Host = ?', [id.name, id.host ?? '%']);
    return found.map((r) => ({ what: 'a MySQL native password hash (mysql.user)', value: String(r.hash) }));
  },
  snapshot: async () => ({
    users: await rows(`SELECT User, Host FROM mysql.user WHERE ${OWNED} ORDER BY User, Host`, ownedParams()),
    db: await rows(`SELECT * FROM mysql.db WHERE ${OWNED} ORDER BY User, Host, Db`, ownedParams()),
    tables: await rows(`SELECT User, Host, Db, Table_name, Table_priv FROM mysql.tables_priv WHERE ${OWNED} ORDER BY User, Host, Db, Table_name`, ownedParams()),
  }),
  ownIdentityName: target.connectorUser,
  hostileNames: HOSTILE_NAMES,
  hostileGrants: ['SELECT ON *.*', 'ALL PRIVILEGES ON `x`.*', 'GRANT OPTION ON `x`.*', 'SELECT ON `x`.* WITH GRANT OPTION', 'SUPER ON `x`.*', 'SELECT ON `x`.*; DROP USER root'],
  unreachable: (): Connector => new ConnectorRegistry(file(unreachablePort)).get('mysql-under-test'),
  targetRefusal: async () => ({
    // The grammar accepts the text; the target refuses because the connector holds no grant option there.
    run: () => fromRegistry(registry, 'mysql-under-test').provision(fresh(), ['SELECT ON `mysql`.*']),
    causeMatches: /access denied/i,
  }),
  acceptedButNotApplied: async () => {
    // A tool that writes the database name unescaped gets a wildcard grant (`_` matches any character): MariaDB
    // accepts it, but it is not the literal grant that was asked for, and the read-back shows the difference.
    const id = fresh();
    await target.admin.query('CREATE DATABASE IF NOT EXISTS cgc_lookalike');
    await target.admin.query('CREATE USER ?@? IDENTIFIED BY ?', [id.name, '%', randomBytes(12).toString('hex')]);
    await target.admin.query('GRANT SELECT ON `cgc_lookalike`.* TO ?@?', [id.name, '%']);
    return { identity: id, desired: { exists: true, mustHave: ['SELECT ON `cgc\\_lookalike`.*'] } };
  },
  cleanup: async (id) => {
    await target.admin.query('DROP USER IF EXISTS ?@?', [id.name, id.host ?? '%']);
  },
  rotates: true,
}));

describe('MySQL/MariaDB connector with revoke policy "disable"', () => {
  it('locks the account, ends nothing it should keep, strips every grant and keeps the account', async () => {
    const disabling = new ConnectorRegistry(file(3306, 'disable'));
    try {
      const c = fromRegistry(disabling, 'mysql-under-test');
      const id = fresh();
      await c.provision(id, [`SELECT ON \`${target.schemas[0]}\`.*`]);
      const out = await c.leave(id);
      expect(out).toMatchObject({ changed: true, expected: { exists: true, locked: true, noGrants: true } });
      expect(await c.inspect(id)).toMatchObject({ exists: true, locked: true, grants: [] });
      expect((await c.leave(id)).changed).toBe(false);
      await target.admin.query('DROP USER ?@?', [id.name, '%']);
      // Gone altogether is fine too: nothing to disable, and the read-back expects it absent.
      expect(await c.leave(id)).toMatchObject({ changed: false, expected: { exists: false } });
    } finally {
      await disabling.close();
    }
  });
});

describe('MySQL/MariaDB provision refused half-way', () => {
  it('drops the account it had just created when the target refuses a later grant', async () => {
    const c = fromRegistry(registry, 'mysql-under-test');
    const id = fresh();
    await expect(c.provision(id, [`SELECT ON \`${target.schemas[0]}\`.*`, 'SELECT ON `mysql`.*'])).rejects.toMatchObject({ type: 'TargetRefused' });
    expect(await rows(`SELECT User FROM mysql.user WHERE User = '${id.name}'`)).toEqual([]);
  });
});

describe('MySQL/MariaDB built-ins and faults that never reached a server', () => {
  it('refuses the server’s own accounts even when the configuration protects nothing', () => {
    const grammar = new MysqlGrammar({ protectedAccounts: [] });
    for (const name of ['root', 'mariadb.sys', 'mysql.session', 'mysql.sys', 'mysql']) {
      expect(grammar.validateIdentity({ type: 'service_account', name, host: '%' })).toEqual([
        { path: 'identity.name', message: expect.stringContaining('protected') },
      ]);
    }
  });

  it('treats a name that does not resolve as transient, not as the target’s refusal', async () => {
    const c = new ConnectorRegistry(
      parseConnectorsFile({ connectors: [{ name: 'dns', type: 'mysql', host: 'no-such-host.invalid', tls: true, user: 'x', passwordEnv: 'CG_MYSQL_CONTRACT_PASSWORD' }] }),
    );
    try {
      const err = await c.get('dns').inspect(fresh()).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(ConnectorRefusal);
    } finally {
      await c.close();
    }
  });
});

describe('MySQL/MariaDB roles granted behind the gateway’s back', () => {
  it('inspect reports a role grant, and a disable-policy leaver leaves no role behind', async () => {
    const role = `cgcrole${randomBytes(4).toString('hex')}`;
    const disabling = new ConnectorRegistry(file(3306, 'disable'));
    const id = fresh();
    try {
      await target.admin.query(`CREATE ROLE \`${role}\``);
      await target.admin.query(`GRANT SELECT ON \`${target.schemas[0]}\`.* TO \`${role}\``);
      await target.admin.query('CREATE USER ?@? IDENTIFIED BY ?', [id.name, '%', randomBytes(12).toString('hex')]);
      await target.admin.query(`GRANT \`${role}\` TO ?@?`, [id.name, '%']);
      const c = fromRegistry(disabling, 'mysql-under-test');
      expect((await c.inspect(id)).grants).toEqual([`ROLE \`${role}\``]);
      const out = await c.leave(id);
      expect(out.expected).toEqual({ exists: true, locked: true, noGrants: true });
      expect(await c.inspect(id)).toMatchObject({ exists: true, locked: true, grants: [] });
      const [shown] = await target.admin.query<mysql.RowDataPacket[]>('SHOW GRANTS FOR ?@?', [id.name, '%']);
      expect(JSON.stringify(shown)).not.toContain(role);
    } finally {
      await target.admin.query('DROP USER IF EXISTS ?@?', [id.name, '%']);
      await target.admin.query(`DROP ROLE IF EXISTS \`${role}\``);
      await disabling.close();
    }
  });
});
