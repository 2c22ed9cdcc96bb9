/**
 * Redis ACL users (Redis 7.0+).
 *
 * Least privilege for the gateway's own user — no keys, no channels, only these ACL and CLIENT subcommands:
 *   ACL SETUSER changegate_connector on >PASSWORD resetkeys resetchannels -@all
 *     +acl|setuser +acl|deluser +acl|getuser +acl|list +acl|cat +client|list +client|kill
 * Caveat: ACL SETUSER can create any user, including one with +@all. Redis has no narrower right, so the control is
 * RedisGrammar's allow-list, which every grant passes twice (at the API and again here) before it reaches Redis.
 */
import Redis from 'ioredis';
import type { IdentityRef } from '../../actions/identity-action';
import { absent, assertValidIdentity, type ChangeOutcome, checkedCanonicalGrant, type Connector, type CredentialRotator, type DiscoveredIdentity, type ObservedAccount, type ProvisionOutcome, type RotationResult } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import { Secret } from '../secret';
import { canonicalRedisGrant, parseRedisGrant, REDIS_GRANTABLE_COMMANDS, type RedisGrant, RedisGrammar } from './redis-grammar';

export interface RedisConnectorOptions {
  name: string;
  host: string;
  port: number;
  user: string;
  password: string;
  tls?: boolean;
  protectedAccounts: string[];
}

/** Server replies that mean "not now" rather than "no". */
const TRANSIENT_REPLIES = new Set(['LOADING', 'BUSY', 'TRYAGAIN', 'MASTERDOWN', 'CLUSTERDOWN']);
/** What a disabled user keeps: nothing. */
const STRIP_RULES = ['off', 'resetpass', 'resetkeys', 'resetchannels', '-@all', 'clearselectors'];

interface AclUser {
  flags: string[];
  passwords: number;
  commands: string;
  keys: string;
  channels: string;
  selectors: string[];
}

/** Which commands each category holds and which subcommands each container has, as this server says. */
interface CommandCatalogue {
  categories: Map<string, string[]>;
  subcommands: Map<string, string[]>;
  names: string[];
}

export class RedisConnector implements Connector, CredentialRotator {
  readonly grammar: RedisGrammar;
  private readonly client: Redis;
  private readonly protectedAccounts: Set<string>;
  /** The code of the newest connection failure, if the client has had one: what a command that gave up failed on. */
  private lastConnectionError: string | undefined;
  private catalogue?: Promise<CommandCatalogue>;

  constructor(readonly name: string, private readonly opts: RedisConnectorOptions) {
    this.protectedAccounts = new Set(opts.protectedAccounts);
    this.grammar = new RedisGrammar({ protectedAccounts: opts.protectedAccounts });
    this.client = new Redis({
      host: opts.host,
      port: opts.port,
      username: opts.user,
      password: opts.password,
      tls: opts.tls ? {} : undefined,
      lazyConnect: true,
      connectTimeout: 5_000,
      commandTimeout: 10_000,
      // A command fails after one reconnect attempt (Temporal retries the activity); the client keeps reconnecting
      // in the background so a connector that outlives an outage works again afterwards.
      maxRetriesPerRequest: 1,
      retryStrategy: (times) => Math.min(times * 200, 2_000),
      // How long close() lets a socket that never connected linger before destroying it (ioredis waits 2 s).
      disconnectTimeout: 200,
      // The ready check runs INFO and ioredis announces itself with CLIENT SETINFO: the least-privilege user may do neither.
      enableReadyCheck: false,
      disableClientInfo: true,
    });
    // Surfaced by the failing command instead, which names it: ioredis's own error for a command that gave up
    // ("max retries per request") does not say the server could not be reached.
    this.client.on('error', (err: Error & { code?: string }) => {
      this.lastConnectionError = err.code ?? err.name;
    });
    this.client.on('connect', () => {
      this.lastConnectionError = undefined;
    });
  }

