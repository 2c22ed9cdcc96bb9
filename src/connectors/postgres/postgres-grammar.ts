import type { IdentityRef } from '../../actions/identity-action';
import type { ConnectorGrammar, FieldProblem, ParsedGrant } from '../connector';

/**
 * The part of PostgreSQL's grammar the gateway speaks. Every name a ticket can put into a statement must be an
 * unquoted-style identifier (lower-case letters, digits, underscore; 63 bytes at most, PostgreSQL's NAMEDATALEN),
 * so the canonical text is exactly the catalog name and needs no quoting; the connector still double-quotes every
 * identifier it sends. Grant texts (keywords in any case, one or more privileges separated by commas):
 *
 *   CONNECT ON DATABASE <db>
 *   USAGE | CREATE ON SCHEMA <db>.<schema>
 *   SELECT | INSERT | UPDATE | DELETE ON TABLE <db>.<schema>.<table>
 *   SELECT | INSERT | UPDATE | DELETE ON ALL TABLES IN SCHEMA <db>.<schema>
 *   MEMBER OF <role>
 *
 * Schema and table grants live in one database, so they always name it; it must be one the connector manages.
 * Canonical form: one privilege per grant, keywords upper-case, single spaces, e.g. `SELECT ON TABLE app.sales.orders`.
 */
export const PG_IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Any role name PostgreSQL can hold (the connector's own, from the config, which need not be a plain identifier such
 * as `changegate-connector`): 1-63 bytes (NAMEDATALEN - 1, longer names are truncated), no control characters. Such a
 * name reaches SQL only through pg.escapeIdentifier.
 */
export function roleNameProblem(name: string): string | undefined {
  if (name.length === 0 || Buffer.byteLength(name, 'utf8') > 63) return 'must be 1-63 bytes long (PostgreSQL truncates longer role names)';
  if ([...name].some((ch) => ch.charCodeAt(0) < 0x20 || ch === '\u007f')) return 'must not contain control characters';
  return undefined;
}

export const TABLE_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] as const;
export const SCHEMA_PRIVILEGES = ['USAGE', 'CREATE'] as const;
export const DATABASE_PRIVILEGES = ['CONNECT'] as const;
export type TablePrivilege = (typeof TABLE_PRIVILEGES)[number];
export type SchemaPrivilege = (typeof SCHEMA_PRIVILEGES)[number];
export type DatabasePrivilege = (typeof DATABASE_PRIVILEGES)[number];

/** Role names PostgreSQL reserves or treats specially (`public` is every role; the others are SQL keywords). */
const RESERVED_ROLE_NAMES = new Set(['public', 'none', 'current_user', 'session_user', 'current_role', 'postgres']);

/** A grant the connector can apply and read back. `database` is where the object lives (and the statement runs). */
export type PgGrant =
  | { kind: 'database'; privilege: DatabasePrivilege; database: string }
  | { kind: 'schema'; privilege: SchemaPrivilege; database: string; schema: string }
  | { kind: 'table'; privilege: TablePrivilege; database: string; schema: string; table: string }
  | { kind: 'all-tables'; privilege: TablePrivilege; database: string; schema: string }
  | { kind: 'member'; role: string };

export function formatGrant(g: PgGrant): string {
  switch (g.kind) {
    case 'database':
      return `${g.privilege} ON DATABASE ${g.database}`;
    case 'schema':
      return `${g.privilege} ON SCHEMA ${g.database}.${g.schema}`;
    case 'table':
      return `${g.privilege} ON TABLE ${g.database}.${g.schema}.${g.table}`;
    case 'all-tables':
      return `${g.privilege} ON ALL TABLES IN SCHEMA ${g.database}.${g.schema}`;
    case 'member':
      return `MEMBER OF ${g.role}`;
  }
}

