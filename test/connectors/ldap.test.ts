import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import {
  Attribute, BusyError, Change, Client, ConstraintViolationError, EqualityFilter, FilterParser, InsufficientAccessError, InvalidCredentialsError,
  NoSuchObjectError, ResultCodeError, UnavailableError, UnwillingToPerformError,
} from 'ldapts';
import type { IdentityRef } from '../../src/actions/identity-action';
import { type DesiredAccount, type RevokeMode, verifyAccount } from '../../src/connectors/connector';
import { ConnectorRefusal, FailureType } from '../../src/connectors/connector-errors';
import { ldapConnectorType, ldapInstanceSchema } from '../../src/connectors/ldap';
import { classifyLdapError, type LdapConnector } from '../../src/connectors/ldap/ldap-connector';
import { escapeDnValue, firstRdn, LdapGrammar } from '../../src/connectors/ldap/ldap-grammar';
import { Secret } from '../../src/connectors/secret';
import { slappasswd } from '../support/credentials';
import { freePort } from '../support/servers/process';
import { LDAP_BASE_DN, type LdapTestServer, startLdapServer } from '../support/servers/ldap';
import { type ContractHarness, describeConnectorContract } from './contract';
import { underPolicy, type UnderPolicy } from './under-policy';

const OWN_NAME = 'changegate-connector';
const DISABLED: DesiredAccount = { exists: true, locked: true, noGrants: true };

let server: LdapTestServer;
let deadPort: number;
const open: LdapConnector[] = [];
const leftovers: IdentityRef[] = [];

beforeAll(async () => {
  server = await startLdapServer();
  deadPort = await freePort();
});

afterAll(async () => {
  for (const id of leftovers) await removeAsAdmin(id);
  for (const c of open) await c.close();
  await server?.stop();
});

/** A connector built the way the worker builds one: from a parsed config entry and an environment variable. */
function connector(overrides: Record<string, unknown> = {}): UnderPolicy<LdapConnector> {
  const cfg = ldapInstanceSchema.parse({
    name: 'ldap-test',
    type: 'ldap',
    url: server.url,
    baseDn: LDAP_BASE_DN,
    bindDn: server.connectorDn,
    passwordEnv: 'LDAP_TEST_PASSWORD',
    timeoutMs: 5_000,
    ...overrides,
  });
  const c = ldapConnectorType.create(cfg, (key) => {
    if (key !== 'LDAP_TEST_PASSWORD') throw new Error(`unexpected secret ${key}`);
    return server.connectorPassword;
  }) as LdapConnector;
  open.push(c);
  return underPolicy(c, cfg.policy.revokeMode);
}

let counter = 0;
function freshIdentity(): IdentityRef {
  counter++;
  return { type: counter % 2 === 0 ? 'person' : 'service_account', name: `cgt-${randomBytes(5).toString('hex')}` };
}

const ouOf = (id: IdentityRef): string => (id.type === 'person' ? 'ou=people' : 'ou=services');
const dnOf = (id: IdentityRef): string => `uid=${escapeDnValue(id.name)},${ouOf(id)},${LDAP_BASE_DN}`;
const groupDn = (cn: string): string => `cn=${escapeDnValue(cn)},ou=groups,${LDAP_BASE_DN}`;
const resultCode = (err: unknown): number | undefined => (err instanceof ResultCodeError ? err.code : undefined);

async function addAsAdmin(id: IdentityRef, opts: { groups?: string[]; locked?: boolean; lockedAt?: string; userPassword?: string } = {}): Promise<void> {
  await server.asAdmin(async (admin) => {
    await admin.add(dnOf(id), {
      objectClass: ['inetOrgPerson'],
      uid: id.name,
      cn: id.name,
      sn: id.name,
      ...(opts.userPassword ? { userPassword: opts.userPassword } : {}),
      ...(opts.locked || opts.lockedAt ? { pwdAccountLockedTime: opts.lockedAt ?? '000001010000Z' } : {}),
    });
    for (const cn of opts.groups ?? []) {
      await admin.modify(groupDn(cn), new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [dnOf(id)] }) }));
    }
  });
}