  async inspect(identity: IdentityRef): Promise<ObservedAccount> {
    const name = this.account(identity);
    const user = await this.getUser(name);
    if (!user) return { exists: false, grants: [] };
    return {
      exists: true,
      locked: user.flags.includes('off'),
      grants: await this.grantsOf(user),
      activeSessions: await this.sessionCount(name),
      attributes: { flags: user.flags, passwords: user.passwords },
    };
  }

  async provision(identity: IdentityRef, grants: string[]): Promise<ProvisionOutcome> {
    const name = this.account(identity);
    const rules = await this.checkedRules(grants);
    const before = await this.getUser(name);
    if (!before) {
      // The generated password is not kept: delivering a credential is a rotation's job. A new user starts with
      // no keys and no commands; resetchannels guards against a server whose acl-pubsub-default is allchannels.
      const password = Secret.generate();
      await this.setUser(name, ['on', `>${password.reveal()}`, 'resetchannels', ...rules], password);
      return { created: true, detail: `created '${name}', granted ${rules.length} rule(s)` };
    }
    if (rules.length > 0) await this.setUser(name, rules);
    return { created: false, detail: `found existing '${name}', granted ${rules.length} rule(s)` };
  }

  async disable(identity: IdentityRef): Promise<ChangeOutcome> {
    const name = this.account(identity);
    const before = await this.inspect(identity);
    // ACL SETUSER would create a user that is not there.
    if (!before.exists) return absent(`user '${name}'`);
    if (before.locked && before.grants.length === 0 && before.attributes?.passwords === 0 && !before.activeSessions) {
      return { changed: false, detail: `user '${name}' was already off with no passwords and no rules` };
    }
    await this.setUser(name, STRIP_RULES);
    const ended = await this.endSessions(name);
    return { changed: true, detail: `switched off, removed passwords and ${before.grants.length} rule(s), ended ${ended} session(s); '${name}' kept` };
  }

  async remove(identity: IdentityRef): Promise<ChangeOutcome> {
    const name = this.account(identity);
    const before = await this.inspect(identity);
    if (!before.exists) return absent(`user '${name}'`);
    // Off first, so nothing authenticates between ending the sessions and deleting the user.
    await this.setUser(name, ['off']);
    const ended = await this.endSessions(name);
    await this.call(['ACL', 'DELUSER', name]);
    return { changed: true, detail: `switched off, ended ${ended} session(s), deleted '${name}' with ${before.grants.length} rule(s)` };
  }

  async ungrant(identity: IdentityRef, grants: string[]): Promise<ChangeOutcome> {
    const name = this.account(identity);
    const parsed = grants.map((g) => this.checkedGrant(g));
    const before = await this.getUser(name);
    if (!before) return absent(`user '${name}'`);
    const rules: string[] = [];
    // Redis 7.0 cannot remove one key or channel pattern: the remaining ones are re-added after a reset, in the
    // same ACL SETUSER call, which Redis applies all-or-nothing.
    const keys = keyPatterns(before.keys);
    let keysChanged = false;
    for (const g of parsed) {
      if (g.kind !== 'key') continue;
      const held = keys.get(g.pattern);
      if (!held) continue;
      const left = { read: held.read && !g.read, write: held.write && !g.write };
      if (left.read === held.read && left.write === held.write) continue;
      keysChanged = true;
      if (left.read || left.write) keys.set(g.pattern, left);
      else keys.delete(g.pattern);
    }
    if (keysChanged) rules.push('resetkeys', ...[...keys].map(([pattern, p]) => canonicalRedisGrant({ kind: 'key', pattern, ...p })));
    const channels = new Set(words(before.channels));
    const dropChannels = parsed.filter((g) => g.kind === 'channel').map((g) => canonicalRedisGrant(g)).filter((c) => channels.has(c));
    if (dropChannels.length > 0) rules.push('resetchannels', ...[...channels].filter((c) => !dropChannels.includes(c)));
    for (const g of parsed) {
      if (g.kind === 'command') rules.push(`-${g.name}`);
      if (g.kind === 'category') rules.push(`-@${g.name}`);
    }
    const had = await this.grantsOf(before);
    if (rules.length > 0) await this.setUser(name, rules);
    const after = await this.getUser(name);
    const have = after ? new Set(await this.grantsOf(after)) : new Set<string>();
    const removed = had.filter((g) => !have.has(g));
    return { changed: removed.length > 0, detail: `took back ${grants.length} grant(s) from '${name}'; ${removed.length} reported rule(s) gone` };
  }

