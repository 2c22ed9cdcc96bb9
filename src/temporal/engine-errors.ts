import { ServiceError, WorkflowUpdateRPCTimeoutOrCancelledError, isGrpcServiceError } from '@temporalio/client';

/**
 * gRPC status codes by which Temporal says it could not answer now, which a retry can cure: cancelled, deadline
 * exceeded, resource exhausted (its rate limits), failed precondition (a query to a workflow whose first task has not
 * been processed yet: "workflow not ready"), aborted, internal (its persistence failing, as while it restarts) and
 * unavailable. Any other code (invalid argument, not found, permission denied, unauthenticated, unimplemented, ...) is
 * the gateway asking wrongly or being refused: retrying the same request cannot help.
 */
const RETRYABLE_GRPC_CODES = new Map<number, string>([
  [1, 'CANCELLED'],
  [4, 'DEADLINE_EXCEEDED'],
  [8, 'RESOURCE_EXHAUSTED'],
  [9, 'FAILED_PRECONDITION'],
  [10, 'ABORTED'],
  [13, 'INTERNAL'],
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
