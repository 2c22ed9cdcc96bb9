import { ActivityFailure, ApplicationFailure, condition, defineUpdate, patched, proxyActivities, setHandler } from '@temporalio/workflow';
import { REACH_ONCE_RETRY } from '../activity-proxies';
import type { DeployActivities } from '../../activities/deploy-activities';
import { type DeployRunRecord, type StepState, isAuthorized, isFinal } from '../../src/change';
import type { DeployPlan } from '../../src/kinds/deploy/edge';
import {
  DEPLOY_RUN_UPDATE,
  type DeployCredentialFacts,
  DeployRefusal,
  type DeployRunReply,
  type DeployRunRequest,
  RUN_ID,
  runIdentityName,
  runSecretPath,
} from '../../src/kinds/deploy/run';
import type { KindContext, KindHost, WorkflowKind } from './kind';
import { failureText, finish, label, noteOutcome, recordStepFailure, refusedByEvidence, retryDelayMs, transientFailure } from './step-runner';

/**
 * Minting and revoking a run's credential: each is one activity, idempotent (the run's identity and path derive from
 * the run), so a transient fault retries the whole of it; a refusal ends it at once.
 */
const deployTargets = proxyActivities<DeployActivities>({
  startToCloseTimeout: '2 minutes',
  // The activities heartbeat while they run (activities/keep-alive.ts): a worker lost mid-mint is noticed in seconds.
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 8 },
});

/**
 * A failed revocation tried again (on its timer, or at the run's 'finished'): a target still unreachable gives up
 * after a few seconds instead of a minute, and the run waits for its next attempt, as a selected identity's does.
 */
const deployTargetsAgain = proxyActivities<DeployActivities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '15 seconds',
  retry: REACH_ONCE_RETRY,
});

/**
 * A run's work notes go through the ticket's note queue (ctx.note): the loop writes them with the gate, in one
 * write-back, and does not end while one is unwritten. Before this patch each note was an activity of its own,
 * fired beside the loop, so the gate could show the ticket closable while a run's note was still failing.
 */
const DEPLOY_NOTES_WITH_THE_LOOP = 'deploy-notes-with-the-loop';

/**
 * A revocation that fails past its activity's retries is recorded as a failure row (verified: false, the error, the
 * credential wanted gone), as every other step's failure is. Before this patch it left no row: the chain had nothing
 * saying the revocation was attempted. Asked only on that failure, so histories without one replay unchanged.
 */
const DEPLOY_REVOKE_FAILURE_EVIDENCE = 'deploy-revoke-failure-evidence';

/**
 * A revocation that failed on a fault that may pass (the target unreachable) is tried again on a durable timer (10 s,
 * doubling up to 15 minutes) for as long as the ticket's workflow runs, and at once when the run's 'finished' comes.
 * Before this patch nothing tried it again: the credential stayed on the target and closure stayed blocked for good.
 * Asked only when a revocation fails on such a fault, or a 'finished' finds a failed one.
 */
const DEPLOY_REVOKE_RETRIED = 'deploy-revoke-retried';

export const deployRunUpdate = defineUpdate<DeployRunReply, [DeployRunRequest]>(DEPLOY_RUN_UPDATE);

const LIVE: ReadonlyArray<DeployRunRecord['status']> = ['minting', 'live', 'revoking'];

/**
 * A deploy action: once the change is authorized its step checks the delivery destination and is ready; then each
 * pipeline run (`POST /webhooks/deploy`, a workflow update) gets its own credential, minted, delivered and verified,
 * and taken back when the run finishes or its ttl ends, whichever comes first. Closure waits while any run's
 * credential is live; a deploy with no live credential (no run yet, or every run's credential revoked) does not block.
 */
