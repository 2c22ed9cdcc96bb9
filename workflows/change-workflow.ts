import {
  CancellationScope,
  allHandlersFinished,
  condition,
  isCancellation,
  continueAsNew,
  defineQuery,
  defineSignal,
  patched,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import {
  type ChangeState,
  type ClosureGate,
  type OutboxBatch,
  type TicketOutbox,
  type ClosureView,
  type StepState,
  type TicketRef,
  type TicketSnapshot,
  closureGate,
  closureVerdict,
  closureView,
  isAuthorized,
  isFinal,
  needsDecision,
  ticketKey,
} from '../src/change';
import type { NoteWrite, TicketUpdate } from '../src/itsm/source';
import type { AnySnapshot, ChangeWorkflowInput, LegacyChangeWorkflowInput } from './change-types';
import { closureViews, targets, ticketLifecycle, ticketOutbox, tickets } from './activity-proxies';
import type { KindContext } from './kinds/kind';
import { closureRules, installKindHandlers, workflowKind } from './kinds/registry';
import { failureText } from './kinds/step-runner';
import { normaliseInput, normaliseSnapshot } from './legacy-ticket';
import { SEARCH_ATTRIBUTES } from './search-attributes';
import { installExceptionDecisions, openingException, opensException, runException } from './exceptions';
import { installStepDecisions } from './step-decisions';

export const ticketUpdatedSignal = defineSignal<[AnySnapshot]>('ticketUpdated');
export const statusQuery = defineQuery<ChangeState>('status');

/**
 * The gate names the identity-actions text it was written for, and a change without identity actions gets one too
 * (`not_applicable`). Before this patch the gate was a bare `verified` / '' written only for changes with steps.
 */
const GATE_BOUND_TO_ACTIONS = 'closure-gate-bound-to-actions';

/** The workflow publishes its closure view for closure-check (closure_verdicts); before this patch it only answered queries. */
const CLOSURE_VIEW_PUBLISHED = 'closure-view-published';

/**
 * A cancelled change is rolled back as a saga: the undos of its verified steps run one after the other, newest
 * verification first. Before this patch the joiners' expiries ran concurrently, in step order.
 */
const SAGA_REVERSE_ORDER = 'saga-reverse-order';

/**
 * One rollback at a time: a step verified while the rollback runs (its grant was in flight when the change was
 * cancelled) is undone after the undo in progress, newest verification first among those still waiting. Before this
 * patch its undo started at once, alongside the one in progress. Asked only when that happens, so that histories in
 * which it never did replay unchanged.
 */
const SAGA_ONE_CHAIN = 'saga-one-chain';

/**
 * A rejected change (ServiceNow sends it back to New) is unauthorized again: what it granted is rolled back like a
 * cancelled change's, and its revocations stay. Before this patch a rejection kept the grants until their ttl.
 */
const ROLLBACK_ON_REJECTION = 'rollback-on-rejection';

/**
 * One write-back per loop turn: the gate (when it changed) and the notes the steps left since the last turn go to the
 * ticket in one activity (ServiceNow: one save), and a gate the newest delivery already shows, before the gateway
 * ever wrote one, is not written again. Before this patch every note and every gate write was an activity of its
 * own, each step awaited its note, and the first turn of every ticket wrote `pending`.
 */
const ONE_WRITE_BACK_PER_TURN = 'one-write-back-per-turn';

/**
 * The ticket outbox: every update for the ticket (notes, the gate, and later kinds through the same write-back) is
 * recorded in the workflow's state first and delivered by a loop of its own, so that the steps keep running while the
 * ticket's system is down or throttling. A transient failure is retried without limit (Retry-After / X-RateLimit-Reset
 * when the source says, else exponential back-off with jitter, capped) and blocks closure only until delivered, with
 * its reason on closure-check; a refusal that needs a person blocks, and is sent once more after the ticket's next
 * delivery (a person may have fixed the cause). Before this patch the turn awaited its write-back, whose retries
 * ended after 50 attempts (~3.5 h) with the update lost and closure blocked.
 *
 * Why the workflow's state and not a database table: the batch is part of the same durable history as the steps that
 * wrote it, so a worker crash or a continue-as-new carries it (no second store to keep consistent, no extra grants for
 * the app account), the gate and its notes are formed and ordered in one place, and Temporal's timers do the waiting.
 */
const TICKET_OUTBOX = 'ticket-outbox';

/** Delivery waits at least this long between attempts, and never longer than a day, whatever an answer asks for. */
const MIN_RETRY_MS = 100;
const MAX_RETRY_MS = 24 * 3_600_000;

/**
 * On the one-write-back shape, a run's first view is not published while its first steps are still running, for up
 * to this long: it would be superseded within milliseconds by the view the step's write-back publishes, and as a
 * local activity it would hold the first workflow task, and with it the dispatch of the step. Until then
 * closure-check has no view of the run and asks the workflow, as for any ticket that has not published.
 */
const FIRST_VIEW_GRACE = '2 seconds';

/**
 * A ticket that reaches a closed state while its closure verdict says no (the block-close rule is not installed, or
 * was bypassed) is reopened with a note listing the reasons, once no step is still running; the workflow then waits
 * for the reopened ticket instead of ending. Before this patch such a workflow ended with the ticket closed.
 */
const REOPEN_CLOSED_WITHOUT_CLEANUP = 'reopen-closed-without-cleanup';

/** Once the gate says verified, the ticket's evidence bundle is attached to it. Before this patch it was not. */
const ATTACH_EVIDENCE_BUNDLE = 'attach-evidence-bundle';

const GATE_VERIFIED_NOTE = 'Identity cleanup verified: closure allowed.';
const PENDING: ClosureGate = { value: 'pending', digest: '' };

export async function changeWorkflow(started: ChangeWorkflowInput | LegacyChangeWorkflowInput): Promise<ChangeState> {
  const input = normaliseInput(started);
  const state: ChangeState = input.carried ?? {
    source: input.source,
    key: input.key,
    recordId: input.recordId,
    version: -1,
    phase: '',
    emergency: false,
    sourceState: '',
    steps: [],
    gateSet: false,
    writeBackErrors: [],
    deliveries: 0,
    ignoredStale: 0,
  };
  const key = ticketKey(state.source, state.key);
  const ref: TicketRef = { source: state.source, key: state.key, recordId: state.recordId };
  let dirty = true;
  let gateAttribute = '';
  // The closure view last published for closure-check, and the delivery version it was about.
  let lastPublished = '';
  let lastPublishedVersion = -2;
  // FIRST_VIEW_GRACE: its timer, and whether it has run out.
  let graceTimer: CancellationScope | undefined;
  let graceOver = false;
  const inFlight = new Set<Promise<void>>();
  const touch = () => {
    dirty = true;
  };
  // Decided once per run, before the first delivery is read, so that a run keeps one write-back shape throughout. A
  // run that has it started after every earlier patch: it does not ask for those again (no marker each).
  const outbox = patched(TICKET_OUTBOX);
  const oneWriteBack = outbox || patched(ONE_WRITE_BACK_PER_TURN);
  const since = (patch: string) => oneWriteBack || patched(patch);
  // On the current shape, the gate attribute the start set (blocked) is not upserted again.
  if (oneWriteBack) gateAttribute = String(workflowInfo().typedSearchAttributes.get(SEARCH_ATTRIBUTES.gate) ?? '');
  // Notes the steps left for the loop's next write-back (oneWriteBack), and the gate the newest delivery showed.
  const notes: NoteWrite[] = [];
  let gateShown: ClosureGate | undefined;
  // Notes about deliveries in a state no configuration maps, written by the loop's next turn.
  const unmappedNotes: NoteWrite[] = [];
  // TICKET_OUTBOX: the recorded updates, and whether the delivery loop is running (and only waiting to retry).
  const box: TicketOutbox = outbox ? (state.outbox ??= { pending: [] }) : { pending: [] };
  let delivering = false;
  let retryWait = false;
  // Updates of other kinds the steps left for the outbox (a property, a transition, an attachment).
  const updates: TicketUpdate[] = [];

  setHandler(ticketUpdatedSignal, (delivered) => {
    const snap = normaliseSnapshot(delivered, ref);
    state.deliveries++;
    if (snap.version <= state.version) {
      state.ignoredStale++;
      return;
    }
    state.version = snap.version;
    // Histories recorded before `unknown` existed never carry it, so this note adds no command to their replay.
    if (snap.phase === 'unknown' && (state.phase !== 'unknown' || state.sourceState !== snap.sourceState)) {
      unmappedNotes.push({
        marker: `state-unmapped:${snap.sourceState}:${snap.version}`,
        text:
          `State ${snap.sourceState} is not mapped to a changegate phase: until it is configured, changegate treats this ` +
          'change as neither authorized nor finished (grants wait, revocations still run), and a close in this state is not taken as done.',
      });
    }
    state.phase = snap.phase;
    state.emergency = snap.emergency;
    state.sourceState = snap.sourceState;
    if (snap.requester !== undefined) state.requester = snap.requester;
    if (snap.implementer !== undefined) state.implementer = snap.implementer;
    if (snap.windowEnd !== undefined) state.windowEnd = snap.windowEnd;
    state.actionsDigest = snap.actionsDigest;
    gateShown = shownAsGate(snap.gateShown);
    mergeActions(state, snap);
    touch();
  });
  setHandler(statusQuery, () => state);
  installStepDecisions(state, key, touch);
  installExceptionDecisions(state, key, touch);

  const note = async (marker: string, text: string): Promise<void> => {
    if (!oneWriteBack) {
      await tickets.postWorkNote({ ticket: ref, marker, text });
      return;
    }
    notes.push({ marker, text });
    touch();
  };
  const update = (u: TicketUpdate): void => {
    updates.push(u);
    touch();
  };
  const contextFor = (step: StepState): KindContext => ({ key, ref, state, step, touch, targets, tickets, note, since, ...(outbox ? { update } : {}) });
  // Kinds with events of their own (a deploy's pipeline runs) take them as updates whose validators decide.
  installKindHandlers({ key, state, contextFor, touch });

  const undoOne = async (step: StepState): Promise<void> => {
    try {
      await workflowKind(step.action.kind)?.undo?.run(contextFor(step));
    } catch (err) {
      state.writeBackErrors.push(failureText(err));
    }
    touch();
  };
  /** Runs the undos one after the other; one that fails (and blocks closure) does not stop the rest. */
  const compensate = async (stack: StepState[]): Promise<void> => {
    for (const step of stack) await undoOne(step);
  };
  // SAGA_ONE_CHAIN: the undos waiting their turn, and whether the one chain that runs them is running.
  const undoQueue: Array<{ step: StepState; index: number }> = [];
  let compensating = false;
  const newestFirst = (x: { step: StepState; index: number }, y: { step: StepState; index: number }) =>
    (y.step.verifiedAt ?? '').localeCompare(x.step.verifiedAt ?? '') || y.index - x.index;
  /** The one chain: takes the newest verification still waiting each time the undo before it has ended. */
  const compensateQueued = async (): Promise<void> => {
    compensating = true;
    try {
      while (undoQueue.length > 0) {
        undoQueue.sort(newestFirst);
        await undoOne(undoQueue.shift()!.step);
      }
    } finally {
      compensating = false;
    }
  };

  // A step's promise never rejects into the void: a write-back that failed for good is kept and blocks closure.
  const track = (p: Promise<void>) => {
    const guarded = p.catch((err: unknown) => {
      state.writeBackErrors.push(failureText(err));
    });
    inFlight.add(guarded);
    void guarded.finally(() => {
      inFlight.delete(guarded);
      touch();
    });
  };

  /**
   * Delivers the outbox, oldest batch first, until it is empty. A batch that fails transiently stays first and is sent
   * again after the wait the attempt asked for; one that is refused is dropped, and its reason blocks closure.
   */
  const deliver = async (): Promise<void> => {
    delivering = true;
    try {
      while (box.pending.length > 0) {
        const batch = box.pending[0];
        batch.attempts += 1;
        // The view once this batch lands, published by the activity with it; with more behind it, theirs will be.
        const view = box.pending.length === 1 ? closureView({ ...state, outbox: { pending: [] } }, closureRules) : undefined;
        const publish = view ? { ticketKey: key, version: state.version, view } : undefined;
        const result = await ticketOutbox.deliverToTicket({
          ticket: ref,
          ...(batch.gate ? { gate: batch.gate } : {}),
          notes: batch.notes,
          ...(batch.updates?.length ? { updates: batch.updates } : {}),
          attempt: batch.attempts,
          ...(publish ? { publish } : {}),
        });
        if (result.outcome === 'retry') {
          const waitMs = Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, Math.round(result.retryInMs)));
          const now = Date.now();
          box.waiting = { reason: result.reason, attempts: batch.attempts, since: box.waiting?.since ?? new Date(now).toISOString(), nextAttemptAt: new Date(now + waitMs).toISOString() };
          touch();
          retryWait = true;
          try {
            await sleep(waitMs);
          } finally {
            retryWait = false;
          }
          continue;
        }
        box.pending.shift();
        box.waiting = undefined;
        if (result.outcome === 'delivered') {
          if (batch.gate) {
            state.gate = batch.gate;
            state.gateSet = batch.gate.value !== 'pending';
          }
          (state.notesWritten ??= []).push(...batch.notes.map((n) => n.marker), ...(batch.updates ?? []).map((u) => u.marker));
          if (result.published && publish) {
            lastPublished = JSON.stringify(publish.view);
            lastPublishedVersion = publish.version;
            graceTimer?.cancel();
          }
        } else {
          refused(state, box, batch, result.reason);
          // The batches behind it were recorded before the refusal, perhaps with a gate that no longer holds: the loop
          // records again (replacing an unsent gate) before anything more is sent.
          touch();
          break;
        }
        touch();
      }
    } finally {
      delivering = false;
    }
  };

  // The first delivery comes with signal-with-start; wait for it in case of a bare start.
  await condition(() => state.version >= 0);

  for (;;) {
    await condition(() => dirty);
    dirty = false;
    for (const n of unmappedNotes.splice(0)) track(note(n.marker, n.text));

    const undoPending = (step: StepState) => step.status === 'verified' && workflowKind(step.action.kind)?.undo?.pending(step) === true;
    // Called only when there is something to roll back, so histories recorded before either patch replay unchanged.
    const rollBack = state.steps.some(undoPending) && (state.phase === 'cancelled' || (state.phase === 'rejected' && since(ROLLBACK_ON_REJECTION)));
    const saga = rollBack && since(SAGA_REVERSE_ORDER);
    for (const step of state.steps) {
      const kind = workflowKind(step.action.kind);
      if (!kind) {
        if (step.status === 'pending' || step.status === 'waiting-authorization') {
          step.status = 'failed';
          step.detail = `this worker has no workflow for action kind '${step.action.kind}'`;
        }
        continue;
      }
      if (step.status === 'pending') {
        step.status = 'running';
        // An emergency grant the policy lets run before authorization is reviewed after the fact (an exception).
        if (step.action.exception && !isAuthorized(state)) step.grantedEarly = true;
        track(kind.run(contextFor(step)));
      } else if (opensException(step)) {
        step.exception = openingException(step);
        track(runException(contextFor(step), kind.undo));
      } else if (step.status === 'blocked') {
        // A step that cannot run as planned ends with the change (nothing was done on its target).
        if (isFinal(state.phase)) step.status = 'cancelled';
      } else if (step.status === 'waiting-authorization' || step.status === 'waiting-approval') {
        if (isFinal(state.phase)) step.status = 'cancelled';
        else if (isAuthorized(state)) {
          // A privileged grant also waits for a change manager's approval (the governance policy).
          if (needsDecision(step)) step.status = 'waiting-approval';
          else {
            step.status = 'running';
            track(kind.run(contextFor(step)));
          }
        } else if (step.status === 'waiting-approval') {
          step.status = 'waiting-authorization';
        }
      } else if (!saga && kind.undo && undoPending(step) && state.phase === 'cancelled') {
        // Before SAGA_REVERSE_ORDER: each undo at once, concurrently.
        kind.undo.begin(step);
        track(kind.undo.run(contextFor(step)));
      }
    }
    if (saga) {
      // A cancelled change loses what it granted now, not at the end of the TTL: newest verification undone first.
      const stack = state.steps
        .map((step, index) => ({ step, index }))
        .filter(({ step }) => undoPending(step))
        .sort(newestFirst);
      for (const { step } of stack) workflowKind(step.action.kind)?.undo?.begin(step);
      if (!compensating) {
        undoQueue.push(...stack);
        track(compensateQueued());
      } else if (patched(SAGA_ONE_CHAIN)) {
        // Verified while the rollback runs: it waits its turn in the same chain.
        undoQueue.push(...stack);
      } else {
        // Before SAGA_ONE_CHAIN: a second chain, alongside the first.
        track(compensate(stack.map(({ step }) => step)));
      }
    }

    let verdict = closureVerdict(state, closureRules);
    if (outbox) {
      // The gate follows the steps and refusals only: a delivery still pending must not turn the gate it carries back.
      release(state, box);
      const settled = closureVerdict({ steps: state.steps, writeBackErrors: state.writeBackErrors }, closureRules);
      record(state, box, closureGate(state, settled), notes, updates, gateShown);
      if (box.pending.length > 0 && !delivering) void deliver();
    } else if (oneWriteBack) {
      // The write-back publishes this turn's view too once the ticket has it (what it would be if the write lands).
      const view = closureView(state, closureRules);
      const publish = { ticketKey: key, version: state.version, view };
      if (await writeBackTurn(ref, state, closureGate(state, verdict), notes, gateShown, publish)) {
        lastPublished = JSON.stringify(view);
        lastPublishedVersion = publish.version;
        graceTimer?.cancel();
      }
      // A write-back that failed just now blocks closure already.
      verdict = closureVerdict(state, closureRules);
    } else if (patched(GATE_BOUND_TO_ACTIONS)) {
      await writeClosureGate(ref, state, closureGate(state, verdict));
    } else if (verdict.allowed !== state.gateSet && state.steps.length > 0) {
      // Before GATE_BOUND_TO_ACTIONS: kept so that histories recorded before it replay unchanged.
      try {
        await tickets.setClosureGate({ ticket: ref, value: verdict.allowed ? 'verified' : '' });
        state.gateSet = verdict.allowed;
        if (verdict.allowed) {
          await tickets.postWorkNote({ ticket: ref, marker: `gate:${state.version}`, text: 'Identity cleanup verified: closure allowed.' });
        }
      } catch (err) {
        state.writeBackErrors.push(failureText(err));
        state.gateSet = false;
      }
    }
    // ---- ticket lifecycle: evidence attached once verified, a close without proven cleanup undone ----
    const attachAs = state.gate?.value === 'verified' ? `changegate-evidence-${state.key}-${state.gate.digest.slice(0, 12)}.json` : undefined;
    if (attachAs && !(state.evidenceAttached ?? []).includes(attachAs) && patched(ATTACH_EVIDENCE_BUNDLE)) {
      // Alongside the loop (a throttled upload must not hold the next turn); a failure blocks closure like any
      // failed write-back, and the workflow does not end before it is settled.
      (state.evidenceAttached ??= []).push(attachAs);
      track(ticketLifecycle.attachEvidenceBundle({ ticket: ref, fileName: attachAs }).then(() => undefined));
    }
    if (state.phase === 'closed' && !verdict.allowed && inFlight.size === 0 && state.reopened?.version !== state.version && patched(REOPEN_CLOSED_WITHOUT_CLEANUP)) {
      try {
        const { supported } = await ticketLifecycle.reopenTicket({ ticket: ref, marker: `reopen:${state.version}`, reasons: verdict.reasons });
        // A source that cannot reopen leaves the ticket closed: the workflow ends as before.
        state.reopened = { version: state.version, ok: supported };
      } catch (err) {
        state.writeBackErrors.push(failureText(err));
        state.reopened = { version: state.version, ok: false };
      }
      verdict = closureVerdict(state, closureRules);
    }
    const awaitingReopened = state.reopened?.ok === true && state.reopened.version === state.version && state.phase === 'closed';

    if (since(CLOSURE_VIEW_PUBLISHED)) {
      const view = closureView(state, closureRules);
      const published = JSON.stringify(view);
      const changed = published !== lastPublished || state.version !== lastPublishedVersion;
      const firstWhileRunning = oneWriteBack && lastPublishedVersion === -2 && !graceOver && state.steps.some((st) => st.status === 'running');
      // A delivery on its way publishes the view with it; one waiting to retry leaves the (blocked) view to the loop.
      const deliveryPublishes = delivering && !box.waiting;
      if (changed && deliveryPublishes) {
        // published by the delivery, or by the turn it touches when it lands
      } else if (changed && firstWhileRunning) {
        graceTimer ??= startGrace(() => {
          graceOver = true;
          touch();
        });
      } else if (changed) {
        await closureViews.publishClosureView({ ticketKey: key, version: state.version, view });
        lastPublished = published;
        lastPublishedVersion = state.version;
        graceTimer?.cancel();
      }
    }
    // On the outbox, a verdict is `allowed` for the search attribute only once the ticket has everything recorded.
    const gate = verdict.allowed && !(outbox && box.pending.length > 0) ? 'allowed' : 'blocked';
    if (gate !== gateAttribute) {
      gateAttribute = gate;
      upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.gate, value: gate }]);
    }

    // A note a step left while this turn's write-back was out is written next turn (the step touched the loop).
    const undelivered = box.pending.length > 0 || delivering || updates.length > 0;
    // A reopened ticket's next delivery (the webhook's, or reconciliation's) is awaited rather than ending here.
    if (isFinal(state.phase) && inFlight.size === 0 && notes.length === 0 && !undelivered && allTerminal(state) && !awaitingReopened) break;
    // A delivery waiting to retry goes on in the next run: the outbox is in the state carried over.
    if (workflowInfo().continueAsNewSuggested && inFlight.size === 0 && notes.length === 0 && updates.length === 0 && (!delivering || retryWait)) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof changeWorkflow>({ ...input, carried: state });
    }
  }
  await condition(allHandlersFinished);
  return state;
}

