/**
 * Heartbeats for activities that act on targets: a worker that dies mid-call is noticed within the proxy's heartbeat
 * timeout, and the call is retried on another worker, instead of after the whole start-to-close timeout. Each beat
 * carries the activity's latest progress (what it recorded with recordProgress, or what the attempt before it had
 * recorded), so a beat never erases the progress a retry relies on.
 */
import { Context } from '@temporalio/activity';

/** How often a running activity heartbeats; the SDK throttles what it sends to the server. */
const BEAT_MS = 2_000;

const progress = new WeakMap<Context, { details: unknown }>();

function current(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/**
 * The progress a rescheduled activity starts from when the activity it replaces lost its worker on its last attempt:
 * the workflow passes that attempt's last heartbeat as `earlierProgress` in the input (workflows/kinds/step-runner.ts).
 */
function carried(args: unknown[]): unknown {
  const input = args[0];
  return input !== null && typeof input === 'object' ? (input as { earlierProgress?: unknown }).earlierProgress : undefined;
}

/** The progress this attempt starts from: its earlier attempt's heartbeat, or the replaced activity's. */
export function progressSoFar(): unknown {
  const ctx = current();
  if (!ctx) return undefined;
  return progress.has(ctx) ? progress.get(ctx)?.details : ctx.info.heartbeatDetails;
}

/** Records progress with a heartbeat: what a retried attempt finds in `info.heartbeatDetails`. */
export function recordProgress(details: unknown): void {
  const ctx = current();
  if (!ctx) return;
  progress.set(ctx, { details });
  ctx.heartbeat(details);
}

/** The activities, each heartbeating while it runs. */
export function keepAlive<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T): T {
  const wrap = <F extends (...args: never[]) => Promise<unknown>>(fn: F): F =>
    (async (...args: Parameters<F>) => {
      const ctx = current();
      if (!ctx) return fn(...args);
      if (!progress.has(ctx)) progress.set(ctx, { details: ctx.info.heartbeatDetails ?? carried(args) });
      const timer = setInterval(() => ctx.heartbeat(progress.get(ctx)?.details), BEAT_MS);
      try {
        return await fn(...args);
      } finally {
        clearInterval(timer);
      }
    }) as F;
  return Object.fromEntries(Object.entries(activities).map(([name, fn]) => [name, wrap(fn)])) as T;
}
