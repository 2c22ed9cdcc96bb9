import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import type { IdentityRef } from '../../src/actions/identity-action';
import { verifyAccount } from '../../src/connectors/connector';
import { ConnectorRefusal, FailureType } from '../../src/connectors/connector-errors';
import { rabbitmqConnectorType } from '../../src/connectors/rabbitmq';
import { AmqpProtocolError, amqpLogin } from '../../src/connectors/rabbitmq/amqp-login';
import { createRabbitmqConnector, type RabbitmqConnector } from '../../src/connectors/rabbitmq/rabbitmq-connector';
import { RabbitmqGrammar } from '../../src/connectors/rabbitmq/rabbitmq-grammar';
import { Secret } from '../../src/connectors/secret';
import { freePort } from '../support/servers/process';
import {
  connectionCloseArgs,
  connectionMethodFrame,
  connectionStartArgs,
  type ForeignPeer,
  type RabbitTestBroker,
  relayManagementApi,
  startForeignPeer,
  Method,
  useRabbitmq,
} from '../support/servers/rabbitmq';
import { waitFor } from '../support/wait';
import { type ContractHarness, describeConnectorContract } from './contract';
import { underPolicy, type UnderPolicy } from './under-policy';

let broker: RabbitTestBroker;
/** The gateway's own user for this run: administrator tag, no vhost permissions (rabbitmq-connector.ts). */
const connectorUser = `cgt_conn_${randomBytes(4).toString('hex')}`;
let connectorPassword: string;
let unreachablePort: number;
const extraVhosts: string[] = [];

function connector(revokeMode: 'delete' | 'disable' = 'delete', over: { url?: string; user?: string; password?: string; amqpPort?: number } = {}): UnderPolicy<RabbitmqConnector> {
  const c = createRabbitmqConnector({
    name: 'rabbitmq-test',
    url: over.url ?? broker.url,
    user: over.user ?? connectorUser,
    password: over.password ?? connectorPassword,
    amqpPort: over.amqpPort ?? broker.amqpPort,
    protectedAccounts: ['guest', connectorUser],
  });
  return underPolicy(c, revokeMode);
}

const freshIdentity = (): IdentityRef => ({ type: 'service_account', name: `cgt_${randomBytes(5).toString('hex')}` });
const permission = (vhost: string, prefix = 'cgt'): string => `vhost=${vhost} configure=^${prefix}\\. write=^${prefix}\\. read=^${prefix}\\.`;
const enc = encodeURIComponent;

async function extraVhost(): Promise<string> {
  const vhost = `cgt-x-${randomBytes(4).toString('hex')}`;
  await broker.admin.put(`/vhosts/${enc(vhost)}`);
  extraVhosts.push(vhost);
  return vhost;
}

beforeAll(async () => {
  broker = await useRabbitmq();
  connectorPassword = await broker.createUser(connectorUser, ['administrator']);
  unreachablePort = await freePort();
});

afterAll(async () => {
  for (const v of extraVhosts) await broker?.admin.delete(`/vhosts/${enc(v)}`);
  await broker?.deleteUser(connectorUser);
  await broker?.stop();
});