export const deployKind: WorkflowKind = {
  kind: 'deploy',
  starts: 'when-authorized',
  async run(ctx) {
    const { key, step } = ctx;
    const a = step.action as DeployPlan;
    step.deploy ??= { runs: [] };
    try {
      const out = await deployTargets.checkDeployDestination({
        ticketKey: key, stepId: step.stepId, system: a.system, identity: a.identity, deliverTo: a.deliverTo, eventReceivedAt: step.eventReceivedAt,
      });
      finish(step, { ok: true, verifiedAt: out.verifiedAt, detail: out.detail });
    } catch (err) {
      finish(step, { ok: false, detail: await recordStepFailure(ctx, { stepId: step.stepId, desired: { exists: true }, error: failureText(err), startedAt: '' }) });
    }
    ctx.touch();
    await noteOutcome(ctx, step.status === 'verified' ? { ok: true, verifiedAt: step.verifiedAt ?? '', detail: step.detail ?? '' } : { ok: false, detail: step.detail ?? '' });
  },
  install: installDeployRuns,
  blocksClosure(step, what) {
    const runs = step.deploy?.runs ?? [];
    const live = runs.filter((r) => LIVE.includes(r.status)).map((r) => r.runId);
    const failed = runs.filter((r) => r.status === 'failed');
    return [
      ...(live.length > 0 ? [`${what}: the credential of pipeline run(s) ${live.join(', ')} is still live (revoked on 'finished' or at the ttl's end)`] : []),
      ...failed.map((r) =>
        `${what}: revoking the credential of pipeline run ${r.runId} failed: ${r.detail ?? 'no detail'}${r.retrying ? `; retrying (attempt ${r.retrying.attempts} failed; next at ${r.retrying.nextAttemptAt})` : ''}`),
    ];
  },
  cleanup: (step) => step.expiry ?? { status: 'none' },
  undo: {
    pending: (step) => (step.deploy?.runs ?? []).some((r) => r.status === 'live'),
    begin(step) {
      for (const r of step.deploy?.runs ?? []) if (r.status === 'live') r.status = 'revoking';
    },
    async run(ctx) {
      const pending = (ctx.step.deploy?.runs ?? []).filter((r) => r.status === 'revoking');
      for (const run of pending) await revokeRun(ctx, run, 'cancelled');
    },
  },
};

function refuse(type: string, message: string): never {
  throw ApplicationFailure.create({ type, message, nonRetryable: true });
}

function facts(step: StepState, run: DeployRunRecord): DeployCredentialFacts {
  const a = step.action as DeployPlan;
  return {
    actionId: a.actionId, system: a.system, identity: run.identity, deliveredTo: { system: a.deliverTo.system, path: run.path },
    fingerprint: run.fingerprint, version: run.version, expiresAt: run.expiresAt, status: run.status, detail: run.detail,
  };
}

/** The step's cleanup and detail, from its runs: closure-check shows them, and the loop does not end while one is live. */
function summarise(step: StepState): void {
  const runs = step.deploy?.runs ?? [];
  if (runs.length === 0) return;
  const live = runs.filter((r) => r.status === 'minting' || r.status === 'live');
  const revoking = runs.some((r) => r.status === 'revoking');
  const retrying = runs.filter((r) => r.status === 'failed' && r.retrying);
  const failed = runs.find((r) => r.status === 'failed' && !r.retrying);
  const earliest = [...live.map((r) => r.expiresAt ?? ''), ...retrying.map((r) => r.retrying?.nextAttemptAt ?? '')].filter(Boolean).sort()[0];
  const lastRevoked = runs.map((r) => r.revokedAt ?? '').sort().at(-1);
  const again = retrying.map((r) => `run ${r.runId} tried again at ${r.retrying?.nextAttemptAt ?? ''}`).join(', ');
  // A revocation to try again keeps the take-back scheduled, so the workflow runs on (even past the ticket's end) until it is done.
  if (failed && retrying.length === 0) step.expiry = { status: 'failed', detail: `run ${failed.runId}: ${failed.detail ?? ''}` };
  else if (revoking) step.expiry = { status: 'running' };
  else if (live.length > 0 || retrying.length > 0) {
    step.expiry = {
      status: 'scheduled', ...(earliest ? { expiresAt: earliest } : {}),
      ...(retrying.length > 0 ? { detail: `revocation failed, ${again}${failed ? `; run ${failed.runId}: ${failed.detail ?? ''}` : ''}` } : {}),
    };
  } else step.expiry = { status: 'verified', ...(lastRevoked ? { verifiedAt: lastRevoked } : {}) };
  const count = (s: DeployRunRecord['status']) => runs.filter((r) => r.status === s).length;
  step.detail = `${runs.length} pipeline run(s): ${count('live') + count('minting')} live, ${count('revoked')} revoked${count('failed') ? `, ${count('failed')} failed` : ''}${again ? ` (${again})` : ''}`;
}

