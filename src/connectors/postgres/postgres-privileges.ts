/**
 * What a PostgreSQL role holds, read from the catalogs' ACLs themselves, and the GRANT/REVOKE of one checked grant.
 * Everything a role holds, in every managed database and on shared objects, including what the connector cannot
 * name or revoke, so that "no grants" can never pass unseen.
 */
import pg from 'pg';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import { formatGrant, type PgGrant, TABLE_PRIVILEGES } from './postgres-grammar';
import { ident, PgAccess, type PgAccessOptions } from './postgres-session';

const PRIVILEGE_NOT_GRANTED = '01007';
const PRIVILEGE_NOT_REVOKED = '01006';
const TABLE_KINDS = ['r', 'p', 'v', 'm', 'f'];
const ACL_PRIVILEGE = /^[A-Z]+$/;

/** A catalog name as canonical text: bare when the grammar could have written it, double-quoted otherwise. */
export function catalogName(name: string): string {
  return /^[a-z_][a-z0-9_]{0,62}$/.test(name) ? name : pg.escapeIdentifier(name);
}

/** One grant as the catalogs report it, with the statement that takes it back where the connector can. */
export interface HeldGrant {
  text: string;
  revoke?: { database: string; sql: string };
}

/** An ACL reference to the role that pg_shdepend holds (deptype 'a'), as read in the database it lives in. */
export interface AclDependency {
  catalog: string;
  objid: string;
  objsubid: number;
  object: string | null;
  /** What follows `REVOKE` for the kinds the connector can name: columns, routines, types, large objects. */
  target: string | null;
}

export interface RoleRow {
  oid: string;
  can_login: boolean;
  superuser: boolean;
  valid_until: string | null;
  expired: boolean;
  sessions: number;
}

export interface Observation {
  role: RoleRow;
  held: HeldGrant[];
  ownedObjects: number;
  ownsObjectsIn: string[];
}

/** The distinct grant texts, sorted: what inspect reports. */
export function heldTexts(held: HeldGrant[]): string[] {
  return [...new Set(held.map((h) => h.text))].sort();
}

/** PostgreSQL's own description of an object (`column total of table sales.orders`), control characters masked. */
function describe(d: AclDependency): string {
  const text = d.object ?? `${d.catalog} object ${d.objid}${d.objsubid ? `.${d.objsubid}` : ''}`;
  return [...text].map((ch) => (ch.charCodeAt(0) < 0x20 || ch === '\u007f' ? '?' : ch)).join('');
}

export class PgPrivileges extends PgAccess {
  constructor(
    name: string,
    opts: PgAccessOptions,
    pools: Map<string, pg.Pool>,
    /** The managed databases, each read for grants. */
    private readonly databases: string[],
  ) {
    super(name, opts, pools);
  }

  /** GRANT or REVOKE one checked grant. PostgreSQL only warns when a non-owner grants what it may not: that is a refusal. */
  async change(verb: 'GRANT' | 'REVOKE', g: PgGrant, role: string): Promise<void> {
    const to = verb === 'GRANT' ? 'TO' : 'FROM';
    let db = this.opts.database;
    let sql: string;
    switch (g.kind) {
      case 'member':
        sql = `${verb} ${ident(g.role)} ${to} ${ident(role)}`;
        break;
      case 'database':
        sql = `${verb} ${g.privilege} ON DATABASE ${ident(g.database)} ${to} ${ident(role)}`;
        break;
      case 'schema':
        db = g.database;
        sql = `${verb} ${g.privilege} ON SCHEMA ${ident(g.schema)} ${to} ${ident(role)}`;
        break;
      case 'table':
        db = g.database;
        sql = `${verb} ${g.privilege} ON TABLE ${ident(g.schema)}.${ident(g.table)} ${to} ${ident(role)}`;
        break;
      case 'all-tables':
        db = g.database;
        sql = `${verb} ${g.privilege} ON ALL TABLES IN SCHEMA ${ident(g.schema)} ${to} ${ident(role)}`;
        break;
    }
    const { notices } = await this.run(db, sql);
    const refused = notices.find((n) => n.code === (verb === 'GRANT' ? PRIVILEGE_NOT_GRANTED : PRIVILEGE_NOT_REVOKED));
    if (refused) {
      const cause = Object.assign(new Error(refused.message ?? 'privilege not granted'), { code: refused.code });
      throw new ConnectorRefusal(
        FailureType.TargetRefused,
        `${this.name}: PostgreSQL accepted ${verb} ${formatGrant(g)} ${to} '${role}' but did not apply it: ${refused.message} [${refused.code}] (the connector lacks the grant option)`,
        { cause },
      );
    }
  }