/**
 * Writes the gate when it differs from the one last written: a changed verdict, or the same verdict about other
 * identity-actions text (the ticket's own business rule has already reset the gate to pending on that edit).
 */
async function writeClosureGate(ref: TicketRef, state: ChangeState, wanted: ClosureGate | undefined): Promise<void> {
  if (!wanted || (state.gate?.value === wanted.value && state.gate.digest === wanted.digest)) return;
  try {
    await tickets.setClosureGate({ ticket: ref, value: wanted.value, digest: wanted.digest });
    state.gate = wanted;
    state.gateSet = wanted.value !== 'pending';
  } catch (err) {
    state.writeBackErrors.push(failureText(err));
    return;
  }
  if (wanted.value === 'verified') {
    try {
      await tickets.postWorkNote({ ticket: ref, marker: `gate:${state.version}`, text: 'Identity cleanup verified: closure allowed.' });
    } catch (err) {
      // A failed write-back blocks closure (closureVerdict), so the gate just opened closes again.
      state.writeBackErrors.push(failureText(err));
      await writeClosureGate(ref, state, { value: 'pending', digest: '' });
    }
  }
}

/**
 * One loop turn's write-back (ONE_WRITE_BACK_PER_TURN): the gate when it differs from what the ticket is known to
 * carry, and the notes left since the last turn, each marker once, in one activity. Before the gateway's first gate
 * write, and while no write-back has failed, a `pending` the newest delivery showed counts as known: nothing but the
 * ticket's own rule (which only ever sets `pending`) moves the gate in between.
 */
