/**
 * PostgreSQL (15) login roles: create, grant, inspect from the catalogs' ACLs, disable or drop, rotate passwords.
 *
 * LEAST PRIVILEGE for the connector's own role (what the tests create, as an administrator, and run with):
 *
 *   CREATE ROLE changegate_connector LOGIN PASSWORD '…' CREATEROLE;
 *     -- create, alter (NOLOGIN, VALID UNTIL, PASSWORD) and drop non-superuser roles, grant and revoke membership.
 *   GRANT pg_signal_backend TO changegate_connector;          -- end a leaver's open sessions
 *   GRANT <reassignTo> TO changegate_connector;               -- only with ownedObjects 'reassign' (see below)
 *   GRANT CONNECT ON DATABASE <each managed db> TO changegate_connector;  -- WITH GRANT OPTION where tickets grant CONNECT
 *   GRANT USAGE [, CREATE] ON SCHEMA <s> TO changegate_connector WITH GRANT OPTION;          -- per schema it hands out
 *   GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE <s>.<t> TO changegate_connector WITH GRANT OPTION;  -- per table
 *
 * No SUPERUSER, CREATEDB, REPLICATION or BYPASSRLS, and it owns no application objects. PostgreSQL lets a non-owner
 * grant only what it holds WITH GRANT OPTION, so those grants are the exact list of what tickets can hand out.
 *
 * PG15 caveats, verified on PostgreSQL 15.20:
 * - CREATEROLE is nearly superuser in PG15 (PG16 narrows it): the holder can alter or drop EVERY non-superuser role and
 *   grant membership of EVERY non-superuser role, including predefined ones such as pg_read_server_files or
 *   pg_execute_server_program. The grammar therefore refuses pg_* roles and hands out only `grantableRoles`.
 * - REASSIGN OWNED BY x TO y needs the privileges of both x and y (membership with INHERIT); DROP OWNED BY x needs
 *   those of x. The connector grants itself the leaver's role just before (CREATEROLE allows that in PG15); DROP ROLE
 *   ends the membership, and on any failure the connector revokes it again before raising the error (a membership a
 *   crashed attempt left is revoked by the retry the same way). Membership of `reassignTo` is granted once by the
 *   administrator (above).
 * - Both are per database: they run in every managed database. Objects owned in another database make DROP ROLE
 *   fail, and the refusal names them.
 * - REASSIGN OWNED of tables, views and sequences needs nothing more. Of a schema the leaver owns, it needs CREATE on
 *   that database (GRANT CREATE ON DATABASE <db> TO changegate_connector); of functions and types, `reassignTo` needs
 *   CREATE on their schema. Without those PostgreSQL refuses (permission denied), the whole database's step rolls back
 *   and the refusal says which.
 * - REVOKE works per grantor, and so does DROP OWNED: the connector's removes only what it (or a role whose privileges
 *   it has) granted. Privileges another grantor gave the leaver stay, and DROP ROLE refuses; the refusal lists them.
 *   Only that grantor can take them back (a superuser too, but as that grantor: SET ROLE <grantor>; REVOKE …, because
 *   a superuser's own REVOKE or DROP OWNED acts as the object's owner and removes only the owner's grants).
 * - inspect reads database, schema, table and sequence ACLs and memberships in detail. Every other ACL entry naming the
 *   role (pg_shdepend, deptype 'a': column, routine, type, large-object and default privileges, tablespaces, ...) is
 *   reported as `OTHER PRIVILEGE [IN DATABASE db] ON <PostgreSQL's description>`, so "no grants" cannot verify while
 *   one is left. A disable-mode leaver revokes those it can name (columns, routines, types, large objects; only the
 *   connector's own grants go) and is refused, naming the rest, when any privilege is still held afterwards.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import pg from 'pg';
import type { IdentityRef } from '../../actions/identity-action';
import { alreadyAbsent, assertValidIdentity, type Connector, type CredentialRotator, type DesiredAccount, type DiscoveredIdentity, type ObservedAccount, type ProvisionOutcome, revokeTarget, type RevokeMode, type RevokeOutcome, type RotationResult } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import { Secret } from '../secret';
import { formatGrant, PG_IDENTIFIER, type PgGrant, PostgresGrammar, roleNameProblem, TABLE_PRIVILEGES } from './postgres-grammar';

export interface PostgresConnectorOptions {
  name: string;
  host: string;
  port: number;
  /** Where role-level statements run (roles, memberships and database ACLs are cluster-wide). */
  database: string;
  /** The databases it manages: the only ones grants may name; REASSIGN/DROP OWNED run in each. */
  databases: string[];
  user: string;
  password: string;
  protectedAccounts: string[];
  /** Roles a ticket may ask membership of. */
  grantableRoles: string[];
  /** Leaver policy: drop the role, or disable it (NOLOGIN, VALID UNTIL -infinity) and strip its grants. */
  revokeMode?: RevokeMode;
  /** What a deleted leaver's objects become: owned by `reassignTo`, or dropped with the role. */
  ownedObjects: 'reassign' | 'drop';
  reassignTo?: string;
  /** How long a statement waits for a lock before failing (transiently) instead of blocking the target. */
  lockTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** TLS, with the server's certificate verified against the system CAs. */
  tls?: boolean;
}