/** Groups (anywhere in the directory) that still list `dn`, read as the rootdn. */
async function groupsListing(dn: string): Promise<string[]> {
  return server.asAdmin(async (admin) => {
    const { searchEntries } = await admin.search(LDAP_BASE_DN, { scope: 'sub', filter: new EqualityFilter({ attribute: 'member', value: dn }), attributes: ['1.1'] });
    return searchEntries.map((e) => e.dn);
  });
}

async function removeAsAdmin(id: IdentityRef): Promise<void> {
  const dn = dnOf(id);
  const groups = await groupsListing(dn);
  await server.asAdmin(async (admin) => {
    for (const g of groups) {
      await admin.modify(g, new Change({ operation: 'delete', modification: new Attribute({ type: 'member', values: [dn] }) }));
    }
    await admin.del(dn).catch((err: unknown) => {
      if (resultCode(err) !== 32) throw err;
    });
  });
}

async function snapshot(): Promise<unknown> {
  return server.asAdmin(async (admin) => {
    const { searchEntries } = await admin.search(LDAP_BASE_DN, { scope: 'sub', attributes: ['*', 'pwdAccountLockedTime', 'memberOf'] });
    return searchEntries.sort((a, b) => a.dn.localeCompare(b.dn));
  });
}

/** A raw client bound with the connector's own credential: what that credential can do, whatever the code does. */
async function asConnectorCredential<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ url: server.url, timeout: 5_000 });
  try {
    await c.bind(server.connectorDn, server.connectorPassword);
    return await fn(c);
  } finally {
    await c.unbind();
  }
}

function harness(): () => ContractHarness {
  const live = new Map<RevokeMode, LdapConnector>();
  return () => ({
    connector: (mode = 'delete') => live.get(mode) ?? live.set(mode, connector({ policy: { revokeMode: mode } })).get(mode)!,
    freshIdentity,
    grants: ['group=cg-readers', 'group=cg-writers'],
    // A salted hash as slappasswd makes it, which is how directories hold passwords.
    seedOutOfBand: (id) => addAsAdmin(id, { groups: ['cg-readers'], userPassword: slappasswd(randomBytes(12).toString('base64url')) }),
    storedSecrets: async (id) =>
      server.asAdmin(async (admin) => {
        const { searchEntries } = await admin.search(dnOf(id), { scope: 'base', attributes: ['userPassword'] });
        return ([] as unknown[]).concat(searchEntries[0]?.userPassword ?? []).map((v) => ({ what: 'an LDAP {SSHA} userPassword', value: Buffer.isBuffer(v) ? v.toString('utf8') : String(v) }));
      }),
    snapshot,
    ownIdentityName: OWN_NAME,
    hostileNames: [
      'Alice', 'a,ou=people', 'uid=a', 'a+cn=b', 'a<b', 'a>b', '#x', 'a\\2a', '\\00', 'a\tb', 'ａ', '.', '..', 'a)', '(a',
      'a\u0000', 'x,uid=changegate-connector', OWN_NAME, `${OWN_NAME}\u0000`, 'a'.repeat(65),
    ],
    hostileGrants: [
      'group=*', 'group=cg-readers,ou=other', 'group=cg-readers)(member=*', 'cn=cg-readers', 'group=', 'group=cg readers',
      'GROUP=cg-readers', 'group=cg-readers\n', 'group=../x', 'group=cn=x,dc=y', 'member=uid=x', ' group=cg-readers', 'group=#x',
    ],
    unreachable: () => connector({ url: `ldap://127.0.0.1:${deadPort}` }),
    targetRefusal: async () => {
      // cg-admins is tagged businessCategory: privileged, and the ACLs keep the connector's hands off its members.
      const id = freshIdentity();
      leftovers.push(id);
      await addAsAdmin(id);
      const c = connector();
      return { run: () => c.provision(id, ['group=cg-admins']), causeMatches: /insufficientAccessRights/ };
    },
    acceptedButNotApplied: async () => {
      // A disable that locked the account but left it in its group (or a feed that put it back): still a member.
      const id = freshIdentity();
      await addAsAdmin(id, { groups: ['cg-readers'], locked: true });
      return { identity: id, desired: DISABLED };
    },
    cleanup: removeAsAdmin,
    rotates: true,
  });
}