const harness = (): ContractHarness => ({
  connector: (mode = 'delete') => connector(mode),
  freshIdentity,
  grants: [permission(broker.vhost), 'tag=management', 'tag=monitoring'],
  async seedOutOfBand(identity) {
    await broker.createUser(identity.name, ['monitoring']);
    await broker.admin.put(`/permissions/${enc(broker.vhost)}/${enc(identity.name)}`, { configure: '^cgt\\.', write: '^cgt\\.', read: '^cgt\\.' });
  },
  async storedSecrets(identity) {
    const user = (await broker.admin.get(`/users/${enc(identity.name)}`)).data as { password_hash: string };
    return [{ what: 'a RabbitMQ password_hash (salted SHA-256, base64)', value: user.password_hash }];
  },
  async snapshot() {
    const users = ((await broker.admin.get('/users')).data as { name: string; tags: string[]; password_hash: string }[])
      .map((u) => `${u.name} ${u.tags.join(',')} ${u.password_hash}`)
      .sort();
    const permissions = ((await broker.admin.get('/permissions')).data as object[]).map((p) => JSON.stringify(p)).sort();
    return { users, permissions };
  },
  ownIdentityName: connectorUser,
  hostileNames: ['guest', connectorUser, 'a@b/c', '..', 'a%2Fb', 'a?b', 'a#b', 'ü'],
  hostileGrants: [
    'vhost=/ configure=.* write=.* read=.*', 'vhost=/ configure=^.* write= read=', 'vhost=/ configure=^.+ write= read=',
    'vhost=/ configure=orders write= read=', 'vhost=/ configure=^( write= read=', 'vhost=/ configure=^a write=^a read=^a\tb',
    'vhost=../x configure= write= read=', 'vhost=a%2Fb configure= write= read=', 'vhost= configure= write= read=',
    'vhost=/ vhost=x configure= write= read=', 'configure=^a write=^a read=^a', 'vhost=/ configure= write= read= tag=management',
    'vhost=/ exchange=amq.topic write=^a read=^a', 'topic vhost=/ exchange=amq.topic write=^a read=^a', 'tag=administrator',
    'tag=impersonator', 'tag=Management', 'tag=management,administrator', 'tag=', 'tag=management tag=monitoring', 'administrator',
    // Anchored, yet covering (nearly) every name: only a literal prefix is accepted.
    'vhost=/ configure=^[^az] write=^[^az] read=^[^az]', 'vhost=/ configure=^(a|.*) write= read=', 'vhost=/ configure=^.{0,} write= read=',
    'vhost=/ configure=^[\\s\\S]* write= read=', 'vhost=/ configure= write=^a|.* read=', 'vhost=/ configure= write= read=^a.', 'vhost=/ configure= write= read=^a\\.+',
    'vhost=/ configure=^ write= read=', 'vhost=/ configure=^$ write= read=', 'vhost=/ configure= write= read=^a.*$',
  ],
  unreachable: () => connector('delete', { url: `http://127.0.0.1:${unreachablePort}` }),
  async targetRefusal() {
    // The grammar cannot know which vhosts exist; the broker refuses a permission on one that does not.
    const id = freshIdentity();
    return { run: () => connector().provision(id, [permission(`cgt-missing-${randomBytes(4).toString('hex')}`)]), causeMatches: /vhost_or_user_not_found/ };
  },
  async acceptedButNotApplied() {
    // The broker answers 201 to the permission, then its vhost is deleted (as a vhost re-created by infrastructure
    // code would be), taking the permission with it: the provision "succeeded", the access is not there.
    const identity = freshIdentity();
    const vhost = await extraVhost();
    const grant = permission(vhost);
    await connector().provision(identity, [grant, 'tag=management']);
    await broker.admin.delete(`/vhosts/${enc(vhost)}`);
    return { identity, desired: { exists: true, mustHave: [grant, 'tag=management'] } };
  },
  async cleanup(identity) {
    await broker.deleteUser(identity.name);
  },
  rotates: true,
});

describeConnectorContract('rabbitmq', harness);