/**
 * SQLSTATE classes and codes that mean "try again later": connection exceptions (08), transaction rollbacks such as
 * deadlocks and serialization failures (40), insufficient resources such as too_many_connections (53), operator
 * intervention such as admin_shutdown or a statement timeout (57), system errors (58), lock_not_available (55P03).
 */
const TRANSIENT_CLASSES = new Set(['08', '40', '53', '57', '58']);
const TRANSIENT_CODES = new Set(['55P03']);
const DUPLICATE_OBJECT = '42710';
const DEPENDENT_OBJECTS_STILL_EXIST = '2BP01';
const PRIVILEGE_NOT_GRANTED = '01007';
const PRIVILEGE_NOT_REVOKED = '01006';
const UNDEFINED_OBJECT = '42704';
/**
 * A disable-mode REVOKE that fails with one of these leaves nothing worse than before: the connector has no right to
 * the object at all (42501), or it went away meanwhile. The read-back afterwards decides what is still held.
 */
const NOT_REVOCABLE_HERE = new Set(['42501', UNDEFINED_OBJECT, '42P01', '42883', '3F000']);
const TABLE_KINDS = ['r', 'p', 'v', 'm', 'f'];
const ACL_PRIVILEGE = /^[A-Z]+$/;

export function isTransientSqlState(code: string | undefined): boolean {
  return code !== undefined && (TRANSIENT_CLASSES.has(code.slice(0, 2)) || TRANSIENT_CODES.has(code));
}

/**
 * Turns whatever pg threw into the gateway's two kinds of failure. A server error with a non-transient SQLSTATE is the
 * target's refusal; everything else (sockets, timeouts, transient SQLSTATEs) is retried. Messages are rebuilt from
 * code, message and detail only; for a statement carrying a credential even those are dropped.
 */
export function classifyPgError(connector: string, raw: unknown, opts: { secret?: boolean } = {}): Error {
  if (raw instanceof ConnectorRefusal) return raw;
  const err = (raw ?? {}) as { code?: unknown; message?: unknown; detail?: unknown };
  const code = typeof err.code === 'string' ? err.code : undefined;
  const fromServer = raw instanceof pg.DatabaseError;
  const message = opts.secret ? undefined : typeof err.message === 'string' ? err.message : undefined;
  const detail = opts.secret || !fromServer || typeof err.detail !== 'string' ? undefined : err.detail;
  const text = `${connector}: ${message ?? 'statement failed'}${detail ? ` (${detail.replace(/\n/g, '; ')})` : ''} [${code ?? 'no code'}]`;
  const cause = Object.assign(new Error(message ?? code ?? 'error'), { code, detail });
  if (!fromServer || isTransientSqlState(code)) return Object.assign(new Error(text, { cause }), { transient: true });
  return new ConnectorRefusal(FailureType.TargetRefused, text, { cause });
}

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802/7677, as libpq's PQencryptPasswordConn makes
 * it). Sending this instead of the password keeps the value out of the server, its statement log and pg_stat_activity.
 */
