/**
 * SCIM 2.0 service providers (RFC 7643/7644): SaaS applications that expose a SCIM endpoint (the endpoint Okta or
 * Entra ID provisioning would push to; here the gateway plays that client role), or the local SCIMMY provider in
 * src/simulators/scim-server.ts. Identity = User `userName`; grant = direct membership of a Group.
 *
 * LEAST PRIVILEGE: a bearer token that may read and write Users (create, PATCH `active`, DELETE) and read Groups and
 * change only their `members`. It needs no right to create, rename or delete groups, no /Bulk, no passwords. On the
 * local provider that is exactly the scopes `users:read users:write groups:read groups:members`. Many SaaS issue one
 * all-powerful SCIM token that cannot be narrowed; where a provider scopes tokens, grant exactly these.
 *
 * The token lives in a Secret and is added per request, so neither the connector nor an axios error can print it;
 * errors are rebuilt from status, scimType and the provider's `detail`, never from axios' error (whose config holds
 * the header).
 */
import http from 'node:http';
import https from 'node:https';
import axios, { type AxiosInstance, type AxiosResponse, type Method } from 'axios';
import { z } from 'zod';
import type { IdentityRef } from '../../actions/identity-action';
import { absent, assertValidIdentity, type ChangeOutcome, type Connector, type DiscoveredIdentity, type ObservedAccount, type ProvisionOutcome } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import { Secret } from '../secret';
import { eq, memberPath } from './scim-filter';
import { grantFor, groupOfGrant, ScimGrammar } from './scim-grammar';

export interface ScimConnectorOptions {
  name: string;
  /** Up to and including the version prefix, e.g. https://example.okta.com/scim/v2 */
  baseUrl: string;
  token: string;
  protectedAccounts: string[];
  /** `count` asked for per page; providers may answer with fewer (they cap it), which paging follows. */
  pageSize?: number;
  timeoutMs?: number;
}

const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
const PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
/**
 * Failures without an answer that retrying cannot mend (a certificate the gateway does not trust, a malformed URL).
 * Every other one (refused, reset, timed out, DNS) is transient.
 */
