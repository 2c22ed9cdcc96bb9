import { readFileSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { DefaultLogger, Runtime, Worker, bundleWorkflowCode, makeTelemetryFilterString } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { historyFromJson } from './histories/history-json';

/**
 * Committed histories of real runs (recorded by test/histories/record-histories.ts) replayed against the current
 * workflow bundle: a change to workflows/ that would break running tickets fails here, before it is deployed.
 */
const HISTORIES = resolve(__dirname, 'histories');
const fixtures = readdirSync(HISTORIES)
  .filter((f) => f.endsWith('.json'))
  .sort();
const load = (fixture: string) => historyFromJson(JSON.parse(readFileSync(resolve(HISTORIES, fixture), 'utf8')));
const workflowIdOf = (fixture: string) => `replay-${fixture.replace(/\.json$/, '')}`;

describe('committed change-workflow histories', () => {
  beforeAll(() => {
    // Each replay starts and stops a worker; its lifecycle logs and core's warning for the expected violation are noise.
    Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } } });
  });

  it('cover the recorded scenarios (those recorded before normalisation in both snapshot shapes), each a whole run of changeWorkflow from start to completion', () => {
    const scenarios = [
      'deploy-revocations-failed-then-retried-then-closed.json',
      'deploy-runs-finished-and-expired-then-closed.json',
      'emergency-joiner-exception-accepted-then-closed.json',
      'emergency-joiner-exception-revoked-by-policy-then-closed.json',
      'joiner-granted-expired-then-closed.json',
      'joiner-granted-then-cancelled.json',
      'joiner-granted-during-rollback-undone-after-then-cancelled.json',
      'joiner-granted-during-rollback-undone-alongside-then-cancelled.json',
      'joiner-failed-closed-without-rule-reopened-then-cancelled.json',
      'joiners-on-two-systems-granted-then-cancelled.json',
      'joiner-until-ticket-closed-granted-then-closed.json',
      'leaver-actions-edited-then-reverified-then-closed.json',
      'leaver-already-absent-then-closed.json',
      'leaver-revoked-evidence-attached-then-closed.json',
      'leaver-delivered-through-outbox-after-outage-then-closed.json',
      'leaver-revoked-in-one-activity-then-closed.json',
      'leaver-revoked-then-closed.json',
      'leaver-revoked-with-one-write-back-then-closed.json',
      'no-identity-actions-then-closed.json',
      'rotation-delivered-then-closed.json',
    ];
    // Each scenario recorded before tickets were normalised twice: as recorded now (normalised ticket) and as recorded
    // with ServiceNow-shaped snapshots. Scenarios added since exist only in the normalised shape.
    const since = [
      'deploy-revocations-failed-then-retried-then-closed.json',
      'deploy-runs-finished-and-expired-then-closed.json',
      'emergency-joiner-exception-accepted-then-closed.json',
      'emergency-joiner-exception-revoked-by-policy-then-closed.json',
      'joiner-failed-closed-without-rule-reopened-then-cancelled.json',
      'joiner-granted-during-rollback-undone-after-then-cancelled.json',
      'joiner-granted-during-rollback-undone-alongside-then-cancelled.json',
      'joiners-on-two-systems-granted-then-cancelled.json',
      'joiner-until-ticket-closed-granted-then-closed.json',
      'leaver-revoked-evidence-attached-then-closed.json',
      'leaver-delivered-through-outbox-after-outage-then-closed.json',
      'leaver-revoked-in-one-activity-then-closed.json',
      'leaver-revoked-with-one-write-back-then-closed.json',
    ];
    expect(fixtures).toEqual([...scenarios, ...scenarios.filter((s) => !since.includes(s)).map((s) => `pre-normalised--${s}`)].sort());
    for (const fixture of fixtures) {
      const events = load(fixture).events ?? [];
      expect(events[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name).toBe('changeWorkflow');
      expect(events.at(-1)?.workflowExecutionCompletedEventAttributes).toBeTruthy();
    }
  });

  it.each(fixtures)('%s carries the snapshot shape its name says: ServiceNow-shaped (modCount, state) or normalised (version, phase)', (fixture) => {
    const signalled = (load(fixture).events ?? []).find((e) => e.workflowExecutionSignaledEventAttributes)?.workflowExecutionSignaledEventAttributes;
    const data = signalled?.input?.payloads?.[0]?.data;
    const snapshot = JSON.parse(Buffer.from(data ?? new Uint8Array()).toString('utf8')) as Record<string, unknown>;
    const legacy = fixture.startsWith('pre-normalised--');
    expect(Object.keys(snapshot)).toEqual(expect.arrayContaining(legacy ? ['modCount', 'state', 'approval', 'type'] : ['version', 'phase', 'emergency', 'sourceState']));
    expect(snapshot).not.toHaveProperty(legacy ? 'phase' : 'modCount');
  });

  it.each(fixtures)('%s replays against the current workflow code without a determinism violation', async (fixture) => {
    const codePath = process.env.CG_TEST_BUNDLE;
    if (!codePath) throw new Error('CG_TEST_BUNDLE is not set: run under jest so that the globalSetup builds the bundle');
    await expect(Worker.runReplayHistory({ workflowBundle: { codePath } }, load(fixture), workflowIdOf(fixture))).resolves.toBeUndefined();
  });

  describe('against a workflow that issues different commands', () => {
    let divergent: { code: string };
    beforeAll(async () => {
      const noop = () => undefined;
      divergent = await bundleWorkflowCode({
        workflowsPath: resolve(HISTORIES, 'divergent-workflow.ts'),
        logger: { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop },
      });
    });

    it.each(fixtures)('%s fails replay with a DeterminismViolationError, so the replay check can catch a change', async (fixture) => {
      const replay = Worker.runReplayHistory({ workflowBundle: divergent }, load(fixture), workflowIdOf(fixture));
      await expect(replay).rejects.toBeInstanceOf(DeterminismViolationError);
      await expect(replay).rejects.toThrow(/nondetermin/i);
    });
  });
});
