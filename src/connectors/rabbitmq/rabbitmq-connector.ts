/**
 * RabbitMQ users, tags and per-vhost permissions, through the management HTTP API (RabbitMQ 3.10+).
 *
 * Least privilege: the management API lets only `administrator`-tagged users create, change or delete users and
 * permissions, list other users' connections or close them; there is no narrower tag. The gateway's user therefore
 * carries the `administrator` tag and, by policy, NO permission on any vhost (user and permission management needs
 * none), so as configured it holds no right to publish, consume or declare:
 *   rabbitmqctl add_user changegate_connector  (password on stdin)
 *   rabbitmqctl set_user_tags changegate_connector administrator
 * That is a policy, not a boundary: an administrator can grant itself vhost permissions, and make any user an
 * administrator, through the same API. What keeps tickets from doing either is RabbitmqGrammar's allow-list (checked
 * at the API and again here) and the connector's own user being a protected account.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import axios, { type AxiosInstance, type Method } from 'axios';
import type { IdentityRef } from '../../actions/identity-action';
import { absent, assertValidIdentity, type ChangeOutcome, checkedCanonicalGrant, type Connector, type CredentialRotator, type DiscoveredIdentity, type ObservedAccount, type ProvisionOutcome, type RotationResult } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import { Secret } from '../secret';
import { AmqpProtocolError, amqpLogin } from './amqp-login';
import { canonicalRabbitGrant, parseRabbitGrant, type RabbitGrant, RabbitmqGrammar } from './rabbitmq-grammar';

export interface RabbitmqConnectorOptions {
  name: string;
  /** Management API base, e.g. http://127.0.0.1:15672 */
  url: string;
  user: string;
  password: string;
  /** Where `authenticates` tries an AMQP login: the URL's host unless given, port 5672 unless given. */
  amqpHost?: string;
  amqpPort: number;
  protectedAccounts: string[];
}

interface RabbitUser {
  name: string;
  /** Kept only to re-send it unchanged: a PUT without it would clear the password. Never in evidence. */
  password_hash: string;
  hashing_algorithm?: string;
  tags: string[];
}

interface Permission {
  vhost: string;
  configure: string;
  write: string;
  read: string;
}

interface TopicPermission {
  vhost: string;
  exchange: string;
  write: string;
  read: string;
}

/** How long a revoke waits for the broker to drop the user's connections before handing the retry to Temporal. */
const SESSION_DEADLINE_MS = 5_000;

export class RabbitmqConnector implements Connector, CredentialRotator {
  readonly grammar: RabbitmqGrammar;
  private readonly http: AxiosInstance;
  private readonly protectedAccounts: Set<string>;
  private readonly amqp: { host: string; port: number };

  constructor(readonly name: string, opts: RabbitmqConnectorOptions) {
    this.protectedAccounts = new Set(opts.protectedAccounts);
    this.grammar = new RabbitmqGrammar({ protectedAccounts: opts.protectedAccounts });
    const base = new URL(opts.url);
    this.amqp = { host: opts.amqpHost ?? base.hostname, port: opts.amqpPort };
    this.http = axios.create({
      baseURL: `${opts.url.replace(/\/+$/, '')}/api`,
      auth: { username: opts.user, password: opts.password },
      timeout: 10_000,
      maxRedirects: 0,
      headers: { 'content-type': 'application/json' },
      validateStatus: () => true,
    });
  }

  async inspect(identity: IdentityRef): Promise<ObservedAccount> {
    const name = this.account(identity);
    const user = await this.getUser(name);
    if (!user) return { exists: false, grants: [] };
    const [permissions, topics, sessions] = await Promise.all([this.permissionsOf(name), this.topicPermissionsOf(name), this.connectionsOf(name)]);
    const grants = [
      ...permissions.map((p) => canonicalRabbitGrant({ kind: 'permission', ...p })),
      // Reported so a leaver cannot keep them unseen; tickets cannot grant them (yet).
      ...topics.map((t) => `topic vhost=${t.vhost} exchange=${t.exchange} write=${t.write} read=${t.read}`),
      ...user.tags.map((tag) => canonicalRabbitGrant({ kind: 'tag', tag })),
    ];
    return {
      exists: true,
      // RabbitMQ has no disabled flag: a user without a password hash cannot log in with a password.
      locked: user.password_hash === '',
      grants: grants.sort(),
      activeSessions: sessions.length,
      attributes: { tags: user.tags },
    };
  }

