import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import axios from 'axios';
import mysql from 'mysql2/promise';
import type { ConnectorsFile } from '../../src/connectors/registry';
import { ACTIONS_FIELD, CHANGE_TYPE_FIELD } from '../../src/itsm/jira/jira-simulator';
import { GATE_PROPERTY } from '../../src/itsm/jira/jira-settings';
import { BusinessRuleAbortError } from '../../src/itsm/servicenow/servicenow-simulator';
import { type FlakyPort, startFlakyPort } from '../support/flaky-port';
import { ADMIN_USER, GATEWAY_USER, type ScimTarget, startScimProvider } from '../support/servers/scim';
import { type Stack, connectorsFile, startStack, uniqueTicketNumber, waitFor } from '../support/stack';
import { TEST_ENV } from '../support/test-env';
import { killHard, startWorkerProcess } from '../support/worker-process';
import { duplicatedNotes, outcomeLines, untold } from './ticket-notes';
import { CHAOS_SYSTEMS, type ChaosPlan, GRANT_A, type PlannedAction, type PlannedTicket, type WindowFault, permanentFaultOf, planChaos, seededRandom } from './plan';

/** What one run found: the figures `npm run chaos` prints as one JSON line. */
export interface ChaosReport {
  seed: number;
  tickets: number;
  actions: number;
  faults: Record<string, number>;
  /** Moments a ticket was closable (closure-check allowed, gate set, or closed) while a step disagreed with its target. */
  invariantViolations: number;
  violations: Violation[];
  transientTickets: number;
  closableAfterRecovery: number;
  permanentTickets: number;
  /** Permanent-fault tickets still blocked at the end, with a reason naming the system at fault. */
  permanentBlockedNamed: number;
  stepsDoneTwice: number;
  /** Each step with more than one verified evidence row, and their outcomes. */
  doubled: string[];
  notesDuplicated: number;
  /** Steps of closable tickets whose "Verified" note never reached the ticket. */
  notesMissing: number;
  /** Tickets closed in the simulator (by the change manager's attempts, which its business rule allows or refuses). */
  closed: number;
  /** Permanent-fault tickets that closed anyway (must be 0; each is also a violation). */
  closedPermanent: number;
  /** Times the worker process exited on its own and was started again, as a supervisor would. */
  workerExits: number;
  /** Looks the checker could not take (MariaDB down while it restarts): lost looks, never counted as passed. */
  checkErrors: number;
  closeRefusals: number;
  durationMs: number;
  /** What did not end as it must: tickets not closable after recovery, permanent tickets not named. */
  unfinished: string[];
  /** The ticket the rogue administrator disturbed, when asked for one. */
  rogue?: string;
}

export interface Violation {
  ticket: string;
  seen: string;
  action: string;
  disagreement: string;
}

interface LiveTicket {
  plan: PlannedTicket;
  /** The ServiceNow number or the Jira key, once raised. */
  number: string;
  /** ServiceNow: the change's sys_id; Jira: the issue key. */
  sysId?: string;
  actions: Array<PlannedAction & { name: string; group?: string }>;
  first?: Record<string, string>;
  closed: boolean;
  allowedSeen: boolean;
}