export interface PostgresGrammarPolicy {
  /** Roles the gateway must never touch, whatever a ticket says (its own, the reassign target, policy's list). */
  protectedAccounts: string[];
  /** Databases the connector manages: the only ones grants may name. */
  databases: string[];
  /** Roles a ticket may ask membership of (and so never change as identities). Empty: `MEMBER OF` is refused. */
  grantableRoles: string[];
}

const IDENT_RULE = 'must be 1-63 characters of lower-case letters, digits and underscore (quoted identifiers are not supported)';
const PRIVS = '([A-Za-z]+(?: *, *[A-Za-z]+)*)';
const MEMBER = /^MEMBER +OF +(\S+)$/i;
const ON_DATABASE = new RegExp(`^${PRIVS} +ON +DATABASE +(\\S+)$`, 'i');
const ON_SCHEMA = new RegExp(`^${PRIVS} +ON +SCHEMA +(\\S+)$`, 'i');
const ON_TABLE = new RegExp(`^${PRIVS} +ON +TABLE +(\\S+)$`, 'i');
const ON_ALL_TABLES = new RegExp(`^${PRIVS} +ON +ALL +TABLES +IN +SCHEMA +(\\S+)$`, 'i');
const SHAPES =
  "must be 'CONNECT ON DATABASE db', 'USAGE ON SCHEMA db.schema', 'SELECT ON TABLE db.schema.table', " +
  "'SELECT ON ALL TABLES IN SCHEMA db.schema' or 'MEMBER OF role'";

export class PostgresGrammar implements ConnectorGrammar {
  readonly type = 'postgres';
  private readonly protectedAccounts: Set<string>;
  private readonly databases: Set<string>;
  private readonly grantableRoles: Set<string>;

  constructor(policy: PostgresGrammarPolicy) {
    this.protectedAccounts = new Set(policy.protectedAccounts.map((a) => a.toLowerCase()));
    this.databases = new Set(policy.databases);
    this.grantableRoles = new Set(policy.grantableRoles);
  }

  validateIdentity(identity: IdentityRef): FieldProblem[] {
    const problems: FieldProblem[] = [];
    const name = identity.name;
    if (!PG_IDENTIFIER.test(name)) {
      problems.push({
        path: 'identity.name',
        message: 'must be 1-63 characters of lower-case letters, digits and underscore, not starting with a digit',
      });
    } else if (name.startsWith('pg_')) {
      problems.push({ path: 'identity.name', message: "names starting with 'pg_' are reserved for PostgreSQL's built-in roles" });
    } else if (RESERVED_ROLE_NAMES.has(name) || this.protectedAccounts.has(name)) {
      problems.push({ path: 'identity.name', message: `'${name}' is a protected or reserved role and cannot be changed by a ticket` });
    } else if (this.grantableRoles.has(name)) {
      // A role handed out as `MEMBER OF` is set-up, not an identity: a leaver must not drop it, a rotation not log it in.
      problems.push({ path: 'identity.name', message: `'${name}' is one of this connector's grantableRoles (handed out as MEMBER OF) and cannot be changed by a ticket` });
    }
    if (identity.host !== undefined) {
      problems.push({ path: 'identity.host', message: 'PostgreSQL roles have no host part; leave host out' });
    }
    return problems;
  }

  parseGrant(text: string): ParsedGrant | { problem: string } {
    const parsed = this.parse(text);
    return 'problem' in parsed ? parsed : { canonical: parsed.grants.map(formatGrant) };
  }