  async provision(identity: IdentityRef, grants: string[]): Promise<ProvisionOutcome> {
    const name = this.account(identity);
    const parsed = grants.map((g) => this.checkedGrant(g));
    const permissions = parsed.filter((g) => g.kind === 'permission');
    const vhosts = permissions.map((p) => p.vhost);
    const twice = vhosts.find((v, i) => vhosts.indexOf(v) !== i);
    if (twice !== undefined) throw new ConnectorRefusal(FailureType.InvalidIdentity, `two permission grants for vhost '${twice}': RabbitMQ holds one per user and vhost`);
    const tags = parsed.filter((g) => g.kind === 'tag').map((g) => g.tag);

    const before = await this.getUser(name);
    const created = !before;
    try {
      if (!before) {
        // The generated password is not kept: delivering a credential is a rotation's job.
        const password = Secret.generate();
        await this.request('PUT', ['users', name], { password: password.reveal(), tags }, { secret: password });
      } else if (tags.some((t) => !before.tags.includes(t))) {
        // PUT replaces the whole user: existing tags are merged and the password hash is sent back unchanged.
        await this.putUserKeepingPassword(before, [...new Set([...before.tags, ...tags])]);
      }
      for (const p of permissions) {
        await this.request('PUT', ['permissions', p.vhost, name], { configure: p.configure, write: p.write, read: p.read });
      }
    } catch (err) {
      // Whatever failed (a refused permission, a timeout that may or may not have landed), a user this call set out
      // to create is removed again: a retry then creates it afresh and reports created: true, as it should.
      if (created) await this.request('DELETE', ['users', name], undefined, { allow404: true }).catch(() => undefined);
      throw err;
    }
    return {
      created,
      detail: `${created ? 'created' : 'found existing'} '${name}', set ${permissions.length} vhost permission(s) (each replaces that vhost's previous one), ${tags.length} tag(s)`,
    };
  }

  async disable(identity: IdentityRef): Promise<ChangeOutcome> {
    const name = this.account(identity);
    const before = await this.inspect(identity);
    if (!before.exists) return absent(`user '${name}'`);
    if (before.locked && before.grants.length === 0 && !before.activeSessions) {
      return { changed: false, detail: `user '${name}' already had no password, tags or permissions` };
    }
    // Password and tags first, so nothing logs in again while permissions and connections are removed.
    await this.request('PUT', ['users', name], { password_hash: '', tags: [] });
    for (const p of await this.permissionsOf(name)) await this.request('DELETE', ['permissions', p.vhost, name], undefined, { allow404: true });
    for (const vhost of new Set((await this.topicPermissionsOf(name)).map((t) => t.vhost))) {
      await this.request('DELETE', ['topic-permissions', vhost, name], undefined, { allow404: true });
    }
    const ended = await this.endSessions(name);
    return { changed: true, detail: `removed the password, ${before.grants.length} tag(s)/permission(s), closed ${ended} connection(s); '${name}' kept` };
  }

  async remove(identity: IdentityRef): Promise<ChangeOutcome> {
    const name = this.account(identity);
    const before = await this.inspect(identity);
    if (!before.exists) return absent(`user '${name}'`);
    // Deleting a user does not close its connections: lock, close, then delete.
    await this.request('PUT', ['users', name], { password_hash: '', tags: [] });
    const ended = await this.endSessions(name);
    await this.request('DELETE', ['users', name], undefined, { allow404: true });
    return { changed: true, detail: `removed the password, closed ${ended} connection(s), deleted '${name}' with ${before.grants.length} tag(s)/permission(s)` };
  }