describeConnectorContract('ldap', harness());

describe('ldap: escaping', () => {
  it('escapes every RFC 4514 special, leading # and spaces, and control characters in an RDN value', () => {
    expect(escapeDnValue('alice')).toBe('alice');
    expect(escapeDnValue('a,b+c"d\\e<f>g;h=i')).toBe('a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\=i');
    expect(escapeDnValue('#lead')).toBe('\\#lead');
    expect(escapeDnValue('mid#dle')).toBe('mid#dle');
    expect(escapeDnValue(' both ')).toBe('\\ both\\ ');
    expect(escapeDnValue(' ')).toBe('\\ ');
    expect(escapeDnValue('a\u0000b\nc\rd')).toBe('a\\00b\\0ac\\0dd');
    expect(escapeDnValue('x,uid=changegate-connector')).toBe('x\\,uid\\=changegate-connector');
  });

  it('unescapes a first RDN back to exactly the value that was escaped', () => {
    for (const value of ['a,b', '#a', ' a ', 'a+cn=b', 'a\\b', 'a"b', 'a\u0000b', 'a\nb', 'ünï ✓', '*)(uid=*', 'a;b<c>']) {
      expect(firstRdn(`uid=${escapeDnValue(value)},ou=people,${LDAP_BASE_DN}`)).toEqual({ attr: 'uid', value });
    }
    expect(firstRdn('CN=cg-readers,ou=groups,dc=x')).toEqual({ attr: 'cn', value: 'cg-readers' });
    expect(firstRdn('cn=a\\2Cb,ou=groups')).toEqual({ attr: 'cn', value: 'a,b' });
  });

  it('sends filter values as encoded literals: metacharacters and NUL are escaped, never parsed as filter syntax', () => {
    const hostile = ['*', 'a*', '*)(|(objectClass=*)', 'a)(uid=*', 'a\\b', 'a\u0000b', '(', ')'];
    for (const value of hostile) {
      const filter = new EqualityFilter({ attribute: 'uid', value });
      const text = filter.toString();
      expect(text.slice(5, -1)).not.toMatch(/[*()]/);
      expect(text).not.toContain('\u0000');
      const reparsed = FilterParser.parseString(text) as EqualityFilter;
      expect(reparsed).toBeInstanceOf(EqualityFilter);
      expect(reparsed.value).toBe(value);
    }
    expect(new EqualityFilter({ attribute: 'uid', value: '*)(uid=*' }).toString()).toBe('(uid=\\2a\\29\\28uid=\\2a)');
  });

  it('a wildcard-like uid matches only the entry that literally has it, and hostile RDN values stay one RDN', async () => {
    const literal = { type: 'person', name: '*' } as const;
    const other = freshIdentity();
    const hostile = ['a,ou=x', '#lead', ' lead', 'x+cn=y', 'a"b<c>;d=e\\f', 'trail '].map((name) => ({ type: 'person', name }) as const);
    leftovers.push(literal, other, ...hostile);
    await addAsAdmin(literal);
    await addAsAdmin(other);
    for (const id of hostile) await addAsAdmin(id);
    await server.asAdmin(async (admin) => {
      const { searchEntries } = await admin.search(`ou=people,${LDAP_BASE_DN}`, { scope: 'one', filter: new EqualityFilter({ attribute: 'uid', value: '*' }), attributes: ['uid'] });
      expect(searchEntries.map((e) => e.uid)).toEqual(['*']);
      for (const id of hostile) {
        const found = await admin.search(dnOf(id), { scope: 'base', attributes: ['uid'] });
        expect(found.searchEntries.map((e) => e.uid)).toEqual([id.name]);
        const byUid = await admin.search(`ou=people,${LDAP_BASE_DN}`, { scope: 'one', filter: new EqualityFilter({ attribute: 'uid', value: id.name }), attributes: ['1.1'] });
        expect(byUid.searchEntries).toHaveLength(1);
      }
    });
    // The grammar never lets such names reach the connector at all.
    const grammar = connector().grammar;
    for (const id of [literal, ...hostile]) expect(grammar.validateIdentity(id)).not.toHaveLength(0);
  });
});

