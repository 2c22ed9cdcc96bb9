import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import type { IdentityRef } from '../../src/actions/identity-action';
import { type Connector, type RevokeMode, verifyAccount } from '../../src/connectors/connector';
import { envSecrets } from '../../src/connectors/connector-config';
import { ConnectorRefusal, FailureType } from '../../src/connectors/connector-errors';
import { scimConnectorType, scimInstanceSchema } from '../../src/connectors/scim';
import { ScimProtocolError, scimFailure } from '../../src/connectors/scim/scim-connector';
import { eq, memberPath, scimStringLiteral } from '../../src/connectors/scim/scim-filter';
import { freePort } from '../support/servers/process';
import { ADMIN_USER, GATEWAY_USER, recordingProxy, type ScimTarget, startScimProvider } from '../support/servers/scim';
import { describeConnectorContract } from './contract';
import { underPolicy, type UnderPolicy } from './under-policy';

// Groups the tests grant; "Dynamic All Staff" is one whose membership the provider owns (writes answered, dropped).
const READERS = 'cg-readers';
const OPERATORS = 'CG Deploy Operators';
const DYNAMIC = 'Dynamic All Staff';
const TOKEN_ENV = { gateway: 'CG_SCIM_GATEWAY_TOKEN', readOnly: 'CG_SCIM_READONLY_TOKEN', rateLimited: 'CG_SCIM_THROTTLED_TOKEN' } as const;

let sp: ScimTarget;
const opened: Connector[] = [];

interface BuildOptions {
  baseUrl?: string;
  tokenEnv?: string;
  revokeMode?: 'delete' | 'disable';
  ownUserName?: string | null;
  pageSize?: number;
}

/** A connector built the way the registry builds one: the type's schema parses the entry, the token comes from env. */
function build(o: BuildOptions = {}): UnderPolicy<Connector> {
  const cfg = scimInstanceSchema.parse({
    name: 'scim-under-test',
    type: 'scim',
    baseUrl: o.baseUrl ?? sp.url,
    tokenEnv: o.tokenEnv ?? TOKEN_ENV.gateway,
    ...(o.ownUserName === null ? {} : { ownUserName: o.ownUserName ?? GATEWAY_USER }),
    ...(o.pageSize ? { pageSize: o.pageSize } : {}),
    policy: { protectedAccounts: [ADMIN_USER], revokeMode: o.revokeMode ?? 'disable' },
  });
  const c = scimConnectorType.create(cfg, envSecrets(process.env, cfg.name));
  opened.push(c);
  return underPolicy(c, cfg.policy.revokeMode);
}

let gateway: Connector;
/** Nothing listens there: `unreachable()` is synchronous in the harness, so the port is taken up front. */
let unreachablePort = 0;

beforeAll(async () => {
  unreachablePort = await freePort();
  sp = await startScimProvider({ maxPageSize: 10, ignoreMemberWritesFor: [DYNAMIC] });
  process.env[TOKEN_ENV.gateway] = sp.tokens.gateway;
  process.env[TOKEN_ENV.readOnly] = sp.tokens.readOnly;
  process.env[TOKEN_ENV.rateLimited] = sp.tokens.rateLimited;
  for (const g of [READERS, OPERATORS, DYNAMIC]) await sp.admin.createGroup(g);
  gateway = build();
});
afterAll(async () => {
  for (const c of opened) await c.close();
  await sp?.stop();
});

