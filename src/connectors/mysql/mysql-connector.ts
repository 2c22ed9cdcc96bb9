import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import type { IdentityRef } from '../../actions/identity-action';
import { absent, assertValidIdentity, type ChangeOutcome, type Connector, type CredentialRotator, type DiscoveredIdentity, type ObservedAccount, type ProvisionOutcome, type RotationResult } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import { Secret } from '../secret';
import { canonicalGrantsFromShowGrants, MysqlGrammar, splitCanonicalGrant } from './mysql-grammar';

export interface MysqlConnectorOptions {
  name: string;
  host: string;
  port: number;
  user: string;
  password: string;
  protectedAccounts: string[];
  tls?: boolean;
}

/**
 * Server errors that mean "try again later". Any other error the server sends (it has an errno and a message) is a
 * refusal; an error without one never reached a server answer (network, DNS, a closed pool) and is transient too.
 */
const TRANSIENT_CODES = new Set([
  'ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN', 'ER_TOO_MANY_USER_CONNECTIONS',
  'ER_QUERY_INTERRUPTED', 'ER_OPTION_PREVENTS_STATEMENT', 'ER_NORMAL_SHUTDOWN', 'ER_SHUTDOWN_COMPLETE',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT',
]);
const ER_NONEXISTING_GRANT = 1141;
const ER_NO_SUCH_THREAD = 1094;

/**
 * MySQL/MariaDB accounts. Account names always travel as quoted string literals (mysql2 placeholders), never
 * concatenated; privileges and object names come only from MysqlGrammar's allow-list and are re-checked here.
 */
export class MysqlConnector implements Connector, CredentialRotator {
  readonly grammar: MysqlGrammar;
  private readonly pool: mysql.Pool;
  private readonly protectedAccounts: Set<string>;

  constructor(readonly name: string, private readonly opts: MysqlConnectorOptions) {
    this.protectedAccounts = new Set(opts.protectedAccounts.map((a) => a.toLowerCase()));
    this.grammar = new MysqlGrammar({ protectedAccounts: opts.protectedAccounts });
    this.pool = mysql.createPool({
      host: opts.host,
      port: opts.port,
      user: opts.user,
      password: opts.password,
      connectionLimit: 4,
      connectTimeout: 5_000,
      multipleStatements: false,
      ...(opts.tls ? { ssl: { rejectUnauthorized: true } } : {}),
    });
  }

  async inspect(identity: IdentityRef): Promise<ObservedAccount> {
    const { name, host } = this.account(identity);
    const [rows] = await this.run<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n FROM mysql.user WHERE User = ? AND Host = ?', [name, host]);
    if (Number(rows[0]?.n ?? 0) === 0) return { exists: false, grants: [] };
    const [createRows] = await this.run<mysql.RowDataPacket[]>('SHOW CREATE USER ?@?', [name, host]);
    // Only the lock flag is read from this line: it also carries the password hash, which must not travel further.
    const createLine = String(Object.values(createRows[0] ?? {})[0] ?? '');
    const [grantRows] = await this.run<mysql.RowDataPacket[]>('SHOW GRANTS FOR ?@?', [name, host]);
    const lines = grantRows.map((r) => String(Object.values(r)[0] ?? ''));
    const sessions = await this.sessionIds(name);
    return {
      exists: true,
      locked: / ACCOUNT LOCK\b/.test(createLine),
      grants: canonicalGrantsFromShowGrants(lines),
      activeSessions: sessions.length,
    };
  }

  async disable(identity: IdentityRef): Promise<ChangeOutcome> {
    const { name, host } = this.account(identity);
    const before = await this.inspect(identity);
    if (!before.exists) return absent(`account '${name}'@'${host}'`);
    if (before.locked && before.grants.length === 0 && !before.activeSessions) {
      return { changed: false, detail: `account '${name}'@'${host}' was already locked with no grants` };
    }
    const done = await this.lockAndStrip(identity, before);
    return { changed: true, detail: `${done}; '${name}'@'${host}' kept` };
  }

  async remove(identity: IdentityRef): Promise<ChangeOutcome> {
    const { name, host } = this.account(identity);
    const before = await this.inspect(identity);
    if (!before.exists) return absent(`account '${name}'@'${host}'`);
    const done = await this.lockAndStrip(identity, before);
    await this.run('DROP USER IF EXISTS ?@?', [name, host]);
    return { changed: true, detail: `${done}, dropped '${name}'@'${host}'` };
  }

