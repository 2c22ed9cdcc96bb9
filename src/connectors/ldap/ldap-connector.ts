/**
 * LDAP directory accounts (OpenLDAP slapd): people and service accounts as inetOrgPerson entries `uid=<name>` under
 * the people or services OU, grants as groupOfNames `member` values, disable as a ppolicy lock, rotation through the
 * Password Modify extended operation (RFC 3062) so the server hashes the new password itself.
 *
 * LEAST PRIVILEGE. The connector binds as its own entry (e.g. uid=changegate-connector,ou=services,<base>), never as
 * the rootdn, and needs exactly these slapd ACLs (slapd.conf.in in this folder holds them in order; first match wins):
 *   - its own entry: `by self read` only, so it cannot unlock, re-password, move or delete itself;
 *   - `attrs=children` of the people and services OUs: write (add and delete entries there, nowhere else);
 *   - entries below those OUs: write (their attributes, pwdAccountLockedTime included), and userPassword: `=w`
 *     (write, never read: it sets passwords, it cannot read hashes);
 *   - `member` of groups directly under the groups OU: write, but only for values below the people or services OU
 *     and never its own DN (`val.children=` / `val.exact=` rules), and not at all on groups tagged
 *     `businessCategory: privileged`;
 *   - read on everything else in the database; no access to cn=config.
 * The server must load the ppolicy overlay with a default policy that has `pwdLockout: TRUE` (without it slapd
 * ignores pwdAccountLockedTime), and should set `ppolicy_hash_cleartext` so no client can store a cleartext password.
 */
import { AndFilter, Attribute, BerWriter, Change, Client, EqualityFilter, type Entry, type Filter, PresenceFilter, ResultCodeError } from 'ldapts';
import type { IdentityRef } from '../../actions/identity-action';
import { absent, assertValidIdentity, type ChangeOutcome, type Connector, type CredentialRotator, type DiscoveredIdentity, type ObservedAccount, type ProvisionOutcome, type RotationResult } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import { Secret } from '../secret';
import { escapeDnValue, firstRdn, grantOfGroup, groupOfGrant, LdapGrammar, sameDn } from './ldap-grammar';

export interface LdapConnectorOptions {
  name: string;
  /** ldap:// or ldaps:// URL, scheme, host and port only. */
  url: string;
  baseDn: string;
  bindDn: string;
  password: string;
  /** RDNs below baseDn, e.g. `ou=people`. */
  peopleOu: string;
  servicesOu: string;
  groupsOu: string;
  /** uids never touched; the connector's own is added by the caller. */
  protectedAccounts: string[];
  allowedGroups?: string[];
  timeoutMs?: number;
  /** Attributes discovery reads for the instance's ownership rules (policy.ownership), and no others. */
  ownershipAttributes?: string[];
}

/**
 * ppolicy's "locked by an administrator until unlocked" value. Any other pwdAccountLockedTime is a lockout after
 * failed binds, which expires with the policy's pwdLockoutDuration: it does not count as locked (disabled) here.
 */
const LOCKED_FOREVER = '000001010000Z';
const PASSWORD_MODIFY_OID = '1.3.6.1.4.1.4203.1.11.1';

/** LDAP result codes worth retrying: the server is overloaded, shutting down or ran out of time. */
const TRANSIENT_RESULTS = new Set([3 /* timeLimitExceeded */, 51 /* busy */, 52 /* unavailable */]);
/** ldapts's own code for a request whose connection ended before any result came back. */
const NO_RESULT = 248;
const RC = {
  noSuchAttribute: 16,
  typeOrValueExists: 20,
  noSuchObject: 32,
  invalidCredentials: 49,
  objectClassViolation: 65,
  alreadyExists: 68,
} as const;

/** RFC 4511 §4.1.9 names of the result codes a directory answers write and search requests with. */
const RESULT_NAMES: Record<number, string> = {
  1: 'operationsError', 2: 'protocolError', 3: 'timeLimitExceeded', 4: 'sizeLimitExceeded', 7: 'authMethodNotSupported',
  8: 'strongerAuthRequired', 11: 'adminLimitExceeded', 12: 'unavailableCriticalExtension', 13: 'confidentialityRequired',
  16: 'noSuchAttribute', 17: 'undefinedAttributeType', 18: 'inappropriateMatching', 19: 'constraintViolation',
  20: 'attributeOrValueExists', 21: 'invalidAttributeSyntax', 32: 'noSuchObject', 34: 'invalidDNSyntax',
  48: 'inappropriateAuthentication', 49: 'invalidCredentials', 50: 'insufficientAccessRights', 51: 'busy', 52: 'unavailable',
  53: 'unwillingToPerform', 54: 'loopDetect', 64: 'namingViolation', 65: 'objectClassViolation', 66: 'notAllowedOnNonLeaf',
  67: 'notAllowedOnRDN', 68: 'entryAlreadyExists', 69: 'objectClassModsProhibited', 80: 'other',
};