describe('rabbitmq connector', () => {
  it('the config schema takes a password environment variable, never a password', () => {
    const entry = { name: 'rabbitmq-local', type: 'rabbitmq', url: 'http://127.0.0.1:15672', user: 'changegate_connector', passwordEnv: 'RABBITMQ_LOCAL_PASSWORD', amqpPort: 5672 };
    expect(rabbitmqConnectorType.schema.safeParse(entry).success).toBe(true);
    expect(rabbitmqConnectorType.schema.safeParse({ ...entry, password: 'x' }).success).toBe(false);
  });

  it('grammar writes permissions in the fixed order inspect reports and refuses wide regexes and the administrator tag', () => {
    const g = new RabbitmqGrammar({ protectedAccounts: [] });
    expect(g.parseGrant('read=^a\\. vhost=/ write=^a\\.')).toEqual({ canonical: ['vhost=/ configure= write=^a\\. read=^a\\.'] });
    expect(g.parseGrant('vhost=/ configure=^a-b:c_D9\\..* write=^x\\.audit$ read=^y')).toEqual({ canonical: ['vhost=/ configure=^a-b:c_D9\\..* write=^x\\.audit$ read=^y'] });
    expect(g.parseGrant('tag=policymaker')).toEqual({ canonical: ['tag=policymaker'] });
    for (const bad of [
      'vhost=/ configure=.* write= read=', 'vhost=/ configure= write=^.* read=', 'vhost=/ configure= write=orders read=', 'tag=administrator',
      'vhost=/ configure=^(orders|billing)\\. write= read=', 'vhost=/ configure=^[^az] write= read=', 'vhost=/ configure= write=^a.b read=',
      `vhost=/ configure=^${'a'.repeat(128)} write= read=`,
    ]) {
      expect(g.parseGrant(bad)).toHaveProperty('problem');
    }
    expect(g.validateIdentity({ type: 'service_account', name: 'svc', host: 'x' })[0]?.path).toBe('identity.host');
  });

  it('a permission on the default vhost "/" travels percent-encoded and reads back as vhost=/', async () => {
    const c = connector();
    const id = freshIdentity();
    try {
      const grant = permission('/', 'cgtroot');
      await c.provision(id, [grant]);
      expect((await c.inspect(id)).grants).toEqual([grant]);
      const direct = await broker.admin.get(`/permissions/%2F/${enc(id.name)}`);
      expect(direct.data).toMatchObject({ vhost: '/', configure: '^cgtroot\\.', write: '^cgtroot\\.', read: '^cgtroot\\.' });
    } finally {
      await broker.deleteUser(id.name);
    }
  });

  it('provisioning an existing user merges tags and keeps its password', async () => {
    const c = connector();
    const id = freshIdentity();
    try {
      const password = await broker.createUser(id.name, ['monitoring']);
      const out = await c.provision(id, ['tag=management']);
      expect(out.created).toBe(false);
      expect((await c.inspect(id)).grants).toEqual(['tag=management', 'tag=monitoring']);
      expect(await c.authenticates(id, new Secret(password))).toBe(true);
      await c.expire(id, ['tag=monitoring'], false);
      expect((await c.inspect(id)).grants).toEqual(['tag=management']);
      expect(await c.authenticates(id, new Secret(password))).toBe(true);
    } finally {
      await broker.deleteUser(id.name);
    }
  });

  it('a refused permission does not leave behind the user the same provision created', async () => {
    const id = freshIdentity();
    const err = await connector().provision(id, [permission('cgt-missing-vhost')]).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorRefusal);
    expect((await broker.admin.get(`/users/${enc(id.name)}`)).status).toBe(404);
  });

  it('an expiring permission that was changed since is left alone', async () => {
    const c = connector();
    const id = freshIdentity();
    try {
      await c.provision(id, [permission(broker.vhost)]);
      await broker.admin.put(`/permissions/${enc(broker.vhost)}/${enc(id.name)}`, { configure: '', write: '^other\\.', read: '^other\\.' });
      const out = await c.expire(id, [permission(broker.vhost)], false);
      expect(out.changed).toBe(false);
      expect(out.detail).toContain('no longer match');
      expect((await c.inspect(id)).grants).toEqual([`vhost=${broker.vhost} configure= write=^other\\. read=^other\\.`]);
    } finally {
      await broker.deleteUser(id.name);
    }
  });

  it('delete mode closes the user’s AMQP connections before deleting it', async () => {
    const c = connector('delete');
    const id = freshIdentity();
    const password = await broker.createUser(id.name, []);
    await broker.admin.put(`/permissions/${enc(broker.vhost)}/${enc(id.name)}`, { configure: '', write: '^cgt\\.', read: '^cgt\\.' });
    const session = await broker.connectAs(id.name, password);
    await waitFor('the connection to be listed', async () => (await c.inspect(id)).activeSessions === 1);
    const out = await c.leave(id);
    expect(out.detail).toContain('closed 1 connection(s)');
    await session.closedByBroker();
    expect((await broker.admin.get(`/users/${enc(id.name)}`)).status).toBe(404);
  });

  it('disable mode removes the password, tags, permissions and topic permissions, closes connections, and keeps the user', async () => {
    const c = connector('disable');
    const id = freshIdentity();
    try {
      const password = await broker.createUser(id.name, ['management']);
      await broker.admin.put(`/permissions/${enc(broker.vhost)}/${enc(id.name)}`, { configure: '', write: '^cgt\\.', read: '^cgt\\.' });
      await broker.admin.put(`/topic-permissions/${enc(broker.vhost)}/${enc(id.name)}`, { exchange: 'amq.topic', write: '^cgt\\.', read: '^cgt\\.' });
      const session = await broker.connectAs(id.name, password);
      const before = await c.inspect(id);
      expect(before.grants).toContain(`topic vhost=${broker.vhost} exchange=amq.topic write=^cgt\\. read=^cgt\\.`);
      const out = await c.leave(id);
      expect(out).toMatchObject({ changed: true, expected: { exists: true, locked: true, noGrants: true } });
      await session.closedByBroker();
      const observed = await c.inspect(id);
      expect(observed).toEqual({ exists: true, locked: true, grants: [], activeSessions: 0, attributes: { tags: [] } });
      expect(verifyAccount(out.expected!, observed).verified).toBe(true);
      expect(await c.authenticates(id, new Secret(password))).toBe(false);
      expect((await c.leave(id)).changed).toBe(false);
    } finally {
      await broker.deleteUser(id.name);
    }
  });

  it('rotation keeps the tags, and a user without a tag still authenticates (over AMQP)', async () => {
    const c = connector();
    const id = freshIdentity();
    try {
      await c.provision(id, ['tag=policymaker']);
      const rotated = await c.rotate(id);
      expect((await c.inspect(id)).grants).toEqual(['tag=policymaker']);
      await c.expire(id, ['tag=policymaker'], false);
      expect(await c.authenticates(id, rotated.secret)).toBe(true);
      expect(await amqpLogin({ host: '127.0.0.1', port: broker.amqpPort }, id.name, 'wrong')).toBe(false);
    } finally {
      await broker.deleteUser(id.name);
    }
  });

  it('a refused call keeps the broker’s reason and none of the request (credentials, body)', async () => {
    const weak = `cgt_weak_${randomBytes(3).toString('hex')}`;
    const weakPassword = await broker.createUser(weak, ['management']);
    const id = freshIdentity();
    try {
      await broker.createUser(id.name, []);
      const err = await connector('delete', { user: weak, password: weakPassword }).rotate(id).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectorRefusal);
      expect((err as ConnectorRefusal).type).toBe(FailureType.TargetRefused);
      expect(String(((err as Error).cause as Error).message)).toMatch(/administrator/i);
      const everything = inspect(err, { depth: 10, showHidden: true });
      expect(everything).not.toContain(weakPassword);
      expect(everything).not.toMatch(/authorization|Basic /i);
    } finally {
      await broker.deleteUser(weak);
      await broker.deleteUser(id.name);
    }
  });
  it('every regex form the grammar accepts is stored by the broker as given and reads back unchanged', async () => {
    const c = connector();
    const id = freshIdentity();
    try {
      const grant = `vhost=${broker.vhost} configure=^cgt-a:b_C9\\..* write=^cgt\\.audit$ read=^cgt`;
      await c.provision(id, [grant]);
      expect((await c.inspect(id)).grants).toEqual([grant]);
      const direct = await broker.admin.get(`/permissions/${enc(broker.vhost)}/${enc(id.name)}`);
      expect(direct.data).toMatchObject({ configure: '^cgt-a:b_C9\\..*', write: '^cgt\\.audit$', read: '^cgt' });
    } finally {
      await broker.deleteUser(id.name);
    }
  });

  it('a user this provision created is removed again when a later step fails transiently, so the retry reports created', async () => {
    const relay = await relayManagementApi((method, path) => method === 'PUT' && path.startsWith('/api/permissions/'));
    const id = freshIdentity();
    try {
      const err = await connector('delete', { url: relay.url }).provision(id, [permission(broker.vhost)]).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(ConnectorRefusal);
      expect(relay.cut).toEqual([`PUT /api/permissions/${enc(broker.vhost)}/${enc(id.name)}`]);
      expect((await broker.admin.get(`/users/${enc(id.name)}`)).status).toBe(404);
      const retry = await connector().provision(id, [permission(broker.vhost)]);
      expect(retry.created).toBe(true);
      expect((await connector().inspect(id)).grants).toEqual([permission(broker.vhost)]);
    } finally {
      await relay.stop();
      await broker.deleteUser(id.name);
    }
  });

  it('a failing provision leaves an existing user in place', async () => {
    const relay = await relayManagementApi((method, path) => method === 'PUT' && path.startsWith('/api/permissions/'));
    const id = freshIdentity();
    try {
      await broker.createUser(id.name, []);
      await expect(connector('delete', { url: relay.url }).provision(id, [permission(broker.vhost)])).rejects.toBeInstanceOf(Error);
      expect((await broker.admin.get(`/users/${enc(id.name)}`)).status).toBe(200);
    } finally {
      await relay.stop();
      await broker.deleteUser(id.name);
    }
  });

  it('disable mode reports a user that does not exist as already absent, expecting no account, and creates nothing', async () => {
    const c = connector('disable');
    const id = freshIdentity();
    const out = await c.leave(id);
    expect(out).toEqual({ changed: false, detail: `user '${id.name}' was already absent`, expected: { exists: false } });
    expect(verifyAccount(out.expected!, await c.inspect(id)).verified).toBe(true);
    expect((await broker.admin.get(`/users/${enc(id.name)}`)).status).toBe(404);
  });

  it('rotation refuses a user a leaver disabled and leaves it without a password', async () => {
    const id = freshIdentity();
    try {
      await broker.createUser(id.name, []);
      await connector('disable').leave(id);
      const err = await connector().rotate(id).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectorRefusal);
      expect((err as ConnectorRefusal).type).toBe(FailureType.TargetRefused);
      expect((err as Error).message).toContain('locked');
      expect(((await broker.admin.get(`/users/${enc(id.name)}`)).data as { password_hash: string }).password_hash).toBe('');
      expect((await connector().inspect(id)).locked).toBe(true);
    } finally {
      await broker.deleteUser(id.name);
    }
  });

  describe('the AMQP credential check', () => {
    const peers: ForeignPeer[] = [];
    afterAll(async () => {
      for (const p of peers) await p.stop();
    });
    const peer = async (answer: Parameters<typeof startForeignPeer>[0]): Promise<number> => {
      const p = await startForeignPeer(answer);
      peers.push(p);
      return p.port;
    };
    const secret = new Secret('not-the-password-Zq9');
    /** A peer that answers the protocol header with a real-format connection.start, then start-ok with `reply`. */
    const afterStartOk = (reply: Buffer): Parameters<typeof startForeignPeer>[0] => (socket, received) => {
      if (received.length === 8) socket.write(connectionMethodFrame(Method.start, connectionStartArgs('PLAIN AMQPLAIN')));
      else if (received.length > 8 && received.at(-1) === 0xce) socket.write(reply);
    };

    it('says no, rather than failing, when the broker refuses the password (403)', async () => {
      const id = freshIdentity();
      try {
        await broker.createUser(id.name, []);
        expect(await connector().authenticates(id, secret)).toBe(false);
      } finally {
        await broker.deleteUser(id.name);
      }
    });

    it('says yes for the right password of a user with no rights on any vhost (the broker closes connection.open with 530)', async () => {
      const id = freshIdentity();
      try {
        const password = await broker.createUser(id.name, []);
        expect(await amqpLogin({ host: '127.0.0.1', port: broker.amqpPort }, id.name, password)).toBe(true);
        expect(await amqpLogin({ host: '127.0.0.1', port: broker.amqpPort }, id.name, `${password}x`)).toBe(false);
      } finally {
        await broker.deleteUser(id.name);
      }
    });

    it('treats a refused connection as transient', async () => {
      const err = await connector('delete', { amqpPort: unreachablePort }).authenticates(freshIdentity(), secret).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(ConnectorRefusal);
      expect((err as Error & { transient?: boolean }).transient).toBe(true);
    });

    it('treats a silent peer (the broker’s own management port) as a transient timeout, not a protocol error', async () => {
      const err = await amqpLogin({ host: '127.0.0.1', port: Number(new URL(broker.url).port), timeoutMs: 300 }, 'guest', 'x').then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(AmqpProtocolError);
      expect((err as { code?: string }).code).toBe('ETIMEDOUT');
    });

    it('refuses, with the details as cause, a peer that answers with another AMQP protocol header', async () => {
      const port = await peer((socket) => socket.end(Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 1, 0, 0])));
      const err = await connector('delete', { amqpPort: port }).authenticates(freshIdentity(), secret).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectorRefusal);
      expect((err as ConnectorRefusal).type).toBe(FailureType.TargetRefused);
      expect((err as Error).cause).toBeInstanceOf(AmqpProtocolError);
      expect(String(((err as Error).cause as Error).message)).toMatch(/not an AMQP 0-9-1 broker .*Frame size \d+ exceeds/);
    });

    it('refuses a peer that is not AMQP at all', async () => {
      const port = await peer((socket) => socket.end('-ERR unknown command\r\n'));
      const err = await connector('delete', { amqpPort: port }).authenticates(freshIdentity(), secret).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectorRefusal);
      expect(String(((err as Error).cause as Error).message)).toMatch(/not an AMQP 0-9-1 broker that can answer the login: Frame size \d+ exceeds/);
    });

    it('refuses a close with a code other than 403, keeping code and text and never the password', async () => {
      const port = await peer(afterStartOk(connectionMethodFrame(Method.close, connectionCloseArgs(530, `NOT_ALLOWED echo ${secret.reveal()}`))));
      const err = await connector('delete', { amqpPort: port }).authenticates(freshIdentity(), secret).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectorRefusal);
      const cause = (err as Error).cause as AmqpProtocolError;
      expect(cause.replyCode).toBe(530);
      expect(cause.message).toMatch(/Handshake terminated by server: 530 \(NOT-ALLOWED\) with message "NOT_ALLOWED echo \[secret\]"/);
      expect(inspect(err, { depth: 10, showHidden: true })).not.toContain(secret.reveal());
    });

    it('refuses an unexpected method in reply to the login', async () => {
      const port = await peer(afterStartOk(connectionMethodFrame(Method.secure, Buffer.from([0, 0, 0, 0]))));
      const err = await connector('delete', { amqpPort: port }).authenticates(freshIdentity(), secret).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectorRefusal);
      expect(String(((err as Error).cause as Error).message)).toMatch(/Wasn't expecting to have to go through secure/);
    });

    it('treats a close 320 (connection forced: broker shutting down) as transient', async () => {
      const port = await peer(afterStartOk(connectionMethodFrame(Method.close, connectionCloseArgs(320, 'CONNECTION_FORCED - shutdown'))));
      const err = await connector('delete', { amqpPort: port }).authenticates(freshIdentity(), secret).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(ConnectorRefusal);
    });
  });
});