export function scramSha256Verifier(password: string, iterations = 4096): string {
  // SASLprep is the identity on printable ASCII, which is all Secret.generate() produces; anything else is refused.
  if (!/^[\x21-\x7e]+$/.test(password)) throw new Error('a generated password must be printable ASCII');
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const storedKey = createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** A catalog name as canonical text: bare when the grammar could have written it, double-quoted otherwise. */
function catalogName(name: string): string {
  return /^[a-z_][a-z0-9_]{0,62}$/.test(name) ? name : pg.escapeIdentifier(name);
}

interface Notice {
  code?: string;
  message?: string;
}

interface Session {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, values?: unknown[], opts?: { secret?: boolean }): Promise<{ rows: R[]; notices: Notice[] }>;
}

/** One grant as the catalogs report it, with the statement that takes it back where the connector can. */
interface HeldGrant {
  text: string;
  revoke?: { database: string; sql: string };
}

/** An ACL reference to the role that pg_shdepend holds (deptype 'a'), as read in the database it lives in. */
interface AclDependency {
  catalog: string;
  objid: string;
  objsubid: number;
  object: string | null;
  /** What follows `REVOKE` for the kinds the connector can name: columns, routines, types, large objects. */
  target: string | null;
}

interface RoleRow {
  oid: string;
  can_login: boolean;
  superuser: boolean;
  valid_until: string | null;
  expired: boolean;
  sessions: number;
}

interface Observation {
  role: RoleRow;
  held: HeldGrant[];
  ownedObjects: number;
  ownsObjectsIn: string[];
}

export class PostgresConnector implements Connector, CredentialRotator {
  readonly grammar: PostgresGrammar;
  private readonly pools = new Map<string, pg.Pool>();
  private readonly revokeMode: RevokeMode;
  private readonly databases: string[];
  private readonly protectedAccounts: Set<string>;
  /** The connector's own role, quoted: any legal role name, checked when the connector is made, never mid-revoke. */
  private readonly self: string;

  constructor(readonly name: string, private readonly opts: PostgresConnectorOptions) {
    if (opts.ownedObjects === 'reassign' && !opts.reassignTo) throw new Error(`connector '${name}': ownedObjects 'reassign' needs reassignTo`);
    const problem = configProblem(opts);
    if (problem) throw new Error(`connector '${name}': ${problem}`);
    this.self = pg.escapeIdentifier(opts.user);
    this.revokeMode = opts.revokeMode ?? 'delete';
    this.databases = [...new Set(opts.databases)];
    const protectedAccounts = [...opts.protectedAccounts, opts.user, ...(opts.reassignTo ? [opts.reassignTo] : [])];
    this.protectedAccounts = new Set(protectedAccounts.map((a) => a.toLowerCase()));
    this.grammar = new PostgresGrammar({ protectedAccounts, databases: this.databases, grantableRoles: opts.grantableRoles });
  }

  async inspect(identity: IdentityRef): Promise<ObservedAccount> {
    const name = this.roleName(identity);
    const seen = await this.observe(name);
    return seen ? this.observed(seen) : { exists: false, grants: [] };
  }

  async provision(identity: IdentityRef, grants: string[]): Promise<ProvisionOutcome> {
    const name = this.roleName(identity);
    const wanted = this.checkedGrants(grants);
    let created = false;
    if (!(await this.readRole(name))) {
      try {
        // No password: the role cannot authenticate by password until a rotation delivers one to the workload.
        await this.run(this.opts.database, `CREATE ROLE ${ident(name)} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT`);
        created = true;
      } catch (err) {
        if (codeOf(err) !== DUPLICATE_OBJECT) throw err; // created concurrently: not ours
      }
    }
    const applied: PgGrant[] = [];
    try {
      for (const g of wanted) {
        await this.change('GRANT', g, name);
        applied.push(g);
      }
    } catch (err) {
      // A retried provision must find no half-made role it would then report as pre-existing (created: false).
      if (created) await this.undoCreate(name, applied, err);
      throw err;
    }
    return { created, detail: `${created ? 'created' : 'found existing'} role '${name}', granted ${wanted.length} privilege(s)` };
  }