function deploySteps(host: KindHost): StepState[] {
  return host.state.steps.filter((s) => s.action.kind === 'deploy' && s.status !== 'withdrawn' && s.status !== 'cancelled');
}

function runsOf(steps: StepState[], runId: string): Array<{ step: StepState; run: DeployRunRecord }> {
  return steps.flatMap((step) => (step.deploy?.runs ?? []).filter((r) => r.runId === runId).map((run) => ({ step, run })));
}

/**
 * Takes back one run's credential (the identity and the delivered secret), verified and evidenced. Never rejects.
 * `again`: a revocation that failed before, tried again (its attempts give up sooner).
 */
async function revokeRun(ctx: KindContext, run: DeployRunRecord, endedBy: string, again = false): Promise<void> {
  const { step } = ctx;
  const a = step.action as DeployPlan;
  run.status = 'revoking';
  run.endedBy ??= endedBy;
  summarise(step);
  ctx.touch();
  // Its own step id: a revocation that fails after a failed mint is a second failure, not the mint's row again.
  const stepId = `${step.stepId}:run:${run.runId}:revoke`;
  const identity = { ...a.identity, name: run.identity };
  let transient = false;
  try {
    const out = await (again ? deployTargetsAgain : deployTargets).revokeDeployCredential({
      ticketKey: ctx.key, stepId, runId: run.runId, system: a.system, identity,
      grants: a.grants, deliverTo: { system: a.deliverTo.system, path: run.path }, eventReceivedAt: run.startedAt, reason: run.endedBy,
    });
    run.status = out.verified ? 'revoked' : 'failed';
    run.detail = out.detail;
    if (out.verifiedAt) run.revokedAt = out.verifiedAt;
  } catch (err) {
    // Failed past its retries (the target unreachable or refusing): the credential may still be live, and the evidence
    // says the revocation was attempted and failed, as any step's failure does. Still 'revoking' while that is
    // recorded, so the run counts as failed only once its row is written (or the detail says why it could not be).
    const error = failureText(err);
    run.detail = !refusedByEvidence(err) && patched(DEPLOY_REVOKE_FAILURE_EVIDENCE)
      ? await recordStepFailure(ctx, { stepId, desired: { exists: false }, error, startedAt: '', identity, eventReceivedAt: run.startedAt })
      : error;
    run.status = 'failed';
    transient = transientFailure(err);
  }
  const failedBefore = run.retrying?.attempts ?? 0;
  if (run.status === 'failed' && transient && patched(DEPLOY_REVOKE_RETRIED)) {
    const attempts = failedBefore + 1;
    run.retrying = { reason: run.detail ?? 'no detail', attempts, nextAttemptAt: new Date(Date.now() + retryDelayMs(attempts)).toISOString() };
    retryLater(ctx, run);
  } else delete run.retrying;
  summarise(step);
  ctx.touch();
  const retried = failedBefore > 0 ? ` It had failed ${failedBefore} time(s) before and was tried again.` : '';
  note(ctx, `${step.stepId}:run:${run.runId}:${run.status}`,
    run.status === 'revoked'
      ? `Verified revocation (${run.endedBy}): ${label(a)}, pipeline run ${run.runId} — ${run.detail}.${retried} Nothing of the run's credential is left.`
      : run.retrying
        ? `FAILED revocation (${run.endedBy}): ${label(a)}, pipeline run ${run.runId} — ${run.detail}. The credential may still be live: it is tried again (next at ${run.retrying.nextAttemptAt}, then less and less often, at most every 15 minutes) until it is revoked. Closure stays blocked until then.`
        : `FAILED revocation (${run.endedBy}): ${label(a)}, pipeline run ${run.runId} — ${run.detail}. Closure stays blocked.`);
}

