/**
 * The randomized fault suite's plan: change tickets (mixed kinds and systems) and the faults to inject, all drawn
 * from one seed, so that a seed that finds a defect finds it again. Account names are not part of the plan: they
 * get a per-run prefix, because MariaDB accounts outlive a run.
 */

/** mulberry32: a small, well-mixed 32-bit generator; enough for test plans, not for secrets. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The systems a plan acts on: the same MariaDB directly and behind a port that goes away, and two that never comply. */
export const CHAOS_SYSTEMS = {
  /** MariaDB, reached directly. */
  local: 'mysql-local',
  /** The same MariaDB behind a port the run takes down for a while (a target unreachable, then back). */
  flaky: 'mysql-flaky',
  /** A SCIM provider that answers 2xx to the gateway's member writes and drops them (a silent target). */
  silent: 'scim-silent',
} as const;

/** The grant a refusing action asks for: the connector's account holds no grant option there, so MariaDB refuses it. */
export const REFUSED_GRANT = 'SELECT ON mysql.*';
export const GRANT_A = 'SELECT ON cgt_reporting.*';
export const GRANT_B = 'SELECT ON cgt_billing.*';

/** `disturbed`: an administrator undoes the step's change after every apply, before its read-back. */
export type PermanentFault = 'refuse' | 'silent' | 'disturbed';
export type DeliveryMode = 'direct' | 'duplicate' | 'out-of-order' | 'late';

/**
 * The worker SIGKILLed at one point of a step, the first time the step gets there: while its target statement is on
 * its way to MariaDB (it still arrives), between its apply and its read-back, or while its evidence row is being
 * committed (it still is). The worker never hears the answer; another takes the step over.
 */
export type StepKill = 'kill-in-target-call' | 'kill-before-read-back' | 'kill-in-evidence-write';
export const STEP_KILLS: readonly StepKill[] = ['kill-in-target-call', 'kill-before-read-back', 'kill-in-evidence-write'];

export interface PlannedAction {
  kind: 'joiner' | 'leaver' | 'mover';
  system: (typeof CHAOS_SYSTEMS)[keyof typeof CHAOS_SYSTEMS];
  /** Index of the identity within its ticket (names are made at run time). */
  slot: number;
  /** joiner: the grants to add; mover: the whole set wanted afterwards. */
  grants?: string[];
  /** A fault of the target itself that no retry cures: the ticket must stay blocked, naming it. */
  permanent?: PermanentFault;
  kill?: StepKill;
  /**
   * An administrator changes the target between the step's apply and its read-back (a joiner's grant revoked, a
   * leaver's account made again): `once` (once per worker the step runs on), then the step's next round must put it
   * right; `always`, after every apply (with `permanent: 'disturbed'`).
   */
  disturb?: 'once' | 'always';
}

export type ChaosSource = 'servicenow' | 'jira';

export interface PlannedTicket {
  index: number;
  /** Where the change is raised; Jira changes are delivered as the simulated site sends them (once). */
  source: ChaosSource;
  /** When it is raised, in ms from the start of the run. */
  atMs: number;
  actions: PlannedAction[];
  delivery: DeliveryMode;
  /** The worker SIGKILLed while the gateway writes the ticket's first step outcome: the write lands, its answer is held. */
  killInTicketWrite?: boolean;
}

export type WindowFault = 'unreachable' | 'itsm-429' | 'itsm-503' | 'itsm-outage' | 'worker-kill' | 'temporal-restart' | 'mariadb-restart';

export interface PlannedFault {
  kind: WindowFault;
  atMs: number;
  /** unreachable and itsm-outage: how long; 429/503: how many requests answered so. */
  durationMs?: number;
  count?: number;
}

export interface ChaosPlan {
  seed: number;
  tickets: PlannedTicket[];
  faults: PlannedFault[];
  /** When the last ticket is raised and the last fault has ended. */
  spanMs: number;
}

/**
 * `temporalRestarts`: also restart the Temporal server on its file (only where the run owns the server: `npm run
 * chaos`); `mariadbRestarts`: also restart MariaDB. Both are drawn after everything else, so a plan without them is
 * the same plan. `aimed: false` leaves out the faults aimed at points of a step or a ticket write (on by default).
 */