  /** Locks first so no new session can start while grants are being removed, then ends sessions and revokes everything. */
  private async lockAndStrip(identity: IdentityRef, before: ObservedAccount): Promise<string> {
    const { name, host } = this.account(identity);
    await this.run('ALTER USER ?@? ACCOUNT LOCK', [name, host]);
    const ended = await this.endSessions(name, host);
    await this.run('REVOKE ALL PRIVILEGES, GRANT OPTION FROM ?@?', [name, host]);
    // MariaDB's REVOKE ALL also takes granted roles; MySQL 8 keeps them. Whatever is left is revoked by name, the
    // name being the server's own backtick-quoted text from SHOW GRANTS.
    const left = before.grants.some((g) => g.startsWith('ROLE ')) ? (await this.inspect(identity)).grants : [];
    for (const grant of left) {
      const role = /^ROLE (`(?:[^`]|``)+`(?:@`[^`]*`)?)$/.exec(grant)?.[1];
      if (role) await this.run(`REVOKE ${role} FROM ?@?`, [name, host]);
    }
    return `locked, ${ended}, revoked ${before.grants.length} grant(s)`;
  }

  async discover(): Promise<DiscoveredIdentity[]> {
    // mysql.global_priv holds the lock flag as JSON on MariaDB; mysql.user's account_locked column is MySQL's.
    const [rows] = await this.run<mysql.RowDataPacket[]>('SELECT User AS user, Host AS host FROM mysql.user ORDER BY User, Host', []);
    const out: DiscoveredIdentity[] = [];
    for (const r of rows) {
      const name = String(r.user);
      const host = String(r.host);
      if (name === '') continue; // anonymous accounts are not identities
      const isProtected = this.protectedAccounts.has(name.toLowerCase()) || name === 'mariadb.sys' || name.startsWith('mysql.');
      out.push({ name, host, ...(isProtected ? { protected: true } : {}) });
    }
    return out;
  }

  async rotate(identity: IdentityRef): Promise<RotationResult> {
    const { name, host } = this.account(identity);
    const before = await this.inspect(identity);
    if (!before.exists) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: account '${name}'@'${host}' does not exist, so it has no password to rotate`);
    // The read-back logs in as the user name from the worker's host; with two accounts of that name the server may
    // pick the other one, and the check would prove nothing.
    const [same] = await this.run<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n FROM mysql.user WHERE User = ?', [name]);
    if (Number(same[0]?.n ?? 0) > 1) {
      throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: several accounts are named '${name}', so a rotation of '${name}'@'${host}' could not be verified`);
    }
    const secret = Secret.generate();
    await this.run('ALTER USER ?@? IDENTIFIED BY ?', [name, host, secret.reveal()], { secret: true });
    return { secret, detail: `set a new password for '${name}'@'${host}'` };
  }

  async authenticates(identity: IdentityRef, secret: Secret): Promise<boolean> {
    const { name } = this.account(identity);
    let conn: mysql.Connection | undefined;
    try {
      conn = await mysql.createConnection({ host: this.opts.host, port: this.opts.port, user: name, password: secret.reveal(), connectTimeout: 5_000, ...(this.opts.tls ? { ssl: { rejectUnauthorized: true } } : {}) });
      return true;
    } catch (raw) {
      const code = (raw as { code?: string }).code;
      if (code === 'ER_ACCESS_DENIED_ERROR' || code === 'ER_ACCOUNT_HAS_BEEN_LOCKED') return false;
      if (code === 'ER_HOST_NOT_PRIVILEGED' || code === 'ER_HOST_IS_BLOCKED') {
        // Permanent from here: the account's host pattern does not admit the worker. Retrying would rotate again.
        throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: the worker's host may not log in as '${name}', so the new credential cannot be verified (${code})`);
      }
      throw new Error(`${this.name}: could not check the new credential (${code ?? 'error'})`);
    } finally {
      await conn?.end().catch(() => undefined);
    }
  }

  async provision(identity: IdentityRef, grants: string[]): Promise<ProvisionOutcome> {
    const { name, host } = this.account(identity);
    // Every grant is checked before anything is sent: a bad one must not leave a half-made account behind.
    const checked = grants.map((g) => this.checkedGrant(g));
    const before = await this.inspect(identity);
    let created = false;
    if (!before.exists) {
      // The generated credential is not retained anywhere: delivering it to the workload is the secrets
      // connector's job. Until then the account is reachable only by an operator resetting the password.
      const password = randomBytes(24).toString('base64url');
      await this.run('CREATE USER IF NOT EXISTS ?@? IDENTIFIED BY ?', [name, host, password], { secret: true });
      created = true;
    }
    try {
      for (const { privilege, object } of checked) {
        await this.run(`GRANT ${privilege} ON ${object} TO ?@?`, [name, host]);
      }
    } catch (err) {
      // Refused half-way: an account this call created goes again, so the target is left as it was found.
      if (created) await this.run('DROP USER IF EXISTS ?@?', [name, host]).catch(() => undefined);
      throw err;
    }
    return { created, detail: `${created ? 'created' : 'found existing'} '${name}'@'${host}', granted ${grants.length} privilege(s)` };
  }

  async ungrant(identity: IdentityRef, grants: string[]): Promise<ChangeOutcome> {
    const { name, host } = this.account(identity);
    const checked = grants.map((g) => this.checkedGrant(g));
    const before = await this.inspect(identity);
    if (!before.exists) return absent(`account '${name}'@'${host}'`);
    let revoked = 0;
    for (const { privilege, object } of checked) {
      try {
        await this.run(`REVOKE ${privilege} ON ${object} FROM ?@?`, [name, host]);
        revoked++;
      } catch (err) {
        if ((err as { cause?: { errno?: number } }).cause?.errno !== ER_NONEXISTING_GRANT) throw err;
      }
    }
    return { changed: revoked > 0, detail: `revoked ${revoked} of ${grants.length} grant(s) from '${name}'@'${host}'` };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  private account(identity: IdentityRef): { name: string; host: string } {
    assertValidIdentity(this.grammar, identity);
    return { name: identity.name, host: identity.host ?? '%' };
  }

  private checkedGrant(canonical: string): { privilege: string; object: string } {
    if (!this.grammar.manages(canonical)) {
      throw new ConnectorRefusal(FailureType.InvalidIdentity, `grant '${canonical}' is not in canonical form`);
    }
    return splitCanonicalGrant(canonical);
  }

  private async sessionIds(name: string): Promise<number[]> {
    const [rows] = await this.run<mysql.RowDataPacket[]>('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [name]);
    return rows.map((r) => Number(r.ID));
  }

  /**
   * Ends the leaver's open sessions: dropping an account does not disconnect it. PROCESSLIST shows the user
   * name, not the account's host pattern, so sessions are ended only when no other account shares the name.
   */
  private async endSessions(name: string, host: string): Promise<string> {
    const [others] = await this.run<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n FROM mysql.user WHERE User = ? AND Host <> ?', [name, host]);
    if (Number(others[0]?.n ?? 0) > 0) return 'sessions left open (another account shares the user name)';
    const ids = await this.sessionIds(name);
    for (const id of ids) {
      try {
        await this.run('KILL CONNECTION ?', [id]);
      } catch (err) {
        if ((err as { cause?: { errno?: number } }).cause?.errno !== ER_NO_SUCH_THREAD) throw err;
      }
    }
    return `ended ${ids.length} session(s)`;
  }

  /**
   * Runs one statement. mysql2 attaches the statement text (with its values) to errors; that text can hold a
   * generated password, so errors are rebuilt from code and server message only.
   */
  private async run<T extends mysql.QueryResult = mysql.ResultSetHeader>(
    sql: string,
    values: unknown[],
    opts: { secret?: boolean } = {},
  ): Promise<[T, mysql.FieldPacket[]]> {
    try {
      return await this.pool.query<T>(sql, values);
    } catch (raw) {
      const err = raw as { code?: string; errno?: number; sqlMessage?: string; message?: string };
      const safe = { code: err.code, errno: err.errno, message: opts.secret ? (err.code ?? 'error') : (err.sqlMessage ?? err.message) };
      const text = `${this.name}: ${safe.message ?? 'unknown error'} (${safe.code ?? 'no code'})`;
      const cause = Object.assign(new Error(safe.message), { code: safe.code, errno: safe.errno });
      const serverAnswered = typeof err.errno === 'number' && err.errno > 0 && err.sqlMessage !== undefined;
      if (!serverAnswered || (err.code && TRANSIENT_CODES.has(err.code))) throw Object.assign(new Error(text, { cause }), { transient: true });
      throw new ConnectorRefusal(FailureType.TargetRefused, text, { cause });
    }
  }
}

export function createMysqlConnector(opts: MysqlConnectorOptions): MysqlConnector {
  return new MysqlConnector(opts.name, opts);
}