describe('ldap: grammar and configuration', () => {
  it("refuses the connector's own uid, names from policy, and a host part", () => {
    const grammar = new LdapGrammar({ protectedAccounts: [OWN_NAME, 'break-glass'] });
    expect(grammar.validateIdentity({ type: 'service_account', name: OWN_NAME })[0]?.message).toMatch(/protected/);
    expect(grammar.validateIdentity({ type: 'person', name: 'break-glass' })[0]?.message).toMatch(/protected/);
    expect(grammar.validateIdentity({ type: 'person', name: 'alice', host: '%' })[0]?.path).toBe('identity.host');
    expect(grammar.validateIdentity({ type: 'person', name: 'alice.smith_2-x' })).toEqual([]);
  });

  it('canonicalises group grants to lower case and enforces the configured allow-list', () => {
    const open = new LdapGrammar({ protectedAccounts: [] });
    expect(open.parseGrant('group=CG-Readers')).toEqual({ canonical: ['group=cg-readers'] });
    const listed = new LdapGrammar({ protectedAccounts: [], allowedGroups: ['cg-readers'] });
    expect(listed.parseGrant('group=cg-readers')).toEqual({ canonical: ['group=cg-readers'] });
    expect(listed.parseGrant('group=cg-writers')).toEqual({ problem: expect.stringMatching(/allow-list/) });
  });

  it('derives the protected own name from bindDn and rejects DNs with specials and inline passwords in config', () => {
    const grammar = ldapConnectorType.grammar(ldapInstanceSchema.parse({
      name: 'x', type: 'ldap', url: 'ldap://127.0.0.1:3890', baseDn: LDAP_BASE_DN, bindDn: `uid=${OWN_NAME},ou=services,${LDAP_BASE_DN}`, passwordEnv: 'X',
    }));
    expect(grammar.validateIdentity({ type: 'service_account', name: OWN_NAME })[0]?.message).toMatch(/protected/);
    const base = { name: 'x', type: 'ldap', url: 'ldap://127.0.0.1:3890', baseDn: LDAP_BASE_DN, bindDn: server.connectorDn, passwordEnv: 'X' };
    expect(ldapInstanceSchema.safeParse({ ...base, groupsOu: 'ou=groups)(x=*' }).success).toBe(false);
    expect(ldapInstanceSchema.safeParse({ ...base, baseDn: 'dc=a\\,b' }).success).toBe(false);
    expect(ldapInstanceSchema.safeParse({ ...base, password: 'inline' }).success).toBe(false);
    expect(ldapInstanceSchema.safeParse({ ...base, url: 'http://x' }).success).toBe(false);
  });
});