async function writeBackTurn(
  ref: TicketRef,
  state: ChangeState,
  wanted: ClosureGate | undefined,
  queued: NoteWrite[],
  shown: ClosureGate | undefined,
  publish: { ticketKey: string; version: number; view: ClosureView },
): Promise<boolean> {
  const written = (state.notesWritten ??= []);
  const known = state.gate ?? (state.writeBackErrors.length === 0 ? shown : undefined);
  const shows = (g: ClosureGate | undefined) => g !== undefined && wanted !== undefined && g.value === wanted.value && g.digest === wanted.digest;
  const gate = wanted && !shows(known) ? wanted : undefined;
  // The ticket already carries the wanted `pending` (as delivered): known from now on, as if written.
  if (wanted && !state.gate && shows(known)) {
    state.gate = wanted;
    state.gateSet = false;
  }
  const batch = queued.splice(0).filter((n, i, all) => !written.includes(n.marker) && all.findIndex((m) => m.marker === n.marker) === i);
  if (gate?.value === 'verified' && !written.includes(`gate:${state.version}`)) batch.push({ marker: `gate:${state.version}`, text: GATE_VERIFIED_NOTE });
  if (!gate && batch.length === 0) return false;
  let published: boolean;
  try {
    ({ published } = await tickets.writeBack({ ticket: ref, ...(gate ? { gate } : {}), notes: batch, publish }));
  } catch (err) {
    // Closure is blocked by this failure from now on; a gate that may have opened (or be open) is closed again.
    state.writeBackErrors.push(failureText(err));
    if ((gate ?? known)?.value === 'pending') return false;
    try {
      await tickets.writeBack({ ticket: ref, gate: PENDING, notes: [] });
      state.gate = PENDING;
    } catch (again) {
      state.writeBackErrors.push(failureText(again));
      // What the ticket shows is unknown now: the next turn writes `pending` again.
      state.gate = undefined;
    }
    state.gateSet = false;
    return false;
  }
  if (gate) {
    state.gate = gate;
    state.gateSet = gate.value !== 'pending';
  }
  written.push(...batch.map((n) => n.marker));
  return published;
}

