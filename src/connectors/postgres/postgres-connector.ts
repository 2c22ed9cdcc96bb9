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
import { absent, assertValidIdentity, type ChangeOutcome, type Connector, type CredentialRotator, type DiscoveredIdentity, type ObservedAccount, type ProvisionOutcome, type RotationResult } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import { Secret } from '../secret';
import { formatGrant, PG_IDENTIFIER, type PgGrant, PostgresGrammar, roleNameProblem } from './postgres-grammar';
import { heldTexts, type Observation, PgPrivileges } from './postgres-privileges';
import { classifyPgError, codeOf, ident, PgAccess } from './postgres-session';

export { classifyPgError, isTransientSqlState } from './postgres-session';

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
  /** What a deleted leaver's objects become: owned by `reassignTo`, or dropped with the role. */
  ownedObjects: 'reassign' | 'drop';
  reassignTo?: string;
  /** How long a statement waits for a lock before failing (transiently) instead of blocking the target. */
  lockTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** TLS, with the server's certificate verified against the system CAs. */
  tls?: boolean;
}

const DUPLICATE_OBJECT = '42710';
const DEPENDENT_OBJECTS_STILL_EXIST = '2BP01';
const UNDEFINED_OBJECT = '42704';
/**
 * A disable-mode REVOKE that fails with one of these leaves nothing worse than before: the connector has no right to
 * the object at all (42501), or it went away meanwhile. The read-back afterwards decides what is still held.
 */
const NOT_REVOCABLE_HERE = new Set(['42501', UNDEFINED_OBJECT, '42P01', '42883', '3F000']);

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

/**
 * The roles' life cycle (create, disable or drop, rotate, discover); what a role holds, and granting or revoking one
 * grant, is in postgres-privileges.ts; pools, sessions and error classification in postgres-session.ts.
 */
export class PostgresConnector extends PgAccess implements Connector, CredentialRotator {
  readonly grammar: PostgresGrammar;
  private readonly privileges: PgPrivileges;
  private readonly databases: string[];
  private readonly protectedAccounts: Set<string>;
  /** The connector's own role, quoted: any legal role name, checked when the connector is made, never mid-revoke. */
  private readonly self: string;

  constructor(name: string, protected override readonly opts: PostgresConnectorOptions) {
    if (opts.ownedObjects === 'reassign' && !opts.reassignTo) throw new Error(`connector '${name}': ownedObjects 'reassign' needs reassignTo`);
    const problem = configProblem(opts);
    if (problem) throw new Error(`connector '${name}': ${problem}`);
    const pools = new Map<string, pg.Pool>();
    super(name, opts, pools);
    this.self = pg.escapeIdentifier(opts.user);
    this.databases = [...new Set(opts.databases)];
    const protectedAccounts = [...opts.protectedAccounts, opts.user, ...(opts.reassignTo ? [opts.reassignTo] : [])];
    this.protectedAccounts = new Set(protectedAccounts.map((a) => a.toLowerCase()));
    this.grammar = new PostgresGrammar({ protectedAccounts, databases: this.databases, grantableRoles: opts.grantableRoles });
    this.privileges = new PgPrivileges(name, opts, pools, this.databases);
  }

  async inspect(identity: IdentityRef): Promise<ObservedAccount> {
    const name = this.roleName(identity);
    const seen = await this.privileges.observe(name);
    return seen ? this.observed(seen) : { exists: false, grants: [] };
  }

  async provision(identity: IdentityRef, grants: string[]): Promise<ProvisionOutcome> {
    const name = this.roleName(identity);
    const wanted = this.checkedGrants(grants);
    let created = false;
    if (!(await this.privileges.readRole(name))) {
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
        await this.privileges.change('GRANT', g, name);
        applied.push(g);
      }
    } catch (err) {
      // A retried provision must find no half-made role it would then report as pre-existing (created: false).
      if (created) await this.undoCreate(name, applied, err);
      throw err;
    }
    return { created, detail: `${created ? 'created' : 'found existing'} role '${name}', granted ${wanted.length} privilege(s)` };
  }

  async ungrant(identity: IdentityRef, grants: string[]): Promise<ChangeOutcome> {
    const name = this.roleName(identity);
    const wanted = this.checkedGrants(grants);
    const before = await this.inspect(identity);
    if (!before.exists) return absent(`role '${name}'`);
    for (const g of wanted) await this.privileges.change('REVOKE', g, name);
    const after = await this.inspect(identity);
    const removed = before.grants.filter((g) => !after.grants.includes(g));
    // A privilege someone else granted is untouched by our REVOKE (PostgreSQL revokes per grantor); verification shows it.
    const kept = wanted.map(formatGrant).filter((g) => after.grants.includes(g));
    return {
      changed: removed.length > 0,
      detail: `revoked ${removed.length} grant(s) from role '${name}'${kept.length > 0 ? `; still held (granted by another role): ${kept.join(', ')}` : ''}`,
    };
  }

  async remove(identity: IdentityRef): Promise<ChangeOutcome> {
    const name = this.roleName(identity);
    const before = await this.privileges.observe(name);
    if (!before) return absent(`role '${name}'`);
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
    return { changed: true, detail: `set NOLOGIN, ${ended}, ${owned}, revoked ${grants} grant(s), dropped role '${name}' (databases: ${this.databases.join(', ')})` };
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
    const role = await this.privileges.readRole(name);
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

  async disable(identity: IdentityRef): Promise<ChangeOutcome> {
    const name = this.roleName(identity);
    const before = await this.privileges.observe(name);
    if (!before) return absent(`role '${name}'`);
    const { role } = before;
    if (!role.can_login && role.valid_until === '-infinity' && before.held.length === 0 && role.sessions === 0) {
      return { changed: false, detail: `role '${name}' was already disabled with no grants` };
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
    const after = await this.privileges.observe(name);
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
      detail: `set NOLOGIN and VALID UNTIL -infinity, ${ended}, revoked ${revoked} grant(s); role '${name}' and its ${before.ownedObjects} owned object(s) kept`,
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

  /** DROP ROLE names only dependents in the current database; a refusal is completed with what the role still holds. */
  private async dropRole(name: string): Promise<void> {
    try {
      await this.run(this.opts.database, `DROP ROLE IF EXISTS ${ident(name)}`);
    } catch (err) {
      if (codeOf(err) !== DEPENDENT_OBJECTS_STILL_EXIST) throw err;
      const left = await this.privileges.observe(name).catch(() => null);
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
      for (const g of [...applied].reverse()) await this.privileges.change('REVOKE', g, name);
      await this.dropRole(name);
    } catch (undoErr) {
      if (original instanceof Error) {
        original.message += ` (and the role '${name}' this call created could not be removed again: ${(undoErr as Error).message})`;
      }
    }
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

export function createPostgresConnector(opts: PostgresConnectorOptions): PostgresConnector {
  return new PostgresConnector(opts.name, opts);
}
