import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import type { IdentityRef } from '../../src/actions/identity-action';
import { type RevokeMode, verifyAccount } from '../../src/connectors/connector';
import { ConnectorRefusal, FailureType } from '../../src/connectors/connector-errors';
import { Secret } from '../../src/connectors/secret';
import { redisConnectorType } from '../../src/connectors/redis';
import { createRedisConnector, type RedisConnector } from '../../src/connectors/redis/redis-connector';
import { RedisGrammar } from '../../src/connectors/redis/redis-grammar';
import { freePort } from '../support/servers/process';
import { REDIS_ADMIN, type RedisTestServer, startRedis } from '../support/servers/redis';
import { waitFor } from '../support/wait';
import { type ContractHarness, describeConnectorContract } from './contract';
import { underPolicy, type UnderPolicy } from './under-policy';

/** The documented least privilege of the gateway's own user (redis-connector.ts). */
const CONNECTOR_RULES = ['resetkeys', 'resetchannels', '-@all', '+acl|setuser', '+acl|deluser', '+acl|getuser', '+acl|list', '+acl|cat', '+client|list', '+client|kill'];
const CONNECTOR_USER = 'changegate_connector';

let server: RedisTestServer;
let connectorPassword: string;
/** A port nothing listens on. */
let unreachablePort: number;
const open: RedisConnector[] = [];

function connector(revokeMode: 'delete' | 'disable' = 'delete', over: { port?: number; user?: string; password?: string } = {}): UnderPolicy<RedisConnector> {
  const c = createRedisConnector({
    name: 'redis-test',
    host: server.host,
    port: over.port ?? server.port,
    user: over.user ?? CONNECTOR_USER,
    password: over.password ?? connectorPassword,
    protectedAccounts: [REDIS_ADMIN, CONNECTOR_USER],
  });
  open.push(c);
  return underPolicy(c, revokeMode);
}

const freshIdentity = (): IdentityRef => ({ type: 'service_account', name: `cgt_${randomBytes(5).toString('hex')}` });
const acl = async (...args: string[]): Promise<unknown> => server.admin.call('ACL', ...args);
const dropUser = async (name: string): Promise<void> => {
  await acl('DELUSER', name);
};

beforeAll(async () => {
  server = await startRedis();
  connectorPassword = await server.createUser(CONNECTOR_USER, CONNECTOR_RULES);
  unreachablePort = await freePort();
});

afterAll(async () => {
  for (const c of open) await c.close();
  await server?.stop();
});

const byMode = new Map<RevokeMode, RedisConnector>();
const harness = (): ContractHarness => ({
  connector: (mode = 'delete') => byMode.get(mode) ?? byMode.set(mode, connector(mode)).get(mode)!,
  freshIdentity,
  grants: ['~cgt:orders:*', '+get', '&cgt:events:*', '+@hash'],
  async seedOutOfBand(identity) {
    // Two passwords and a selector: everything ACL GETUSER reports about a user's credentials.
    await server.createUser(identity.name, ['~cgt:seeded:*', '+get', `>${randomBytes(12).toString('base64url')}`, '(~cgt:sel:* +hget)']);
  },
  async storedSecrets(identity) {
    // ACL LIST shows each password as `#<sha256>`, as Redis stores it.
    const line = ((await acl('LIST')) as string[]).find((l) => l.startsWith(`user ${identity.name} `)) ?? '';
    return line.split(' ').filter((w) => w.startsWith('#')).map((value) => ({ what: 'a Redis ACL password hash (ACL LIST)', value }));
  },
  async snapshot() {
    return ((await acl('LIST')) as string[]).slice().sort();
  },
  ownIdentityName: CONNECTOR_USER,
  hostileNames: ['default', 'DEFAULT', REDIS_ADMIN, 'a|b', 'on', '>x', 'user x', 'a~b'],
  hostileGrants: [
    'allkeys', '~*', '%R~*', '~*:secret', '&*', 'allchannels', '+@all', 'allcommands', '+@admin', '+@dangerous', '+@read', '+@slow',
    '+acl', '+acl|setuser', '+config|set', '+flushall', '+keys', '+client|kill', '+function|flush', '+select|0', 'nopass', '>pw', '<pw',
    '#0a1b', '!0a1b', 'on', 'off', 'reset', 'resetkeys', 'resetchannels', 'resetpass', 'clearselectors', '(~a +get)', '-@all', '-get',
    '~a ~*', '+get +@all', '~a\tb', '~a[bc]', '~a\\*', '&a b', '+nosuchcommand', '%X~a:*',
  ],
  unreachable: () => connector('delete', { port: unreachablePort }),
  async targetRefusal() {
    // Redis refuses a key pattern on a user that already has every key: the grammar cannot know that.
    const id = freshIdentity();
    await server.createUser(id.name, ['allkeys', '+get']);
    return { run: () => connector().provision(id, ['~cgt:more:*']), causeMatches: /allkeys/ };
  },
  async acceptedButNotApplied() {
    // One ACL SETUSER that Redis answers OK to, naming +get, after which the user still cannot run GET: a later
    // -@read in the same request clears the bit. Only the replayed permission bits show it.
    const identity = freshIdentity();
    await server.createUser(identity.name, ['~cgt:absorbed:*', '+get', '-@read']);
    return { identity, desired: { exists: true, mustHave: ['~cgt:absorbed:*', '+get'] } };
  },
  async cleanup(identity) {
    await dropUser(identity.name);
  },
  rotates: true,
});