export function planChaos(opts: { seed: number; tickets: number; spacingMs?: number; temporalRestarts?: boolean; mariadbRestarts?: boolean; aimed?: boolean }): ChaosPlan {
  const rnd = seededRandom(opts.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T;
  const spacing = opts.spacingMs ?? 250;
  const tickets: PlannedTicket[] = [];
  for (let index = 0; index < opts.tickets; index += 1) {
    const count = rnd() < 0.7 ? 1 : 2;
    const actions: PlannedAction[] = [];
    for (let slot = 0; slot < count; slot += 1) {
      const r = rnd();
      if (r < 0.04) actions.push({ kind: 'leaver', system: CHAOS_SYSTEMS.silent, slot, permanent: 'silent' });
      else if (r < 0.08) actions.push({ kind: 'joiner', system: CHAOS_SYSTEMS.local, slot, grants: [REFUSED_GRANT], permanent: 'refuse' });
      else {
        const system = rnd() < 0.35 ? CHAOS_SYSTEMS.flaky : CHAOS_SYSTEMS.local;
        const kind = pick(['joiner', 'joiner', 'leaver', 'mover'] as const);
        if (kind === 'joiner') actions.push({ kind, system, slot, grants: [pick([GRANT_A, GRANT_B])] });
        else if (kind === 'mover') actions.push({ kind, system, slot, grants: [GRANT_B] });
        else actions.push({ kind, system, slot });
      }
    }
    const d = rnd();
    const delivery: DeliveryMode = d < 0.6 ? 'direct' : d < 0.75 ? 'duplicate' : d < 0.9 ? 'out-of-order' : 'late';
    tickets.push({ index, source: 'servicenow', atMs: Math.round(index * spacing * (0.5 + rnd())), actions, delivery });
  }
  const lastTicket = tickets.at(-1)?.atMs ?? 0;
  const faults: PlannedFault[] = [];
  // About one window fault per eight tickets, spread over the time tickets are raised; at least one worker kill.
  const windows = Math.max(2, Math.round(opts.tickets / 8));
  for (let i = 0; i < windows; i += 1) {
    const atMs = Math.round(rnd() * Math.max(lastTicket, 1_000));
    const kind = i === 0 ? 'worker-kill' : pick(['unreachable', 'unreachable', 'itsm-429', 'itsm-503', 'itsm-outage', 'worker-kill'] as const);
    if (kind === 'unreachable' || kind === 'itsm-outage') faults.push({ kind, atMs, durationMs: 1_000 + Math.round(rnd() * 4_000) });
    else if (kind === 'itsm-429' || kind === 'itsm-503') faults.push({ kind, atMs, count: 2 + Math.floor(rnd() * 8) });
    else faults.push({ kind, atMs });
  }
  // A third of the changes come from Jira (drawn after the rest, so the tickets and faults above do not depend on it).
  for (const t of tickets) {
    if (rnd() < 0.3) {
      t.source = 'jira';
      t.delivery = 'direct';
    }
  }
  // Faults aimed at points of a step or a ticket write, a few of each kind per run (at least one): drawn after the
  // rest, so the tickets and window faults above do not depend on them. Kills and disturbances go to joiners and
  // leavers on MariaDB that have no other fault, one fault per action.
  const aimed = opts.aimed === false ? 0 : Math.max(1, Math.round(opts.tickets / 40));
  const free = tickets.flatMap((t) => t.actions).filter((a) => !a.permanent && a.kind !== 'mover' && a.system !== CHAOS_SYSTEMS.silent);
  const take = (): PlannedAction | undefined => free.splice(Math.floor(rnd() * free.length), 1)[0];
  for (const kill of STEP_KILLS) {
    for (let i = 0; i < aimed; i += 1) {
      const a = take();
      if (a) a.kill = kill;
    }
  }
  for (let i = 0; i < aimed; i += 1) {
    const a = take();
    if (a) a.disturb = 'once';
  }
  const always = aimed > 0 ? take() : undefined;
  if (always) Object.assign(always, { disturb: 'always', permanent: 'disturbed' });
  const writers = [...tickets];
  for (let i = 0; i < aimed && writers.length > 0; i += 1) writers.splice(Math.floor(rnd() * writers.length), 1)[0]!.killInTicketWrite = true;
  if (opts.temporalRestarts) {
    for (let i = 0; i < Math.max(1, Math.round(opts.tickets / 50)); i += 1) faults.push({ kind: 'temporal-restart', atMs: Math.round(rnd() * Math.max(lastTicket, 1_000)) });
  }
  if (opts.mariadbRestarts) {
    for (let i = 0; i < Math.max(1, Math.round(opts.tickets / 50)); i += 1) faults.push({ kind: 'mariadb-restart', atMs: Math.round(rnd() * Math.max(lastTicket, 1_000)) });
  }
  faults.sort((a, b) => a.atMs - b.atMs);
  const spanMs = Math.max(lastTicket, ...faults.map((f) => f.atMs + (f.durationMs ?? 0)));
  return { seed: opts.seed, tickets, faults, spanMs };
}

/** Whether a ticket carries a fault no retry cures (it must stay blocked), and which. */
export function permanentFaultOf(ticket: PlannedTicket): PermanentFault | undefined {
  return ticket.actions.find((a) => a.permanent)?.permanent;
}