  async discover(): Promise<DiscoveredIdentity[]> {
    const lines = (await this.call(['ACL', 'LIST'])) as string[];
    const out: DiscoveredIdentity[] = [];
    for (const line of lines) {
      // "user <name> on|off #<hash> … ~keys &channels +commands": only the name and the on/off flag are read; the
      // password hashes never leave this loop.
      const [, name, ...rest] = line.split(' ');
      if (!name) continue;
      const isProtected = name === 'default' || this.protectedAccounts.has(name);
      out.push({ name, locked: rest.includes('off'), ...(isProtected ? { protected: true } : {}) });
    }
    return out;
  }

  async rotate(identity: IdentityRef): Promise<RotationResult> {
    const name = this.account(identity);
    // ACL SETUSER would create a missing user, so absence is checked first.
    const user = await this.getUser(name);
    if (!user) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: user '${name}' does not exist, so it has no password to rotate`);
    // `off` is how a disable (a leaver) locks a user; a new password must not go to it, whoever switches it on later.
    if (user.flags.includes('off')) {
      throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: user '${name}' is off (disabled), so it is not given a new password`);
    }
    const secret = Secret.generate();
    await this.setUser(name, ['resetpass', `>${secret.reveal()}`], secret);
    return { secret, detail: `replaced every password of '${name}' with a new one; connections already authenticated stay open` };
  }

  async authenticates(identity: IdentityRef, secret: Secret): Promise<boolean> {
    const name = this.account(identity);
    const probe = new Redis({
      host: this.opts.host,
      port: this.opts.port,
      tls: this.opts.tls ? {} : undefined,
      lazyConnect: true,
      connectTimeout: 5_000,
      commandTimeout: 5_000,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      enableReadyCheck: false,
      enableOfflineQueue: false,
      disableClientInfo: true,
    });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.call('AUTH', name, secret.reveal());
      return true;
    } catch (raw) {
      const message = String((raw as Error).message ?? '');
      if ((raw as Error).name === 'ReplyError' && /^WRONGPASS\b/.test(message)) return false;
      throw this.failure(raw, secret);
    } finally {
      probe.disconnect();
    }
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }

  private account(identity: IdentityRef): string {
    assertValidIdentity(this.grammar, identity);
    return identity.name;
  }

  /** A grant must arrive in canonical form: the text the grammar produced, re-checked before any I/O. */
  private checkedGrant(text: string): RedisGrant {
    return checkedCanonicalGrant(text, parseRedisGrant, canonicalRedisGrant);
  }

  /** Canonical rules, with categories checked against this server: a newer Redis may have put an admin command in one. */
  private async checkedRules(grants: string[]): Promise<string[]> {
    const parsed = grants.map((g) => this.checkedGrant(g));
    const categories = parsed.filter((g) => g.kind === 'category');
    if (categories.length > 0) {
      const cat = await this.commandCatalogue();
      for (const g of categories) {
        const beyond = expandAll(cat, cat.categories.get(g.name) ?? []).filter((c) => !REDIS_GRANTABLE_COMMANDS.has(c));
        if (beyond.length > 0) {
          throw new ConnectorRefusal(FailureType.InvalidIdentity, `grant '+@${g.name}': on this server it also grants ${beyond.slice(0, 5).join(', ')}, which a ticket cannot grant`);
        }
      }
    }
    return parsed.map(canonicalRedisGrant);
  }

  private async getUser(name: string): Promise<AclUser | null> {
    const reply = (await this.call(['ACL', 'GETUSER', name])) as unknown[] | null;
    if (!reply) return null;
    const field = pairs(reply);
    const selectors = ((field.get('selectors') as unknown[][] | undefined) ?? []).map((s) => {
      const sel = pairs(s);
      return `(${['keys', 'channels', 'commands'].map((k) => String(sel.get(k) ?? '')).filter(Boolean).join(' ')})`;
    });
    return {
      flags: ((field.get('flags') as string[] | undefined) ?? []).map(String),
      // Only the count: the hashes are not evidence.
      passwords: ((field.get('passwords') as unknown[] | undefined) ?? []).length,
      commands: String(field.get('commands') ?? ''),
      keys: String(field.get('keys') ?? ''),
      channels: String(field.get('channels') ?? ''),
      selectors,
    };
  }

  /**
   * What the user can do, in canonical grant text. Redis reports commands as a re-derived summary of its permission
   * bits ("+get +@read" reads back as "-@all +@read"), so the summary is replayed onto this server's category lists
   * and every permission held is reported: each command, each category held completely, each key pattern with the
   * access it gives (a read-write `~p` also holds `%R~p` and `%W~p`), each channel pattern.
   */
  private async grantsOf(user: AclUser): Promise<string[]> {
    const out = new Set<string>();
    for (const [pattern, p] of keyPatterns(user.keys)) {
      if (p.read) out.add(`%R~${pattern}`);
      if (p.write) out.add(`%W~${pattern}`);
      if (p.read && p.write) out.add(`~${pattern}`);
    }
    for (const c of words(user.channels)) out.add(c);
    for (const s of user.selectors) out.add(s);
    const commands = words(user.commands);
    if (commands.length > 0) {
      const cat = await this.commandCatalogue();
      const { allowed, unmodelled, future } = replayCommandRules(cat, commands);
      if (future && cat.names.every((n) => allowed.has(n))) out.add('+@all');
      for (const u of unmodelled) out.add(u);
      for (const [category, members] of cat.categories) {
        const all = expandAll(cat, members);
        if (all.length > 0 && all.every((c) => allowed.has(c))) out.add(`+@${category}`);
      }
      for (const n of cat.names) if (expand(cat, n).every((c) => allowed.has(c))) out.add(`+${n}`);
    }
    return [...out].sort();
  }

  private commandCatalogue(): Promise<CommandCatalogue> {
    this.catalogue ??= (async () => {
      const names = ((await this.call(['ACL', 'CAT'])) as string[]).map(String);
      const categories = new Map<string, string[]>();
      for (const c of names) categories.set(c, ((await this.call(['ACL', 'CAT', c])) as string[]).map(String));
      const all = new Set([...categories.values()].flat());
      const subcommands = new Map<string, string[]>();
      for (const n of all) {
        const bar = n.indexOf('|');
        if (bar < 0) continue;
        const parent = n.slice(0, bar);
        all.add(parent);
        subcommands.set(parent, [...(subcommands.get(parent) ?? []), n]);
      }
      return { categories, subcommands, names: [...all].sort() };
    })().catch((err: unknown) => {
      this.catalogue = undefined;
      throw err;
    });
    return this.catalogue;
  }

  private async sessionCount(name: string): Promise<number> {
    const list = String(await this.call(['CLIENT', 'LIST']));
    return list.split('\n').filter((line) => line.split(' ').includes(`user=${name}`)).length;
  }

  /** Redis keeps connections of a user switched off, or whose password changed, open: they are killed explicitly. */
  private async endSessions(name: string): Promise<number> {
    return Number(await this.call(['CLIENT', 'KILL', 'USER', name]));
  }

  /** Each rule is its own RESP argument: nothing a ticket says is ever split or joined by Redis's rule parser. */
  private async setUser(name: string, rules: string[], secret?: Secret): Promise<void> {
    await this.call(['ACL', 'SETUSER', name, ...rules], secret);
  }

  private async call(args: string[], secret?: Secret): Promise<unknown> {
    const [command, ...rest] = args as [string, ...string[]];
    try {
      return await this.client.call(command, ...rest);
    } catch (raw) {
      throw this.failure(raw, secret);
    }
  }

  /**
   * ioredis attaches the command and its arguments (a new password among them) to its errors, so the original is
   * never kept: message and code are copied into a fresh cause, with any secret cut out of the server's words.
   */
  private failure(raw: unknown, secret?: Secret): Error {
    const err = raw as { name?: string; message?: string; code?: string };
    let message = String(err.message ?? 'unknown error');
    if (secret) message = message.split(secret.reveal()).join('[secret]');
    const reply = err.name === 'ReplyError';
    if (err.name === 'MaxRetriesPerRequestError' && this.lastConnectionError) message = `${message}; the server could not be reached (${this.lastConnectionError})`;
    const code = reply ? (/^[A-Z]+/.exec(message)?.[0] ?? 'ERR') : err.name === 'MaxRetriesPerRequestError' && this.lastConnectionError ? this.lastConnectionError : (err.code ?? err.name ?? 'error');
    const cause = Object.assign(new Error(message), { code });
    const text = `${this.name}: ${message}`;
    if (!reply || TRANSIENT_REPLIES.has(code)) return Object.assign(new Error(text, { cause }), { transient: true });
    return new ConnectorRefusal(FailureType.TargetRefused, text, { cause });
  }
}