  async revokeGrants(identity: IdentityRef, grants: string[], dropAccount: boolean): Promise<RevokeOutcome> {
    const name = this.roleName(identity);
    const wanted = this.checkedGrants(grants);
    const before = await this.inspect(identity);
    if (!before.exists) return { changed: false, detail: `role '${name}' was already absent` };
    if (dropAccount) return this.revoke(identity);
    for (const g of wanted) await this.change('REVOKE', g, name);
    const after = await this.inspect(identity);
    const removed = before.grants.filter((g) => !after.grants.includes(g));
    // A privilege someone else granted is untouched by our REVOKE (PostgreSQL revokes per grantor); verification shows it.
    const kept = wanted.map(formatGrant).filter((g) => after.grants.includes(g));
    return {
      changed: removed.length > 0,
      detail: `revoked ${removed.length} grant(s) from role '${name}'${kept.length > 0 ? `; still held (granted by another role): ${kept.join(', ')}` : ''}`,
    };
  }

  async revoke(identity: IdentityRef): Promise<RevokeOutcome> {
    const name = this.roleName(identity);
    const before = await this.observe(name);
    // Absent means no access, which is what a leaver wants under either policy: nothing is left to drop or disable.
    if (!before) return alreadyAbsent(`role '${name}'`);
    const expected = revokeTarget(this.grammar, identity, this.revokeMode).leaves;
    if (this.revokeMode === 'disable') return this.disable(name, before, expected);
    const primary = this.opts.database;
    // Every name is quoted before the first statement: nothing can be refused half-way for its spelling.
    const role = ident(name);
    const reassignTo = this.opts.ownedObjects === 'reassign' ? ident(this.opts.reassignTo ?? '') : undefined;
    let ended: string;
    try {
      // NOLOGIN first, so no new session starts while the old ones are ended and the role is dismantled.
      await this.run(primary, `ALTER ROLE ${role} NOLOGIN`);
      ended = await this.endSessions(before.role.oid);
      // PG15: REASSIGN/DROP OWNED need the leaver's privileges; CREATEROLE may grant them to itself (a NOTICE if an
      // earlier attempt already did). DROP ROLE ends the membership; on any failure it is revoked below.
      await this.run(primary, `GRANT ${role} TO ${this.self}`);
      for (const db of this.databases) {
        await this.session(db, async (s) => {
          await s.query('BEGIN');
          if (reassignTo) await s.query(`REASSIGN OWNED BY ${role} TO ${reassignTo}`);
          // Also revokes the privileges the leaver holds in this database (those the connector may revoke).
          await s.query(`DROP OWNED BY ${role}`);
          await s.query('COMMIT');
        });
      }
      await this.dropRole(name);
    } catch (err) {
      throw await this.dropBorrowedMembership(name, err);
    }
    const owned = before.ownedObjects === 0 ? 'it owned nothing' : this.opts.ownedObjects === 'reassign'
      ? `reassigned ${before.ownedObjects} owned object(s) to '${this.opts.reassignTo}'`
      : `dropped ${before.ownedObjects} owned object(s)`;
    const grants = heldTexts(before.held).length;
    return { changed: true, detail: `set NOLOGIN, ${ended}, ${owned}, revoked ${grants} grant(s), dropped role '${name}' (databases: ${this.databases.join(', ')})`, expected };
  }

  async discover(): Promise<DiscoveredIdentity[]> {
    const { rows } = await this.run<{ name: string; can_login: boolean; superuser: boolean; expired: boolean }>(
      this.opts.database,
      `SELECT rolname AS name, rolcanlogin AS can_login, rolsuper AS superuser, COALESCE(rolvaliduntil <= now(), false) AS expired
         FROM pg_roles ORDER BY rolname`,
    );
    return rows.map((r) => {
      // Roles handed out as grants are part of the gateway's own set-up, not identities nobody accounts for.
      const isProtected =
        r.superuser || r.name.startsWith('pg_') || this.protectedAccounts.has(r.name.toLowerCase()) || r.name === 'postgres' || this.opts.grantableRoles.includes(r.name);
      return { name: r.name, locked: !r.can_login || r.expired, ...(isProtected ? { protected: true } : {}) };
    });
  }

