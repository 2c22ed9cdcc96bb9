import { NativeConnection, type Worker } from '@temporalio/worker';
import { ConnectorRegistry } from '../src/connectors/registry';
import { closureCheck } from '../src/api/changes';
import type { ClosureVerdictStore } from '../src/closure/verdict-store';
import type { EvidenceInput, EvidenceStore } from '../src/evidence/evidence-store';
import { ServiceNowClient } from '../src/itsm/servicenow/servicenow-client';
import { servicenow } from '../src/itsm/servicenow/servicenow-source';
import { createWorker } from '../src/worker';
import { connectorsFile, createAccount, leaverActions, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV, temporalAddress } from './support/test-env';

const leaver = leaverActions;

/**
 * closure-check answers from the verdict each workflow publishes (closure_verdicts), not from a query that replays the
 * workflow, and never says "allowed" while a delivery the workflow has not evaluated is outstanding.
 */
describe('closure-check from the published verdict', () => {
  let stack: Stack;
  let replacement: { worker: Worker; run: Promise<void>; connection: NativeConnection; registry: ConnectorRegistry } | undefined;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    if (replacement) {
      if (replacement.worker.getState() === 'RUNNING') replacement.worker.shutdown();
      await replacement.run;
      await replacement.registry.close();
      await replacement.connection.close();
    }
    await stack?.stop();
  });

  it('answers with no worker running, and a newer delivery blocks closure until a worker has evaluated it', async () => {
    const account = uniqueAccount('proj');
    await createAccount(stack.admin, account);
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-5', type: 'emergency', u_identity_actions: leaver(account) });
    await waitFor('closure allowed', async () => (await stack.closureCheck(number)).data.allowed === true);

    // No worker: a query could not be answered, the published verdict still is.
    const worker = stack.worker as Worker;
    worker.shutdown();
    await waitFor('worker stopped', () => worker.getState() === 'STOPPED');
    const started = performance.now();
    const answered = await stack.closureCheck(number);
    expect(answered.status).toBe(200);
    expect(answered.data).toMatchObject({ allowed: true, reasons: [], steps: [expect.objectContaining({ kind: 'leaver', status: 'verified' })] });
    expect(performance.now() - started).toBeLessThan(5_000);

    // A newer version of the ticket arrives while no worker runs: the verdict on file is about an older version.
    const newer = { ...stack.sim.getChange(change.sys_id as string), sys_mod_count: '40', short_description: 'edited' };
    expect((await stack.deliver(newer)).status).toBe(202);
    const blocked = await stack.closureCheck(number);
    expect(blocked.data.allowed).toBe(false);
    expect(blocked.data.reasons).toEqual([expect.stringMatching(/latest update \(version 40\) is not evaluated yet/)]);

    // A worker on the same task queue evaluates it; the verdict for version 40 allows closure again.
    const connection = await NativeConnection.connect({ address: temporalAddress });
    const registry = new ConnectorRegistry(connectorsFile());
    const w = await createWorker({
      connection,
      namespace: 'default',
      taskQueue: stack.taskQueue,
      registry,
      evidence: stack.evidence,
      verdicts: stack.verdicts,
      servicenow: new ServiceNowClient({ baseUrl: stack.simUrl, username: TEST_ENV.snUser, password: TEST_ENV.snPassword }),
      workflowBundle: { codePath: process.env.CG_TEST_BUNDLE as string },
    });
    replacement = { worker: w, run: w.run(), connection, registry };
    await waitFor('closure allowed for version 40', async () => (await stack.closureCheck(number)).data.allowed === true);
  });

  it('a step still running after its first moments has the blocked verdict published, as closure-check needs it without a worker', async () => {
    const account = uniqueAccount('proj');
    await createAccount(stack.admin, account);
    const number = uniqueTicketNumber();
    // Hold the target: the revocation cannot finish until the lock is released.
    await stack.admin.query('LOCK TABLES mysql.global_priv WRITE');
    try {
      stack.sim.createChange({ number, state: '-5', type: 'emergency', u_identity_actions: leaver(account) });
      const published = await waitFor('a published verdict for the running step', async () => {
        const rows: Array<{ allowed: number; body: string | { reasons: string[] } }> = await stack.ds.query(
          'SELECT allowed, body FROM closure_verdicts WHERE ticket_key = ? ORDER BY id DESC LIMIT 1',
          [`servicenow:${number}`],
        );
        return rows[0] ?? null;
      }, 15_000);
      expect(Number(published.allowed)).toBe(0);
      const body = typeof published.body === 'string' ? (JSON.parse(published.body) as { reasons: string[] }) : published.body;
      expect(body.reasons).toEqual([expect.stringMatching(new RegExp(`leaver of ${account}.*not verified yet`))]);
    } finally {
      await stack.admin.query('UNLOCK TABLES');
    }
    await waitFor('closure allowed', async () => (await stack.closureCheck(number)).data.allowed === true);
  });

  it('a ticket changegate never received has no published verdict and is a 404', async () => {
    const [row] = await stack.ds.query('SELECT COUNT(*) AS n FROM closure_verdicts WHERE ticket_key = ?', ['servicenow:CHG0000000001']);
    expect(Number(row.n)).toBe(0);
    expect((await stack.closureCheck('CHG0000000001')).status).toBe(404);
  });

  it("a step that ends while closure-check reads is shown verified only with its evidence row, never as lacking it", async () => {
    // A real leaver's verified row and published verdict, to replay as another ticket's step ending mid-read.
    const account = uniqueAccount('proj');
    await createAccount(stack.admin, account);
    const done = uniqueTicketNumber();
    stack.sim.createChange({ number: done, state: '-5', type: 'emergency', u_identity_actions: leaver(account) });
    await waitFor('closure allowed', async () => (await stack.closureCheck(done)).data.allowed === true);
    const [row] = await stack.evidence.list(`servicenow:${done}`);
    const verdict = (await stack.verdicts.latest('servicenow', done))!;
    const stepRow = Object.fromEntries(Object.entries(row!).filter(([k]) => !['seq', 'recordedAt', 'prevHash', 'hash'].includes(k))) as unknown as EvidenceInput;

    // The step of another ticket ends just as closure-check reads it: the worker writes its evidence row, then the
    // workflow publishes the verdict that shows it verified. If the evidence was read at the same time as the verdict,
    // that read is let finish first: the worst order the two reads can have.
    const number = uniqueTicketNumber();
    const key = `servicenow:${number}`;
    let evidenceRead: Promise<unknown> | undefined;
    const evidence = Object.assign(Object.create(stack.evidence) as EvidenceStore, {
      listVerified: (ticketKey: string) => (evidenceRead = stack.evidence.listVerified(ticketKey)),
    });
    const verdicts = {
      latest: async (source: string, ticket: string) => {
        await Promise.resolve();
        if (evidenceRead) await evidenceRead;
        await stack.evidence.append({ ...stepRow, ticketKey: key });
        await stack.verdicts.publish(key, verdict.evaluatedVersion, verdict.view);
        return stack.verdicts.latest(source, ticket);
      },
    } as unknown as ClosureVerdictStore;
    const answer = await closureCheck({ workflows: stack.workflows, evidence, verdicts }, servicenow, number);
    expect(answer).toMatchObject({ allowed: true, reasons: [], steps: [expect.objectContaining({ status: 'verified' })], evidence: { rows: 1, chainValid: true } });
  });
});