const fresh = (): IdentityRef => ({ type: 'service_account', name: `svc.${randomBytes(5).toString('hex')}@scim.test` });
const refusal = async (p: Promise<unknown>): Promise<ConnectorRefusal> => {
  const err = await p.then(() => null, (e: unknown) => e);
  if (!(err instanceof ConnectorRefusal)) throw new Error(`expected a ConnectorRefusal, got ${String(err)}`);
  return err;
};
const causeStatus = (err: Error): number | undefined => (err.cause instanceof ScimProtocolError ? err.cause.status : undefined);
const snapshot = async () => ({
  users: (await sp.admin.list('Users')).map((u) => ({ id: u.id, userName: u.userName, active: u.active, version: (u.meta as { version?: string }).version })),
  groups: (await sp.admin.list('Groups')).map((g) => ({
    id: g.id,
    displayName: g.displayName,
    members: ((g.members as { value: string }[] | undefined) ?? []).map((m) => m.value).sort(),
    version: (g.meta as { version?: string }).version,
  })),
});

const byMode = new Map<RevokeMode, Connector>();
describeConnectorContract('SCIM 2.0 (SCIMMY provider)', () => ({
  connector: (mode = 'delete') => byMode.get(mode) ?? byMode.set(mode, build({ revokeMode: mode })).get(mode)!,
  freshIdentity: fresh,
  grants: [`group=${READERS}`, `group=${OPERATORS}`],
  seedOutOfBand: async (id) => {
    // A password goes in (writeOnly, returned never, RFC 7643 §4.1.1), and a membership.
    const userId = await sp.admin.createUser(id.name, { password: randomBytes(12).toString('base64url') });
    const group = await sp.admin.findGroup(READERS);
    await sp.admin.addMember(group!.id, userId);
  },
  // A SCIM provider never hands out a user's password; the credentials it holds are the bearer tokens its clients
  // present, the gateway's among them.
  storedSecrets: async () => [
    { what: "the gateway's SCIM bearer credential", value: `Bearer ${sp.tokens.gateway}` },
    { what: "the administrator's SCIM bearer credential", value: `Bearer ${sp.tokens.admin}` },
  ],
  snapshot,
  ownIdentityName: GATEWAY_USER,
  hostileNames: [
    'x" or userName pr or "', 'a\\"b', 'userName pr', 'a\tb', '.hidden', '@example.com', 'é', '\uff41dmin', 'x'.repeat(129),
    'CHANGEGATE-SCIM', 'Scim-Admin', 'a/../b', 'a?filter=x', 'a#b',
  ],
  hostileGrants: [
    'group=', 'group= x', 'group=x  y', 'group=x" or displayName pr or "', 'group=a\\b', 'group=*', 'group=a,b',
    'group=x\ny', 'role=admin', 'displayName eq "x"', `group=${'g'.repeat(129)}`, 'group', '=x',
  ],
  unreachable: () => build({ baseUrl: `http://127.0.0.1:${unreachablePort}/scim/v2` }),
  targetRefusal: async () => ({
    // The grammar accepts it; the provider refuses: the read-only token lacks the users:write scope.
    run: () => build({ tokenEnv: TOKEN_ENV.readOnly }).provision(fresh(), [`group=${READERS}`]),
    causeMatches: /lacks scope users:write/,
  }),
  acceptedButNotApplied: async () => {
    // The provider answers the member PATCH with 204 and drops it, as SaaS do for groups whose membership they own.
    const identity = fresh();
    await gateway.provision(identity, [`group=${DYNAMIC}`]);
    return { identity, desired: { exists: true, mustHave: [`group=${DYNAMIC}`] } };
  },
  cleanup: async (id) => {
    await sp.admin.deleteUser(id.name);
  },
  rotates: false,
}));