  async ungrant(identity: IdentityRef, grants: string[]): Promise<ChangeOutcome> {
    const name = this.account(identity);
    const parsed = grants.map((g) => this.checkedGrant(g));
    const before = await this.getUser(name);
    if (!before) return absent(`user '${name}'`);
    const held = await this.permissionsOf(name);
    let removed = 0;
    let differing = 0;
    for (const g of parsed) {
      if (g.kind !== 'permission') continue;
      const current = held.find((p) => p.vhost === g.vhost);
      if (!current) continue;
      // Only the permission this grant set is taken back; one changed since then is someone else's and stays.
      if (canonicalRabbitGrant({ kind: 'permission', ...current }) !== canonicalRabbitGrant(g)) {
        differing++;
        continue;
      }
      await this.request('DELETE', ['permissions', g.vhost, name], undefined, { allow404: true });
      removed++;
    }
    const dropTags = new Set(parsed.filter((g) => g.kind === 'tag').map((g) => g.tag));
    const keptTags = before.tags.filter((t) => !dropTags.has(t));
    if (keptTags.length !== before.tags.length) {
      await this.putUserKeepingPassword(before, keptTags);
      removed += before.tags.length - keptTags.length;
    }
    const note = differing > 0 ? `; left ${differing} vhost permission(s) that no longer match the grant` : '';
    return { changed: removed > 0, detail: `took back ${removed} of ${grants.length} grant(s) from '${name}'${note}` };
  }

  async discover(): Promise<DiscoveredIdentity[]> {
    const users = ((await this.request('GET', ['users'])) ?? []) as RabbitUser[];
    return users.map((u) => ({
      name: u.name,
      locked: u.password_hash === '',
      ...(this.protectedAccounts.has(u.name) ? { protected: true } : {}),
    }));
  }

