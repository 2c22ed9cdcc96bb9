/**
 * How the PostgreSQL connector reaches its server: a pool per database, one checked-out session per unit of work with
 * its notices collected, and every error sorted into the gateway's two kinds (transient, or the server's refusal).
 */
import pg from 'pg';
import { ConnectorRefusal, FailureType } from '../connector-errors';

/** What a session needs to reach the server. */
export interface PgAccessOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Where role-level statements run (roles, memberships and database ACLs are cluster-wide). */
  database: string;
  lockTimeoutMs?: number;
  connectTimeoutMs?: number;
  tls?: boolean;
}

/**
 * SQLSTATE classes and codes that mean "try again later": connection exceptions (08), transaction rollbacks such as
 * deadlocks and serialization failures (40), insufficient resources such as too_many_connections (53), operator
 * intervention such as admin_shutdown or a statement timeout (57), system errors (58), lock_not_available (55P03).
 */
const TRANSIENT_CLASSES = new Set(['08', '40', '53', '57', '58']);
const TRANSIENT_CODES = new Set(['55P03']);

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

export interface Notice {
  code?: string;
  message?: string;
}

export interface Session {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, values?: unknown[], opts?: { secret?: boolean }): Promise<{ rows: R[]; notices: Notice[] }>;
}

/** A name already checked by the grammar, double-quoted all the same (defence in depth). */
export function ident(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new ConnectorRefusal(FailureType.InvalidIdentity, `'${name.slice(0, 70)}' is not a valid identifier`);
  return pg.escapeIdentifier(name);
}

export function codeOf(err: unknown): string | undefined {
  const direct = (err as { code?: unknown } | null)?.code;
  if (typeof direct === 'string') return direct;
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause?.code;
  return typeof cause === 'string' ? cause : undefined;
}

/** Shared by the connector (roles) and its privileges part: the same pools, the same way of running a statement. */
export class PgAccess {
  constructor(
    readonly name: string,
    protected readonly opts: PgAccessOptions,
    protected readonly pools: Map<string, pg.Pool>,
  ) {}

  protected pool(db: string): pg.Pool {
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

  protected tls(): { ssl?: { rejectUnauthorized: true } } {
    return this.opts.tls ? { ssl: { rejectUnauthorized: true } } : {};
  }

  protected async session<T>(db: string, fn: (s: Session) => Promise<T>): Promise<T> {
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

  protected run<R extends pg.QueryResultRow = pg.QueryResultRow>(db: string, sql: string, values: unknown[] = [], opts: { secret?: boolean } = {}) {
    return this.session(db, (s) => s.query<R>(sql, values, opts));
  }
}
