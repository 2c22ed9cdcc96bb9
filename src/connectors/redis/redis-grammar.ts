import type { IdentityRef } from '../../actions/identity-action';
import type { ConnectorGrammar, FieldProblem, ParsedGrant } from '../connector';

/**
 * The part of Redis's ACL grammar the gateway speaks: one ACL rule per grant, from an allow-list. A grant can only
 * add a key pattern, a channel pattern, a command or a command category; everything that widens past that
 * (allkeys, +@all, passwords, reset*, on/off, selectors, subtractive rules) is the connector's own business or
 * refused. Rules then travel as separate RESP arguments of ACL SETUSER, never joined into one string.
 */

/**
 * Commands and subcommands a ticket may grant: Redis 7.0.15's `ACL CAT` members outside @admin and @dangerous,
 * minus operations that act on the whole server regardless of key patterns (FUNCTION LOAD/DELETE/FLUSH/KILL/
 * RESTORE, SCRIPT FLUSH/KILL/DEBUG, MEMORY PURGE). A container command (`xinfo`) is listed only when every one of
 * its subcommands is, because `+container` grants them all. Newer commands are refused until added here.
 */
export const REDIS_GRANTABLE_COMMANDS: ReadonlySet<string> = new Set(
  `
  acl|cat acl|genpass acl|help acl|whoami append asking auth bitcount bitfield bitfield_ro bitop bitpos blmove blmpop
  blpop brpop brpoplpush bzmpop bzpopmax bzpopmin client|caching client|getname client|getredir client|help client|id
  client|info client|reply client|setname client|tracking client|trackinginfo cluster|countkeysinslot
  cluster|getkeysinslot cluster|help cluster|info cluster|keyslot cluster|links cluster|myid cluster|nodes
  cluster|shards cluster|slots command command|count command|docs command|getkeys command|getkeysandflags
  command|help command|info command|list config|help copy dbsize decr decrby del discard dump echo eval eval_ro
  evalsha evalsha_ro exec exists expire expireat expiretime fcall fcall_ro function|dump function|help function|list
  function|stats geoadd geodist geohash geopos georadius georadius_ro georadiusbymember georadiusbymember_ro
  geosearch geosearchstore get getbit getdel getex getrange getset hdel hello hexists hget hgetall hincrby
  hincrbyfloat hkeys hlen hmget hmset hrandfield hscan hset hsetnx hstrlen hvals incr incrby incrbyfloat latency|help
  lcs lindex linsert llen lmove lmpop lolwut lpop lpos lpush lpushx lrange lrem lset ltrim memory|doctor memory|help
  memory|malloc-stats memory|stats memory|usage mget module|help move mset msetnx multi object object|encoding
  object|freq object|help object|idletime object|refcount persist pexpire pexpireat pexpiretime pfadd pfcount pfmerge
  ping psetex psubscribe pttl publish pubsub pubsub|channels pubsub|help pubsub|numpat pubsub|numsub
  pubsub|shardchannels pubsub|shardnumsub punsubscribe quit randomkey readonly readwrite rename renamenx reset rpop
  rpoplpush rpush rpushx sadd scan scard script|exists script|help script|load sdiff sdiffstore select set setbit
  setex setnx setrange sinter sintercard sinterstore sismember slowlog|help smembers smismember smove spop spublish
  srandmember srem sscan ssubscribe strlen subscribe substr sunion sunionstore sunsubscribe time touch ttl type
  unlink unsubscribe unwatch wait watch xack xadd xautoclaim xclaim xdel xgroup xgroup|create xgroup|createconsumer
  xgroup|delconsumer xgroup|destroy xgroup|help xgroup|setid xinfo xinfo|consumers xinfo|groups xinfo|help
  xinfo|stream xlen xpending xrange xread xreadgroup xrevrange xsetid xtrim zadd zcard zcount zdiff zdiffstore
  zincrby zinter zintercard zinterstore zlexcount zmpop zmscore zpopmax zpopmin zrandmember zrange zrangebylex
  zrangebyscore zrangestore zrank zrem zremrangebylex zremrangebyrank zremrangebyscore zrevrange zrevrangebylex
  zrevrangebyscore zrevrank zscan zscore zunion zunionstore
  `.trim().split(/\s+/),
);

