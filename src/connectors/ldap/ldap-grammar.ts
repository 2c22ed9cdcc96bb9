import type { IdentityRef } from '../../actions/identity-action';
import type { ConnectorGrammar, FieldProblem, ParsedGrant } from '../connector';

/**
 * The part of an LDAP directory's grammar the gateway speaks. An identity is a `uid` value; a grant is membership
 * of one groupOfNames directly under the configured groups OU, written `group=<cn>`. Both are held to a narrow
 * character set here, and the live connector still escapes them for DNs (RFC 4514) and sends filters as encoded
 * filter objects, never as filter strings.
 */

/** uid values: lower-case, so one person cannot appear twice under names that LDAP's caseIgnoreMatch treats as equal. */
export const UID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Group common names as grants carry them; matched case-insensitively, reported in lower case. */
export const GROUP_CN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const GRANT_PREFIX = 'group=';

export interface LdapGrammarPolicy {
  /** uids the gateway must never touch, whatever a ticket says (its own included). */
  protectedAccounts: string[];
  /** When set, the only group cns a grant may name. */
  allowedGroups?: string[];
}

export class LdapGrammar implements ConnectorGrammar {
  readonly type = 'ldap';
  private readonly protectedAccounts: Set<string>;
  private readonly allowedGroups: Set<string> | undefined;

  constructor(policy: LdapGrammarPolicy) {
    this.protectedAccounts = new Set(policy.protectedAccounts.map((a) => a.toLowerCase()));
    this.allowedGroups = policy.allowedGroups ? new Set(policy.allowedGroups.map((g) => g.toLowerCase())) : undefined;
  }

  validateIdentity(identity: IdentityRef): FieldProblem[] {
    const problems: FieldProblem[] = [];
    if (!UID.test(identity.name)) {
      problems.push({
        path: 'identity.name',
        message: 'must be 1-64 characters of lower-case letters, digits, dot, underscore or hyphen, starting with a letter or digit',
      });
    } else if (this.protectedAccounts.has(identity.name)) {
      problems.push({ path: 'identity.name', message: `'${identity.name}' is a protected account and cannot be changed by a ticket` });
    }
    if (identity.type !== 'person' && identity.type !== 'service_account') {
      problems.push({ path: 'identity.type', message: "must be 'person' or 'service_account'" });
    }
    if (identity.host !== undefined) {
      problems.push({ path: 'identity.host', message: 'LDAP identities have no host part; leave it out' });
    }
    return problems;
  }

  parseGrant(text: string): ParsedGrant | { problem: string } {
    if (!text.startsWith(GRANT_PREFIX)) return { problem: "must look like 'group=<cn>' (membership of cn=<cn> under the groups OU), e.g. group=cg-readers" };
    const cn = text.slice(GRANT_PREFIX.length);
    if (!GROUP_CN.test(cn)) {
      return { problem: `group name '${cn.slice(0, 70)}' must be 1-64 characters of letters, digits, dot, underscore or hyphen, starting with a letter or digit` };
    }
    const canonical = cn.toLowerCase();
    if (this.allowedGroups && !this.allowedGroups.has(canonical)) {
      return { problem: `group '${canonical}' is not in this connector's allow-list (${[...this.allowedGroups].sort().join(', ')})` };
    }
    return { canonical: [`${GRANT_PREFIX}${canonical}`] };
  }
}

/** The group cn a canonical grant names (the caller has parsed it with LdapGrammar). */
export function groupOfGrant(canonical: string): string {
  return canonical.slice(GRANT_PREFIX.length);
}

/** The canonical grant text for membership of a group whose cn is `cn`. */
export function grantOfGroup(cn: string): string {
  return `${GRANT_PREFIX}${cn.toLowerCase()}`;
}

/**
 * Escapes an attribute value for use in a DN's RDN (RFC 4514 §2.4): the specials `"+,;<>\=` get a backslash, a
 * leading `#` or space and a trailing space are escaped, and control characters (NUL, CR, LF, …) become `\XX` hex
 * pairs. The result always parses back to exactly `value`.
 */
export function escapeDnValue(value: string): string {
  const chars = [...value];
  return chars
    .map((ch, i) => {
      const code = ch.codePointAt(0) ?? 0;
      if (code < 0x20 || code === 0x7f) return `\\${code.toString(16).padStart(2, '0')}`;
      if ('"+,;<>\\='.includes(ch)) return `\\${ch}`;
      if (i === 0 && (ch === '#' || ch === ' ')) return `\\${ch}`;
      if (i === chars.length - 1 && ch === ' ') return '\\ ';
      return ch;
    })
    .join('');
}

/**
 * Splits the first RDN off a DN as the server returns it and unescapes its value (RFC 4514): `\XX` hex pairs and
 * `\c` escapes. Multi-valued RDNs (`a=1+b=2`) yield only their first pair. Null when the DN does not start with
 * `attr=value`.
 */
export function firstRdn(dn: string): { attr: string; value: string } | null {
  const eq = dn.indexOf('=');
  if (eq <= 0) return null;
  const attr = dn.slice(0, eq).trim().toLowerCase();
  const chars = [...dn.slice(eq + 1)];
  const bytes: number[] = [];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i] as string;
    if (ch === ',' || ch === '+') break;
    if (ch === '\\') {
      const hex = `${chars[i + 1] ?? ''}${chars[i + 2] ?? ''}`;
      if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 2;
      } else if (i + 1 < chars.length) {
        bytes.push(...Buffer.from(chars[i + 1] as string, 'utf8'));
        i += 1;
      }
      continue;
    }
    bytes.push(...Buffer.from(ch, 'utf8'));
  }
  return { attr, value: Buffer.from(bytes).toString('utf8') };
}

/** Compares DNs the way a human configured them against what a server returns: case and spaces after commas ignored. */
export function sameDn(a: string, b: string): boolean {
  const norm = (dn: string): string => dn.replace(/\s*([,=+])\s*/g, '$1').toLowerCase();
  return norm(a) === norm(b);
}
