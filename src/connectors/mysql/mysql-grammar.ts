import type { IdentityRef } from '../../actions/identity-action';
import type { ConnectorGrammar, FieldProblem, ParsedGrant } from '../connector';

/**
 * The part of MySQL/MariaDB's grammar the gateway speaks. Everything a ticket can put into a statement is
 * checked here first; account names are then sent as quoted string literals, object names as backtick-quoted
 * identifiers that this grammar has already restricted to [A-Za-z0-9_$].
 */
export const MYSQL_PRIVILEGES = [
  'SELECT', 'INSERT', 'UPDATE', 'DELETE', 'CREATE', 'DROP', 'INDEX', 'ALTER', 'REFERENCES', 'EXECUTE',
  'CREATE VIEW', 'SHOW VIEW', 'TRIGGER', 'LOCK TABLES', 'CREATE TEMPORARY TABLES', 'EVENT',
  'CREATE ROUTINE', 'ALTER ROUTINE',
] as const;
/** Privileges that only make sense on a database, not on one table. */
const DATABASE_ONLY = new Set(['LOCK TABLES', 'CREATE TEMPORARY TABLES', 'EVENT', 'CREATE ROUTINE', 'ALTER ROUTINE', 'EXECUTE']);

/** MySQL 8 caps user names at 32 characters; MariaDB allows 80. The lower bound keeps specs portable. */
const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/;
const HOST = /^(%|[A-Za-z0-9%_]([A-Za-z0-9.%_:-]{0,253}[A-Za-z0-9%_])?)$/;
const OBJECT_NAME = /^[A-Za-z0-9_$]{1,64}$/;
const GRANT = /^\s*([A-Za-z ,]+?)\s+ON\s+(\S+)\s*$/i;

/**
 * Accounts the server itself depends on, protected whatever the configuration says: `mariadb.sys` owns the sys
 * views, `mysql` is MariaDB's socket admin, `mysql.*` are MySQL 8's internal accounts.
 */
export const BUILT_IN_ACCOUNTS = ['root', 'mysql', 'mariadb.sys', 'mysql.sys', 'mysql.session', 'mysql.infoschema'] as const;

export interface MysqlGrammarPolicy {
  /** Accounts the gateway must never touch, whatever a ticket says. */
  protectedAccounts: string[];
}

export class MysqlGrammar implements ConnectorGrammar {
  readonly type = 'mysql';
  readonly defaultHost = '%';
  private readonly protectedAccounts: Set<string>;

  constructor(policy: MysqlGrammarPolicy) {
    this.protectedAccounts = new Set([...BUILT_IN_ACCOUNTS, ...policy.protectedAccounts].map((a) => a.toLowerCase()));
  }

  validateIdentity(identity: IdentityRef): FieldProblem[] {
    const problems: FieldProblem[] = [];
    if (!USER_NAME.test(identity.name)) {
      problems.push({
        path: 'identity.name',
        message: 'must be 1-32 characters of letters, digits, underscore, dot or hyphen, not starting with dot or hyphen',
      });
    } else if (this.protectedAccounts.has(identity.name.toLowerCase())) {
      problems.push({ path: 'identity.name', message: `'${identity.name}' is a protected account and cannot be changed by a ticket` });
    }
    if (identity.host !== undefined && !HOST.test(identity.host)) {
      problems.push({ path: 'identity.host', message: "must be '%', a host name, an IP address or a MySQL host pattern" });
    }
    return problems;
  }

  /** A privilege on the allow-list, on one database (its `_` escaped, so not a wildcard pattern) or one table. */
  manages(canonical: string): boolean {
    const { privilege, object } = splitCanonicalGrant(canonical);
    return (MYSQL_PRIVILEGES as readonly string[]).includes(privilege) && CANONICAL_OBJECT.test(object);
  }