const ENTRY_ATTRIBUTES = ['objectClass', 'uid', 'pwdAccountLockedTime', 'memberOf'];

/** A fault worth retrying (Temporal retries any error that is not a ConnectorRefusal). */
export class TransientLdapError extends Error {
  readonly transient = true;
}

/**
 * slapd often sends no diagnostic text (an ACL denial never explains itself) and ldapts then leaves the message
 * blank: name the result the directory gave, so an error kept as `cause` still says what the directory said.
 */
function nameResult<E>(err: E): E {
  if (err instanceof ResultCodeError && err.message.startsWith(' Code: ')) err.message = `${RESULT_NAMES[err.code] ?? 'LDAP result'}${err.message}`;
  return err;
}

function resultCode(err: unknown): number | undefined {
  return err instanceof ResultCodeError ? err.code : undefined;
}

function values(entry: Entry, attr: string): string[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === attr.toLowerCase());
  const v = key === undefined ? undefined : entry[key];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : x));
}

export class LdapConnector implements Connector, CredentialRotator {
  readonly grammar: LdapGrammar;
  private readonly client: Client;
  private readonly protectedAccounts: Set<string>;
  private readonly bases: { person: string; service_account: string; groups: string };
  private binding: Promise<void> | undefined;

  constructor(readonly name: string, private readonly opts: LdapConnectorOptions) {
    this.protectedAccounts = new Set(opts.protectedAccounts.map((a) => a.toLowerCase()));
    this.grammar = new LdapGrammar({ protectedAccounts: opts.protectedAccounts, allowedGroups: opts.allowedGroups });
    this.bases = {
      person: `${opts.peopleOu},${opts.baseDn}`,
      service_account: `${opts.servicesOu},${opts.baseDn}`,
      groups: `${opts.groupsOu},${opts.baseDn}`,
    };
    this.client = this.newClient();
  }

  async inspect(identity: IdentityRef): Promise<ObservedAccount> {
    const dn = this.dnOf(identity);
    const entry = await this.entry(dn);
    if (!entry) {
      await this.refuseIfElsewhere(identity, dn);
      return { exists: false, grants: [] };
    }
    const groups = await this.memberships(dn);
    const lockedAt = values(entry, 'pwdAccountLockedTime');
    return {
      exists: true,
      locked: lockedAt.includes(LOCKED_FOREVER),
      grants: groups.map((g) => g.grant).sort(),
      attributes: {
        dn: entry.dn,
        objectClass: values(entry, 'objectClass').sort(),
        memberOf: values(entry, 'memberOf').sort(),
        pwdAccountLockedTime: lockedAt[0] ?? null,
      },
    };
  }

  /**
   * The manager of the person whose uid is `user`: the `manager` attribute of their entry (a DN), as that entry's uid.
   * Null when the person is not in the directory or names no manager. For certification's reviewer rule `manager`.
   */
  async managerOf(user: string): Promise<string | null> {
    const [person] = await this.search(this.bases.person, { scope: 'one', filter: new EqualityFilter({ attribute: 'uid', value: user }), attributes: ['manager'] });
    const managerDn = person ? values(person, 'manager')[0] : undefined;
    if (!managerDn) return null;
    const rdn = firstRdn(managerDn);
    if (rdn?.attr === 'uid') return rdn.value;
    const [manager] = await this.search(managerDn, { scope: 'base', filter: new PresenceFilter({ attribute: 'objectClass' }), attributes: ['uid'] });
    return manager ? (values(manager, 'uid')[0] ?? null) : null;
  }