  async readRole(name: string): Promise<RoleRow | null> {
    const { rows } = await this.run<RoleRow>(
      this.opts.database,
      `SELECT r.oid::text AS oid, r.rolcanlogin AS can_login, r.rolsuper AS superuser,
              CASE WHEN r.rolvaliduntil IS NULL THEN NULL
                   WHEN isfinite(r.rolvaliduntil) THEN to_char(r.rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                   ELSE r.rolvaliduntil::text END AS valid_until,
              COALESCE(r.rolvaliduntil <= now(), false) AS expired,
              (SELECT count(*)::int FROM pg_stat_activity a WHERE a.usesysid = r.oid) AS sessions
         FROM pg_roles r WHERE r.rolname = $1`,
      [name],
    );
    return rows[0] ?? null;
  }

  /**
   * Everything the role holds, read from the ACLs themselves (aclexplode), not from has_*_privilege(), which would
   * also count PUBLIC's rights and those inherited through memberships. An owner's implicit rights are ownership, not
   * grants, and are left out.
   */
  async observe(name: string): Promise<Observation | null> {
    const role = await this.readRole(name);
    if (!role) return null;
    const held: HeldGrant[] = [];
    const primary = this.opts.database;
    const [dbAcl, members, shdeps, shared] = await Promise.all([
      this.run<{ oid: string; datname: string; privilege: string; grantable: boolean }>(
        primary,
        `SELECT d.oid::text AS oid, d.datname, a.privilege_type AS privilege, a.is_grantable AS grantable
           FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) a
          WHERE a.grantee = $1::oid AND d.datdba <> $1::oid`,
        [role.oid],
      ),
      this.run<{ rolname: string; admin_option: boolean }>(
        primary,
        'SELECT g.rolname, m.admin_option FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = $1::oid',
        [role.oid],
      ),
      // pg_shdepend is shared: it shows ownership and ACL references in every database, managed or not.
      this.run<{ deptype: string; datname: string | null; n: number }>(
        primary,
        `SELECT s.deptype, d.datname, count(*)::int AS n
           FROM pg_shdepend s LEFT JOIN pg_database d ON d.oid = s.dbid
          WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = $1::oid AND s.deptype IN ('o', 'a')
          GROUP BY 1, 2`,
        [role.oid],
      ),
      // ACL entries on shared objects (databases, tablespaces, parameters): only database ACLs are read in detail.
      this.run<AclDependency>(
        primary,
        `SELECT s.classid::regclass::text AS catalog, s.objid::text AS objid, s.objsubid, pg_describe_object(s.classid, s.objid, s.objsubid) AS object,
                NULL::text AS target
           FROM pg_shdepend s
          WHERE s.dbid = 0 AND s.refclassid = 'pg_authid'::regclass AND s.refobjid = $1::oid AND s.deptype = 'a'`,
        [role.oid],
      ),
    ]);
    const readDatabases = new Set(dbAcl.rows.map((r) => r.oid));
    for (const d of shared.rows) {
      if (d.catalog === 'pg_database' && d.objsubid === 0 && readDatabases.has(d.objid)) continue;
      held.push({ text: `OTHER PRIVILEGE ON ${describe(d)}` });
    }
    for (const r of dbAcl.rows) {
      const text = `${r.privilege} ON DATABASE ${catalogName(r.datname)}`;
      held.push({ text, revoke: this.revokeAcl(primary, r.privilege, `DATABASE ${pg.escapeIdentifier(r.datname)}`, name) });
      if (r.grantable) held.push({ text: `${text} WITH GRANT OPTION` });
    }
    for (const r of members.rows) {
      held.push({ text: `MEMBER OF ${catalogName(r.rolname)}`, revoke: { database: primary, sql: `REVOKE ${pg.escapeIdentifier(r.rolname)} FROM ${ident(name)}` } });
      if (r.admin_option) held.push({ text: `MEMBER OF ${catalogName(r.rolname)} WITH ADMIN OPTION` });
    }
    let ownedObjects = 0;
    const ownsObjectsIn = new Set<string>();
    for (const r of shdeps.rows) {
      if (r.deptype === 'o') {
        ownedObjects += r.n;
        if (r.datname !== null) ownsObjectsIn.add(r.datname);
      } else if (r.datname !== null && !this.databases.includes(r.datname)) {
        // Privileges in a database the connector does not read: named so that "no grants" cannot pass unseen.
        held.push({ text: `PRIVILEGES IN UNMANAGED DATABASE ${catalogName(r.datname)}` });
      }
    }
    for (const db of this.databases) held.push(...(await this.observeDatabase(db, role.oid, name)));
    return { role, held, ownedObjects, ownsObjectsIn: [...ownsObjectsIn].sort() };
  }