describe('ldap: behaviour against slapd', () => {
  it("the connector's credential is least-privilege: it cannot touch itself, privileged groups, other subtrees or password hashes", async () => {
    const person = freshIdentity();
    leftovers.push(person);
    await addAsAdmin(person);
    const refused = async (op: () => Promise<unknown>): Promise<number | undefined> => op().then(() => undefined, (err: unknown) => resultCode(err));
    await asConnectorCredential(async (c) => {
      const self = server.connectorDn;
      const addMember = (group: string, member: string) => c.modify(groupDn(group), new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [member] }) }));
      expect(await refused(() => c.modify(self, new Change({ operation: 'replace', modification: new Attribute({ type: 'pwdAccountLockedTime', values: ['000001010000Z'] }) })))).toBe(50);
      expect(await refused(() => c.modify(self, new Change({ operation: 'replace', modification: new Attribute({ type: 'description', values: ['x'] }) })))).toBe(50);
      expect(await refused(() => c.del(self))).toBe(50);
      expect(await refused(() => c.modify(self, new Change({ operation: 'replace', modification: new Attribute({ type: 'userPassword', values: ['chosen-by-me'] }) })))).toBe(50);
      expect(await refused(() => addMember('cg-readers', self))).toBe(50);
      expect(await refused(() => addMember('cg-admins', dnOf(person)))).toBe(50);
      expect(await refused(() => addMember('cg-readers', `cn=admin,${LDAP_BASE_DN}`))).toBe(50);
      expect(await refused(() => c.add(`cn=new-group,ou=groups,${LDAP_BASE_DN}`, { objectClass: 'groupOfNames', cn: 'new-group', member: '' }))).toBe(50);
      expect(await refused(() => c.del(`cn=default,ou=policies,${LDAP_BASE_DN}`))).toBe(50);
      expect(await refused(() => c.del(`ou=people,${LDAP_BASE_DN}`))).toBe(50);
      const { searchEntries } = await c.search(`ou=services,${LDAP_BASE_DN}`, { scope: 'sub', attributes: ['userPassword'] });
      expect(searchEntries.flatMap((e) => [e.userPassword].flat().filter((v) => v !== undefined && String(v) !== ''))).toEqual([]);
    });
  });

  it('disable locks with ppolicy: a credential that bound before stops binding, memberships are gone, the entry stays', async () => {
    const c = connector({ policy: { revokeMode: 'disable' } });
    const id = freshIdentity();
    leftovers.push(id);
    await c.provision(id, ['group=cg-readers', 'group=cg-writers']);
    const { secret } = await c.rotate(id);
    expect(await c.authenticates(id, secret)).toBe(true);
    const out = await c.leave(id);
    expect(out).toMatchObject({ changed: true, expected: DISABLED });
    const bindErr = await new Client({ url: server.url }).bind(dnOf(id), secret.reveal()).then(() => null, (e: unknown) => e);
    expect(bindErr).toBeInstanceOf(InvalidCredentialsError);
    expect(await c.authenticates(id, secret)).toBe(false);
    const observed = await c.inspect(id);
    expect(observed).toMatchObject({ exists: true, locked: true, grants: [] });
    expect(observed.attributes).toMatchObject({ pwdAccountLockedTime: '000001010000Z', memberOf: [] });
    expect(verifyAccount(DISABLED, observed)).toEqual({ verified: true, mismatches: [] });
    expect(await groupsListing(dnOf(id))).toEqual([]);
  });

  it('a locked account still in a group fails the disable check until revoke strips the membership', async () => {
    const c = connector({ policy: { revokeMode: 'disable' } });
    const id = freshIdentity();
    leftovers.push(id);
    await addAsAdmin(id, { groups: ['cg-readers'], locked: true });
    const before = await c.inspect(id);
    expect(before).toMatchObject({ exists: true, locked: true, grants: ['group=cg-readers'] });
    expect(verifyAccount(DISABLED, before)).toEqual({ verified: false, mismatches: ['grants still present: group=cg-readers'] });
    expect(await c.leave(id)).toMatchObject({ changed: true, expected: DISABLED });
    expect(verifyAccount(DISABLED, await c.inspect(id)).verified).toBe(true);
  });

  it('a disable-policy leaver of an account that is already gone is done, and its read-back expects it absent', async () => {
    const c = connector({ policy: { revokeMode: 'disable' } });
    const id = freshIdentity();
    const out = await c.leave(id);
    expect(out).toEqual({ changed: false, detail: `${dnOf(id)} was already absent`, expected: { exists: false } });
    expect(verifyAccount(out.expected!, await c.inspect(id)).verified).toBe(true);
  });

  it('a lockout after failed binds (a timestamp) is not a disable: revoke replaces it with the permanent lock', async () => {
    const c = connector({ policy: { revokeMode: 'disable' } });
    const id = freshIdentity();
    leftovers.push(id);
    await addAsAdmin(id, { lockedAt: '20200101000000Z' });
    const before = await c.inspect(id);
    expect(before).toMatchObject({ exists: true, locked: false, grants: [], attributes: { pwdAccountLockedTime: '20200101000000Z' } });
    expect(await c.leave(id)).toMatchObject({ changed: true });
    expect(await c.inspect(id)).toMatchObject({ locked: true, attributes: { pwdAccountLockedTime: '000001010000Z' } });
  });

  it('delete removes every membership before the entry, leaving no dangling member DN', async () => {
    const c = connector({ policy: { revokeMode: 'delete' } });
    const id = freshIdentity();
    await c.provision(id, ['group=cg-readers', 'group=cg-writers']);
    expect((await groupsListing(dnOf(id))).length).toBe(2);
    const out = await c.leave(id);
    expect(out.changed).toBe(true);
    expect(out.detail).toMatch(/from 2 group/);
    expect(await groupsListing(dnOf(id))).toEqual([]);
    expect((await c.inspect(id)).exists).toBe(false);
  });

  it('rotation goes through Password Modify: slapd stores a salted hash, and inspect never returns it', async () => {
    const c = connector();
    const id = freshIdentity();
    leftovers.push(id);
    await c.provision(id, ['group=cg-readers']);
    const result = await c.rotate(id);
    const stored = await server.asAdmin(async (admin) => (await admin.search(dnOf(id), { scope: 'base', attributes: ['userPassword'] })).searchEntries[0]?.userPassword);
    expect(String(stored)).toMatch(/^\{SSHA\}/);
    expect(String(stored)).not.toContain(result.secret.reveal());
    const observed = JSON.stringify(await c.inspect(id));
    expect(observed).not.toMatch(/userPassword|SSHA/i);
    expect(JSON.stringify(result)).not.toContain(result.secret.reveal());
  });

  it('a grant the directory refuses after creating the account rolls the account back', async () => {
    const c = connector();
    const id = freshIdentity();
    leftovers.push(id);
    const err = await c.provision(id, ['group=cg-readers', 'group=cg-admins']).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorRefusal);
    expect((err as ConnectorRefusal).type).toBe(FailureType.TargetRefused);
    expect((err as Error).cause).toBeInstanceOf(InsufficientAccessError);
    expect((await c.inspect(id)).exists).toBe(false);
    expect(await groupsListing(dnOf(id))).toEqual([]);
  });

  it('a grant naming a group that does not exist is refused before anything is created', async () => {
    const c = connector();
    const id = freshIdentity();
    const err = await c.provision(id, ['group=cg-nonexistent']).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorRefusal);
    expect((err as Error).message).toMatch(/cn=cg-nonexistent,ou=groups.* does not exist/);
    expect(((err as Error).cause as Error).message).toMatch(/^noSuchObject/);
    expect((await c.inspect(id)).exists).toBe(false);
  });

  it('a uid living in the other OU is refused, not reported as absent (a leaver must not pass on a wrong type)', async () => {
    const c = connector();
    const id: IdentityRef = { type: 'service_account', name: `cgt-${randomBytes(5).toString('hex')}` };
    leftovers.push(id);
    await addAsAdmin(id);
    const asPerson: IdentityRef = { type: 'person', name: id.name };
    for (const op of [() => c.inspect(asPerson), () => c.leave(asPerson), () => c.provision(asPerson, ['group=cg-readers'])]) {
      const err = await op().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectorRefusal);
      expect((err as Error).message).toMatch(/ou=services/);
    }
    expect((await c.inspect(id)).exists).toBe(true);
  });

  it('an allow-listed connector refuses other groups before any I/O', async () => {
    const c = connector({ allowedGroups: ['cg-readers'] });
    const id = freshIdentity();
    const err = await c.provision(id, ['group=cg-writers']).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorRefusal);
    expect((err as ConnectorRefusal).type).toBe(FailureType.InvalidIdentity);
    expect((await c.inspect(id)).exists).toBe(false);
  });

  it('discovery types identities by OU, reports locks, and marks its own entry and policy-protected uids protected', async () => {
    const person: IdentityRef = { type: 'person', name: `cgt-${randomBytes(5).toString('hex')}` };
    const svc: IdentityRef = { type: 'service_account', name: `cgt-${randomBytes(5).toString('hex')}` };
    const guarded: IdentityRef = { type: 'service_account', name: `cgt-guard-${randomBytes(3).toString('hex')}` };
    leftovers.push(person, svc, guarded);
    await addAsAdmin(person, { locked: true });
    await addAsAdmin(svc);
    await addAsAdmin(guarded);
    const found = await connector({ policy: { protectedAccounts: [guarded.name] } }).discover();
    expect(found.find((d) => d.name === person.name)).toEqual({ name: person.name, type: 'person', locked: true });
    expect(found.find((d) => d.name === svc.name)).toEqual({ name: svc.name, type: 'service_account' });
    expect(found.find((d) => d.name === guarded.name)).toEqual({ name: guarded.name, type: 'service_account', protected: true });
    expect(found.find((d) => d.name === OWN_NAME)).toEqual({ name: OWN_NAME, type: 'service_account', protected: true });
  });

  it("a wrong bind password is the directory's refusal (not retried), with invalidCredentials as cause", async () => {
    const cfg = ldapInstanceSchema.parse({ name: 'ldap-wrong', type: 'ldap', url: server.url, baseDn: LDAP_BASE_DN, bindDn: server.connectorDn, passwordEnv: 'P' });
    const c = ldapConnectorType.create(cfg, () => Secret.generate().reveal()) as LdapConnector;
    open.push(c);
    const err = await c.inspect(freshIdentity()).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorRefusal);
    expect((err as Error).message).toMatch(/bind as uid=changegate-connector.*LDAP result 49/);
    expect((err as Error).cause).toBeInstanceOf(InvalidCredentialsError);
  });

  it('an unreachable directory is a transient error naming the network failure', async () => {
    const c = connector({ url: `ldap://127.0.0.1:${deadPort}` });
    const err = await c.discover().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(ConnectorRefusal);
    expect(err).toMatchObject({ transient: true });
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
  });
});