/**
 * Categories whose every member (containers expanded, as Redis expands them) is grantable. @read, @write,
 * @keyspace, @list, @set, @sortedset, @slow, @fast, @connection and @scripting each include a dangerous or admin
 * command (KEYS, FLUSHALL, SORT, CLIENT KILL, ACL SETUSER via the ACL container, FUNCTION FLUSH…): name commands.
 */
export const REDIS_GRANTABLE_CATEGORIES: ReadonlySet<string> = new Set([
  'bitmap', 'blocking', 'geo', 'hash', 'pubsub', 'stream', 'string', 'transaction',
]);

const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
/** A literal prefix first, so every pattern is confined to a namespace; then `*` and `?` only (no classes, no escapes). */
const PATTERN = /^[A-Za-z0-9_.:/{}-][A-Za-z0-9_.:/{}*?-]{0,127}$/;
const KEY_RULE = /^(?:%(R|W|RW|WR))?~(.*)$/s;
const COMMAND_NAME = /^[a-z][a-z0-9_-]{0,63}(\|[a-z][a-z0-9_-]{0,63})?$/;

/** The connector's own rules, or rules that widen past any pattern: never a ticket's to ask for. */
const RESERVED = new Map<string, string>([
  ['on', 'enabling an account is the connector’s own step, not a grant'],
  ['off', 'disabling an account is what a leaver does, not a grant'],
  ['allkeys', 'all keys is not allowed by policy; name a key pattern such as ~app:*'],
  ['allchannels', 'all channels is not allowed by policy; name a channel pattern such as &events:*'],
  ['allcommands', 'all commands is not allowed by policy; name commands or categories'],
  ['nocommands', 'subtractive rules are not grants'],
  ['nopass', 'password rules are not grants (rotation sets credentials)'],
  ['resetpass', 'password rules are not grants (rotation sets credentials)'],
  ['reset', 'reset rules are the connector’s own, not grants'],
  ['resetkeys', 'reset rules are the connector’s own, not grants'],
  ['resetchannels', 'reset rules are the connector’s own, not grants'],
  ['clearselectors', 'selectors are not supported'],
]);

export type RedisGrant =
  | { kind: 'key'; pattern: string; read: boolean; write: boolean }
  | { kind: 'channel'; pattern: string }
  | { kind: 'command'; name: string }
  | { kind: 'category'; name: string };

export interface RedisGrammarPolicy {
  /** Users the gateway must never touch, whatever a ticket says (the connector's own is always among them). */
  protectedAccounts: string[];
}

export class RedisGrammar implements ConnectorGrammar {
  readonly type = 'redis';
  private readonly protectedAccounts: Set<string>;

  constructor(policy: RedisGrammarPolicy) {
    this.protectedAccounts = new Set(policy.protectedAccounts);
  }

  validateIdentity(identity: IdentityRef): FieldProblem[] {
    const problems: FieldProblem[] = [];
    if (!USER_NAME.test(identity.name)) {
      problems.push({
        path: 'identity.name',
        message: 'must be 1-64 characters of letters, digits, underscore, dot, colon or hyphen, starting with a letter or digit',
      });
    } else if (identity.name.toLowerCase() === 'default') {
      problems.push({ path: 'identity.name', message: "Redis's built-in 'default' user cannot be changed by a ticket" });
    } else if (this.protectedAccounts.has(identity.name)) {
      problems.push({ path: 'identity.name', message: `'${identity.name}' is a protected account and cannot be changed by a ticket` });
    }
    if (identity.host !== undefined) problems.push({ path: 'identity.host', message: 'Redis ACL users have no host part; leave it out' });
    return problems;
  }

