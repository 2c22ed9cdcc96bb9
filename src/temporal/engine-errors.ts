import { ServiceError, WorkflowUpdateRPCTimeoutOrCancelledError, isGrpcServiceError } from '@temporalio/client';

/**
 * gRPC status codes by which Temporal says it could not answer now — cancelled, deadline exceeded, resource exhausted
 * (its rate limits), aborted, unavailable — which a retry can cure. Any other code (invalid argument, permission
 * denied, not found, ...) is the gateway asking wrongly: retrying the same request cannot help.
 */
const RETRYABLE_GRPC_CODES = new Map<number, string>([
  [1, 'CANCELLED'],
  [4, 'DEADLINE_EXCEEDED'],
  [8, 'RESOURCE_EXHAUSTED'],
  [10, 'ABORTED'],
  [14, 'UNAVAILABLE'],
]);

/** How long a caller told to retry is asked to wait (Retry-After, seconds). */
export const ENGINE_RETRY_AFTER_SECONDS = 5;

export type EngineFailure = { retryable: true; reason: string } | { retryable: false; reason: string } | undefined;

/**
 * What a failed call to Temporal means for the caller: retryable (the engine, or the worker a query or update waits
 * for, did not answer), not retryable (a Temporal error no retry cures), or undefined when the error is not Temporal's.
 */
export function engineFailure(err: unknown): EngineFailure {
  if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) return { retryable: true, reason: 'update timed out or was cancelled' };
  if (!(err instanceof ServiceError)) return undefined;
  const cause = err.cause;
  // No gRPC status at all: the connection itself failed.
  if (!isGrpcServiceError(cause)) return { retryable: true, reason: 'no connection to the workflow engine' };
  const named = RETRYABLE_GRPC_CODES.get(cause.code);
  return named ? { retryable: true, reason: `gRPC ${named}` } : { retryable: false, reason: `gRPC code ${cause.code}` };
}
