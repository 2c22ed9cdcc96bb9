/**
 * The database behind db/<role> leases, seen past Vault: the users a role's leases created, by the name prefix the
 * database engine's username_template gives them. A lease Vault calls revoked whose user is still in the database
 * (revocation statements that do not drop it, a revocation the plugin lost) is access the leaver did not take back,
 * and only the database can say so. MySQL and MariaDB.
 *
 * LEAST PRIVILEGE. The account needs exactly `GRANT SELECT (User) ON mysql.global_priv` (MariaDB; on MySQL,
 * `SELECT (User) ON mysql.user`): the user names, never the password hashes beside them.
 */
import mysql from 'mysql2/promise';
import { ConnectorRefusal, FailureType } from '../connector-errors';

export interface VaultDatabaseViewOptions {
  /** The connector's name, for messages. */
  name: string;
  host: string;
  port: number;
  user: string;
  password: string;
  tls: boolean;
  /** The table that lists accounts: mysql.global_priv (MariaDB) or mysql.user (MySQL). */
  table: 'mysql.global_priv' | 'mysql.user';
  /** For each database role: the prefix of every user name its leases create. */
  userPrefixes: Record<string, string>;
}

export class VaultDatabaseView {
  private pool: mysql.Pool | undefined;

  constructor(private readonly o: VaultDatabaseViewOptions) {}

  /** The database users `role`'s leases created that the database still holds, sorted; refused for an unmapped role. */
  async usersOf(role: string): Promise<string[]> {
    const prefix = Object.hasOwn(this.o.userPrefixes, role) ? this.o.userPrefixes[role] : undefined;
    if (prefix === undefined) {
      throw new ConnectorRefusal(
        FailureType.TargetRefused,
        `${this.o.name}: database role '${role}' has no entry in databaseUsers.userPrefixes, so a read-back cannot see whether the users its leases created are gone`,
      );
    }
    this.pool ??= mysql.createPool({
      host: this.o.host,
      port: this.o.port,
      user: this.o.user,
      password: this.o.password,
      connectionLimit: 2,
      connectTimeout: 5_000,
      ...(this.o.tls ? { ssl: { rejectUnauthorized: true } } : {}),
    });
    try {
      // An exact prefix, not LIKE: `_` and `%` are ordinary characters in a user name.
      const [rows] = await this.pool.query<mysql.RowDataPacket[]>(
        `SELECT DISTINCT User AS u FROM ${this.o.table} WHERE LEFT(User, CHAR_LENGTH(?)) = ? ORDER BY User`,
        [prefix, prefix],
      );
      return rows.map((r) => String(r.u));
    } catch (raw) {
      throw databaseReadFailure(this.o.name, role, raw);
    }
  }

  async close(): Promise<void> {
    await this.pool?.end();
  }
}

/**
 * The server's access-denied answers: to the database (1044), the login (1045), the table (1142) or the column
 * (1143). Only these are refusals; any other error (too many connections 1040, shutdown 1053, a lock wait 1205, a
 * deadlock 1213, a lost or refused connection) may pass, and is transient.
 */
const ACCESS_DENIED = new Set([1044, 1045, 1142, 1143]);

/** What a failed read of the database users is: a refusal for access denied, else transient. */
export function databaseReadFailure(name: string, role: string, raw: unknown): Error {
  // Rebuilt from the server's code and words only: mysql2's own error carries the statement.
  const err = (raw ?? {}) as { code?: string; errno?: number; sqlMessage?: string; message?: string };
  const text = `${name}: reading the database users behind db/${role}: ${err.sqlMessage ?? err.message ?? 'error'} (${err.code ?? 'no code'})`;
  const cause = Object.assign(new Error(err.sqlMessage ?? err.message), { code: err.code, errno: err.errno });
  if (typeof err.errno === 'number' && ACCESS_DENIED.has(err.errno)) return new ConnectorRefusal(FailureType.TargetRefused, text, { cause });
  return Object.assign(new Error(text, { cause }), { transient: true });
}
