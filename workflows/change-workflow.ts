import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ClosureActivities, ConnectorActivities, TicketActivities } from '../activities';
import type { DesiredAccount } from '../src/connectors/connector';
import {
  type ChangeState,
  type ClosureGate,
  type PlannedAction,
  type StepState,
  type TicketRef,
  type TicketSnapshot,
  closureGate,
  closureVerdict,
  closureView,
  isFinal,
  ticketKey,
} from '../src/change';
import type { AnySnapshot, ChangeWorkflowInput, LegacyChangeWorkflowInput } from './change-types';
import { normaliseInput, normaliseSnapshot } from './legacy-ticket';
import { SEARCH_ATTRIBUTES } from './search-attributes';

export const ticketUpdatedSignal = defineSignal<[AnySnapshot]>('ticketUpdated');
export const statusQuery = defineQuery<ChangeState>('status');

/** Target-system steps: transient faults retry with back-off; a refusal (non-retryable type) fails at once. */
const targets = proxyActivities<ConnectorActivities>({
  // Room for a leaver that ends sessions and reassigns objects, or a rotation that waits for IAM to catch up.
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 12 },
});

/** Ticket write-backs: ITSM systems throttle (ServiceNow per hour), so allow a long tail; 429s set their own delay. */
const tickets = proxyActivities<TicketActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 50 },
});

/**
 * closure-check's projection: one DB insert in the worker, so a local activity (no task-queue round trip). Retried
 * until it lands; a verdict that cannot be published leaves the previous one, which closure-check still refuses to
 * trust past a newer delivery.
 */
const closureViews = proxyLocalActivities<ClosureActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 milliseconds', backoffCoefficient: 2, maximumInterval: '10 seconds' },
});

/** Verification attempts before a step counts as failed: a target may apply a change a moment after acknowledging it. */
const VERIFY_ATTEMPTS = 3;

/**
 * The gate names the identity-actions text it was written for, and a change without identity actions gets one too
 * (`not_applicable`). Before this patch the gate was a bare `verified` / '' written only for changes with steps.
 */
const GATE_BOUND_TO_ACTIONS = 'closure-gate-bound-to-actions';