const normalizeGrant = (g: string) => g.replace(/[`\\]/g, '').replace(/\s+/g, ' ').trim();

/**
 * One run of the randomized fault suite on the real parts (Temporal dev server, MariaDB, a SCIM provider, a worker
 * process killed with SIGKILL) with ServiceNow simulated. An independent checker reads every target back as its
 * administrator and watches every ticket throughout.
 */
export async function runChaos(opts: {
  seed: number;
  tickets: number;
  log?: (line: string) => void;
  recoveryMs?: number;
  /**
   * The checker's own control: once the first joiner on mysql-local is closable, an administrator drops its account
   * behind the gateway's back, and the checker must report that ticket (its number is in the report's `rogue`).
   */
  rogueAdministrator?: boolean;
  /** Stops the Temporal server and starts it again on its file; given, the plan restarts it now and then. */
  restartTemporal?: () => Promise<void>;
  /** Restarts the run's own MariaDB server (its gateway database and its MariaDB targets); no restarts without it. */
  restartMariadb?: () => Promise<void>;
}): Promise<ChaosReport> {
  const log = opts.log ?? (() => undefined);
  const started = Date.now();
  const plan: ChaosPlan = planChaos({ seed: opts.seed, tickets: opts.tickets, temporalRestarts: opts.restartTemporal !== undefined, mariadbRestarts: opts.restartMariadb !== undefined });
  const prefix = `cx${randomBytes(3).toString('hex')}`;
  const flaky: FlakyPort = await startFlakyPort({ host: '127.0.0.1', port: TEST_ENV.mariadbPort });
  const scim: ScimTarget = await startScimProvider({ ignoreMemberWritesBy: [GATEWAY_USER] });
  const scimGroup = 'cg-chaos';
  const scimGroupId = await scim.admin.createGroup(scimGroup);
  process.env.CG_CHAOS_SCIM_TOKEN = scim.tokens.gateway;
  const extra: ConnectorsFile['connectors'] = [
    { ...connectorsFile().connectors[0]!, name: CHAOS_SYSTEMS.flaky, port: flaky.port },
    { name: CHAOS_SYSTEMS.silent, type: 'scim', baseUrl: scim.url, tokenEnv: 'CG_CHAOS_SCIM_TOKEN', ownUserName: GATEWAY_USER, policy: { protectedAccounts: [ADMIN_USER], revokeMode: 'disable' } },
  ];
  // Jira retries a webhook the gateway answered 5xx for up to ~30 minutes (shared/reference/itsm-contracts.md); the
  // simulated site here retries for ~36 s, longer than any outage window the plan draws (the stack's default gives
  // up after half a second); an event it gives up on comes back by the worker's Jira reconciliation.
  const stack: Stack = await startStack({ inProcessWorker: false, extraConnectors: extra, jira: { webhookRetry: { attempts: 9, delayMs: 1_000 } } });
  // The checker's own administrator connections: a pool, so that they come back after MariaDB restarts.
  const admin = mysql.createPool({ uri: TEST_ENV.adminUrl, connectionLimit: 4 });
  let worker: ChildProcess | undefined;
  /** Worker starts and restarts, one after another: two at once would each start a worker and lose track of one. */
  let workerChain: Promise<void> = Promise.resolve();
  const queueWorker = (job: () => Promise<void>) => (workerChain = workerChain.then(job, job));
  /** Workers that could not be started (within the supervisor's 3 minutes): the run cannot be trusted past them. */
  const workerFailures: string[] = [];
  const inBackground = (job: () => Promise<void>) => void queueWorker(job).catch((err: unknown) => workerFailures.push(String(err)));
  let stopping = false;
  /** Worker exits the run did not cause (e.g. the Temporal server gone for longer than it waits). */
  let workerExits = 0;
  /**
   * Starts a worker as a supervisor (compose's restart policy) would: one that cannot start yet (the Temporal server
   * down) is started again, and one that exits on its own is replaced.
   */
  const superviseWorker = async (): Promise<void> => {
    const child = await waitFor('a worker process started', () => startWorkerProcess(stack, extra).catch(() => null), 180_000, 500);
    worker = child;
    child.once('exit', () => {
      if (worker !== child || stopping) return;
      worker = undefined;
      workerExits += 1;
      inBackground(superviseWorker);
    });
  };
  try {
    await queueWorker(superviseWorker);
    return await drive();
  } finally {
    stopping = true;
    await workerChain.catch(() => undefined);
    if (worker) await killHard(worker);
    await admin.end();
    await stack.stop();
    await scim.stop();
    await flaky.stop();
  }

  async function drive(): Promise<ChaosReport> {
    const faults: Record<string, number> = {};
    const count = (k: string) => (faults[k] = (faults[k] ?? 0) + 1);
    const violations: Violation[] = [];
    const live: LiveTicket[] = [];
    let closeRefusals = 0;
    let rogue: string | undefined;
    let checkErrors = 0;
    const runErrors: string[] = [];

    const restartWorker = async () => {
      const old = worker;
      worker = undefined;
      if (old) await killHard(old);
      await superviseWorker();
    };

    /** closure-check for the ticket, from its source, as the change manager's tooling asks it. */
    const closureOf = (t: LiveTicket) =>
      axios.get(`${stack.apiUrl}/api/changes/${t.plan.source}/${t.number}/closure-check`, { headers: { authorization: `Bearer ${TEST_ENV.adminToken}` }, validateStatus: () => true });
    /** The notes the gateway wrote on the ticket: ServiceNow work notes, Jira comments. */
    const notesOf = (t: LiveTicket): string[] =>
      !t.sysId ? [] : t.plan.source === 'jira' ? stack.jiraSim.commentTexts(t.sysId) : stack.sim.journal(t.sysId, 'work_notes').map((n) => n.value);

    /** Runs an administrator's statements, waiting out a MariaDB restart (connection refused or lost) and no other error. */
    const whenMariadbAnswers = (work: () => Promise<void>) =>
      waitFor('MariaDB to take an administrator\'s statements', async () => {
        try {
          await work();
          return true;
        } catch (err) {
          const code = (err as { code?: string }).code ?? '';
          if (['ECONNREFUSED', 'PROTOCOL_CONNECTION_LOST', 'ER_SERVER_SHUTDOWN', 'ECONNRESET'].includes(code)) return null;
          throw err;
        }
      }, 120_000, 250);

    const readBack = async (t: LiveTicket, a: LiveTicket['actions'][number]): Promise<string | null> => {
      if (a.system === CHAOS_SYSTEMS.silent) {
        const members = (await scim.admin.findGroup(scimGroup))?.members?.map((m) => m.value) ?? [];
        const user = await scim.admin.findUser(a.name);
        if (user && members.includes(String(user.id))) return `${a.name} still a member of ${scimGroup}`;
        return null;
      }
      const [users] = await admin.query<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n FROM mysql.user WHERE User = ? AND Host = ?', [a.name, '%']);
      const exists = Number(users[0]?.n) > 0;
      if (a.kind === 'leaver') return exists ? `account ${a.name} still exists` : null;
      if (!exists) return `account ${a.name} does not exist`;
      const [shown] = await admin.query<mysql.RowDataPacket[]>('SHOW GRANTS FOR ?@?', [a.name, '%']);
      const held = shown.map((r) => normalizeGrant(String(Object.values(r)[0])));
      for (const g of a.grants ?? []) if (!held.some((h) => h.includes(g))) return `${a.name} lacks ${g} (holds: ${held.join('; ')})`;
      void t;
      return null;
    };

    /** One look at a ticket: if anything says it may close, every step must hold on its target. */
    const check = async (t: LiveTicket, tryClose: boolean) => {
      if (!t.sysId) return;
      const closure = await closureOf(t);
      const allowed = closure.status === 200 && closure.data.allowed === true;
      const gate = t.plan.source === 'jira'
        ? (stack.jiraSim.property(t.sysId, GATE_PROPERTY) as { passed?: boolean } | undefined)?.passed === true
        : stack.sim.getChange(t.sysId)?.u_identity_cleanup === 'verified';
      if (tryClose && !t.closed) {
        if (t.plan.source === 'jira') {
          // The workflow's validator reads the gate property: Complete is refused until it passes.
          if (stack.jiraSim.transition(t.sysId, 'Complete').ok) t.closed = true;
          else closeRefusals += 1;
        } else {
          try {
            stack.sim.updateChange(t.sysId, { state: '3', close_code: 'successful', close_notes: 'closed by the chaos change manager' });
            t.closed = true;
          } catch (err) {
            if (!(err instanceof BusinessRuleAbortError)) throw err;
            closeRefusals += 1;
          }
        }
      }
      if (allowed) t.allowedSeen = true;
      if (allowed && opts.rogueAdministrator && rogue === undefined) {
        const joiner = t.actions.find((a) => a.kind === 'joiner' && a.system === CHAOS_SYSTEMS.local && !a.permanent);
        if (joiner) {
          rogue = t.number;
          await admin.query('DROP USER ?@?', [joiner.name, '%']);
          log(`rogue administrator dropped ${joiner.name} (${t.number})`);
        }
      }
      const seen = [allowed && 'closure-check allowed', gate && 'gate set', t.closed && 'closed'].filter(Boolean).join(', ');
      if (!seen) return;
      for (const a of t.actions) {
        const disagreement = await readBack(t, a);
        if (disagreement && !violations.some((v) => v.ticket === t.number && v.action === `${a.kind}:${a.name}`)) {
          violations.push({ ticket: t.number, seen, action: `${a.kind}:${a.name}`, disagreement });
          log(`VIOLATION ${t.number}: ${seen} while ${disagreement}`);
        }
      }
    };

    /** The ticket's actions whose verified step is not told on the ticket. */
    const unnoted = (t: LiveTicket) => (t.sysId ? untold(outcomeLines(notesOf(t)), t.actions) : t.actions);

    const raise = async (p: PlannedTicket) => {
      const t: LiveTicket = {
        plan: p,
        number: uniqueTicketNumber(),
        actions: p.actions.map((a) => ({ ...a, name: a.system === CHAOS_SYSTEMS.silent ? `${prefix}.${p.index}.${a.slot}@chaos.test` : `${prefix}_${p.index}_${a.slot}` })),
        closed: false,
        allowedSeen: false,
      };
      // What leavers and movers act on exists first, as its administrator made it (the grant it holds is not one the
      // gateway made, so a mover leaves it as it is).
      for (const a of t.actions) {
        if (a.system === CHAOS_SYSTEMS.silent) {
          const id = await scim.admin.createUser(a.name);
          await scim.admin.addMember(scimGroupId, id);
        } else if (a.kind !== 'joiner') {
          // As an administrator would, again once MariaDB is back if it is restarting.
          await whenMariadbAnswers(async () => {
            await admin.query('CREATE USER IF NOT EXISTS ?@? IDENTIFIED BY ?', [a.name, '%', randomBytes(12).toString('hex')]);
            await admin.query(`GRANT ${GRANT_A} TO ?@?`, [a.name, '%']);
          });
        }
      }
      const actions = JSON.stringify(t.actions.map((a) =>
        a.system === CHAOS_SYSTEMS.silent
          ? { kind: a.kind, system: a.system, identity: { type: 'person', name: a.name } }
          : { kind: a.kind, system: a.system, identity: { type: 'service_account', name: a.name, host: '%' }, ...(a.grants ? { grants: a.grants } : {}), ...(a.kind === 'leaver' ? {} : { ttl: 'PT2H' }) }));
      live.push(t);
      if (p.source === 'jira') {
        // A normal change taken to Implementing (no approval configured): the simulated site sends each event.
        const issue = stack.jiraSim.createIssue({ summary: `chaos ticket ${p.index}`, [CHANGE_TYPE_FIELD]: { value: 'Normal' }, [ACTIONS_FIELD]: actions }, { reporter: 'chaos-requester' });
        t.number = issue.key;
        t.sysId = issue.key;
        for (const step of ['Request authorization', 'Authorize', 'Start implementation']) {
          const moved = stack.jiraSim.transition(issue.key, step);
          if (!moved.ok) throw new Error(`${issue.key}: ${step} refused: ${JSON.stringify(moved)}`);
        }
      } else if (p.delivery === 'out-of-order') {
        const first = stack.sim.createChange({ number: t.number, state: '-3', approval: 'requested', u_identity_actions: actions });
        t.sysId = first.sys_id as string;
        t.first = { ...first };
        stack.sim.updateChange(t.sysId, { state: '-1', approval: 'approved' });
        // The first version again, after the second: it must change nothing.
        await stack.deliver(t.first);
        count('out-of-order');
      } else {
        const first = stack.sim.createChange({ number: t.number, state: '-1', approval: 'approved', u_identity_actions: actions });
        t.sysId = first.sys_id as string;
        t.first = { ...first };
        if (p.delivery === 'duplicate') {
          await stack.deliver(t.first);
          await stack.deliver(t.first);
          count('duplicate');
        }
      }
      for (const a of t.actions) if (a.permanent) count(a.permanent);
    };

    const inject = async (kind: WindowFault, f: { durationMs?: number; count?: number }) => {
      count(kind);
      log(`fault ${kind} ${JSON.stringify(f)}`);
      if (kind === 'worker-kill') {
        inBackground(restartWorker);
        return;
      }
      if (kind === 'temporal-restart') return opts.restartTemporal?.();
      if (kind === 'mariadb-restart') return opts.restartMariadb?.();
      // ITSM faults hit both ticket systems at once.
      if (kind === 'itsm-429') {
        stack.jiraSim.fault = { kind: 'rate-limit', retryAfterSeconds: 1, times: f.count };
        return stack.sim.faults.rateLimit({ count: f.count, retryAfterSeconds: 1 });
      }
      if (kind === 'itsm-503') {
        stack.jiraSim.fault = { kind: 'server-error', status: 503, times: f.count };
        return stack.sim.faults.serverError({ status: 503, count: f.count, retryAfterSeconds: 1 });
      }
      const until = Date.now() + (f.durationMs ?? 2_000);
      const wait = () => new Promise<void>((r) => setTimeout(r, Math.max(0, until - Date.now())));
      if (kind === 'unreachable') {
        await flaky.down();
        await wait();
        await flaky.up();
      } else {
        await stack.sim.faults.refuseConnections();
        stack.jiraSim.fault = { kind: 'outage' };
        await wait();
        await stack.sim.faults.restore();
        stack.jiraSim.fault = undefined;
      }
    };

    // The change manager's close attempts come from the seed too (their timing still follows the run).
    const closeDraw = seededRandom(opts.seed ^ 0x5eed);
    let checking = true;
    const checker = (async () => {
      while (checking) {
        for (const t of [...live]) {
          try {
            await check(t, closeDraw() < 0.2);
          } catch (err) {
            // MariaDB restarting: neither the API nor the administrator can read it; this look is lost, not passed.
            checkErrors += 1;
            if (checkErrors <= 3) log(`check of ${t.number} failed: ${(err as Error).message}`);
          }
        }
        await new Promise((r) => setTimeout(r, 300));
      }
    })();

    try {
      // Tickets and faults on one timeline.
      const events = [
        ...plan.tickets.map((t) => ({ at: t.atMs, run: () => raise(t) })),
        ...plan.faults.map((f) => ({ at: f.atMs, run: () => inject(f.kind, f) })),
      ].sort((a, b) => a.at - b.at);
      const running: Promise<unknown>[] = [];
      for (const e of events) {
        const due = started + e.at - Date.now();
        if (due > 0) await new Promise((r) => setTimeout(r, due));
        // A ticket or fault that could not be carried out is reported, never an unhandled rejection.
      running.push(e.run().catch((err: unknown) => runErrors.push(String(err))));
      }
      await Promise.all(running);
      await workerChain;
      await stack.sim.faults.restore();
      stack.jiraSim.fault = undefined;
      await flaky.up();
      // Late deliveries: the first version of a ticket again, after its steps ran.
      for (const t of live.filter((l) => l.plan.delivery === 'late' && l.first)) {
        await stack.deliver(t.first);
        count('late');
      }
      // Recovery: every ticket whose faults were transient must become closable.
      const deadline = Date.now() + (opts.recoveryMs ?? Math.max(120_000, opts.tickets * 2_000));
      const transient = live.filter((t) => !permanentFaultOf(t.plan));
      while (Date.now() < deadline && !transient.every((t) => t.allowedSeen && unnoted(t).length === 0)) {
        await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      checking = false;
      await checker;
    }
    // A last look at every ticket, with a close attempted on each; what counts as closable is what holds now.
    for (const t of live) await check(t, true);
    const closableNow = new Set<LiveTicket>();
    for (const t of live) if (t.closed || (await closureOf(t)).data.allowed === true) closableNow.add(t);

    const unfinished: string[] = [...workerFailures.map((f) => `worker not started: ${f}`), ...runErrors.map((e) => `not carried out: ${e}`)];
    const transient = live.filter((t) => !permanentFaultOf(t.plan));
    const permanent = live.filter((t) => permanentFaultOf(t.plan));
    for (const t of transient) if (!closableNow.has(t)) unfinished.push(`${t.number} (${t.plan.actions.map((a) => `${a.kind}@${a.system}`).join(', ')}) not closable after recovery: ${JSON.stringify((await closureOf(t)).data.reasons ?? null)}`);
    let notesMissing = 0;
    for (const t of transient.filter((x) => closableNow.has(x))) {
      const missing = unnoted(t);
      notesMissing += missing.length;
      for (const a of missing) unfinished.push(`${t.number}: ${a.kind} ${a.name} verified but not told on the ticket`);
    }
    let permanentBlockedNamed = 0;
    for (const t of permanent) {
      const c = (await closureOf(t)).data as { allowed?: boolean; reasons?: string[] };
      const at = t.actions.find((a) => a.permanent)!;
      if (c.allowed === false && (c.reasons ?? []).some((r) => r.includes(at.system) || r.includes(at.name))) permanentBlockedNamed += 1;
      else unfinished.push(`${t.number} (${at.permanent} on ${at.system}) not blocked naming it: ${JSON.stringify(c)}`);
    }
    let stepsDoneTwice = 0;
    const doubled: string[] = [];
    let notesDuplicated = 0;
    for (const t of live) {
      // A step acted on twice is a second applyVerifyRecord scheduled for the same step and the same operation (a
      // mover's removal and its additions are two operations); a retried attempt of one activity is the same
      // scheduling, and the evidence store's unique (ticket, step, outcome) could never show it.
      const history = await stack.workflows.client.workflow
        .getHandle(`change-${t.plan.source}-${t.number}`)
        .fetchHistory()
        .catch((err: unknown) => {
          // A change whose every delivery was lost and never reconciled has no workflow: named, not a crash of the run.
          unfinished.push(`${t.number}: no workflow history (${(err as Error).message.slice(0, 120)})`);
          return { events: [] };
        });
      const seen = new Map<string, number>();
      for (const e of history.events ?? []) {
        const a = e.activityTaskScheduledEventAttributes;
        if (a?.activityType?.name !== 'applyVerifyRecord') continue;
        const input = JSON.parse(Buffer.from(a.input?.payloads?.[0]?.data ?? new Uint8Array()).toString('utf8')) as { stepId: string; operation: { op: string } };
        // The whole operation: a mover's two phases are both `move`, with different wanted sets.
        const phase = `${input.stepId} ${JSON.stringify(input.operation)}`;
        seen.set(phase, (seen.get(phase) ?? 0) + 1);
      }
      for (const [phase, n] of seen) {
        if (n < 2) continue;
        stepsDoneTwice += 1;
        doubled.push(`${t.number} ${phase} x${n}`);
      }
      // One line per step outcome told on the ticket; the same line twice is a note written twice.
      notesDuplicated += duplicatedNotes(outcomeLines(notesOf(t)));
    }
    const report: ChaosReport = {
      seed: opts.seed,
      tickets: live.length,
      actions: live.reduce((n, t) => n + t.actions.length, 0),
      faults,
      invariantViolations: violations.length,
      violations,
      transientTickets: transient.length,
      closableAfterRecovery: transient.filter((t) => closableNow.has(t)).length,
      permanentTickets: permanent.length,
      permanentBlockedNamed,
      stepsDoneTwice,
      doubled,
      notesDuplicated,
      notesMissing,
      closed: live.filter((t) => t.closed).length,
      closedPermanent: permanent.filter((t) => t.closed).length,
      workerExits,
      checkErrors,
      closeRefusals,
      durationMs: Date.now() - started,
      unfinished,
      ...(rogue ? { rogue } : {}),
    };
    return report;
  }
}