/** Runs whose revocation is waiting to be tried again in this run of the workflow: one timer per run. */
const retryTimers = new WeakSet<DeployRunRecord>();

/**
 * A revocation that failed on a fault that may pass is tried again when its `nextAttemptAt` comes, on a durable timer,
 * until it is revoked or refused. A 'finished' that tries it meanwhile is awaited, and its outcome decides what follows.
 */
function retryLater(ctx: KindContext, run: DeployRunRecord): void {
  if (retryTimers.has(run)) return;
  retryTimers.add(run);
  void (async () => {
    for (let due = run.retrying; run.status === 'failed' && due; due = run.retrying) {
      const overtaken = await condition(() => run.status !== 'failed' || run.retrying !== due, Math.max(1, Date.parse(due.nextAttemptAt) - Date.now()));
      if (overtaken) await condition(() => run.status !== 'revoking');
      else await revokeRun(ctx, run, run.endedBy ?? 'retry', true);
    }
    retryTimers.delete(run);
  })();
}

/** Work notes about runs go out beside the reply, not before it; a note that fails for good blocks closure. */
function note(ctx: KindContext, marker: string, text: string): void {
  const fail = (err: unknown) => {
    ctx.state.writeBackErrors.push(failureText(err));
    ctx.touch();
  };
  // Queued for the loop's write-back on a current run; a run from before one write-back per turn posts it at once,
  // which is what rejects here.
  if (patched(DEPLOY_NOTES_WITH_THE_LOOP)) void ctx.note(marker, text).catch(fail);
  else void ctx.tickets.postWorkNote({ ticket: ctx.ref, marker, text }).catch(fail);
}

/** The ttl's durable timer: the credential goes at its end unless something else ended it first. */
function armExpiry(ctx: KindContext, run: DeployRunRecord): void {
  const remaining = Math.max(1, Date.parse(run.expiresAt ?? '') - Date.now());
  void (async () => {
    const ended = await condition(() => run.status !== 'live', Number.isFinite(remaining) ? remaining : 1);
    if (!ended) await revokeRun(ctx, run, 'ttl');
  })();
}

function installDeployRuns(host: KindHost): void {
  // A run carried over by continue-as-new keeps its clock; one caught mid-revocation is revoked again (idempotent).
  for (const step of deploySteps(host)) {
    for (const run of step.deploy?.runs ?? []) {
      if (run.status === 'live') armExpiry(host.contextFor(step), run);
      else if (run.status === 'revoking' || run.status === 'minting') void revokeRun(host.contextFor(step), run, run.endedBy ?? 'interrupted');
      else if (run.status === 'failed' && run.retrying) retryLater(host.contextFor(step), run);
    }
  }

  setHandler(
    deployRunUpdate,
    async (req) => (req.event === 'started' ? start(host, req) : finishRun(host, req)),
    {
      // The decision is the workflow's, made before anything reaches history: each refusal has its own type.
      validator(req) {
        const steps = deploySteps(host);
        if (steps.length === 0) refuse(DeployRefusal.NoDeployAction, `${host.state.key} has no deploy action`);
        const known = runsOf(steps, req.runId);
        if (req.event === 'finished') {
          if (known.length === 0) refuse(DeployRefusal.UnknownRun, `no pipeline run '${req.runId}' was started on ${host.state.key}`);
          return;
        }
        if (!RUN_ID.test(req.runId)) refuse(DeployRefusal.UnknownRun, 'runId must be 1-64 characters of letters, digits, dot, underscore or hyphen');
        if (known.length > 0) {
          if (known.every(({ run }) => run.status === 'minting' || run.status === 'live')) return;
          refuse(DeployRefusal.RunEnded, `pipeline run '${req.runId}' has already ended on ${host.state.key}: every run needs its own run id`);
        }
        if (!isAuthorized(host.state)) {
          refuse(DeployRefusal.NotAuthorized, `${host.state.key} is not authorized (${host.state.sourceState || 'no state yet'}): a deploy credential is minted only while the change is approved and in Implement`);
        }
        // Ready, or about to be (the loop starts a step the moment the change is authorized): anything else refuses.
        const notReady = steps.find((s) => s.status !== 'verified' && s.status !== 'running' && s.status !== 'waiting-authorization');
        if (notReady) {
          const why = notReady.status === 'waiting-approval' ? "it waits for a change manager's approval of its privileged grants" : `${notReady.status}: ${notReady.detail ?? 'no detail'}`;
          refuse(DeployRefusal.NotAuthorized, `${label(notReady.action)} is not ready: ${why}`);
        }
        for (const step of steps) {
          const name = runIdentityName(step.action.identity.name, `${host.state.source}:${host.state.key}`, step.action.actionId, req.runId);
          const clash = (step.deploy?.runs ?? []).find((r) => r.identity === name);
          if (clash) refuse(DeployRefusal.RunEnded, `run id '${req.runId}' would reuse the identity of run '${clash.runId}'; use another run id`);
        }
      },
    },
  );
}

