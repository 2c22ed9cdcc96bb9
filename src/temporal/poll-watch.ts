import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

/** The two kinds of task a changegate worker polls for. */
export type PollKind = 'workflow' | 'activity';

const QUEUE_TYPES: Record<PollKind, temporal.api.enums.v1.TaskQueueType> = {
  workflow: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
  activity: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
};

/**
 * How long a worker's polls may go unseen by default. A poll is seen when it starts, and an idle long poll lasts
 * about a minute (57–60 s measured on the dev server): two and a half of them.
 */
export const DEFAULT_POLL_SILENCE_MS = 150_000;

/**
 * When Temporal last saw a poll on the task queue, for each kind of task: by the worker named `identity`, or by any
 * worker without one. Null when it remembers none.
 */
export async function lastPolls(client: Client, taskQueue: string, identity?: string): Promise<Record<PollKind, Date | null>> {
  const kinds = Object.keys(QUEUE_TYPES) as PollKind[];
  // Both asked at once: /readyz asks on every probe.
  const answers = await Promise.all(
    kinds.map((kind) => client.workflowService.describeTaskQueue({ namespace: client.options.namespace, taskQueue: { name: taskQueue }, taskQueueType: QUEUE_TYPES[kind] })),
  );
  const out = { workflow: null, activity: null } as Record<PollKind, Date | null>;
  kinds.forEach((kind, i) => {
    for (const p of answers[i]!.pollers ?? []) {
      if (identity !== undefined && p.identity !== identity) continue;
      const at = p.lastAccessTime ? new Date(Number(p.lastAccessTime.seconds ?? 0) * 1000 + Math.floor((p.lastAccessTime.nanos ?? 0) / 1e6)) : null;
      if (at && (out[kind] === null || at > out[kind]!)) out[kind] = at;
    }
  });
  return out;
}

/** What /readyz says of the queue's pollers: `ok`, or how long no worker has been seen polling. */
export function pollReport(last: Record<PollKind, Date | null>, maxSilenceMs: number, now = Date.now()): Record<PollKind, string> {
  const say = (at: Date | null) => {
    if (at === null) return 'no worker polling';
    const silent = now - at.getTime();
    return silent <= maxSilenceMs ? 'ok' : `no poll for ${Math.round(silent / 1000)} s`;
  };
  return { workflow: say(last.workflow), activity: say(last.activity) };
}

export interface PollWatchOptions {
  /** A client on a connection of its own (not the worker's), in the worker's namespace. */
  client: Client;
  taskQueue: string;
  /** The worker's identity (`worker.options.identity`). */
  identity: string;
  maxSilenceMs: number;
  everyMs: number;
  /** Called once, for the first kind found silent; the watch has stopped by then. */
  onSilent(kind: PollKind, silentForMs: number): void;
}

/**
 * Watches that a running worker's polls keep reaching Temporal. A worker whose process lives while one of its pollers
 * has stopped (seen after a Temporal restart: activities polled on, workflow tasks were never taken again) takes no
 * work and reports nothing; the watch names it so that the process can be ended and restarted by its supervisor.
 *
 * Silence counts from the newer of the worker's last poll and the last moment Temporal could not be asked (no answer,
 * or none in time): while Temporal is away no worker can poll, and that is not the worker's fault; from its return, the
 * worker has `maxSilenceMs` to be seen again.
 */
export function watchPolls(opts: PollWatchOptions): { stop(): void } {
  const excused: Record<PollKind, number> = { workflow: Date.now(), activity: Date.now() };
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = async () => {
    let last: Record<PollKind, Date | null> | undefined;
    try {
      // An answer that does not come is Temporal away too (a stalled network path), not a silent worker.
      last = await opts.client.withDeadline(Date.now() + Math.max(2_000, opts.everyMs), () => lastPolls(opts.client, opts.taskQueue, opts.identity));
    } catch {
      excused.workflow = excused.activity = Date.now();
    }
    if (stopped) return;
    if (last) {
      const now = Date.now();
      for (const kind of ['workflow', 'activity'] as const) {
        const since = Math.max(excused[kind], last[kind]?.getTime() ?? 0);
        if (now - since > opts.maxSilenceMs) {
          stopped = true;
          opts.onSilent(kind, now - since);
          return;
        }
      }
    }
    timer = setTimeout(() => void tick(), opts.everyMs);
  };
  timer = setTimeout(() => void tick(), opts.everyMs);
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