describe('SCIM filter building', () => {
  it('writes a value as a JSON string literal, so quotes, backslashes and control characters cannot end it', () => {
    expect(eq('userName', 'x" or userName pr or "')).toBe('userName eq "x\\" or userName pr or \\""');
    expect(eq('displayName', 'a\\b')).toBe('displayName eq "a\\\\b"');
    expect(scimStringLiteral('a\nb\u0000')).toBe('"a\\nb\\u0000"');
    expect(memberPath('7f0c-1')).toBe('members[value eq "7f0c-1"]');
  });

  it('needs no escaping for any userName the grammar accepts, so providers with weak filter parsers read them literally', () => {
    for (const name of ['svc.ci+deploy@example.com', 'A-b_c.d', '0', 'x'.repeat(128)]) {
      expect(gateway.grammar.validateIdentity({ type: 'person', name })).toEqual([]);
      expect(scimStringLiteral(name)).toBe(`"${name}"`);
    }
  });

  it('the provider (SCIMMY 1.3.5) answers 400 invalidFilter to an escaped quote: the reason " and \\ stay out of names', async () => {
    const res = await sp.request('GET', `/Users?filter=${encodeURIComponent(eq('userName', 'x" or userName pr or "'))}`, { token: sp.tokens.gateway });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ scimType: 'invalidFilter' });
  });

  it('a filter-injection userName is refused before any request reaches the provider', async () => {
    const proxy = await recordingProxy(sp.url);
    try {
      const c = build({ baseUrl: proxy.url });
      const id: IdentityRef = { type: 'person', name: 'x" or userName pr or "' };
      for (const op of [() => c.inspect(id), () => c.provision(id, [`group=${READERS}`]), () => c.leave(id), () => c.expire(id, [`group=${READERS}`], true)]) {
        expect((await refusal(op())).type).toBe(FailureType.InvalidIdentity);
      }
      expect(proxy.log).toEqual([]);
    } finally {
      await proxy.close();
    }
  });
});