  parseGrant(text: string): ParsedGrant | { problem: string } {
    const parsed = parseRedisGrant(text);
    return 'problem' in parsed ? parsed : { canonical: [canonicalRedisGrant(parsed)] };
  }
}

/** One grant text to its meaning, or the reason it is refused. Case matters for patterns, not for commands. */
export function parseRedisGrant(text: string): RedisGrant | { problem: string } {
  const rule = text.trim();
  if (rule === '') return { problem: 'must be one ACL rule such as ~app:*, &events:*, +get or +@hash' };
  if (/\s/.test(rule)) return { problem: 'one grant is one ACL rule: no spaces (list several grants instead)' };
  const reserved = RESERVED.get(rule.toLowerCase());
  if (reserved) return { problem: reserved };
  if (/^[<>#!]/.test(rule)) return { problem: 'password rules are not grants (rotation sets credentials)' };
  if (rule.startsWith('(')) return { problem: 'selectors are not supported' };
  if (rule.startsWith('-')) {
    return { problem: 'subtractive rules are not grants: ask for the commands or categories needed (an expiring grant is taken back by the gateway)' };
  }
  const key = KEY_RULE.exec(rule);
  if (key) {
    const pattern = key[2] ?? '';
    if (!PATTERN.test(pattern)) return { problem: patternProblem('key', pattern) };
    const perms = key[1] ?? 'RW';
    return { kind: 'key', pattern, read: perms.includes('R'), write: perms.includes('W') };
  }
  if (rule.startsWith('&')) {
    const pattern = rule.slice(1);
    if (!PATTERN.test(pattern)) return { problem: patternProblem('channel', pattern) };
    return { kind: 'channel', pattern };
  }
  if (rule.startsWith('+@')) {
    const name = rule.slice(2).toLowerCase();
    if (name === 'all') return { problem: 'all commands (+@all) is not allowed by policy; name commands or categories' };
    if (!REDIS_GRANTABLE_CATEGORIES.has(name)) {
      return { problem: `category '${name.slice(0, 40)}' is unknown or includes admin/dangerous commands (grantable: ${[...REDIS_GRANTABLE_CATEGORIES].map((c) => `+@${c}`).join(', ')}); name the commands instead` };
    }
    return { kind: 'category', name };
  }
  if (rule.startsWith('+')) {
    const name = rule.slice(1).toLowerCase();
    if (!COMMAND_NAME.test(name)) return { problem: "a command grant looks like '+get' or '+xinfo|stream'" };
    if (!REDIS_GRANTABLE_COMMANDS.has(name)) return { problem: `command '${name}' is unknown to Redis 7.0 or is an admin/dangerous command, which a ticket cannot grant` };
    return { kind: 'command', name };
  }
  return { problem: 'must be one ACL rule: ~<key pattern>, %R~ or %W~<key pattern>, &<channel pattern>, +<command> or +@<category>' };
}

/** The text ACL GETUSER reports for a grant (Redis writes a read-write key pattern as plain `~`). */
export function canonicalRedisGrant(g: RedisGrant): string {
  switch (g.kind) {
    case 'key':
      return `${g.read && g.write ? '' : g.read ? '%R' : '%W'}~${g.pattern}`;
    case 'channel':
      return `&${g.pattern}`;
    case 'command':
      return `+${g.name}`;
    case 'category':
      return `+@${g.name}`;
  }
}

function patternProblem(what: string, pattern: string): string {
  if (pattern === '' || /^[*?]/.test(pattern)) {
    return `a ${what} pattern must start with a literal prefix (e.g. app:*); patterns matching everything are not allowed by policy`;
  }
  return `a ${what} pattern is at most 128 characters of letters, digits and _ . : / { } - , with * and ? as the only wildcards`;
}