describe('ldap: error classification', () => {
  it('busy, unavailable and time limits are retried; access, constraint, unwilling and missing-entry answers are final', () => {
    const transient = [new BusyError(), new UnavailableError('shutting down'), Object.assign(new Error('connect ECONNRESET'), { code: 'ECONNRESET' }), new Error('ModifyRequest: Operation timed out')];
    for (const err of transient) {
      const out = classifyLdapError('ldap-x', err, 'modify uid=a,ou=people');
      expect(out).not.toBeInstanceOf(ConnectorRefusal);
      expect(out).toMatchObject({ transient: true, cause: err });
    }
    const final = [new InsufficientAccessError(''), new ConstraintViolationError('password fails quality checking'), new UnwillingToPerformError('database is read-only'), new NoSuchObjectError('')];
    for (const err of final) {
      const out = classifyLdapError('ldap-x', err, 'modify uid=a,ou=people');
      expect(out).toBeInstanceOf(ConnectorRefusal);
      expect(out).toMatchObject({ type: FailureType.TargetRefused, cause: err });
    }
    expect(classifyLdapError('ldap-x', new InsufficientAccessError(''), 'modify x').message).toBe('ldap-x: modify x: insufficientAccessRights Code: 0x32 (LDAP result 50)');
    expect(classifyLdapError('ldap-x', new ConstraintViolationError('password fails quality checking'), 'x').message).toMatch(/password fails quality checking Code: 0x13 \(LDAP result 19\)/);
  });

  it('a directory that accepts the connection but never answers times out as a transient error', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as { port: number };
      const c = connector({ url: `ldap://127.0.0.1:${port}`, timeoutMs: 300 });
      const err = await c.inspect(freshIdentity()).then(() => null, (e: unknown) => e);
      expect(err).not.toBeInstanceOf(ConnectorRefusal);
      expect(err).toMatchObject({ transient: true, message: expect.stringMatching(/timed out/i) });
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