export function createRedisConnector(opts: RedisConnectorOptions): RedisConnector {
  return new RedisConnector(opts.name, opts);
}

/** RESP2 maps arrive as flat [key, value, key, value…] arrays. */
function pairs(flat: unknown[]): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < flat.length; i += 2) m.set(String(flat[i]), flat[i + 1]);
  return m;
}

function words(text: string): string[] {
  return text.split(' ').filter((w) => w !== '');
}

/** "~a %R~b %W~c" → pattern → access. Redis merges a pattern's flags, but the merge is repeated here to be sure. */
function keyPatterns(text: string): Map<string, { read: boolean; write: boolean }> {
  const out = new Map<string, { read: boolean; write: boolean }>();
  for (const w of words(text)) {
    const m = /^(?:%([RW]+))?~(.*)$/s.exec(w);
    if (!m) continue;
    const pattern = m[2] ?? '';
    const perms = m[1] ?? 'RW';
    const held = out.get(pattern) ?? { read: false, write: false };
    out.set(pattern, { read: held.read || perms.includes('R'), write: held.write || perms.includes('W') });
  }
  return out;
}

/** A command and, for a container, all its subcommands: what `+name` sets in Redis. */
function expand(cat: CommandCatalogue, name: string): string[] {
  return [name, ...(cat.subcommands.get(name) ?? [])];
}