async function start(host: KindHost, req: DeployRunRequest): Promise<DeployRunReply> {
  const steps = deploySteps(host);
  const known = runsOf(steps, req.runId);
  if (known.length > 0) {
    // A repeated `started` of a live run (a new event id) mints nothing; it waits for the first to finish minting.
    await condition(() => known.every(({ run }) => run.status !== 'minting'));
    return { runId: req.runId, event: 'started', result: 'existing', credentials: known.map(({ step, run }) => facts(step, run)) };
  }
  // Recorded before anything awaits, so a concurrent `started` of the same run finds it.
  const mine = steps.map((step) => {
    const a = step.action as DeployPlan;
    step.deploy ??= { runs: [] };
    const run: DeployRunRecord = {
      runId: req.runId, identity: runIdentityName(a.identity.name, `${host.state.source}:${host.state.key}`, a.actionId, req.runId),
      path: runSecretPath(a.deliverTo.path, req.runId), status: 'minting', startedEventId: req.eventId, startedAt: req.receivedAt,
    };
    step.deploy.runs.push(run);
    summarise(step);
    return { step, run };
  });
  host.touch();
  // The step checks the destination when the change is authorized; a run that arrives first waits for it.
  await condition(() => steps.every((s) => s.status !== 'running' && s.status !== 'waiting-authorization') || isFinal(host.state.phase));
  const problems: string[] = [];
  for (const { step, run } of mine) {
    const a = step.action as DeployPlan;
    if (step.status !== 'verified') {
      problems.push(`${label(a)} is not ready: ${step.detail ?? step.status}`);
      // Never minted: nothing of this run exists, and an account bearing its name is not ours to remove.
      run.status = 'revoked';
      run.endedBy = 'not-minted';
      summarise(step);
      continue;
    }
    try {
      const out = await deployTargets.mintDeployCredential({
        ticketKey: host.key, stepId: `${step.stepId}:run:${run.runId}`, runId: run.runId, system: a.system, identity: { ...a.identity, name: run.identity },
        grants: a.grants, deliverTo: { system: a.deliverTo.system, path: run.path }, eventReceivedAt: req.receivedAt,
      });
      run.fingerprint = out.fingerprint;
      run.version = out.version;
      run.detail = out.detail;
      if (!out.verified) problems.push(`${label(a)}: not verified: ${out.detail}`);
    } catch (err) {
      problems.push(`${label(a)}: ${failureText(err)}`);
      run.detail = failureText(err);
      if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === DeployRefusal.IdentityTaken) {
        // Not ours: nothing to take back, and the account must stay as its owner left it.
        run.status = 'revoked';
        run.endedBy = 'identity-taken';
        summarise(step);
      }
    }
  }
  // Minted while the change left Implement (cancelled, sent back): nothing may stay live.
  if (problems.length === 0 && !isAuthorized(host.state)) problems.push(`${host.state.key} left Implement while the credential was minted`);
  if (problems.length > 0) {
    for (const { step, run } of mine) if (run.status !== 'revoked') await revokeRun(host.contextFor(step), run, 'mint-failed');
    const type = mine.some(({ run }) => run.endedBy === 'identity-taken')
      ? DeployRefusal.IdentityTaken
      : problems.some((p) => /left Implement|not ready/.test(p)) ? DeployRefusal.NotAuthorized : DeployRefusal.MintFailed;
    host.touch();
    refuse(type, `pipeline run '${req.runId}' got no credential: ${problems.join('; ')}`);
  }
  for (const { step, run } of mine) {
    const a = step.action as DeployPlan;
    run.status = 'live';
    run.expiresAt = new Date(Date.now() + a.ttlMs).toISOString();
    summarise(step);
    const ctx = host.contextFor(step);
    armExpiry(ctx, run);
    note(ctx, `${step.stepId}:run:${run.runId}:live`,
      `Verified: pipeline run ${run.runId} got its own credential ${run.identity} on ${a.system} (${a.grants.join(', ')}), delivered to ${a.deliverTo.system}:${run.path} v${run.version} (${run.fingerprint}). Revoked when the run finishes, at the latest ${run.expiresAt} (ttl ${a.ttl}).`);
  }
  host.touch();
  return { runId: req.runId, event: 'started', result: 'started', credentials: mine.map(({ step, run }) => facts(step, run)) };
}