  /** The structured form the live connector executes; `parseGrant` is its text. */
  parse(text: string): { grants: PgGrant[] } | { problem: string } {
    if ([...text].some((ch) => ch.charCodeAt(0) < 0x20 || ch === '\u007f')) return { problem: 'must not contain control characters (newlines, tabs, NUL)' };
    const t = text.trim();
    if (t.length === 0 || t.length > 200) return { problem: `must be 1-200 characters; ${SHAPES}` };

    let m = MEMBER.exec(t);
    if (m) {
      const role = m[1] ?? '';
      if (!PG_IDENTIFIER.test(role)) return { problem: `role name '${role.slice(0, 70)}' ${IDENT_RULE}` };
      if (role.startsWith('pg_') || RESERVED_ROLE_NAMES.has(role) || this.protectedAccounts.has(role)) {
        return { problem: `membership of '${role}' is not allowed: built-in and protected roles cannot be handed out` };
      }
      if (!this.grantableRoles.has(role)) {
        const allowed = [...this.grantableRoles].sort().join(', ');
        return { problem: `membership of '${role}' is not allowed by this connector's grantableRoles (${allowed || 'none configured'})` };
      }
      return { grants: [{ kind: 'member', role }] };
    }

    if ((m = ON_ALL_TABLES.exec(t))) {
      const privileges = this.privileges(m[1], TABLE_PRIVILEGES, 'ALL TABLES');
      if ('problem' in privileges) return privileges;
      const object = this.objectName(m[2], 2, 'db.schema');
      if ('problem' in object) return object;
      const [database, schema] = object.parts as [string, string];
      return { grants: privileges.list.map((privilege) => ({ kind: 'all-tables', privilege, database, schema })) };
    }
    if ((m = ON_TABLE.exec(t))) {
      const privileges = this.privileges(m[1], TABLE_PRIVILEGES, 'TABLE');
      if ('problem' in privileges) return privileges;
      const object = this.objectName(m[2], 3, 'db.schema.table');
      if ('problem' in object) return object;
      const [database, schema, table] = object.parts as [string, string, string];
      return { grants: privileges.list.map((privilege) => ({ kind: 'table', privilege, database, schema, table })) };
    }
    if ((m = ON_SCHEMA.exec(t))) {
      const privileges = this.privileges(m[1], SCHEMA_PRIVILEGES, 'SCHEMA');
      if ('problem' in privileges) return privileges;
      const object = this.objectName(m[2], 2, 'db.schema');
      if ('problem' in object) return object;
      const [database, schema] = object.parts as [string, string];
      return { grants: privileges.list.map((privilege) => ({ kind: 'schema', privilege, database, schema })) };
    }
    if ((m = ON_DATABASE.exec(t))) {
      const privileges = this.privileges(m[1], DATABASE_PRIVILEGES, 'DATABASE');
      if ('problem' in privileges) return privileges;
      const object = this.objectName(m[2], 1, 'db');
      if ('problem' in object) return object;
      const [database] = object.parts as [string];
      return { grants: privileges.list.map((privilege) => ({ kind: 'database', privilege, database })) };
    }
    return { problem: SHAPES };
  }

  private privileges<P extends string>(text: string | undefined, allowed: readonly P[], on: string): { list: P[] } | { problem: string } {
    const list = (text ?? '').split(',').map((p) => p.trim().toUpperCase());
    const unknown = list.filter((p) => !(allowed as readonly string[]).includes(p));
    if (unknown.length > 0) {
      return { problem: `privilege ${unknown.map((p) => `'${p.slice(0, 40)}'`).join(', ')} is not allowed ON ${on} (allowed: ${allowed.join(', ')})` };
    }
    return { list: [...new Set(list as P[])].sort() };
  }

  private objectName(text: string | undefined, parts: number, shape: string): { parts: string[] } | { problem: string } {
    const names = (text ?? '').split('.');
    if (names.length !== parts) return { problem: `the object must be written ${shape} (the database is always named)` };
    const bad = names.find((n) => !PG_IDENTIFIER.test(n));
    if (bad !== undefined) return { problem: `name '${bad.slice(0, 70)}' ${IDENT_RULE}` };
    const database = names[0] ?? '';
    if (!this.databases.has(database)) {
      return { problem: `database '${database}' is not managed by this connector (managed: ${[...this.databases].sort().join(', ')})` };
    }
    return { parts: names };
  }
}