function expandAll(cat: CommandCatalogue, names: string[]): string[] {
  return [...new Set(names.flatMap((n) => expand(cat, n)))];
}

/**
 * Applies ACL GETUSER's command rules in order, as Redis does: a category sets every member (a member that is a
 * container with all its subcommands), a command sets itself and its subcommands. Rules this model does not know
 * (first-argument rules like +select|0, module commands) are reported verbatim rather than guessed at.
 */
function replayCommandRules(cat: CommandCatalogue, rules: string[]): { allowed: Set<string>; unmodelled: string[]; future: boolean } {
  const allowed = new Set<string>();
  const unmodelled: string[] = [];
  let future = false;
  const known = new Set(cat.names);
  for (const rule of rules) {
    const on = rule.startsWith('+');
    if (!on && !rule.startsWith('-')) {
      unmodelled.push(rule);
      continue;
    }
    const body = rule.slice(1);
    let targets: string[] | undefined;
    if (body === '@all') {
      targets = cat.names;
      future = on;
    } else if (body.startsWith('@')) {
      const members = cat.categories.get(body.slice(1));
      targets = members ? expandAll(cat, members) : undefined;
    } else if (known.has(body)) {
      targets = expand(cat, body);
    }
    if (!targets) {
      if (on) unmodelled.push(rule);
      continue;
    }
    for (const t of targets) {
      if (on) allowed.add(t);
      else allowed.delete(t);
    }
  }
  return { allowed, unmodelled, future };
}