describeConnectorContract('redis', harness);

describe('redis connector', () => {
  it('the config schema takes a password environment variable, never a password', () => {
    const parsed = redisConnectorType.schema.safeParse({ name: 'redis-local', type: 'redis', host: '127.0.0.1', user: CONNECTOR_USER, passwordEnv: 'REDIS_LOCAL_PASSWORD' });
    expect(parsed.success).toBe(true);
    expect(redisConnectorType.schema.safeParse({ name: 'redis-local', type: 'redis', host: '127.0.0.1', user: CONNECTOR_USER, password: 'x', passwordEnv: 'P' }).success).toBe(false);
  });

  it('grammar canonicalises rules to the text ACL GETUSER reports and refuses the connector’s own rules', () => {
    const g = new RedisGrammar({ protectedAccounts: [] });
    expect(g.parseGrant('%RW~app:*')).toEqual({ canonical: ['~app:*'] });
    expect(g.parseGrant('%R~app:*')).toEqual({ canonical: ['%R~app:*'] });
    expect(g.parseGrant('+GET')).toEqual({ canonical: ['+get'] });
    expect(g.parseGrant('+@Hash')).toEqual({ canonical: ['+@hash'] });
    expect(g.parseGrant('+xinfo|stream')).toEqual({ canonical: ['+xinfo|stream'] });
    for (const bad of ['off', 'nopass', '+@all', '-get', '~*']) expect(g.parseGrant(bad)).toHaveProperty('problem');
    expect(g.validateIdentity({ type: 'service_account', name: 'svc', host: '%' })[0]?.path).toBe('identity.host');
  });

  it('reads back a category and a command inside it as both held, and each key pattern with the access it gives', async () => {
    const c = connector();
    const id = freshIdentity();
    try {
      await c.provision(id, ['+@hash', '+hget', '%R~cgt:ro:*', '~cgt:rw:*', '&cgt:ch:*']);
      // Redis itself summarises this as "-@all +@hash": the single HGET is not in its text.
      const raw = (await acl('GETUSER', id.name)) as unknown[];
      expect(String(raw[raw.indexOf('commands') + 1])).toBe('-@all +@hash');
      const observed = await c.inspect(id);
      expect(verifyAccount({ exists: true, mustHave: ['+@hash', '+hget', '+hset', '%R~cgt:ro:*', '~cgt:rw:*', '%R~cgt:rw:*', '%W~cgt:rw:*', '&cgt:ch:*'] }, observed).mismatches).toEqual([]);
      expect(observed.grants).not.toContain('~cgt:ro:*');
      expect(observed.grants).not.toContain('+get');
      expect(observed.locked).toBe(false);
      expect(observed.attributes).toEqual({ flags: ['on'], passwords: 1 });
    } finally {
      await dropUser(id.name);
    }
  });

  it('taking back write access on a read-write pattern leaves read, and other patterns survive the rebuild', async () => {
    const c = connector();
    const id = freshIdentity();
    try {
      await c.provision(id, ['~cgt:a:*', '~cgt:b:*', '&cgt:x:*', '&cgt:y:*']);
      const out = await c.expire(id, ['%W~cgt:a:*', '&cgt:x:*'], false);
      expect(out.changed).toBe(true);
      const observed = await c.inspect(id);
      expect(verifyAccount({ exists: true, mustHave: ['%R~cgt:a:*', '~cgt:b:*', '&cgt:y:*'], mustNotHave: ['%W~cgt:a:*', '~cgt:a:*', '&cgt:x:*'] }, observed).mismatches).toEqual([]);
    } finally {
      await dropUser(id.name);
    }
  });

  it('a taken-back category removes every command in it, including ones granted one by one', async () => {
    const c = connector();
    const id = freshIdentity();
    try {
      await c.provision(id, ['+@hash', '+hget', '+get']);
      await c.expire(id, ['+@hash'], false);
      const observed = await c.inspect(id);
      expect(observed.grants).toEqual(['+get']);
    } finally {
      await dropUser(id.name);
    }
  });

  it('delete mode ends the user’s open connections and deletes it', async () => {
    const c = connector('delete');
    const id = freshIdentity();
    const password = await server.createUser(id.name, ['~cgt:s:*', '+get', '+ping']);
    const session = await server.connectAs(id.name, password);
    expect(await session.ping()).toBe('PONG');
    expect((await c.inspect(id)).activeSessions).toBe(1);
    const out = await c.leave(id);
    expect(out.detail).toContain('ended 1 session(s)');
    await waitFor('the leaver’s connection to close', () => session.status === 'end');
    expect(await acl('GETUSER', id.name)).toBeNull();
  });

  it('disable mode switches the user off, strips passwords, patterns and commands, ends sessions, and keeps it', async () => {
    const c = connector('disable');
    const id = freshIdentity();
    try {
      const password = await server.createUser(id.name, ['~cgt:s:*', '&cgt:s:*', '+get', '+ping']);
      const session = await server.connectAs(id.name, password);
      const out = await c.leave(id);
      expect(out).toMatchObject({ changed: true, expected: { exists: true, locked: true, noGrants: true } });
      await waitFor('the disabled user’s connection to close', () => session.status === 'end');
      const observed = await c.inspect(id);
      expect(observed).toMatchObject({ exists: true, locked: true, grants: [], activeSessions: 0, attributes: { passwords: 0 } });
      expect(verifyAccount(out.expected!, observed).verified).toBe(true);
      expect((await c.leave(id)).changed).toBe(false);
      expect(await c.authenticates(id, new Secret(password))).toBe(false);
    } finally {
      await dropUser(id.name);
    }
  });

  it('disable mode reports a user that does not exist as already absent, expecting no account, and creates nothing', async () => {
    const c = connector('disable');
    const id = freshIdentity();
    const out = await c.leave(id);
    expect(out).toEqual({ changed: false, detail: `user '${id.name}' was already absent`, expected: { exists: false } });
    expect(verifyAccount(out.expected!, await c.inspect(id)).verified).toBe(true);
    expect(await acl('GETUSER', id.name)).toBeNull();
  });

  it('rotation refuses a user a leaver switched off and gives it no password', async () => {
    const id = freshIdentity();
    try {
      await server.createUser(id.name, ['~cgt:s:*', '+get']);
      await connector('disable').leave(id);
      const err = await connector().rotate(id).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectorRefusal);
      expect((err as ConnectorRefusal).type).toBe(FailureType.TargetRefused);
      expect((err as Error).message).toContain('off');
      expect(await connector().inspect(id)).toMatchObject({ exists: true, locked: true, attributes: { passwords: 0 } });
    } finally {
      await dropUser(id.name);
    }
  });

  it('rotation of a missing user is refused rather than creating it', async () => {
    const id = freshIdentity();
    await expect(connector().rotate(id)).rejects.toBeInstanceOf(ConnectorRefusal);
    expect(await acl('GETUSER', id.name)).toBeNull();
  });

  it('a refused command surfaces the server’s words but none of the command’s arguments', async () => {
    // A credential without ACL SETUSER: Redis says NOPERM; ioredis would attach the arguments (the new password).
    const weak = 'cgt_weak_' + randomBytes(3).toString('hex');
    const weakPassword = await server.createUser(weak, ['+acl|getuser', '+acl|cat']);
    const id = freshIdentity();
    try {
      await server.createUser(id.name, ['+get']);
      const err = await connector('delete', { user: weak, password: weakPassword }).rotate(id).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectorRefusal);
      expect(String(((err as Error).cause as Error).message)).toMatch(/^NOPERM/);
      const everything = inspect(err, { depth: 10, showHidden: true });
      expect(everything).not.toMatch(/resetpass|SETUSER|>[A-Za-z0-9_-]{20,}/);
    } finally {
      await dropUser(weak);
      await dropUser(id.name);
    }
  });
});