/**
 * Records a loop turn's updates in the outbox (TICKET_OUTBOX): the gate when it differs from the one the ticket will
 * carry once everything recorded has landed, and the notes not yet written or recorded, each marker once. Updates
 * join the newest batch while it has not been sent, so an outage leaves at most two batches: the one being retried
 * and everything since. A batch being retried is never changed, so its retry's marker lookup means what it says.
 */
function record(
  state: ChangeState,
  box: TicketOutbox,
  wanted: ClosureGate | undefined,
  queued: NoteWrite[],
  queuedUpdates: TicketUpdate[],
  shown: ClosureGate | undefined,
): void {
  const written = (state.notesWritten ??= []);
  const same = (a: ClosureGate | undefined, b: ClosureGate | undefined) => a !== undefined && b !== undefined && a.value === b.value && a.digest === b.digest;
  const known = state.gate ?? (state.writeBackErrors.length === 0 ? shown : undefined);
  // The ticket already carries the wanted `pending` (as delivered): known from now on, as if written.
  if (wanted && !state.gate && box.pending.length === 0 && same(known, wanted)) {
    state.gate = wanted;
    state.gateSet = false;
  }
  const expected = [...box.pending].reverse().find((b) => b.gate)?.gate ?? known;
  let gate = wanted && !same(expected, wanted) ? wanted : undefined;
  // A gate the source refused is asked for again only once the ticket has changed (a person may have fixed the cause).
  if (gate && box.refused && box.refused.version === state.version && same(box.refused.gate, gate)) gate = undefined;
  const recorded = new Set(box.pending.flatMap((b) => [...b.notes, ...(b.updates ?? [])].map((n) => n.marker)));
  const unseen = <T extends { marker: string }>(n: T, i: number, all: T[]) => !written.includes(n.marker) && !recorded.has(n.marker) && all.findIndex((m) => m.marker === n.marker) === i;
  const fresh = queued.splice(0).filter(unseen);
  const others = queuedUpdates.splice(0).filter(unseen);
  const gateNote = gate?.value === 'verified' ? `gate:${state.version}` : undefined;
  if (gateNote && !written.includes(gateNote) && !recorded.has(gateNote)) fresh.push({ marker: gateNote, text: GATE_VERIFIED_NOTE });
  if (!gate && fresh.length === 0 && others.length === 0) return;
  const last = box.pending.at(-1);
  if (last && last.attempts === 0) {
    if (others.length > 0) last.updates = [...(last.updates ?? []), ...others];
    if (gate) {
      // The gate it carried is superseded before it was sent: so is the note that announced it.
      if (last.gateNote && last.gateNote !== gateNote) last.notes = last.notes.filter((n) => n.marker !== last.gateNote);
      last.gate = gate;
      last.gateNote = gateNote;
    }
    last.notes.push(...fresh);
    return;
  }
  const batch: OutboxBatch = { notes: fresh, attempts: 0 };
  if (others.length > 0) batch.updates = others;
  if (gate) batch.gate = gate;
  if (gateNote) batch.gateNote = gateNote;
  box.pending.push(batch);
}