  parseGrant(text: string): ParsedGrant | { problem: string } {
    const match = GRANT.exec(text);
    if (!match) return { problem: "must look like 'SELECT, INSERT ON db.*' or 'SELECT ON db.table'" };
    const privileges = (match[1] ?? '').split(',').map((p) => p.trim().toUpperCase().replace(/\s+/g, ' '));
    const unknown = privileges.filter((p) => !(MYSQL_PRIVILEGES as readonly string[]).includes(p));
    if (unknown.length > 0) {
      return { problem: `unknown or disallowed privilege ${unknown.map((p) => `'${p}'`).join(', ')} (allowed: ${MYSQL_PRIVILEGES.join(', ')})` };
    }
    // The canonical form exactly (`db`.* with `_` escaped, `db`.`table`) is accepted too, so a grant read from the
    // inventory or evidence can be asked for again as it stands; any other quoting is refused below.
    const objectText = match[2] ?? '';
    const canonical = CANONICAL_OBJECT.test(objectText);
    const [db, table, ...rest] = objectText.split('.').map((part, i, all) => (canonical ? unquoted(part, i === 0 && all[1] === '*') : part));
    if (db === undefined || table === undefined || rest.length > 0) return { problem: "the object must be 'db.*' or 'db.table'" };
    if (db === '*') return { problem: 'global grants (*.*) are not allowed by policy; name a database' };
    if (!OBJECT_NAME.test(db)) return { problem: `database name '${db.slice(0, 70)}' must be 1-64 characters of letters, digits, _ or $` };
    if (table !== '*' && !OBJECT_NAME.test(table)) return { problem: `table name '${table.slice(0, 70)}' must be 1-64 characters of letters, digits, _ or $` };
    if (table !== '*') {
      const dbOnly = privileges.filter((p) => DATABASE_ONLY.has(p));
      if (dbOnly.length > 0) return { problem: `${dbOnly.join(', ')} can only be granted on a whole database (db.*)` };
    }
    // In a database-level grant MySQL reads `_` as a one-character wildcard: escape it so the grant covers exactly
    // the named database. (Table-level grants take the database name literally.) SHOW GRANTS echoes the escape.
    const object = table === '*' ? `\`${db.replace(/_/g, '\\_')}\`.*` : `\`${db}\`.\`${table}\``;
    return { canonical: [...new Set(privileges)].sort().map((p) => `${p} ON ${object}`) };
  }
}

/** A backtick-quoted name of the canonical form, unquoted (a database-level grant's `\_` escape read back as `_`). */
function unquoted(part: string, databaseLevel: boolean): string {
  const m = /^`([^`]*)`$/.exec(part);
  if (!m) return part;
  const inner = m[1] ?? '';
  return databaseLevel ? inner.replace(/\\_/g, '_') : inner;
}

/** Turns SHOW GRANTS lines into the canonical per-privilege form. USAGE (and its password hash) is dropped. */
export function canonicalGrantsFromShowGrants(lines: string[]): string[] {
  const out = new Set<string>();
  for (const line of lines) {
    // Roles granted to the account (MariaDB/MySQL 8): "GRANT `r1`, `r2` TO `u`@`h`". Never granted by the gateway,
    // but a leaver must see and take them: REVOKE ALL PRIVILEGES leaves role grants in place.
    const roles = /^GRANT ((?:`(?:[^`]|``)+`(?:@`[^`]*`)?(?:, )?)+) TO /.exec(line);
    if (roles && !/ ON /.test(line.slice(0, roles[0].length))) {
      for (const r of (roles[1] ?? '').match(/`(?:[^`]|``)+`(?:@`[^`]*`)?/g) ?? []) out.add(`ROLE ${r}`);
      continue;
    }
    const match = /^GRANT (.+?) ON (\S+) TO /.exec(line);
    if (!match) continue;
    const object = match[2] ?? '';
    for (const priv of splitPrivileges(match[1] ?? '')) {
      if (priv === 'USAGE') continue;
      if (priv === 'ALL PRIVILEGES') {
        out.add(`ALL PRIVILEGES ON ${object}`);
        continue;
      }
      out.add(`${priv} ON ${object}`);
    }
    if (/ WITH GRANT OPTION\s*$/.test(line)) out.add(`GRANT OPTION ON ${object}`);
  }
  return [...out].sort();
}

/** Splits "SELECT, INSERT (a, b), UPDATE" on top-level commas only. */
function splitPrivileges(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current.trim());
      current = '';
    } else current += ch;
  }
  if (current.trim()) parts.push(current.trim());
  return parts;
}

/** Splits a canonical grant back into privilege and a statement-ready object (already quoted by parseGrant). */
/** The object part of a canonical grant: a whole database with `_` escaped, or one table. */
const CANONICAL_OBJECT = /^(`(?:[A-Za-z0-9$]|\\_){1,64}`\.\*|`[A-Za-z0-9_$]{1,64}`\.`[A-Za-z0-9_$]{1,64}`)$/;

export function splitCanonicalGrant(canonical: string): { privilege: string; object: string } {
  const at = canonical.lastIndexOf(' ON ');
  return { privilege: canonical.slice(0, at), object: canonical.slice(at + 4) };
}