async function finishRun(host: KindHost, req: DeployRunRequest): Promise<DeployRunReply> {
  const known = runsOf(deploySteps(host), req.runId);
  // A run still minting is finished once its mint is over (or has failed and been cleaned up).
  await condition(() => known.every(({ run }) => run.status !== 'minting'));
  const toRevoke = known.filter(({ run }) => run.status === 'live');
  // A revocation that failed (the ttl's, a cancellation's, an earlier 'finished''s) is tried again now, whatever it
  // failed on: the pipeline saying it is done is as good a moment as the timer's, and a refusal may have been mended.
  const again = known.some(({ run }) => run.status === 'failed') && patched(DEPLOY_REVOKE_RETRIED) ? known.filter(({ run }) => run.status === 'failed') : [];
  for (const { run } of toRevoke) run.endedBy = `finished:${req.outcome ?? 'unknown'}`;
  // Marked before awaiting, so the ttl (or retry) timer stands down and a concurrent `finished` does not revoke twice.
  for (const { run } of [...toRevoke, ...again]) run.status = 'revoking';
  await Promise.all([
    ...toRevoke.map(({ step, run }) => revokeRun(host.contextFor(step), run, run.endedBy ?? 'finished')),
    ...again.map(({ step, run }) => revokeRun(host.contextFor(step), run, run.endedBy ?? 'finished', true)),
  ]);
  // Another `finished` (or the ttl) may be revoking it right now: answer once that is done.
  await condition(() => known.every(({ run }) => run.status !== 'revoking'));
  if (known.some(({ run }) => run.status === 'failed')) {
    const why = known.filter(({ run }) => run.status === 'failed').map(({ run }) => `${run.detail ?? 'no detail'}${run.retrying ? ` (attempt ${run.retrying.attempts} failed; tried again at ${run.retrying.nextAttemptAt})` : ''}`);
    refuse(DeployRefusal.MintFailed, `revoking the credential of pipeline run '${req.runId}' failed: ${why.join('; ')}`);
  }
  const result = toRevoke.length > 0 || again.length > 0 ? 'revoked' : 'already-revoked';
  return { runId: req.runId, event: 'finished', result, credentials: known.map(({ step, run }) => facts(step, run)) };
}