/**
 * A batch the source refused (a person has to act: rights, a missing record): its reason blocks closure, and the
 * batch is held until the ticket's next delivery (see release). The ticket may show an open gate that no longer holds
 * (the refused notes belong with it), so the gate is unknown now and the next turn records `pending`.
 */
function refused(state: ChangeState, box: TicketOutbox, batch: OutboxBatch, reason: string): void {
  state.writeBackErrors.push(reason);
  // Its gate (and the note announcing it) is the loop's to decide again; the rest keeps its attempts, so that the next
  // send looks for what may have landed before the refusal.
  const kept: OutboxBatch = { notes: batch.notes.filter((n) => n.marker !== batch.gateNote), attempts: batch.attempts };
  if (batch.updates?.length) kept.updates = batch.updates;
  (box.held ??= []).push({ batch: kept, reason, version: state.version });
  if (batch.gate) box.refused = { gate: batch.gate, version: state.version };
  if ((batch.gate && batch.gate.value !== 'pending') || (state.gate && state.gate.value !== 'pending')) {
    state.gate = undefined;
    state.gateSet = false;
  }
}

/**
 * After a delivery newer than a refusal (the ticket changed: a person may have fixed the rights, the record, the data
 * policy), the refused batches are sent once more and their reasons withdrawn; a second refusal holds them again.
 */