  async provision(identity: IdentityRef, grants: string[]): Promise<ProvisionOutcome> {
    const dn = this.dnOf(identity);
    const wanted = [...new Set(grants.flatMap((g) => this.checkedGrant(g)))];
    const before = await this.inspect(identity);
    const missing = wanted.filter((g) => !before.grants.includes(g));
    // Every group must exist before the account is created, so a bad grant leaves nothing behind.
    for (const grant of missing) await this.entry(this.groupDn(grant), { refuseMissing: true });
    let created = false;
    if (!before.exists) {
      created = await this.createEntry(identity, dn);
    }
    try {
      for (const grant of missing) {
        await this.call(`add ${dn} to ${this.groupDn(grant)}`, () =>
          this.client.modify(this.groupDn(grant), new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [dn] }) })),
        { ok: [RC.typeOrValueExists] });
      }
    } catch (err) {
      // All or nothing for an account this call created: a refused grant must not leave a half-provisioned entry.
      if (created) await this.undoCreate(dn).catch(() => undefined);
      throw err;
    }
    const lockNote = before.locked ? '; the account is locked (disabled) and stays so' : '';
    return {
      created,
      detail: `${created ? 'created' : 'found existing'} ${dn}, added to ${missing.length} of ${wanted.length} group(s)${lockNote}`,
    };
  }

  async disable(identity: IdentityRef): Promise<ChangeOutcome> {
    const dn = this.dnOf(identity);
    const before = await this.inspect(identity);
    if (!before.exists) return absent(dn);
    if (before.locked && before.grants.length === 0) return { changed: false, detail: `${dn} was already locked with no group memberships` };
    // Lock first, so the account cannot bind while its memberships are being removed.
    if (!before.locked) await this.lock(dn);
    const removed = await this.leaveAllGroups(dn);
    return { changed: true, detail: `locked ${dn} (pwdAccountLockedTime ${LOCKED_FOREVER}), removed it from ${removed} group(s); entry kept` };
  }

  async remove(identity: IdentityRef): Promise<ChangeOutcome> {
    const dn = this.dnOf(identity);
    const before = await this.inspect(identity);
    if (!before.exists) return absent(dn);
    // Memberships go first: deleting the entry leaves its DN dangling in every group's member list otherwise.
    const removed = await this.leaveAllGroups(dn);
    await this.call(`delete ${dn}`, () => this.client.del(dn), { ok: [RC.noSuchObject] });
    return { changed: true, detail: `removed ${dn} from ${removed} group(s) and deleted it` };
  }

  async ungrant(identity: IdentityRef, grants: string[]): Promise<ChangeOutcome> {
    const dn = this.dnOf(identity);
    const expiring = [...new Set(grants.flatMap((g) => this.checkedGrant(g)))];
    const before = await this.inspect(identity);
    if (!before.exists) return absent(dn);
    let removed = 0;
    for (const grant of expiring) {
      if (!before.grants.includes(grant)) continue;
      if (await this.leaveGroup(dn, this.groupDn(grant))) removed++;
    }
    return { changed: removed > 0, detail: `removed ${dn} from ${removed} of ${expiring.length} group(s)` };
  }

  async discover(): Promise<DiscoveredIdentity[]> {
    const out: DiscoveredIdentity[] = [];
    for (const type of ['person', 'service_account'] as const) {
      const ruleAttributes = this.opts.ownershipAttributes ?? [];
      const entries = await this.search(this.bases[type], { scope: 'sub', filter: new PresenceFilter({ attribute: 'uid' }), attributes: ['uid', 'pwdAccountLockedTime', ...ruleAttributes] });
      for (const entry of entries) {
        const rdn = firstRdn(entry.dn);
        const name = rdn?.attr === 'uid' ? rdn.value : (values(entry, 'uid')[0] ?? '');
        const isProtected = sameDn(entry.dn, this.opts.bindDn) || this.protectedAccounts.has(name.toLowerCase());
        const locked = values(entry, 'pwdAccountLockedTime').includes(LOCKED_FOREVER);
        const attributes = Object.fromEntries(ruleAttributes.map((a) => [a, values(entry, a)] as const).filter(([, v]) => v.length > 0));
        out.push({
          name, type, ...(locked ? { locked } : {}), ...(isProtected ? { protected: true } : {}),
          ...(Object.keys(attributes).length > 0 ? { attributes } : {}),
        });
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  async rotate(identity: IdentityRef): Promise<RotationResult> {
    const dn = this.dnOf(identity);
    const before = await this.inspect(identity);
    if (!before.exists) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: ${dn} does not exist, so it has no password to rotate`);
    const secret = Secret.generate();
    // RFC 3062 PasswdModifyRequestValue ::= SEQUENCE { userIdentity [0], oldPasswd [1] (omitted), newPasswd [2] }.
    // The server hashes the value (password-hash) before storing it; a replace of userPassword would store it as sent.
    const request = new BerWriter();
    request.startSequence();
    request.writeString(dn, 0x80);
    request.writeString(secret.reveal(), 0x82);
    request.endSequence();
    await this.call(`set a new password for ${dn}`, () => this.client.exop(PASSWORD_MODIFY_OID, request.buffer));
    const lockNote = before.locked ? '; the account is locked, so it cannot bind until unlocked' : '';
    return { secret, detail: `set a new password for ${dn} (Password Modify extended operation)${lockNote}` };
  }

  async authenticates(identity: IdentityRef, secret: Secret): Promise<boolean> {
    const dn = this.dnOf(identity);
    const probe = this.newClient();
    try {
      await probe.bind(dn, secret.reveal());
      return true;
    } catch (err) {
      // slapd answers invalidCredentials for a wrong password, a missing password and a ppolicy-locked account alike.
      if (resultCode(err) === RC.invalidCredentials) return false;
      throw classifyLdapError(this.name, err, `bind as ${dn}`);
    } finally {
      await probe.unbind().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.client.unbind().catch(() => undefined);
  }

  private newClient(): Client {
    const timeout = this.opts.timeoutMs ?? 10_000;
    // autoRebind: a connection the server dropped comes back bound, so an operation never runs anonymously.
    return new Client({ url: this.opts.url, timeout, connectTimeout: Math.min(timeout, 5_000), autoRebind: true });
  }

  private dnOf(identity: IdentityRef): string {
    assertValidIdentity(this.grammar, identity);
    return `uid=${escapeDnValue(identity.name)},${this.bases[identity.type]}`;
  }

  private checkedGrant(text: string): string[] {
    const parsed = this.grammar.parseGrant(text);
    if ('problem' in parsed) throw new ConnectorRefusal(FailureType.InvalidIdentity, `grant '${text.slice(0, 80)}': ${parsed.problem}`);
    return parsed.canonical;
  }

  private groupDn(canonical: string): string {
    return `cn=${escapeDnValue(groupOfGrant(canonical))},${this.bases.groups}`;
  }

  /** The entry at `dn`, or undefined when there is none (or, with refuseMissing, a refusal naming it). */
  private async entry(dn: string, opts: { refuseMissing?: boolean } = {}): Promise<Entry | undefined> {
    try {
      const [entry] = await this.search(dn, { scope: 'base', filter: new PresenceFilter({ attribute: 'objectClass' }), attributes: ENTRY_ATTRIBUTES }, { rethrow: true });
      return entry;
    } catch (err) {
      if (resultCode(err) !== RC.noSuchObject) throw classifyLdapError(this.name, err, `read ${dn}`);
      if (opts.refuseMissing) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: ${dn} does not exist`, { cause: nameResult(err) });
      return undefined;
    }
  }

  /**
   * An identity's uid living under another DN (the other OU, a sub-OU) must not read as "absent": a leaver would
   * then be recorded as done while the account still works.
   */
  private async refuseIfElsewhere(identity: IdentityRef, dn: string): Promise<void> {
    const found = await this.search(this.opts.baseDn, { scope: 'sub', filter: new EqualityFilter({ attribute: 'uid', value: identity.name }), attributes: ['1.1'] });
    const other = found.find((e) => !sameDn(e.dn, dn));
    if (other) {
      throw new ConnectorRefusal(
        FailureType.TargetRefused,
        `${this.name}: uid '${identity.name}' is ${other.dn}, not ${dn}; a ${identity.type} is managed only at the latter`,
      );
    }
  }

  /** Groups directly under the groups OU that list `dn` as a member. */
  private async memberships(dn: string): Promise<{ dn: string; grant: string }[]> {
    const filter = new AndFilter({ filters: [new EqualityFilter({ attribute: 'objectClass', value: 'groupOfNames' }), new EqualityFilter({ attribute: 'member', value: dn })] });
    const groups = await this.search(this.bases.groups, { scope: 'one', filter, attributes: ['cn'] });
    return groups.map((g) => ({ dn: g.dn, grant: grantOfGroup(firstRdn(g.dn)?.value ?? g.dn) }));
  }

  private async createEntry(identity: IdentityRef, dn: string): Promise<boolean> {
    // No userPassword: the account cannot bind until a rotation sets one and delivers it to its owner.
    const attributes = {
      objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson'],
      uid: identity.name,
      cn: identity.name,
      sn: identity.name,
      employeeType: identity.type,
      description: 'managed by changegate',
    };
    try {
      await this.client.add(dn, attributes);
      return true;
    } catch (err) {
      if (resultCode(err) === RC.alreadyExists) return false; // created concurrently: not ours to clean up
      throw classifyLdapError(this.name, err, `create ${dn}`);
    }
  }

  private async undoCreate(dn: string): Promise<void> {
    await this.leaveAllGroups(dn);
    await this.call(`delete ${dn}`, () => this.client.del(dn), { ok: [RC.noSuchObject] });
  }

  private async lock(dn: string): Promise<void> {
    await this.call(`lock ${dn}`, () =>
      this.client.modify(dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'pwdAccountLockedTime', values: [LOCKED_FOREVER] }) })),
    );
  }

  private async leaveAllGroups(dn: string): Promise<number> {
    let removed = 0;
    for (const group of await this.memberships(dn)) if (await this.leaveGroup(dn, group.dn)) removed++;
    return removed;
  }

  /** True when `dn` was a member and is not any more; a group or membership already gone is not an error. */
  private async leaveGroup(dn: string, groupDn: string): Promise<boolean> {
    try {
      await this.bound();
      await this.client.modify(groupDn, new Change({ operation: 'delete', modification: new Attribute({ type: 'member', values: [dn] }) }));
      return true;
    } catch (err) {
      const code = resultCode(err);
      if (code === RC.noSuchAttribute || code === RC.noSuchObject) return false;
      const hint = code === RC.objectClassViolation ? ' (groupOfNames needs at least one member: give the group a placeholder member such as the empty DN)' : '';
      throw classifyLdapError(this.name, err, `remove ${dn} from ${groupDn}${hint}`);
    }
  }

  private async search(base: string, options: { scope: 'base' | 'one' | 'sub'; filter: Filter; attributes: string[] }, opts: { rethrow?: boolean } = {}): Promise<Entry[]> {
    try {
      await this.bound();
      const { searchEntries } = await this.client.search(base, { ...options, derefAliases: 'never', paged: options.scope === 'sub' });
      return searchEntries;
    } catch (err) {
      if (opts.rethrow && resultCode(err) !== undefined) throw err;
      throw classifyLdapError(this.name, err, `search ${base}`);
    }
  }

  /** Runs one write; result codes in `ok` mean the directory is already in the wanted state. */
  private async call(what: string, op: () => Promise<unknown>, opts: { ok?: number[] } = {}): Promise<void> {
    try {
      await this.bound();
      await op();
    } catch (err) {
      const code = resultCode(err);
      if (code !== undefined && opts.ok?.includes(code)) return;
      throw classifyLdapError(this.name, err, what);
    }
  }

  private async bound(): Promise<void> {
    if (this.client.isBound) return;
    this.binding ??= this.client
      .bind(this.opts.bindDn, this.opts.password)
      .catch((err: unknown) => {
        throw classifyLdapError(this.name, err, `bind as ${this.opts.bindDn}`);
      })
      .finally(() => (this.binding = undefined));
    await this.binding;
  }
}

/**
 * Result codes the directory chose are refusals, except overload and time limits; anything without a result code
 * (refused or reset connection, timeout, socket closed) is transient. Messages carry the DN and the server's
 * diagnostic, never a password; the original error stays as `cause`.
 */
export function classifyLdapError(connector: string, err: unknown, what: string): Error {
  if (err instanceof ConnectorRefusal || err instanceof TransientLdapError) return err;
  const code = resultCode(nameResult(err));
  const detail = err instanceof Error ? err.message : String(err);
  const netCode = (err as { code?: unknown }).code;
  const text = `${connector}: ${what}: ${detail} (${code !== undefined ? `LDAP result ${code}` : typeof netCode === 'string' ? netCode : 'no result'})`;
  if (code === undefined || TRANSIENT_RESULTS.has(code) || code === NO_RESULT) return new TransientLdapError(text, { cause: err });
  return new ConnectorRefusal(FailureType.TargetRefused, text, { cause: err });
}

export function createLdapConnector(opts: LdapConnectorOptions): LdapConnector {
  return new LdapConnector(opts.name, opts);
}
