import type { IdentityRef } from '../../actions/identity-action';
import type { ConnectorGrammar, FieldProblem, ParsedGrant } from '../connector';

/**
 * The part of RabbitMQ's access model the gateway speaks: per-vhost configure/write/read permissions and a few
 * user tags. A grant is one of
 *   vhost=<vhost> configure=<regex> write=<regex> read=<regex>
 *   tag=<tag>
 * Names and vhosts only ever travel as URL path segments (percent-encoded) and regexes as JSON string values.
 */

/** Tags a ticket may give. `administrator` (and `impersonator`) can manage the broker itself: never by ticket. */
export const RABBITMQ_GRANTABLE_TAGS: ReadonlySet<string> = new Set(['management', 'monitoring', 'policymaker']);

const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;
/** `/` or slash-separated segments that each start with a letter or digit (no `..`, no empty segment). */
const VHOST = /^(\/|\/?[A-Za-z0-9][A-Za-z0-9_.:-]*(\/[A-Za-z0-9][A-Za-z0-9_.:-]*)*)$/;
/**
 * The only permission regexes a ticket may give besides the empty one: `^`, a non-empty literal prefix (letters,
 * digits, `_`, `-`, `:` and the escaped dot `\.`), then optionally `.*` (same set of names) or `$` (exactly that
 * name). Nothing else, so no class, alternation, group or quantifier can widen it: what it covers is read off the
 * text. Erlang's re and JavaScript read this subset alike; it holds no whitespace, so a grant splits on spaces.
 */
const PERMISSION_REGEX = /^\^(?:[A-Za-z0-9_:-]|\\\.)+(?:\.\*|\$)?$/;
const REGEX_MAX = 128;
const PERMISSION_KEYS = ['vhost', 'configure', 'write', 'read'] as const;

export type RabbitGrant =
  | { kind: 'permission'; vhost: string; configure: string; write: string; read: string }
  | { kind: 'tag'; tag: string };

export interface RabbitmqGrammarPolicy {
  /** Users the gateway must never touch, whatever a ticket says (the connector's own is always among them). */
  protectedAccounts: string[];
}

export class RabbitmqGrammar implements ConnectorGrammar {
  readonly type = 'rabbitmq';
  private readonly protectedAccounts: Set<string>;

  constructor(policy: RabbitmqGrammarPolicy) {
    this.protectedAccounts = new Set(policy.protectedAccounts);
  }

  validateIdentity(identity: IdentityRef): FieldProblem[] {
    const problems: FieldProblem[] = [];
    if (!USER_NAME.test(identity.name)) {
      problems.push({
        path: 'identity.name',
        message: 'must be 1-64 characters of letters, digits, underscore, dot, @ or hyphen, starting with a letter or digit',
      });
    } else if (this.protectedAccounts.has(identity.name)) {
      problems.push({ path: 'identity.name', message: `'${identity.name}' is a protected account and cannot be changed by a ticket` });
    }
    if (identity.host !== undefined) problems.push({ path: 'identity.host', message: 'RabbitMQ users have no host part; leave it out' });
    return problems;
  }

  parseGrant(text: string): ParsedGrant | { problem: string } {
    const parsed = parseRabbitGrant(text);
    return 'problem' in parsed ? parsed : { canonical: [canonicalRabbitGrant(parsed)] };
  }
}

export function parseRabbitGrant(text: string): RabbitGrant | { problem: string } {
  const fields = text.trim().split(' ').filter((f) => f !== '');
  const usage = "must be 'vhost=<vhost> configure=<regex> write=<regex> read=<regex>' or 'tag=<tag>'";
  if (fields.length === 0 || /[^\S ]/.test(text)) return { problem: usage };
  const values = new Map<string, string>();
  for (const f of fields) {
    const eq = f.indexOf('=');
    if (eq <= 0) return { problem: usage };
    const key = f.slice(0, eq);
    if (values.has(key)) return { problem: `'${key.slice(0, 20)}' is given twice` };
    values.set(key, f.slice(eq + 1));
  }
  if (values.has('tag')) {
    if (values.size > 1) return { problem: 'a tag grant is just tag=<tag>' };
    const tag = values.get('tag') ?? '';
    if (tag === 'administrator' || tag === 'impersonator') return { problem: `the ${tag} tag controls the broker itself and is not allowed by policy` };
    if (!RABBITMQ_GRANTABLE_TAGS.has(tag)) return { problem: `unknown tag '${tag.slice(0, 40)}' (allowed: ${[...RABBITMQ_GRANTABLE_TAGS].join(', ')})` };
    return { kind: 'tag', tag };
  }
  const unknown = [...values.keys()].filter((k) => !(PERMISSION_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) return { problem: `unknown field '${(unknown[0] ?? '').slice(0, 20)}': ${usage}` };
  const vhost = values.get('vhost');
  if (vhost === undefined) return { problem: `a permission grant names its vhost: ${usage}` };
  if (vhost.length > 64 || !VHOST.test(vhost)) return { problem: "vhost must be '/' or up to 64 characters of /-separated names of letters, digits and _ . : -, each starting with a letter or digit" };
  const regexes = { configure: values.get('configure') ?? '', write: values.get('write') ?? '', read: values.get('read') ?? '' };
  for (const [what, re] of Object.entries(regexes)) {
    const problem = regexProblem(re);
    if (problem) return { problem: `${what}: ${problem}` };
  }
  return { kind: 'permission', vhost, ...regexes };
}

/** The text inspect reports: all three regexes always present (empty means "nothing"), in a fixed order. */
export function canonicalRabbitGrant(g: RabbitGrant): string {
  return g.kind === 'tag' ? `tag=${g.tag}` : `vhost=${g.vhost} configure=${g.configure} write=${g.write} read=${g.read}`;
}

/**
 * Empty (no access) or an anchored literal prefix. RabbitMQ matches unanchored regexes anywhere in a name, so
 * `orders` would also cover `x.orders.y`; `^.*` covers the whole vhost (configure on every queue and exchange
 * included), and so do disguised forms such as `^[^az]`, `^(a|.*)` or `^.{0,}`. Rather than guess what a general
 * regex matches, only the prefix form is accepted.
 */
function regexProblem(re: string): string | null {
  if (re === '') return null;
  if (re.length > REGEX_MAX) return `a regex is at most ${REGEX_MAX} characters`;
  if (!re.startsWith('^')) return "must be anchored with ^ (e.g. ^orders\\.), or empty for no access";
  if (!PERMISSION_REGEX.test(re)) {
    return "must be ^ and a literal prefix of letters, digits, _ - : and \\. , optionally ending in .* or $ (e.g. ^orders\\. or ^orders\\.audit$); classes, groups, alternation and other quantifiers are not allowed";
  }
  return null;
}