function release(state: ChangeState, box: TicketOutbox): void {
  const due = (box.held ?? []).filter((h) => h.version < state.version);
  if (due.length === 0) return;
  box.held = (box.held ?? []).filter((h) => h.version >= state.version);
  for (const { batch, reason } of due) {
    const at = state.writeBackErrors.indexOf(reason);
    if (at >= 0) state.writeBackErrors.splice(at, 1);
    if (batch.notes.length > 0 || (batch.updates?.length ?? 0) > 0) box.pending.push(batch);
  }
}

/**
 * `pending` as a delivery showed it (the ticket's own rule sets it, with the digest cleared, on every edit of the
 * actions). Only that: a gate that lets the ticket close is written by the gateway, with its note, never assumed.
 */
function shownAsGate(shown: TicketSnapshot['gateShown']): ClosureGate | undefined {
  return shown?.value === PENDING.value && shown.digest === PENDING.digest ? PENDING : undefined;
}

/** Runs `over` once FIRST_VIEW_GRACE has passed, unless the returned scope is cancelled first. */
function startGrace(over: () => void): CancellationScope {
  const scope = new CancellationScope();
  scope.run(() => sleep(FIRST_VIEW_GRACE)).then(over, (err: unknown) => {
    if (!isCancellation(err)) throw err;
  });
  return scope;
}