  async rotate(identity: IdentityRef): Promise<RotationResult> {
    const name = this.roleName(identity);
    const role = await this.readRole(name);
    if (!role) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: role '${name}' does not exist, so it has no password to rotate`);
    const secret = Secret.generate();
    await this.run(this.opts.database, `ALTER ROLE ${ident(name)} PASSWORD ${pg.escapeLiteral(scramSha256Verifier(secret.reveal()))}`, [], { secret: true });
    const locked = !role.can_login || role.expired ? ' (the role cannot log in: NOLOGIN or VALID UNTIL has passed)' : '';
    return { secret, detail: `set a new password for role '${name}', sent as a SCRAM-SHA-256 verifier${locked}` };
  }

  /**
   * Logs in as the role. Only a server that asks for the password proves anything: under `trust` (or peer/cert) any
   * value gets in, so a login that was never challenged is reported as unverifiable rather than as success.
   */
  async authenticates(identity: IdentityRef, secret: Secret): Promise<boolean> {
    const name = this.roleName(identity);
    let challenged = false;
    const client = new pg.Client({
      host: this.opts.host,
      port: this.opts.port,
      database: this.opts.database,
      user: name,
      password: () => {
        challenged = true;
        return secret.reveal();
      },
      connectionTimeoutMillis: this.opts.connectTimeoutMs ?? 5_000,
      application_name: 'changegate-verify',
      ...this.tls(),
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (raw) {
      const code = codeOf(raw);
      // 28P01 wrong or expired password; 28000 NOLOGIN or no pg_hba entry.
      if (code === '28P01' || code === '28000') return false;
      // Database permissions are checked after authentication: this refusal means the password was accepted.
      if (code === '42501' && challenged) return true;
      throw classifyPgError(this.name, raw);
    } finally {
      await client.end().catch(() => undefined);
    }
    if (!challenged) {
      throw new ConnectorRefusal(
        FailureType.TargetRefused,
        `${this.name}: the server let '${name}' in without asking for a password (pg_hba trust, peer or cert), so the credential cannot be verified here`,
      );
    }
    return true;
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.end()));
  }

  private observed(seen: Observation): ObservedAccount {
    return {
      exists: true,
      locked: !seen.role.can_login || seen.role.expired,
      grants: heldTexts(seen.held),
      activeSessions: seen.role.sessions,
      attributes: {
        canLogin: seen.role.can_login,
        validUntil: seen.role.valid_until,
        ownedObjects: seen.ownedObjects,
        ownsObjectsIn: seen.ownsObjectsIn,
      },
    };
  }

  /**
   * After a failed delete the connector must not keep the leaver's privileges it lent itself, whether this attempt
   * granted the membership or a crashed earlier one did. Returns the error to throw.
   */
  private async dropBorrowedMembership(name: string, failure: unknown): Promise<unknown> {
    try {
      // Only a WARNING when the connector is not a member.
      await this.run(this.opts.database, `REVOKE ${ident(name)} FROM ${this.self}`);
      return failure;
    } catch (err) {
      if (codeOf(err) === UNDEFINED_OBJECT) return failure; // the role is gone, and the membership with it
      const text = `${failure instanceof Error ? failure.message : String(failure)}; and the connector's own membership of role '${name}', ` +
        `granted for REASSIGN/DROP OWNED, could not be revoked: ${(err as Error).message}`;
      // Unless the REVOKE itself was refused, the step is retried, and the retry revokes the membership again.
      return err instanceof ConnectorRefusal
        ? new ConnectorRefusal(FailureType.TargetRefused, text, { cause: failure })
        : Object.assign(new Error(text, { cause: failure }), { transient: true });
    }
  }

  private async disable(name: string, before: Observation, expected: Readonly<DesiredAccount>): Promise<RevokeOutcome> {
    const { role } = before;
    if (!role.can_login && role.valid_until === '-infinity' && before.held.length === 0 && role.sessions === 0) {
      return { changed: false, detail: `role '${name}' was already disabled with no grants`, expected };
    }
    // VALID UNTIL -infinity as well as NOLOGIN: should someone turn LOGIN back on, the password is still expired.
    await this.run(this.opts.database, `ALTER ROLE ${ident(name)} NOLOGIN VALID UNTIL '-infinity'`);
    const ended = await this.endSessions(role.oid);
    for (const h of before.held) {
      if (!h.revoke) continue;
      try {
        await this.run(h.revoke.database, h.revoke.sql);
      } catch (err) {
        if (!NOT_REVOCABLE_HERE.has(codeOf(err) ?? '')) throw err;
      }
    }
    const after = await this.observe(name);
    const left = after ? heldTexts(after.held) : [];
    const revoked = heldTexts(before.held).filter((t) => !left.includes(t)).length;
    if (left.length > 0) {
      // Verification would fail on these anyway; the refusal says why, and what would clear it.
      throw new ConnectorRefusal(
        FailureType.TargetRefused,
        `${this.name}: role '${name}' is disabled (NOLOGIN, VALID UNTIL -infinity, ${ended}, revoked ${revoked} grant(s)) but still holds ` +
          `privileges the connector cannot revoke: ${left.join(', ')}. PostgreSQL revokes per grantor, so only the role that granted them ` +
          '(or a superuser acting as that role) can take them back; a retry then completes the leaver',
      );
    }
    return {
      changed: true,
      detail: `set NOLOGIN and VALID UNTIL -infinity, ${ended}, revoked ${revoked} grant(s); role '${name}' and its ${before.ownedObjects} owned object(s) kept (policy: disable)`,
      expected,
    };
  }

  /** Ends the role's sessions and waits for them to go: dropping or disabling a role does not disconnect it. */
  private async endSessions(oid: string): Promise<string> {
    const { rows } = await this.run<{ pid: number }>(this.opts.database, 'SELECT pid FROM pg_stat_activity WHERE usesysid = $1::oid AND pid <> pg_backend_pid()', [oid]);
    for (const { pid } of rows) {
      // With a timeout, pg_terminate_backend waits until the backend has exited (PostgreSQL 14+).
      await this.run(this.opts.database, 'SELECT pg_terminate_backend($1, 5000)', [pid]);
    }
    const { rows: left } = await this.run<{ n: number }>(this.opts.database, 'SELECT count(*)::int AS n FROM pg_stat_activity WHERE usesysid = $1::oid', [oid]);
    if ((left[0]?.n ?? 0) > 0) throw Object.assign(new Error(`${this.name}: ${left[0]?.n} session(s) of the role have not ended yet`), { transient: true });
    return `ended ${rows.length} session(s)`;
  }

  /** GRANT or REVOKE one checked grant. PostgreSQL only warns when a non-owner grants what it may not: that is a refusal. */
  private async change(verb: 'GRANT' | 'REVOKE', g: PgGrant, role: string): Promise<void> {
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

  /** DROP ROLE names only dependents in the current database; a refusal is completed with what the role still holds. */
  private async dropRole(name: string): Promise<void> {
    try {
      await this.run(this.opts.database, `DROP ROLE IF EXISTS ${ident(name)}`);
    } catch (err) {
      if (codeOf(err) !== DEPENDENT_OBJECTS_STILL_EXIST) throw err;
      const left = await this.observe(name).catch(() => null);
      if (!left) throw err;
      const held = heldTexts(left.held);
      const facts = [
        ...(held.length > 0 ? [`still held (granted by another role): ${held.join(', ')}`] : []),
        ...(left.ownsObjectsIn.length > 0 ? [`owns objects in: ${left.ownsObjectsIn.join(', ')}`] : []),
      ];
      throw new ConnectorRefusal(FailureType.TargetRefused, `${(err as Error).message}; ${facts.join('; ') || 'see the cause'}`, { cause: (err as Error).cause });
    }
  }

  private async undoCreate(name: string, applied: PgGrant[], original: unknown): Promise<void> {
    try {
      for (const g of [...applied].reverse()) await this.change('REVOKE', g, name);
      await this.dropRole(name);
    } catch (undoErr) {
      if (original instanceof Error) {
        original.message += ` (and the role '${name}' this call created could not be removed again: ${(undoErr as Error).message})`;
      }
    }
  }

  private async readRole(name: string): Promise<RoleRow | null> {
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
  private async observe(name: string): Promise<Observation | null> {
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

  private roleName(identity: IdentityRef): string {
    assertValidIdentity(this.grammar, identity);
    return identity.name;
  }

  /** Every grant is parsed again here, all before the first statement: a bad one must not leave a half-made role. */
  private checkedGrants(grants: string[]): PgGrant[] {
    const out: PgGrant[] = [];
    grants.forEach((text, i) => {
      const parsed = this.grammar.parse(text);
      if ('problem' in parsed) throw new ConnectorRefusal(FailureType.InvalidIdentity, `grants[${i}]: ${parsed.problem}`);
      out.push(...parsed.grants);
    });
    return out;
  }

  private pool(db: string): pg.Pool {
    let pool = this.pools.get(db);
    if (!pool) {
      pool = new pg.Pool({
        host: this.opts.host,
        port: this.opts.port,
        database: db,
        user: this.opts.user,
        password: this.opts.password,
        max: 2,
        connectionTimeoutMillis: this.opts.connectTimeoutMs ?? 5_000,
        idleTimeoutMillis: 10_000,
        lock_timeout: this.opts.lockTimeoutMs ?? 5_000,
        statement_timeout: 60_000,
        application_name: 'changegate',
        ...this.tls(),
      });
      // An idle connection the server dropped: the pool discards it and the next checkout reconnects.
      pool.on('error', () => undefined);
      this.pools.set(db, pool);
    }
    return pool;
  }

  private tls(): { ssl?: { rejectUnauthorized: true } } {
    return this.opts.tls ? { ssl: { rejectUnauthorized: true } } : {};
  }

  private async session<T>(db: string, fn: (s: Session) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool(db).connect();
    } catch (raw) {
      throw classifyPgError(this.name, raw);
    }
    const notices: Notice[] = [];
    const onNotice = (n: Notice): void => {
      notices.push({ code: n.code, message: n.message });
    };
    client.on('notice', onNotice);
    let failed = false;
    try {
      return await fn({
        query: async <R extends pg.QueryResultRow>(sql: string, values: unknown[] = [], opts: { secret?: boolean } = {}) => {
          const from = notices.length;
          try {
            const result = await client.query<R>(sql, values);
            return { rows: result.rows, notices: notices.slice(from) };
          } catch (raw) {
            failed = true;
            throw classifyPgError(this.name, raw, opts);
          }
        },
      });
    } finally {
      client.off('notice', onNotice);
      // After any error the connection may sit in an aborted transaction: discard it rather than reuse it.
      client.release(failed);
    }
  }

  private run<R extends pg.QueryResultRow = pg.QueryResultRow>(db: string, sql: string, values: unknown[] = [], opts: { secret?: boolean } = {}) {
    return this.session(db, (s) => s.query<R>(sql, values, opts));
  }
}

/** The distinct grant texts, sorted: what inspect reports. */
function heldTexts(held: HeldGrant[]): string[] {
  return [...new Set(held.map((h) => h.text))].sort();
}

/** PostgreSQL's own description of an object (`column total of table sales.orders`), control characters masked. */
function describe(d: AclDependency): string {
  const text = d.object ?? `${d.catalog} object ${d.objid}${d.objsubid ? `.${d.objsubid}` : ''}`;
  return [...text].map((ch) => (ch.charCodeAt(0) < 0x20 || ch === '\u007f' ? '?' : ch)).join('');
}

/** Names from the config reach SQL too: a bad one is a configuration error when the connector is made. */
function configProblem(opts: PostgresConnectorOptions): string | undefined {
  const userProblem = roleNameProblem(opts.user);
  if (userProblem) return `user ${userProblem}`;
  const identifiers: Array<[string, string | undefined]> = [
    ['database', opts.database],
    ['reassignTo', opts.reassignTo],
    ...opts.databases.map((d, i): [string, string] => [`databases[${i}]`, d]),
    ...opts.grantableRoles.map((r, i): [string, string] => [`grantableRoles[${i}]`, r]),
  ];
  const bad = identifiers.find(([, v]) => v !== undefined && !PG_IDENTIFIER.test(v));
  return bad ? `${bad[0]} '${String(bad[1]).slice(0, 70)}' must be a lower-case PostgreSQL identifier (letters, digits, _)` : undefined;
}

/** A name already checked by the grammar, double-quoted all the same (defence in depth). */
function ident(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new ConnectorRefusal(FailureType.InvalidIdentity, `'${name.slice(0, 70)}' is not a valid identifier`);
  return pg.escapeIdentifier(name);
}

function codeOf(err: unknown): string | undefined {
  const direct = (err as { code?: unknown } | null)?.code;
  if (typeof direct === 'string') return direct;
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause?.code;
  return typeof cause === 'string' ? cause : undefined;
}

export function createPostgresConnector(opts: PostgresConnectorOptions): PostgresConnector {
  return new PostgresConnector(opts.name, opts);
}