  private async observeDatabase(db: string, oid: string, name: string): Promise<HeldGrant[]> {
    const held: HeldGrant[] = [];
    const [schemas, relations, counts, dependencies] = await Promise.all([
      this.run<{ oid: string; schema: string; privilege: string; grantable: boolean }>(
        db,
        `SELECT n.oid::text AS oid, n.nspname AS schema, a.privilege_type AS privilege, a.is_grantable AS grantable
           FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
          WHERE a.grantee = $1::oid AND n.nspowner <> $1::oid`,
        [oid],
      ),
      this.run<{ oid: string; schema: string; name: string; kind: string; privilege: string; grantable: boolean }>(
        db,
        `SELECT c.oid::text AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind, a.privilege_type AS privilege, a.is_grantable AS grantable
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN LATERAL aclexplode(c.relacl) a
          WHERE a.grantee = $1::oid AND c.relowner <> $1::oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')`,
        [oid],
      ),
      this.run<{ schema: string; tables: number }>(
        db,
        `SELECT n.nspname AS schema, count(*)::int AS tables
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = ANY($1::char[]) GROUP BY 1`,
        [TABLE_KINDS],
      ),
      // Every ACL entry naming the role in this database, whatever the object: what the reads above do not cover
      // (column, function, type, large-object, default privileges, ...) is reported too, so "no grants" cannot pass.
      this.run<AclDependency>(
        db,
        `SELECT s.classid::regclass::text AS catalog, s.objid::text AS objid, s.objsubid, pg_describe_object(s.classid, s.objid, s.objsubid) AS object,
                CASE
                  WHEN s.classid = 'pg_class'::regclass AND s.objsubid > 0 THEN
                    (SELECT format('ALL (%I) ON TABLE %I.%I', a.attname, n.nspname, c.relname)
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = s.objsubid
                      WHERE c.oid = s.objid)
                  WHEN s.classid = 'pg_proc'::regclass THEN
                    (SELECT format('ALL ON ROUTINE %I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
                       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = s.objid)
                  WHEN s.classid = 'pg_type'::regclass THEN
                    (SELECT format('ALL ON TYPE %I.%I', n.nspname, t.typname) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = s.objid)
                  WHEN s.classid = 'pg_largeobject'::regclass THEN format('ALL ON LARGE OBJECT %s', s.objid)
                END AS target
           FROM pg_shdepend s
          WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND s.refclassid = 'pg_authid'::regclass AND s.refobjid = $1::oid AND s.deptype = 'a'`,
        [oid],
      ),
    ]);
    const dbName = catalogName(db);
    for (const r of schemas.rows) {
      const text = `${r.privilege} ON SCHEMA ${dbName}.${catalogName(r.schema)}`;
      held.push({ text, revoke: this.revokeAcl(db, r.privilege, `SCHEMA ${pg.escapeIdentifier(r.schema)}`, name) });
      if (r.grantable) held.push({ text: `${text} WITH GRANT OPTION` });
    }
    const perSchema = new Map<string, Set<string>>();
    for (const r of relations.rows) {
      const keyword = r.kind === 'S' ? 'SEQUENCE' : 'TABLE';
      const text = `${r.privilege} ON ${keyword} ${dbName}.${catalogName(r.schema)}.${catalogName(r.name)}`;
      held.push({ text, revoke: this.revokeAcl(db, r.privilege, `${keyword} ${pg.escapeIdentifier(r.schema)}.${pg.escapeIdentifier(r.name)}`, name) });
      if (r.grantable) held.push({ text: `${text} WITH GRANT OPTION` });
      if (r.kind !== 'S') {
        const key = `${r.schema}\u0000${r.privilege}`;
        perSchema.set(key, (perSchema.get(key) ?? new Set()).add(r.name));
      }
    }
    // `ON ALL TABLES IN SCHEMA` is a one-off expansion in PostgreSQL, not a stored grant: it reads back as held while
    // the role holds the privilege on every table-like relation in the schema (and there is at least one).
    for (const { schema, tables } of counts.rows) {
      for (const privilege of TABLE_PRIVILEGES) {
        if (tables > 0 && perSchema.get(`${schema}\u0000${privilege}`)?.size === tables) {
          held.push({ text: `${privilege} ON ALL TABLES IN SCHEMA ${dbName}.${catalogName(schema)}` });
        }
      }
    }
    const read = new Set([...schemas.rows.map((r) => `pg_namespace:${r.oid}`), ...relations.rows.map((r) => `pg_class:${r.oid}`)]);
    for (const d of dependencies.rows) {
      if (d.objsubid === 0 && read.has(`${d.catalog}:${d.objid}`)) continue;
      // Best effort: PostgreSQL takes back only what the connector (or a role whose privileges it has) granted.
      const revoke = d.target ? { database: db, sql: `REVOKE ${d.target} FROM ${ident(name)} CASCADE` } : undefined;
      held.push({ text: `OTHER PRIVILEGE IN DATABASE ${dbName} ON ${describe(d)}`, revoke });
    }
    return held;
  }

  private revokeAcl(database: string, privilege: string, object: string, role: string): HeldGrant['revoke'] {
    if (!ACL_PRIVILEGE.test(privilege)) return undefined;
    // CASCADE: grants the leaver passed on with its grant option go too.
    return { database, sql: `REVOKE ${privilege} ON ${object} FROM ${ident(role)} CASCADE` };
  }
}
