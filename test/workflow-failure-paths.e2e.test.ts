import { ApplicationFailure } from '@temporalio/activity';
import { NativeConnection } from '@temporalio/worker';
import type { ConnectorActivities } from '../activities';
import type { ChangeState } from '../src/change';
import type { ChangeWorkflows } from '../src/temporal/temporal-client';
import { quietRuntime, waitFor } from './support/stack';
import { type Seen, leaverSnapshot as snapshot, runWithStandIns } from './support/stand-in-worker';
import { temporalAddress } from './support/test-env';

/**
 * The workflow's own failure paths, on the real Temporal server with the real workflow bundle. The activities are
 * the seams being broken on purpose (an evidence database that stays down), so they are stand-ins here; the
 * connector and evidence activities themselves are covered against the real systems elsewhere.
 */
describe('change workflow when evidence cannot be written', () => {
  let connection: NativeConnection;
  let workflows: ChangeWorkflows;
  beforeAll(async () => {
    quietRuntime();
    connection = await NativeConnection.connect({ address: temporalAddress });
  });
  afterAll(async () => {
    await connection.close();
  });

  const runWith = (targets: Partial<ConnectorActivities>, body: (number: string, seen: Seen) => Promise<void>) =>
    runWithStandIns({ connection, address: temporalAddress }, targets, (number, seen, w) => {
      workflows = w;
      return body(number, seen);
    });

  const down = () => {
    throw ApplicationFailure.create({ message: 'evidence database unavailable', type: 'EvidenceDown', nonRetryable: true });
  };

  it('a read-back that cannot be recorded ends the step failed, not stuck running, and closure stays blocked', async () => {
    await runWith(
      // One activity acts, reads back and records; its evidence write is what stays down, for the failure row too.
      { applyVerifyRecord: async () => down(), recordFailure: async () => down() },
      async (number, seen) => {
        await workflows.deliver({ source: 'servicenow', key: number, recordId: 'f'.repeat(32) }, snapshot(number, 'f'.repeat(32)));
        const state = await waitFor('the step to end', async () => {
          const s = await workflows.status('servicenow', number);
          return s?.steps[0]?.status === 'failed' ? s : null;
        });
        const detail = 'could not verify and record: evidence database unavailable (and its evidence could not be recorded: evidence database unavailable)';
        expect(state.steps[0]?.detail).toBe(detail);
        // The verdict closure-check is given says no, naming the failure; the only gate the ticket was asked to carry is
        // `pending`.
        const view = await waitFor('the view of the failed step', () => seen.views.find((v) => v.steps[0]?.status === 'failed'));
        expect(view).toMatchObject({ allowed: false, reasons: [`leaver of svc_gone@% on mysql-local failed: ${detail}`] });
        await waitFor('the gate written', () => seen.gates.length > 0);
        expect(seen.gates).toEqual(['pending']);
      },
    );
  });

  it('a step whose one activity fails past its retries still leaves a failure evidence row naming the cause', async () => {
    const recorded: Array<{ stepId: string; error: string }> = [];
    await runWith(
      {
        applyVerifyRecord: async () => {
          throw ApplicationFailure.create({ message: 'target unreachable', type: 'TargetDown', nonRetryable: true });
        },
        recordFailure: async (input) => {
          recorded.push({ stepId: input.stepId, error: input.error });
          return { evidenceHash: 'h' };
        },
      },
      async (number) => {
        await workflows.deliver({ source: 'servicenow', key: number, recordId: 'd'.repeat(32) }, snapshot(number, 'd'.repeat(32)));
        const state = await waitFor('the step to end', async () => {
          const s = await workflows.status('servicenow', number);
          return s?.steps[0]?.status === 'failed' ? s : null;
        });
        expect(state.steps[0]?.detail).toBe('could not verify and record: target unreachable');
        expect(recorded).toEqual([{ stepId: state.steps[0]?.stepId, error: 'could not verify and record: target unreachable' }]);
      },
    );
  });

  it('a refusal whose failure evidence could not be recorded ends the step failed, with the detail naming both causes', async () => {
    await runWith(
      {
        // The step activity records a refusal itself, and says so when even that was refused.
        applyVerifyRecord: async () => ({
          verified: false, refused: true, detail: 'target refused (and its evidence could not be recorded: evidence database unavailable)', mismatches: [], created: false,
        }),
      },
      async (number) => {
        await workflows.deliver({ source: 'servicenow', key: number, recordId: 'e'.repeat(32) }, snapshot(number, 'e'.repeat(32)));
        const state: ChangeState = await waitFor('the step to end', async () => {
          const s = await workflows.status('servicenow', number);
          return s?.steps[0]?.status === 'failed' ? s : null;
        });
        expect(state.steps[0]?.detail).toBe('target refused (and its evidence could not be recorded: evidence database unavailable)');
      },
    );
  });
});