function allTerminal(state: ChangeState): boolean {
  return state.steps.every((s) => {
    if (s.status === 'pending' || s.status === 'running' || s.status === 'waiting-authorization') return false;
    const expiry = s.expiry?.status;
    return expiry !== 'scheduled' && expiry !== 'running';
  });
}

/**
 * An emergency action the policy lets run before authorization starts at once whatever its kind. A grant (which
 * opens an exception) does so only while the change is on its way to authorization: never on a change that is
 * cancelled, rejected, in Review, closed or in a state no configuration maps.
 */
function startsEarly(action: TicketSnapshot['actions'][number], phase: ChangeState['phase']): boolean {
  if (action.startsAtOnce !== true) return false;
  return action.exception === undefined || phase === 'draft' || phase === 'authorization';
}

/**
 * New actions join the plan; actions that vanished from the ticket before they started are withdrawn, and so are the
 * steps a vanished selecting action planned (a decommission's, a leaver by owner's) that have not started.
 */
function mergeActions(state: ChangeState, snap: TicketSnapshot): void {
  const wanted = new Set(snap.actions.map((a) => a.actionId));
  const byStepId = new Map(state.steps.map((s) => [s.stepId, s]));
  const carried = (step: StepState): boolean => {
    const via = step.action.via;
    if (typeof via !== 'string') return wanted.has(step.action.actionId);
    const parent = byStepId.get(via);
    return parent !== undefined && wanted.has(parent.action.actionId);
  };
  for (const step of state.steps) {
    if (carried(step)) continue;
    if (step.status === 'pending' || step.status === 'waiting-authorization' || step.status === 'waiting-approval' || step.status === 'blocked') {
      step.status = 'withdrawn';
    } else if (step.plan) {
      step.dropped = true;
    }
  }
  for (const action of snap.actions) {
    if (state.steps.some((s) => s.action.actionId === action.actionId)) continue;
    state.steps.push({
      stepId: `${action.kind}:${action.actionId}`,
      action,
      // Each kind says when it may start (revoke early, grant late); an unknown kind fails in the loop.
      status: workflowKind(action.kind)?.starts === 'when-authorized' && !startsEarly(action, state.phase) ? 'waiting-authorization' : 'pending',
      eventReceivedAt: snap.receivedAt,
    });
  }
}