describe('SCIM discovery paging', () => {
  const seeded = Array.from({ length: 23 }, (_, i) => `page.${i}.${randomBytes(3).toString('hex')}@scim.test`);
  beforeAll(async () => {
    for (const name of seeded) await sp.admin.createUser(name);
  });
  afterAll(async () => {
    for (const name of seeded) await sp.admin.deleteUser(name);
  });

  it('follows startIndex across pages the provider caps at 10, whatever count it asked for, and lists each user once', async () => {
    const proxy = await recordingProxy(sp.url);
    try {
      const found = await build({ baseUrl: proxy.url, pageSize: 100 }).discover();
      const names = found.map((d) => d.name);
      expect(names).toEqual(expect.arrayContaining([...seeded, GATEWAY_USER, ADMIN_USER]));
      expect(new Set(names).size).toBe(names.length);
      const pages = proxy.log.filter((r) => r.method === 'GET' && r.path.startsWith('/Users?'));
      expect(pages.length).toBeGreaterThanOrEqual(3);
      expect(pages.map((p) => new URLSearchParams(p.path.split('?')[1]).get('startIndex'))).toEqual(pages.map((_, i) => String(1 + 10 * i)));
      expect(found.find((d) => d.name === ADMIN_USER)?.protected).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it('refuses, rather than loops or misses users, when a provider ignores startIndex and repeats the first page', async () => {
    const proxy = await recordingProxy(sp.url, { rewrite: (path) => path.replace(/([?&])startIndex=\d+&?/, '$1') });
    try {
      const err = await refusal(build({ baseUrl: proxy.url }).discover());
      expect(err.message).toMatch(/ignores paging/);
      expect(proxy.log.filter((r) => r.path.startsWith('/Users?'))).toHaveLength(2);
    } finally {
      await proxy.close();
    }
  });
});

describe('SCIM ETags and If-Match', () => {
  it('the provider serves meta.version as ETag and answers a stale If-Match with 412 in a SCIM error envelope', async () => {
    const id = await sp.admin.createUser(fresh().name);
    const got = await sp.request('GET', `/Users/${id}`);
    const version = (got.body.meta as { version: string }).version;
    expect(got.headers.get('etag')).toBe(version);
    const patch = { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', path: 'displayName', value: 'Changed' }] };
    const stale = await sp.request('PATCH', `/Users/${id}`, { body: patch, headers: { 'If-Match': 'W/"999"' } });
    expect(stale.status).toBe(412);
    expect(stale.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '412' });
    const current = await sp.request('PATCH', `/Users/${id}`, { body: patch, headers: { 'If-Match': version } });
    expect(current.status).toBe(200);
    expect(current.headers.get('etag')).not.toBe(version);
    await sp.request('DELETE', `/Users/${id}`);
  });

  it('disable: an edit by someone else between read and write gets 412, and the connector re-reads and retries once', async () => {
    const id = fresh();
    await gateway.provision(id, [`group=${READERS}`]);
    let edited = false;
    const proxy = await recordingProxy(sp.url, {
      before: async (method, path) => {
        if (edited || method !== 'PATCH' || !path.includes('/Users/')) return;
        edited = true;
        const userId = path.split('/Users/')[1] ?? '';
        await sp.request('PATCH', `/Users/${userId}`, {
          body: { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', path: 'displayName', value: 'Edited Meanwhile' }] },
        });
      },
    });
    try {
      const out = await build({ baseUrl: proxy.url }).leave(id);
      expect(out.changed).toBe(true);
      expect(proxy.log.filter((r) => r.method === 'PATCH' && r.path.startsWith('/Users/')).map((r) => r.status)).toEqual([412, 200]);
      expect(verifyAccount(out.expected!, await gateway.inspect(id))).toEqual({ verified: true, mismatches: [] });
      expect(await sp.admin.findUser(id.name)).toMatchObject({ active: false, displayName: 'Edited Meanwhile' });
    } finally {
      await proxy.close();
      await sp.admin.deleteUser(id.name);
    }
  });

  it('delete: a user that keeps changing under every attempt is refused after one retry, with the 412 as cause', async () => {
    const id = fresh();
    await gateway.provision(id, [`group=${READERS}`]);
    let n = 0;
    const proxy = await recordingProxy(sp.url, {
      before: async (method, path) => {
        if (method !== 'DELETE') return;
        const userId = path.split('/Users/')[1] ?? '';
        await sp.request('PATCH', `/Users/${userId}`, {
          body: { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', path: 'displayName', value: `edit ${++n}` }] },
        });
      },
    });
    try {
      const err = await refusal(build({ baseUrl: proxy.url, revokeMode: 'delete' }).leave(id));
      expect(err.type).toBe(FailureType.TargetRefused);
      expect(causeStatus(err)).toBe(412);
      expect(proxy.log.filter((r) => r.method === 'DELETE').map((r) => r.status)).toEqual([412, 412]);
      expect((await gateway.inspect(id)).exists).toBe(true);
    } finally {
      await proxy.close();
      await sp.admin.deleteUser(id.name);
    }
  });
});

describe('SCIM least privilege', () => {
  it('a read-only token inspects and discovers, and every write is refused by the provider with 403; nothing changes', async () => {
    const id = fresh();
    await gateway.provision(id, [`group=${READERS}`]);
    const before = await snapshot();
    const reader = build({ tokenEnv: TOKEN_ENV.readOnly, ownUserName: null });
    expect(await reader.inspect(id)).toEqual(await gateway.inspect(id));
    expect((await reader.discover()).map((d) => d.name)).toContain(id.name);
    for (const op of [() => reader.provision(fresh(), [`group=${READERS}`]), () => reader.leave(id), () => reader.expire(id, [`group=${READERS}`], false)]) {
      const err = await refusal(op());
      expect(err.type).toBe(FailureType.TargetRefused);
      expect(causeStatus(err)).toBe(403);
    }
    expect(await snapshot()).toEqual(before);
    await sp.admin.deleteUser(id.name);
  });

  it('the provider checks scopes whatever the case of the collection: a read-only token cannot write through /users or /GROUPS', async () => {
    // Express (and scimmy-routers' routers) match paths case-insensitively, so /users/<id> is served by Users.
    const id = fresh();
    const userId = await sp.admin.createUser(id.name);
    const readers = await sp.admin.findGroup(READERS);
    const before = await snapshot();
    const asReader = { token: sp.tokens.readOnly };
    const deactivate = { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', path: 'active', value: false }] };
    const addMember = { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'add', path: 'members', value: [{ value: userId }] }] };
    const newUser = { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: `intruder.${randomBytes(3).toString('hex')}` };
    const newGroup = { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: `intruders-${randomBytes(3).toString('hex')}` };
    const writes: [string, string, unknown?][] = [];
    for (const users of ['users', 'USERS', 'uSeRs', 'Users']) {
      writes.push(['PATCH', `/${users}/${userId}`, deactivate], ['PUT', `/${users}/${userId}`, { ...newUser, userName: id.name, active: false }]);
      writes.push(['DELETE', `/${users}/${userId}`], ['POST', `/${users}`, newUser], ['PATCH', `/${users}/${userId}/`, deactivate]);
    }
    for (const groups of ['groups', 'GROUPS', 'Groups']) {
      writes.push(['PATCH', `/${groups}/${readers!.id}`, addMember], ['DELETE', `/${groups}/${readers!.id}`], ['POST', `/${groups}`, newGroup]);
    }
    for (const [method, path, body] of writes) {
      const res = await sp.request(method, path, { ...asReader, body });
      expect([method, path, res.status]).toEqual([method, path, 403]);
      expect(res.body.detail).toMatch(/lacks scope (users:write|groups:write|groups:members)/);
    }
    // Forms the routers may or may not serve are refused or not found, never applied.
    for (const path of [`//Users/${userId}`, `/%55sers/${userId}`, `/Users/${userId}/x`, `/Me`, `/Schemas`]) {
      const res = await sp.request('PATCH', path, { ...asReader, body: deactivate });
      expect([path, res.status >= 400]).toEqual([path, true]);
    }
    expect(await snapshot()).toEqual(before);
    // The If-Match check is not case-bound either: a stale version on /users/<id> is a 412, not a blind write.
    const stale = await sp.request('PATCH', `/users/${userId}`, { body: deactivate, headers: { 'If-Match': 'W/"999"' } });
    expect(stale.status).toBe(412);
    await sp.admin.deleteUser(id.name);
  });

  it("the gateway's token may change group members but not create, rename or delete groups", async () => {
    const asGateway = { token: sp.tokens.gateway };
    const readers = await sp.admin.findGroup(READERS);
    const create = await sp.request('POST', '/Groups', { ...asGateway, body: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'x' } });
    const rename = await sp.request('PATCH', `/Groups/${readers!.id}`, {
      ...asGateway,
      body: { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', path: 'displayName', value: 'owned' }] },
    });
    const remove = await sp.request('DELETE', `/Groups/${readers!.id}`, asGateway);
    expect([create.status, rename.status, remove.status]).toEqual([403, 403, 403]);
    expect(rename.body.detail).toMatch(/lacks scope groups:write/);
  });

  it("the gateway's own SCIM user, learnt from /Me when not configured, is protected and never changed", async () => {
    const c = build({ ownUserName: null });
    const own: IdentityRef = { type: 'service_account', name: GATEWAY_USER };
    expect(c.grammar.validateIdentity(own)).toEqual([]); // the edge does not know it without config…
    expect((await refusal(c.leave(own))).type).toBe(FailureType.InvalidIdentity); // …the live connector does
    expect((await c.discover()).find((d) => d.name === GATEWAY_USER)?.protected).toBe(true);
    expect(await sp.admin.findUser(GATEWAY_USER)).toMatchObject({ active: true });
  });
});

describe('SCIM revoke policy "delete"', () => {
  it('deletes the user, the provider drops its memberships, and a second revoke reports it already absent', async () => {
    const c = build({ revokeMode: 'delete' });
    const id = fresh();
    await c.provision(id, [`group=${READERS}`, `group=${OPERATORS}`]);
    const userId = String((await sp.admin.findUser(id.name))?.id);
    const out = await c.leave(id);
    expect(out).toEqual({ changed: true, detail: expect.stringMatching(/deleted user/), expected: { exists: false } });
    expect(await c.inspect(id)).toEqual({ exists: false, grants: [] });
    expect((await sp.admin.findGroup(READERS))?.members?.map((m) => m.value)).not.toContain(userId);
    expect(await c.leave(id)).toEqual({ changed: false, detail: `user '${id.name}' was already absent`, expected: { exists: false } });
  });
});

describe('SCIM provisioning edge cases', () => {
  it('never adopts an existing user whose userName differs only in case: the 409 uniqueness is the refusal', async () => {
    const existing = `Casey.${randomBytes(3).toString('hex')}@scim.test`;
    await sp.admin.createUser(existing);
    try {
      const err = await refusal(gateway.provision({ type: 'person', name: existing.toLowerCase() }, [`group=${READERS}`]));
      expect(err.type).toBe(FailureType.TargetRefused);
      expect(err.cause).toMatchObject({ status: 409, scimType: 'uniqueness' });
      expect((await sp.admin.findUser(existing))?.groups).toEqual([]);
    } finally {
      await sp.admin.deleteUser(existing);
    }
  });

  it('refuses a joiner for a group that does not exist without creating the user', async () => {
    const id = fresh();
    const err = await refusal(gateway.provision(id, [`group=${READERS}`, 'group=no such group']));
    expect(err.message).toMatch(/no group with displayName 'no such group'/);
    expect(await sp.admin.findUser(id.name)).toBeNull();
  });

  it('removes the user it had just created when a later membership is refused (the group vanished meanwhile)', async () => {
    const doomed = `cg-doomed-${randomBytes(3).toString('hex')}`;
    const groupId = await sp.admin.createGroup(doomed);
    const proxy = await recordingProxy(sp.url, {
      before: async (method, path) => {
        if (method === 'PATCH' && path.startsWith(`/scim/v2/Groups/${groupId}`)) await sp.admin.deleteGroup(groupId);
      },
    });
    try {
      const id = fresh();
      const err = await refusal(build({ baseUrl: proxy.url }).provision(id, [`group=${doomed}`]));
      expect(causeStatus(err)).toBe(404);
      expect(await sp.admin.findUser(id.name)).toBeNull();
    } finally {
      await proxy.close();
    }
  });

  it('removes the user it had just created after a transient 5xx too, so the retry creates it again and says so', async () => {
    // The provider's front end answers the member PATCH with 503 once: the joiner fails transiently and is retried.
    let failed = false;
    const proxy = await recordingProxy(sp.url, {
      frontEnd: (method, path) => {
        if (failed || method !== 'PATCH' || !path.includes('/Groups/')) return undefined;
        failed = true;
        return { status: 503, body: { schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '503', detail: 'upstream restarting' } };
      },
    });
    try {
      const c = build({ baseUrl: proxy.url });
      const id = fresh();
      const err = (await c.provision(id, [`group=${READERS}`]).then(() => null, (e: unknown) => e)) as Error & { transient?: boolean; status?: number };
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(ConnectorRefusal);
      expect(err).toMatchObject({ transient: true, status: 503 });
      expect(proxy.log.filter((r) => r.method !== 'GET').map((r) => [r.method, r.path.split('/')[1], r.status])).toEqual([
        ['POST', 'Users', 201],
        ['PATCH', 'Groups', 503],
        ['DELETE', 'Users', 204],
      ]);
      expect(await sp.admin.findUser(id.name)).toBeNull();
      // Temporal's retry: the user is created by this call, so a later expiry drops it.
      const retried = await c.provision(id, [`group=${READERS}`]);
      expect(retried.created).toBe(true);
      expect((await c.inspect(id)).grants).toEqual([`group=${READERS}`]);
      await sp.admin.deleteUser(id.name);
    } finally {
      await proxy.close();
    }
  });

  it('keeps a user it did not create when a later step fails', async () => {
    const id = fresh();
    await sp.admin.createUser(id.name);
    const proxy = await recordingProxy(sp.url, {
      frontEnd: (method, path) => (method === 'PATCH' && path.includes('/Groups/') ? { status: 502 } : undefined),
    });
    try {
      const err = await build({ baseUrl: proxy.url }).provision(id, [`group=${READERS}`]).then(() => null, (e: unknown) => e);
      expect(err).toMatchObject({ transient: true, status: 502 });
      expect(proxy.log.filter((r) => r.method === 'DELETE')).toEqual([]);
      expect(await sp.admin.findUser(id.name)).not.toBeNull();
    } finally {
      await proxy.close();
      await sp.admin.deleteUser(id.name);
    }
  });
});

describe('SCIM failures', () => {
  it('a 429 from the provider is transient and carries its Retry-After, not a refusal', async () => {
    const c = build({ tokenEnv: TOKEN_ENV.rateLimited, ownUserName: null });
    const id = fresh();
    await c.inspect(id); // GET /Me and GET /Users: the token's two requests this minute
    const err = (await c.inspect(id).then(() => null, (e: unknown) => e)) as Error & { transient?: boolean; retryAfterMs?: number; status?: number };
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(ConnectorRefusal);
    expect(err).toMatchObject({ transient: true, status: 429 });
    // A number on the error itself: the activity layer turns it into Temporal's nextRetryDelay.
    expect(typeof err.retryAfterMs).toBe('number');
    expect(err.retryAfterMs).toBeGreaterThan(0);
    expect(err.retryAfterMs).toBeLessThanOrEqual(60_000);
  });

  it('a 429 on a write carries Retry-After in seconds or as an HTTP date; without one there is no retryAfterMs', async () => {
    const at = new Date(Date.now() + 90_000).toUTCString();
    const answers: Record<string, string>[] = [{ 'retry-after': '30' }, { 'retry-after': at }, {}];
    let n = 0;
    const proxy = await recordingProxy(sp.url, {
      frontEnd: (method) => (method === 'POST' ? { status: 429, headers: answers[n++] ?? {}, body: { status: '429', detail: 'slow down' } } : undefined),
    });
    try {
      const c = build({ baseUrl: proxy.url });
      const errors: (Error & { retryAfterMs?: number; transient?: boolean })[] = [];
      for (let i = 0; i < answers.length; i++) errors.push((await c.provision(fresh(), [`group=${READERS}`]).then(() => null, (e: unknown) => e)) as Error);
      for (const err of errors) {
        expect(err).toBeInstanceOf(Error);
        expect(err).not.toBeInstanceOf(ConnectorRefusal);
        expect(err.transient).toBe(true);
      }
      expect(errors[0]?.retryAfterMs).toBe(30_000);
      expect(errors[1]?.retryAfterMs).toBeGreaterThan(80_000);
      expect(errors[1]?.retryAfterMs).toBeLessThanOrEqual(90_000);
      expect(errors[2]).not.toHaveProperty('retryAfterMs');
    } finally {
      await proxy.close();
    }
  });

  it('maps statuses: 5xx and 429 transient, other 4xx refusals with the provider detail and scimType as cause', () => {
    const transient = scimFailure('s', 'GET /Users', 503, { detail: 'maintenance' }, { 'retry-after': '7' });
    expect(transient).not.toBeInstanceOf(ConnectorRefusal);
    expect(transient).toMatchObject({ transient: true, status: 503, retryAfterMs: 7000 });
    expect(scimFailure('s', 'GET /Users', 500, '<html>oops</html>')).toMatchObject({ transient: true, message: 's: GET /Users answered 500: HTTP 500' });
    for (const status of [400, 401, 403, 404, 409, 412]) {
      const err = scimFailure('s', 'POST /Users', status, { status: String(status), scimType: 'invalidValue', detail: `said ${status}` });
      expect(err).toBeInstanceOf(ConnectorRefusal);
      expect(err).toMatchObject({ type: FailureType.TargetRefused, cause: { status, scimType: 'invalidValue', message: `said ${status}` } });
    }
  });

  it('no error, refused or transient, prints the bearer token', async () => {
    const refused = await refusal(build({ tokenEnv: TOKEN_ENV.readOnly, ownUserName: null }).provision(fresh(), [`group=${READERS}`]));
    const unreachable = await build({ baseUrl: `http://127.0.0.1:${unreachablePort}/scim/v2` })
      .inspect(fresh())
      .then(() => null, (e: unknown) => e);
    for (const err of [refused, unreachable]) {
      const printed = inspect(err, { depth: 10 }) + JSON.stringify(err) + String((err as Error).cause);
      for (const t of Object.values(sp.tokens)) expect(printed).not.toContain(t);
    }
    expect(inspect(gateway, { depth: 10 })).not.toContain(sp.tokens.gateway);
  });

  it('config: the token is named, never inlined, and plain http is refused except to loopback or when allowed', () => {
    const base = { name: 'x', type: 'scim', tokenEnv: 'T', policy: {} };
    expect(scimInstanceSchema.safeParse({ ...base, baseUrl: sp.url, token: 'inline' }).success).toBe(false);
    const remote = scimInstanceSchema.parse({ ...base, baseUrl: 'http://scim.internal:8095/scim/v2' });
    expect(() => scimConnectorType.grammar(remote)).toThrow(/must be https/);
    expect(() => scimConnectorType.grammar({ ...remote, allowPlainHttp: true })).not.toThrow();
    expect(() => scimConnectorType.grammar({ ...remote, allowPlain: true })).not.toThrow();
    expect(() => scimConnectorType.grammar(scimInstanceSchema.parse({ ...base, baseUrl: 'https://x.okta.com/scim/v2' }))).not.toThrow();
    for (const loopback of ['http://127.0.0.1:8095/scim/v2', 'http://127.9.8.7/scim/v2', 'http://localhost/scim/v2', 'http://[::1]:8095/scim/v2']) {
      expect(() => scimConnectorType.grammar(scimInstanceSchema.parse({ ...base, baseUrl: loopback }))).not.toThrow();
    }
    expect(() => scimConnectorType.grammar(scimInstanceSchema.parse({ ...base, baseUrl: 'ftp://scim.internal/scim/v2' }))).toThrow(/http\(s\) URL/);
  });
});

describe('SCIM provider that does not report User.groups', () => {
  let bare: ScimTarget;
  beforeAll(async () => {
    bare = await startScimProvider({ userGroups: false });
    process.env.CG_SCIM_BARE_TOKEN = bare.tokens.gateway;
    for (const g of [READERS, OPERATORS]) await bare.admin.createGroup(g);
  });
  afterAll(async () => {
    await bare?.stop();
  });

  it('reads memberships from Groups filtered by members.value, with the same canonical grants', async () => {
    const c = build({ baseUrl: bare.url, tokenEnv: 'CG_SCIM_BARE_TOKEN' });
    const id = fresh();
    expect((await bare.request('GET', `/Users?filter=${encodeURIComponent(eq('userName', GATEWAY_USER))}`)).body.Resources).toEqual([
      expect.not.objectContaining({ groups: expect.anything() }),
    ]);
    await c.provision(id, [`group=${READERS}`, `group=${OPERATORS}`]);
    expect((await c.inspect(id)).grants).toEqual([`group=${OPERATORS}`, `group=${READERS}`]);
    expect((await c.expire(id, [`group=${OPERATORS}`], false)).changed).toBe(true);
    expect((await c.inspect(id)).grants).toEqual([`group=${READERS}`]);
  });
});
