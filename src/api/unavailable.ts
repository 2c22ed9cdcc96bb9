import { AppError } from '../errors';
import { ENGINE_RETRY_AFTER_SECONDS, engineFailure } from '../temporal/engine-errors';

/** 503 with Retry-After: something the request needs did not answer; the cause is kept for the log. */
export function unavailable(message: string, cause: unknown): AppError {
  return new AppError(503, 'UNAVAILABLE', message, [], { cause, headers: { 'Retry-After': String(ENGINE_RETRY_AFTER_SECONDS) } });
}

/**
 * A hand-off to the workflow engine that failed: 503 to retry, except a Temporal error no retry cures (an invalid
 * argument, a permission), which is the gateway's own fault and is passed on as it is, for the error middleware to
 * answer 500 and log with its code.
 */
export function handOffFailed(message: string, err: unknown): Error {
  if (engineFailure(err)?.retryable === false) return err instanceof Error ? err : new Error(String(err));
  return unavailable(message, err);
}

/** Error codes by which the MariaDB driver says the server could not be reached or went away mid-query. */
const DATABASE_GONE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'PROTOCOL_CONNECTION_LOST', 'ER_SERVER_SHUTDOWN', 'ER_CON_COUNT_ERROR']);

/**
 * Whether an error is the database not answering (as while MariaDB restarts): the driver's own error, or TypeORM's
 * wrapping of it. A query the server refused (a constraint, a syntax error) is not.
 */
export function databaseUnavailable(err: unknown): boolean {
  const code = (e: unknown) => (typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined);
  const driver = typeof err === 'object' && err !== null ? (err as { driverError?: unknown }).driverError : undefined;
  return [code(err), code(driver)].some((c) => typeof c === 'string' && DATABASE_GONE.has(c));
}