const PERMANENT_CODES = new Set([
  'ERR_INVALID_URL', 'ERR_BAD_OPTION', 'ERR_BAD_OPTION_VALUE', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);
/** Beyond this many pages discovery stops rather than loop on a provider that never ends its list. */
const MAX_PAGES = 10_000;

const userSchema = z
  .object({
    id: z.string().min(1),
    userName: z.string(),
    active: z.boolean().optional(),
    groups: z.array(z.object({ value: z.string().min(1), display: z.string().optional(), type: z.string().optional() }).passthrough()).optional(),
    meta: z.object({ version: z.string().optional() }).passthrough().optional(),
  })
  .passthrough();
const groupSchema = z
  .object({ id: z.string().min(1), displayName: z.string(), meta: z.object({ version: z.string().optional() }).passthrough().optional() })
  .passthrough();
const listSchema = <T extends z.ZodTypeAny>(item: T) =>
  z.object({ totalResults: z.number().int().min(0), Resources: z.array(item).default([]) }).passthrough();
const errorSchema = z.object({ detail: z.string().optional(), scimType: z.string().optional() }).passthrough();

type ScimUser = z.infer<typeof userSchema>;
type ScimGroup = z.infer<typeof groupSchema>;
interface Membership {
  id: string;
  displayName: string;
}

/** A provider's own answer to a refused request, kept as the `cause` of the connector's error. */
export class ScimProtocolError extends Error {
  constructor(
    readonly status: number,
    readonly scimType: string | undefined,
    detail: string,
  ) {
    super(detail);
    this.name = 'ScimProtocolError';
  }
}

/** A transient failure: retried by Temporal. `retryAfterMs` carries a 429/503 Retry-After when the provider sent one. */
export type TransientScimError = Error & { transient: true; status?: number; retryAfterMs?: number };

/**
 * Classifies a provider's non-2xx answer: 5xx and 429 are transient, every other status is the provider's refusal.
 * Pure, so the mapping is testable for statuses a healthy provider will not produce on demand.
 */
export function scimFailure(
  connector: string,
  request: string,
  status: number,
  body: unknown,
  headers: Record<string, unknown> = {},
): ConnectorRefusal | TransientScimError {
  const parsed = errorSchema.safeParse(body);
  const detail = (parsed.success ? parsed.data.detail : undefined) ?? `HTTP ${status}`;
  const scimType = parsed.success ? parsed.data.scimType : undefined;
  const cause = new ScimProtocolError(status, scimType, detail);
  const text = `${connector}: ${request} answered ${status}${scimType ? ` (${scimType})` : ''}: ${detail}`;
  if (status >= 500 || status === 429) {
    const retryAfterMs = retryAfter(headers['retry-after']);
    return Object.assign(new Error(text, { cause }), { transient: true as const, status, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
  }
  return new ConnectorRefusal(FailureType.TargetRefused, text, { cause });
}

function retryAfter(header: unknown): number | undefined {
  if (typeof header !== 'string' || header.trim() === '') return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

const statusOf = (err: unknown): number | undefined => (err instanceof ConnectorRefusal && err.cause instanceof ScimProtocolError ? err.cause.status : undefined);

export class ScimConnector implements Connector {
  readonly grammar: ScimGrammar;
  private readonly http: AxiosInstance;
  private readonly token: Secret;
  private readonly protectedAccounts: Set<string>;
  private readonly pageSize: number;
  private readonly agents = { httpAgent: new http.Agent({ keepAlive: true }), httpsAgent: new https.Agent({ keepAlive: true }) };
  private me?: Promise<string | null>;

  constructor(readonly name: string, opts: ScimConnectorOptions) {
    this.protectedAccounts = new Set(opts.protectedAccounts.map((a) => a.toLowerCase()));
    this.grammar = new ScimGrammar({ protectedAccounts: opts.protectedAccounts });
    this.pageSize = opts.pageSize ?? 100;
    this.token = new Secret(opts.token);
    this.http = axios.create({
      baseURL: opts.baseUrl.replace(/\/+$/, ''),
      timeout: opts.timeoutMs ?? 10_000,
      // A redirect would carry the token to wherever it points; SCIM has no need to follow one.
      maxRedirects: 0,
      validateStatus: () => true,
      ...this.agents,
      headers: { Accept: 'application/scim+json, application/json' },
    });
  }

  async inspect(identity: IdentityRef): Promise<ObservedAccount> {
    const userName = await this.account(identity);
    const user = await this.findUser(userName);
    if (!user) return { exists: false, grants: [] };
    const memberships = await this.membershipsOf(user);
    return {
      exists: true,
      locked: user.active === false,
      grants: [...new Set(memberships.map((m) => grantFor(m.displayName)))].sort(),
      attributes: { scimId: user.id, etag: user.meta?.version ?? null },
    };
  }

  async provision(identity: IdentityRef, grants: string[]): Promise<ProvisionOutcome> {
    const userName = await this.account(identity);
    const wanted = grants.map((g) => this.checkedGrant(g));
    // Every group is resolved before anything is written: a missing group refuses the joiner without leaving a user.
    const groups: ScimGroup[] = [];
    for (const name of wanted) {
      const group = await this.findGroup(name);
      if (!group) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: no group with displayName '${name}' exists in the SCIM provider`);
      groups.push(group);
    }
    let user = await this.findUser(userName);
    let created = false;
    if (!user) {
      const res = await this.call('POST', '/Users', { body: { schemas: [USER_SCHEMA], userName, active: true }, allow: [409] });
      if (res.status === 409) {
        // Created meanwhile by someone else, or a name that differs only in case: adopt only an exact match.
        user = await this.findUser(userName);
        if (!user) throw scimFailure(this.name, 'POST /Users', res.status, res.data);
      } else {
        user = this.parse(userSchema, res.data, 'POST /Users');
        created = true;
      }
    }
    try {
      const held = new Set((await this.membershipsOf(user)).map((m) => m.id));
      let added = 0;
      for (const group of groups) {
        if (held.has(group.id)) continue;
        await this.call('PATCH', `/Groups/${encodeURIComponent(group.id)}`, {
          body: { schemas: [PATCH_SCHEMA], Operations: [{ op: 'add', path: 'members', value: [{ value: user.id }] }] },
        });
        added++;
      }
      const state = user.active === false ? ' (the user is inactive and stays so: re-enabling is not a joiner step)' : '';
      return { created, detail: `${created ? 'created' : 'found existing'} user '${userName}'${state}, added to ${added} of ${groups.length} group(s)` };
    } catch (err) {
      // All or nothing for a user this call created, whatever failed: a membership refused, or a 5xx/timeout after
      // which Temporal retries. Left in place, the retry would find the user and report `created: false`, and the
      // joiner's expiry would then keep an account the gateway made. If the undo fails too (the provider is down),
      // the retry still finds it: that case is named in the README.
      if (created) await this.call('DELETE', `/Users/${encodeURIComponent(user.id)}`, { allow: [404] }).catch(() => undefined);
      throw err;
    }
  }

  async remove(identity: IdentityRef): Promise<ChangeOutcome> {
    const userName = await this.account(identity);
    const user = await this.findUser(userName);
    if (!user) return absent(`user '${userName}'`);
    return this.deleteUser(userName, user);
  }

  async disable(identity: IdentityRef): Promise<ChangeOutcome> {
    const userName = await this.account(identity);
    const user = await this.findUser(userName);
    if (!user) return absent(`user '${userName}'`);
    const memberships = await this.membershipsOf(user);
    if (user.active === false && memberships.length === 0) {
      return { changed: false, detail: `user '${userName}' was already inactive with no group memberships` };
    }
    // Deactivate first (the SCIM deprovisioning norm): the provider ends sign-in before access is taken apart.
    let deactivated = false;
    if (user.active !== false) {
      deactivated = await this.writeUser(userName, user, async (current) => {
        if (current.active === false) return false;
        await this.call('PATCH', `/Users/${encodeURIComponent(current.id)}`, {
          body: { schemas: [PATCH_SCHEMA], Operations: [{ op: 'replace', path: 'active', value: false }] },
          ifMatch: current.meta?.version,
        });
        return true;
      });
    }
    for (const m of memberships) await this.removeMember(m.id, user.id);
    return {
      changed: true,
      detail: `${deactivated ? 'set active=false' : 'was already inactive'}, removed from ${memberships.length} group(s); '${userName}' kept`,
    };
  }

  async ungrant(identity: IdentityRef, grants: string[]): Promise<ChangeOutcome> {
    const userName = await this.account(identity);
    const names = grants.map((g) => this.checkedGrant(g));
    const user = await this.findUser(userName);
    if (!user) return absent(`user '${userName}'`);
    const memberships = await this.membershipsOf(user);
    let removed = 0;
    for (const name of names) {
      const m = memberships.find((x) => x.displayName === name);
      if (!m) continue;
      await this.removeMember(m.id, user.id);
      removed++;
    }
    return { changed: removed > 0, detail: `removed '${userName}' from ${removed} of ${names.length} group(s)` };
  }

  async discover(): Promise<DiscoveredIdentity[]> {
    const own = await this.ownUserName();
    const users = await this.listAll('/Users', userSchema, { attributes: 'userName,active' });
    return users.map((u) => {
      const isProtected = this.protectedAccounts.has(u.userName.toLowerCase()) || (own !== null && own.toLowerCase() === u.userName.toLowerCase());
      return { name: u.userName, ...(u.active === false ? { locked: true } : {}), ...(isProtected ? { protected: true } : {}) };
    });
  }

  async close(): Promise<void> {
    this.agents.httpAgent.destroy();
    this.agents.httpsAgent.destroy();
  }

  private async deleteUser(userName: string, user: ScimUser): Promise<ChangeOutcome> {
    let gone = false;
    const deleted = await this.writeUser(userName, user, async (current) => {
      const res = await this.call('DELETE', `/Users/${encodeURIComponent(current.id)}`, { ifMatch: current.meta?.version, allow: [404] });
      gone = res.status === 404;
      return !gone;
    });
    if (!deleted) return { changed: false, detail: `user '${userName}' disappeared before it was deleted` };
    return { changed: true, detail: `deleted user '${userName}'; the provider drops its group memberships` };
  }

  /**
   * Runs a write on a User with If-Match set to the version just read. On 412 (changed since) it reads again and
   * retries once; the write decides from the fresh copy whether anything is still to do. A second 412 is refused.
   */
  private async writeUser(userName: string, user: ScimUser, write: (current: ScimUser) => Promise<boolean>): Promise<boolean> {
    try {
      return await write(user);
    } catch (err) {
      if (statusOf(err) !== 412) throw err;
      const fresh = await this.findUser(userName);
      if (!fresh || fresh.id !== user.id) return false;
      return write(fresh);
    }
  }

  /**
   * Member changes go without If-Match: an add or a `members[value eq "…"]` remove touches only this user's entry and
   * commutes with other members' changes, while a busy group's version moves all the time.
   */
  private async removeMember(groupId: string, userId: string): Promise<void> {
    const res = await this.call('PATCH', `/Groups/${encodeURIComponent(groupId)}`, {
      body: { schemas: [PATCH_SCHEMA], Operations: [{ op: 'remove', path: memberPath(userId) }] },
      allow: [400],
    });
    // RFC 7644 §3.5.2.2: a remove whose filter matches nothing may be answered noTarget; the member is gone either way.
    if (res.status === 400 && errorSchema.safeParse(res.data).data?.scimType !== 'noTarget') {
      throw scimFailure(this.name, `PATCH /Groups/${groupId}`, res.status, res.data);
    }
  }

  private async findUser(userName: string): Promise<ScimUser | null> {
    const res = await this.call('GET', '/Users', { params: { filter: eq('userName', userName) } });
    const list = this.parse(listSchema(userSchema), res.data, 'GET /Users');
    // userName is caseExact=false, so a provider may return case variants: only the exact name is this identity.
    const exact = list.Resources.filter((u) => u.userName === userName);
    if (exact.length > 1) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: ${exact.length} users are named '${userName}'`);
    return exact[0] ?? null;
  }

  private async findGroup(displayName: string): Promise<ScimGroup | null> {
    const res = await this.call('GET', '/Groups', { params: { filter: eq('displayName', displayName), excludedAttributes: 'members' } });
    const exact = this.parse(listSchema(groupSchema), res.data, 'GET /Groups').Resources.filter((g) => g.displayName === displayName);
    if (exact.length > 1) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: ${exact.length} groups are named '${displayName}'`);
    return exact[0] ?? null;
  }

  /** The user's groups: from its read-only `groups` attribute when the provider fills it, else by asking Groups. */
  private async membershipsOf(user: ScimUser): Promise<Membership[]> {
    if (user.groups && user.groups.every((g) => g.display !== undefined)) {
      return user.groups.map((g) => ({ id: g.value, displayName: g.display ?? '' }));
    }
    const groups = await this.listAll('/Groups', groupSchema, { filter: eq('members.value', user.id), excludedAttributes: 'members' });
    return groups.map((g) => ({ id: g.id, displayName: g.displayName }));
  }

  /** Pages through a list by startIndex/count, following however many the provider actually returns per page. */
  private async listAll<T extends z.ZodTypeAny>(path: string, item: T, params: Record<string, string>): Promise<z.infer<T>[]> {
    const out: z.infer<T>[] = [];
    const seen = new Set<string>();
    let startIndex = 1;
    for (let page = 0; page < MAX_PAGES; page++) {
      const res = await this.call('GET', path, { params: { ...params, startIndex, count: this.pageSize } });
      const list = this.parse(listSchema(item), res.data, `GET ${path}`);
      let fresh = 0;
      for (const r of list.Resources as { id: string }[]) {
        if (seen.has(r.id)) continue;
        seen.add(r.id);
        out.push(r);
        fresh++;
      }
      if (list.Resources.length === 0 || startIndex + list.Resources.length > list.totalResults) return out;
      if (fresh === 0) {
        throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: GET ${path} returned the same page for startIndex=${startIndex}: the provider ignores paging`);
      }
      startIndex += list.Resources.length;
    }
    throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: GET ${path} did not end within ${MAX_PAGES} pages`);
  }

  /**
   * The userName the token itself acts as (RFC 7644 §3.11 /Me), protected like a configured one. Providers without
   * /Me (404/501, or 403) simply add nothing; a transient failure is not cached.
   */
  private ownUserName(): Promise<string | null> {
    this.me ??= this.call('GET', '/Me', { allow: [403, 404, 501] }).then(
      (res) => (res.status === 200 ? (userSchema.safeParse(res.data).data?.userName ?? null) : null),
      (err: unknown) => {
        this.me = undefined;
        throw err;
      },
    );
    return this.me;
  }

  private async account(identity: IdentityRef): Promise<string> {
    assertValidIdentity(this.grammar, identity);
    const own = await this.ownUserName();
    if (own !== null && own.toLowerCase() === identity.name.toLowerCase()) {
      throw new ConnectorRefusal(FailureType.InvalidIdentity, `identity.name: '${identity.name}' is the gateway's own SCIM user and cannot be changed by a ticket`);
    }
    return identity.name;
  }

  /** The group named by a grant; anything the grammar would refuse is refused here again, before any request. */
  private checkedGrant(text: string): string {
    const parsed = this.grammar.parseGrant(text);
    if ('problem' in parsed) throw new ConnectorRefusal(FailureType.InvalidIdentity, `grant '${text.slice(0, 80)}': ${parsed.problem}`);
    return groupOfGrant(parsed.canonical[0] ?? '');
  }

  private parse<T extends z.ZodTypeAny>(schema: T, data: unknown, request: string): z.infer<T> {
    const parsed = schema.safeParse(data);
    if (!parsed.success) {
      throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: ${request} returned something that is not a SCIM response`, {
        cause: new Error(parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')),
      });
    }
    return parsed.data;
  }

  private async call(
    method: Method,
    path: string,
    opts: { params?: Record<string, string | number>; body?: unknown; ifMatch?: string; allow?: number[] } = {},
  ): Promise<AxiosResponse> {
    const request = `${method} ${path}`;
    let res: AxiosResponse;
    try {
      res = await this.http.request({
        method,
        url: path,
        params: opts.params,
        data: opts.body,
        headers: {
          Authorization: `Bearer ${this.token.reveal()}`,
          ...(opts.body !== undefined ? { 'Content-Type': 'application/scim+json' } : {}),
          ...(opts.ifMatch ? { 'If-Match': opts.ifMatch } : {}),
        },
      });
    } catch (raw) {
      // Never rethrow axios' error: its config carries the Authorization header.
      const code = (raw as { code?: string }).code ?? 'ERR_UNKNOWN';
      const cause = Object.assign(new Error(code), { code });
      if (PERMANENT_CODES.has(code)) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: ${request} failed (${code})`, { cause });
      throw Object.assign(new Error(`${this.name}: ${request} could not reach the SCIM provider (${code})`, { cause }), { transient: true as const });
    }
    if ((res.status >= 200 && res.status < 300) || opts.allow?.includes(res.status)) return res;
    throw scimFailure(this.name, request, res.status, res.data, res.headers as Record<string, unknown>);
  }
}

export function createScimConnector(opts: ScimConnectorOptions): ScimConnector {
  return new ScimConnector(opts.name, opts);
}
