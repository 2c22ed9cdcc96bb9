import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { CertificationActivities, ClosureActivities, ConnectorActivities, DecisionActivities, ExceptionActivities, TicketActivities, TicketLifecycleActivities } from '../activities';

/** How many attempts a target-system activity gets before its step sees the failure. */
export const TARGET_ATTEMPTS = 12;

/**
 * For a revocation that is tried again later on a durable timer (a selected identity's, a deploy run's): a target
 * still unreachable gives up after a few seconds instead of minutes, and the step waits for its next attempt.
 */
export const REACH_ONCE_RETRY = { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '2 seconds', maximumAttempts: 3 } as const;

/** Target-system steps: transient faults retry with back-off; a refusal (non-retryable type) fails at once. */
export const targets = proxyActivities<ConnectorActivities>({
  // Room for a leaver that ends sessions and reassigns objects, or a rotation that waits for IAM to catch up.
  startToCloseTimeout: '2 minutes',
  // The activities heartbeat while they run (activities/keep-alive.ts): a worker lost mid-call is noticed in seconds.
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: TARGET_ATTEMPTS },
});

/** Ticket write-backs: ITSM systems throttle (ServiceNow per hour), so allow a long tail; 429s set their own delay. */
export const tickets = proxyActivities<TicketActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 50 },
});

/** Reopening a ticket and attaching its evidence: write-backs like the others, so the same long tail for throttling. */
export const ticketLifecycle = proxyActivities<TicketLifecycleActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 50 },
});

/**
 * The ticket outbox's delivery (ticket-outbox): a transient failure comes back as an answer and the workflow waits and
 * tries again, without limit, so nothing here retries it. Only a lost worker or a timeout is retried by Temporal,
 * also without limit: the batch is in the workflow's state until it lands, and markers keep each note to one landing.
 */
export const ticketOutbox = proxyActivities<TicketActivities>({
  // Room for a token request, the marker lookup and the save, each bounded by the client's own 10 s timeout.
  startToCloseTimeout: '1 minute',
  // A worker lost mid-delivery is noticed in seconds (the activity heartbeats), so the batch is retried on another.
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

/**
 * closure-check's projection: one DB insert in the worker, so a local activity (no task-queue round trip). Retried
 * until it lands; a verdict that cannot be published leaves the previous one, which closure-check still refuses to
 * trust past a newer delivery.
 */
export const closureViews = proxyLocalActivities<ClosureActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 milliseconds', backoffCoefficient: 2, maximumInterval: '10 seconds' },
});

/** Decisions by people: recorded as evidence before the workflow acts on them; a refused record fails the update. */
export const decisions = proxyActivities<DecisionActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 10 },
});

/**
 * Emergency exceptions: evidence and ledger rows, retried until they land (an exception whose record failed for
 * good would never be decided; closure stays blocked meanwhile). A refused record (a justification shaped like a
 * credential) is final and fails the decision. The escalation's notification records its own failure after a few
 * attempts instead of failing the exception's clock.
 */
export const exceptions = proxyActivities<ExceptionActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

/**
 * The queue's read-back of the targets, for an API request that waits: one attempt, bounded well inside the
 * request's own 20 s, so that a slow target answers with an error on its item instead of holding the queue.
 */
export const exceptionReadBack = proxyActivities<ExceptionActivities>({ startToCloseTimeout: '10 seconds', retry: { maximumAttempts: 1 } });

export type Targets = typeof targets;
export type Tickets = typeof tickets;

/**
 * Certification: the triggers (a start of an item's workflow, or the finding that it runs already), the item's
 * opening, its decisions, escalation and revocation change. Retried until they land, like exceptions: an item whose
 * opening failed for good would have no row and could never be opened again (its workflow id is taken), and a trigger
 * that gave up would lose the item. A refusal (non-retryable) is final.
 */
export const certifications = proxyActivities<CertificationActivities>({
  startToCloseTimeout: '2 minutes',
  // The activities heartbeat: a worker lost mid-call is noticed in seconds (a verified step's note waits on its trigger).
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});