  async rotate(identity: IdentityRef): Promise<RotationResult> {
    const name = this.account(identity);
    const user = await this.getUser(name);
    if (!user) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: user '${name}' does not exist, so it has no password to rotate`);
    // An empty hash is how a disable (a leaver) locks a user: writing a password would quietly let it back in.
    if (user.password_hash === '') {
      throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: user '${name}' is locked (no password), so rotating would re-enable it`);
    }
    const secret = Secret.generate();
    await this.request('PUT', ['users', name], { password: secret.reveal(), tags: user.tags }, { secret });
    return { secret, detail: `set a new password for '${name}' (tags kept); connections already open stay open` };
  }

  async authenticates(identity: IdentityRef, secret: Secret): Promise<boolean> {
    const name = this.account(identity);
    try {
      return await amqpLogin(this.amqp, name, secret.reveal());
    } catch (raw) {
      // Another protocol, another AMQP version, an unexpected method or close code: asking again gets the same answer.
      if (raw instanceof AmqpProtocolError) {
        throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: ${this.amqp.host}:${this.amqp.port} did not answer the login as an AMQP 0-9-1 broker`, { cause: raw });
      }
      const err = raw as { code?: string; message?: string };
      const cause = Object.assign(new Error(String(err.message ?? 'error')), { code: err.code });
      throw Object.assign(new Error(`${this.name}: could not check the credential over AMQP (${err.code ?? 'error'})`, { cause }), { transient: true });
    }
  }

  async close(): Promise<void> {
    // axios keeps no connection pool of its own to close.
  }

  private account(identity: IdentityRef): string {
    assertValidIdentity(this.grammar, identity);
    return identity.name;
  }

  private checkedGrant(text: string): RabbitGrant {
    return checkedCanonicalGrant(text, parseRabbitGrant, canonicalRabbitGrant);
  }

  private async getUser(name: string): Promise<RabbitUser | null> {
    const u = (await this.request('GET', ['users', name], undefined, { allow404: true })) as (Omit<RabbitUser, 'tags'> & { tags: string[] | string }) | null;
    if (!u) return null;
    // 3.9+ reports tags as a list; older brokers as one comma-separated string.
    const tags = Array.isArray(u.tags) ? u.tags : u.tags.split(',').map((t) => t.trim()).filter(Boolean);
    return { ...u, tags };
  }

  private async putUserKeepingPassword(user: RabbitUser, tags: string[]): Promise<void> {
    await this.request('PUT', ['users', user.name], { password_hash: user.password_hash, hashing_algorithm: user.hashing_algorithm, tags });
  }

  private async permissionsOf(name: string): Promise<Permission[]> {
    return ((await this.request('GET', ['users', name, 'permissions'], undefined, { allow404: true })) ?? []) as Permission[];
  }

  private async topicPermissionsOf(name: string): Promise<TopicPermission[]> {
    return ((await this.request('GET', ['users', name, 'topic-permissions'], undefined, { allow404: true })) ?? []) as TopicPermission[];
  }

  private async connectionsOf(name: string): Promise<{ name: string }[]> {
    return ((await this.request('GET', ['connections', 'username', name], undefined, { allow404: true })) ?? []) as { name: string }[];
  }

  /**
   * Closes every connection of the user and waits until the broker lists none. A connection opened a moment before
   * the password was removed can take a few milliseconds to be listed, hence the re-check.
   */
  private async endSessions(name: string): Promise<number> {
    const seen = new Set<string>();
    const deadline = Date.now() + SESSION_DEADLINE_MS;
    for (;;) {
      const open = await this.connectionsOf(name);
      if (open.length === 0) return seen.size;
      for (const c of open) seen.add(c.name);
      if (Date.now() > deadline) throw Object.assign(new Error(`${this.name}: ${open.length} connection(s) of '${name}' are still open`), { transient: true });
      await this.request('DELETE', ['connections', 'username', name], undefined, { allow404: true, headers: { 'x-reason': 'access revoked by changegate' } });
      await sleep(100);
    }
  }

  /**
   * One management API call. Every path segment is percent-encoded (the default vhost `/` is `%2F`). Errors are
   * rebuilt from status and the broker's `reason`: axios errors carry the request, basic-auth header and body included.
   */
  private async request(
    method: Method,
    segments: string[],
    body?: unknown,
    opts: { allow404?: boolean; secret?: Secret; headers?: Record<string, string> } = {},
  ): Promise<unknown> {
    const path = `/${segments.map(encodeURIComponent).join('/')}`;
    const what = `${method} ${segments[0]}`;
    let res;
    try {
      res = await this.http.request({ method, url: path, data: body, headers: opts.headers });
    } catch (raw) {
      // validateStatus accepts every status, so only a failure to get any answer lands here: transient.
      const err = raw as { code?: string; message?: string };
      const message = redact(String(err.message ?? 'network error'), opts.secret);
      const cause = Object.assign(new Error(message), { code: err.code ?? 'ERR_NETWORK' });
      throw Object.assign(new Error(`${this.name}: ${what}: ${message}`, { cause }), { transient: true });
    }
    if (res.status >= 200 && res.status < 300) return res.data === '' ? null : res.data;
    if (res.status === 404 && opts.allow404) return null;
    const data = res.data as { error?: unknown; reason?: unknown } | string | undefined;
    const reasonRaw = typeof data === 'object' && data !== null ? (data.reason ?? data.error) : data;
    const reason = redact(typeof reasonRaw === 'string' ? reasonRaw : JSON.stringify(reasonRaw ?? res.statusText), opts.secret);
    const cause = Object.assign(new Error(reason), { status: res.status });
    const text = `${this.name}: ${what} ${segments.slice(1).join('/')} → ${res.status} ${reason}`;
    if (res.status >= 500 || res.status === 429) throw Object.assign(new Error(text, { cause }), { transient: true });
    throw new ConnectorRefusal(FailureType.TargetRefused, text, { cause });
  }
}

export function createRabbitmqConnector(opts: RabbitmqConnectorOptions): RabbitmqConnector {
  return new RabbitmqConnector(opts.name, opts);
}

function redact(text: string, secret?: Secret): string {
  return secret ? text.split(secret.reveal()).join('[secret]') : text;
}