/** The workflow publishes its closure view for closure-check (closure_verdicts); before this patch it only answered queries. */
const CLOSURE_VIEW_PUBLISHED = 'closure-view-published';

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
  const inFlight = new Set<Promise<void>>();
  const touch = () => {
    dirty = true;
  };

  setHandler(ticketUpdatedSignal, (delivered) => {
    const snap = normaliseSnapshot(delivered, ref);
    state.deliveries++;
    if (snap.version <= state.version) {
      state.ignoredStale++;
      return;
    }
    state.version = snap.version;
    state.phase = snap.phase;
    state.emergency = snap.emergency;
    state.sourceState = snap.sourceState;
    if (snap.requester !== undefined) state.requester = snap.requester;
    state.actionsDigest = snap.actionsDigest;
    mergeActions(state, snap);
    touch();
  });
  setHandler(statusQuery, () => state);

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

  // The first delivery comes with signal-with-start; wait for it in case of a bare start.
  await condition(() => state.version >= 0);

  for (;;) {
    await condition(() => dirty);
    dirty = false;

    for (const step of state.steps) {
      if (step.status === 'pending' && step.action.kind === 'leaver') {
        step.status = 'running';
        track(runLeaver(key, ref, step));
      } else if (step.status === 'waiting-authorization') {
        if (isFinal(state.phase)) step.status = 'cancelled';
        else if (isAuthorized(state)) {
          step.status = 'running';
          track(step.action.kind === 'rotate' ? runRotate(key, ref, step) : runJoiner(key, ref, step, touch));
        }
      } else if (step.status === 'verified' && step.expiry?.status === 'scheduled' && state.phase === 'cancelled') {
        // A cancelled change loses what it granted now, not at the end of the TTL.
        step.expiry.status = 'running';
        track(runExpiry(key, ref, step));
      }
    }

    const verdict = closureVerdict(state);
    if (patched(GATE_BOUND_TO_ACTIONS)) {
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
    if (patched(CLOSURE_VIEW_PUBLISHED)) {
      const view = closureView(state);
      const published = JSON.stringify(view);
      if (published !== lastPublished || state.version !== lastPublishedVersion) {
        await closureViews.publishClosureView({ ticketKey: key, version: state.version, view });
        lastPublished = published;
        lastPublishedVersion = state.version;
      }
    }
    const gate = verdict.allowed ? 'allowed' : 'blocked';
    if (gate !== gateAttribute) {
      gateAttribute = gate;
      upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.gate, value: gate }]);
    }

    if (isFinal(state.phase) && inFlight.size === 0 && allTerminal(state)) break;
    if (workflowInfo().continueAsNewSuggested && inFlight.size === 0) {
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

/** Grant late: only once the change is authorized and in its window (a standard change is pre-approved). */
function isAuthorized(state: ChangeState): boolean {
  return state.phase === 'implement';
}

function allTerminal(state: ChangeState): boolean {
  return state.steps.every((s) => {
    if (s.status === 'pending' || s.status === 'running' || s.status === 'waiting-authorization') return false;
    const expiry = s.expiry?.status;
    return expiry !== 'scheduled' && expiry !== 'running';
  });
}

/** New actions join the plan; actions that vanished from the ticket before they started are withdrawn. */
function mergeActions(state: ChangeState, snap: TicketSnapshot): void {
  const wanted = new Set(snap.actions.map((a) => a.actionId));
  for (const step of state.steps) {
    if (!wanted.has(step.action.actionId) && (step.status === 'pending' || step.status === 'waiting-authorization')) {
      step.status = 'withdrawn';
    }
  }
  for (const action of snap.actions) {
    if (state.steps.some((s) => s.action.actionId === action.actionId)) continue;
    state.steps.push({
      stepId: `${action.kind}:${action.actionId}`,
      action,
      // Revoke early: a leaver runs whatever the ticket state. Grant late: a joiner waits.
      // A rotation changes a live credential, so it waits for authorization like a grant.
      status: action.kind === 'leaver' ? 'pending' : 'waiting-authorization',
      eventReceivedAt: snap.receivedAt,
    });
  }
}

function failureText(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause.message;
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : 'unknown failure';
}

function label(action: PlannedAction): string {
  return `${action.kind} ${action.identity.name}@${action.identity.host ?? '%'} on ${action.system}`;
}

async function applyAndVerify(args: {
  key: string;
  step: StepState;
  stepId: string;
  outcome: string;
  desired: DesiredAccount;
  apply: () => Promise<{ detail: string; startedAt: string; expected?: DesiredAccount }>;
}): Promise<{ ok: true; verifiedAt: string; detail: string } | { ok: false; detail: string }> {
  const { key, step, stepId, outcome, apply } = args;
  let desired = args.desired;
  const a = step.action;
  let startedAt = '';
  let detail = '';
  for (let attempt = 1; attempt <= VERIFY_ATTEMPTS; attempt++) {
    try {
      const applied = await apply();
      startedAt ||= applied.startedAt;
      detail = applied.detail;
      // The connector says what its revoke policy leaves behind (deleted, or disabled and stripped).
      if (applied.expected) desired = applied.expected;
    } catch (err) {
      const error = failureText(err);
      return { ok: false, detail: await recordStepFailure({ key, step, stepId, desired, error, startedAt }) };
    }
    let result: { verified: boolean; mismatches: string[]; verifiedAt?: string };
    try {
      result = await targets.verifyAndRecord({
        ticketKey: key, stepId, outcome, actionKind: a.kind, system: a.system, identity: a.identity, desired,
        applied: detail, eventReceivedAt: step.eventReceivedAt, startedAt, recordOnFailure: attempt === VERIFY_ATTEMPTS,
      });
    } catch (err) {
      // The read-back or the evidence write failed past its retries: the step ends failed, never stuck "running".
      return { ok: false, detail: `could not verify and record: ${failureText(err)}` };
    }
    if (result.verified) return { ok: true, verifiedAt: result.verifiedAt ?? new Date().toISOString(), detail };
    if (attempt === VERIFY_ATTEMPTS) return { ok: false, detail: `not verified: ${result.mismatches.join('; ')}` };
  }
  return { ok: false, detail: 'not verified' };
}

/**
 * Records a refused step as evidence. If even that fails past its retries (the evidence database is down), the step
 * still ends failed — closure stays blocked, with both causes in the detail — instead of hanging in "running".
 */
async function recordStepFailure(args: { key: string; step: StepState; stepId: string; desired: DesiredAccount; error: string; startedAt: string }): Promise<string> {
  const a = args.step.action;
  try {
    await targets.recordFailure({
      ticketKey: args.key, stepId: args.stepId, actionKind: a.kind, system: a.system, identity: a.identity, desired: args.desired, error: args.error,
      eventReceivedAt: args.step.eventReceivedAt, startedAt: args.startedAt || new Date().toISOString(),
    });
    return args.error;
  } catch (err) {
    return `${args.error} (and its evidence could not be recorded: ${failureText(err)})`;
  }
}

async function runLeaver(key: string, ref: TicketRef, step: StepState): Promise<void> {
  const a = step.action;
  const result = await applyAndVerify({
    key, step, stepId: step.stepId, outcome: 'revoked', desired: { exists: false },
    apply: () => targets.applyLeaver({ system: a.system, identity: a.identity }),
  });
  finish(step, result);
  await tickets.postWorkNote({
    ticket: ref,
    marker: `${step.stepId}:${step.status}`,
    text: result.ok ? `Verified: ${label(a)} — ${result.detail}.` : `FAILED: ${label(a)} — ${result.detail}. Closure stays blocked.`,
  });
}

async function runJoiner(key: string, ref: TicketRef, step: StepState, touch: () => void): Promise<void> {
  const a = step.action;
  if (a.kind !== 'joiner') return;
  const result = await applyAndVerify({
    key, step, stepId: step.stepId, outcome: 'granted', desired: { exists: true, mustHave: a.grants },
    apply: async () => {
      const out = await targets.applyJoiner({ system: a.system, identity: a.identity, grants: a.grants });
      step.accountCreated = step.accountCreated || out.created;
      return out;
    },
  });
  finish(step, result);
  if (result.ok) {
    step.expiry = a.ttlMs === undefined ? { status: 'none' } : { status: 'scheduled', expiresAt: new Date(Date.now() + a.ttlMs).toISOString() };
  }
  touch();
  const expiryNote = step.expiry?.expiresAt ? ` Expires ${step.expiry.expiresAt} (ttl ${a.ttl}).` : ' No ttl: closure stays blocked until a cleanup path exists.';
  await tickets.postWorkNote({
    ticket: ref,
    marker: `${step.stepId}:${step.status}`,
    text: result.ok ? `Verified: ${label(a)} — ${result.detail}.${expiryNote}` : `FAILED: ${label(a)} — ${result.detail}. Closure stays blocked.`,
  });
  if (result.ok && step.expiry?.status === 'scheduled' && a.ttlMs !== undefined) {
    // The durable timer: survives worker restarts; ends early if the change is cancelled (handled by the main loop).
    const expired = await condition(() => step.expiry?.status !== 'scheduled', a.ttlMs);
    if (!expired) {
      step.expiry.status = 'running';
      await runExpiry(key, ref, step);
    }
  }
}

async function runRotate(key: string, ref: TicketRef, step: StepState): Promise<void> {
  const a = step.action;
  if (a.kind !== 'rotate') return;
  let result: { ok: true; verifiedAt: string; detail: string } | { ok: false; detail: string };
  try {
    const out = await targets.rotateAndDeliver({
      ticketKey: key, stepId: step.stepId, system: a.system, identity: a.identity, deliverTo: a.deliverTo, eventReceivedAt: step.eventReceivedAt,
    });
    if (out.verified) step.rotation = { fingerprint: out.fingerprint, version: out.version, credentialId: out.keyId };
    result = out.verified ? { ok: true, verifiedAt: out.verifiedAt ?? new Date().toISOString(), detail: out.detail } : { ok: false, detail: `not verified: ${out.detail}` };
  } catch (err) {
    const error = failureText(err);
    result = { ok: false, detail: await recordStepFailure({ key, step, stepId: step.stepId, desired: { exists: true }, error, startedAt: '' }) };
  }
  finish(step, result);
  await tickets.postWorkNote({
    ticket: ref,
    marker: `${step.stepId}:${step.status}`,
    text: result.ok ? `Verified: ${label(a)} — ${result.detail}.` : `FAILED: ${label(a)} — ${result.detail}. Closure stays blocked.`,
  });
}

async function runExpiry(key: string, ref: TicketRef, step: StepState): Promise<void> {
  const a = step.action;
  if (a.kind !== 'joiner' || !step.expiry) return;
  const dropAccount = step.accountCreated === true;
  const result = await applyAndVerify({
    key, step, stepId: `expiry:${a.actionId}`, outcome: 'expired',
    desired: dropAccount ? { exists: false } : { exists: true, mustNotHave: a.grants },
    apply: () => targets.applyExpiry({ system: a.system, identity: a.identity, grants: a.grants, dropAccount }),
  });
  step.expiry.status = result.ok ? 'verified' : 'failed';
  step.expiry.detail = result.detail;
  if (result.ok) step.expiry.verifiedAt = result.verifiedAt;
  await tickets.postWorkNote({
    ticket: ref,
    marker: `expiry:${a.actionId}:${step.expiry.status}`,
    text: result.ok ? `Verified expiry: ${label(a)} — ${result.detail}.` : `FAILED expiry: ${label(a)} — ${result.detail}.`,
  });
}

function finish(step: StepState, result: { ok: true; verifiedAt: string; detail: string } | { ok: false; detail: string }): void {
  step.status = result.ok ? 'verified' : 'failed';
  step.detail = result.detail;
  if (result.ok) step.verifiedAt = result.verifiedAt;
}
