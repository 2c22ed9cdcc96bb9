import { createAccount, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { failFirstAttempt, startTestWorker } from './support/test-worker';
import type { IdentityRef } from '../src/actions/identity-action';
import type { Connector } from '../src/connectors/connector';
import type { ConnectorRegistry } from '../src/connectors/registry';

/**
 * The mover on a ServiceNow change against the real MariaDB: planned from a read-back, removals at once, additions
 * once the change is authorized, grants outside what the connector manages left alone.
 */
describe('mover on a ServiceNow change: revoke what is no longer wanted at once, grant what is missing late', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack.stop();
  });

  const SELECT = 'SELECT ON `cgt\\_billing`.*';
  const INSERT = 'INSERT ON `cgt_billing`.`invoices`';
  const UPDATE = 'UPDATE ON `cgt_billing`.`invoices`';
  const mover = (name: string, grants: string[], ttl?: string) =>
    JSON.stringify([{ kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' }, grants, ...(ttl ? { ttl } : {}) }]);
  const evidenceOf = (number: string) => stack.evidence.list(`servicenow:${number}`);

  it('removes an unwanted grant at once, keeps the wanted one, waits for authorization to add, and removes drift found at that point', async () => {
    const account = uniqueAccount('mov');
    // SELECT is still wanted, INSERT is not, PROCESS is global and outside what the connector manages.
    await createAccount(stack.admin, account, ['SELECT ON `cgt\\_billing`.*', 'INSERT ON `cgt_billing`.`invoices`', 'PROCESS ON *.*']);
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-5', approval: 'requested', u_identity_actions: mover(account, ['SELECT ON cgt_billing.*', 'UPDATE ON cgt_billing.invoices'], 'PT8H') });
    const sysId = change.sys_id as string;

    const removal = await waitFor('removal evidence', async () => (await evidenceOf(number)).find((r) => r.outcome === 'ungranted'));
    expect(removal).toMatchObject({ verified: true, actionKind: 'mover', desiredState: { exists: true, mustNotHave: [INSERT] } });
    expect(removal.verification).toMatchObject({ applied: expect.stringContaining(`removed: ${INSERT}`) });
    expect(removal.verification).toMatchObject({ applied: expect.stringMatching(/not managed by changegate, left untouched: PROCESS/) });
    const waiting = await waitFor('closure-check showing the mover waiting', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.[0]?.status === 'waiting-authorization' ? r : null;
    });
    expect(waiting.data.allowed).toBe(false);
    expect(waiting.data.steps[0].detail).toMatch(/waits for authorization to add: UPDATE ON `cgt_billing`.`invoices`/);
    const held = await stack.grantsOf(account);
    expect(held.join('\n')).not.toMatch(/INSERT/);
    expect(held.join('\n')).not.toMatch(/UPDATE/);
    expect(held.join('\n')).toMatch(/PROCESS/);
    await waitFor('removal work note', () => stack.sim.journal(sysId, 'work_notes').some((n) => n.value.includes('Verified removal: mover')));

    // Drift behind the gateway's back while the change waits: INSERT comes back.
    await stack.admin.query('GRANT INSERT ON `cgt_billing`.`invoices` TO ?@?', [account, '%']);
    stack.sim.updateChange(sysId, { state: '-1', approval: 'approved' });

    const granted = await waitFor('grant evidence', async () => (await evidenceOf(number)).find((r) => r.outcome === 'granted'));
    expect(granted).toMatchObject({ verified: true, desiredState: { exists: true, mustHave: [SELECT, UPDATE], mustNotHave: [INSERT] } });
    expect((granted.observedState as { grants: string[] }).grants).toEqual(expect.arrayContaining([SELECT, UPDATE]));
    expect((granted.observedState as { grants: string[] }).grants).not.toContain(INSERT);
    const final = (await stack.grantsOf(account)).join('\n');
    expect(final).toMatch(/GRANT SELECT ON `cgt\\_billing`\.\*/);
    expect(final).toMatch(/UPDATE ON `cgt_billing`\.`invoices`/);
    expect(final).not.toMatch(/INSERT/);
    expect(final).toMatch(/PROCESS/);

    const note = await waitFor('the work note listing the move', () => stack.sim.journal(sysId, 'work_notes').find((n) => n.value.includes('Verified: mover')));
    expect(note.value).toContain(`kept: ${SELECT}`);
    expect(note.value).toContain(`removed: ${INSERT}`);
    expect(note.value).toContain(`added: ${UPDATE}`);
    expect(note.value).toMatch(/left untouched: PROCESS/);
    const check = await waitFor('closure allowed (the added grant expires with its ttl)', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed ? r : null;
    });
    expect(check.data.steps[0]).toMatchObject({ status: 'verified', cleanup: { status: 'scheduled' } });
    expect(await stack.evidence.verifyChain(`servicenow:${number}`)).toEqual({ valid: true, rows: 2 });
  });

  it('a move that only removes finishes at once, before any authorization, and needs no cleanup path', async () => {
    const account = uniqueAccount('movr');
    await createAccount(stack.admin, account, ['SELECT ON `cgt\\_billing`.*', 'INSERT ON `cgt_billing`.`invoices`']);
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state: '-5', approval: 'requested', u_identity_actions: mover(account, ['SELECT ON cgt_billing.*']) });
    const check = await waitFor('closure allowed', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed ? r : null;
    });
    expect(check.data.steps[0]).toMatchObject({ kind: 'mover', status: 'verified', cleanup: { status: 'none' } });
    expect((await stack.grantsOf(account)).join('\n')).not.toMatch(/INSERT/);
    expect((await evidenceOf(number)).map((r) => [r.outcome, r.verified])).toEqual([['ungranted', true]]);
  });

  it('the grants a move added expire with its ttl, and what the identity held before stays', async () => {
    const account = uniqueAccount('movt');
    await createAccount(stack.admin, account, ['SELECT ON `cgt\\_billing`.*']);
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: mover(account, ['SELECT ON cgt_billing.*', 'UPDATE ON cgt_billing.invoices'], 'PT2S') });
    const rows = await waitFor('expiry evidence', async () => {
      const r = await evidenceOf(number);
      return r.some((x) => x.outcome === 'expired') ? r : null;
    }, 20_000);
    expect(rows.map((r) => [r.outcome, r.verified])).toEqual([['ungranted', true], ['granted', true], ['expired', true]]);
    expect(rows[2]?.desiredState).toEqual({ exists: true, mustNotHave: [UPDATE] });
    const held = (await stack.grantsOf(account)).join('\n');
    expect(held).toMatch(/GRANT SELECT ON `cgt\\_billing`\.\*/);
    expect(held).not.toMatch(/UPDATE/);
  });

  it('a move with neither a ttl nor an until takes back what is no longer wanted, then is refused before it adds what would have no cleanup path', async () => {
    const account = uniqueAccount('movn');
    await createAccount(stack.admin, account, [SELECT, INSERT]);
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: mover(account, ['SELECT ON cgt_billing.*', 'UPDATE ON cgt_billing.invoices']) });
    const check = await waitFor('the refused step in closure-check', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.[0]?.status === 'failed' ? r.data : null;
    });
    const refusal =
      `kept: ${SELECT}; removed: ${INSERT}; refused to add ${UPDATE}: a move with neither a ttl nor an until that adds must want only standing access the policy allows: ` +
      [SELECT, UPDATE].map((g) => `${g} (no class) has no cleanup path: no privilege class on mysql-local covers it; give the action a ttl or an until, or use a policy that allows standing access to it for service_account identities`).join('; ');
    expect(check.allowed).toBe(false);
    expect(check.steps[0].detail).toBe(refusal);
    expect(check.reasons).toEqual([`mover of ${account}@% on mysql-local failed: ${refusal}`]);
    const grants = (await stack.grantsOf(account)).join('\n');
    expect(grants).not.toMatch(/INSERT|UPDATE/);
    expect(grants).toMatch(/GRANT SELECT ON `cgt\\_billing`\.\*/);
    expect((await evidenceOf(number)).map((r) => [r.outcome, r.verified])).toEqual([
      ['ungranted', true],
      ['failed', false],
    ]);
  });

  it('a mover of an identity that does not exist fails with the reason, and closure stays blocked', async () => {
    const account = uniqueAccount('movx');
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: mover(account, ['SELECT ON cgt_billing.*']) });
    const check = await waitFor('the failed step in closure-check', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.[0]?.status === 'failed' ? r : null;
    });
    expect(check.data.allowed).toBe(false);
    expect(check.data.reasons[0]).toMatch(/does not exist; a mover changes an existing identity's access/);
    expect(await stack.accountExists(account)).toBe(false);
  });

  it('cancelling the change takes back what the move added, and only that', async () => {
    const account = uniqueAccount('movc');
    await createAccount(stack.admin, account, ['SELECT ON `cgt\\_billing`.*']);
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: mover(account, ['SELECT ON cgt_billing.*', 'UPDATE ON cgt_billing.invoices'], 'PT8H') });
    await waitFor('grant evidence', async () => (await evidenceOf(number)).some((r) => r.outcome === 'granted' && r.verified));
    stack.sim.updateChange(change.sys_id as string, { state: '4' });
    const rows = await waitFor('expiry evidence after cancellation', async () => {
      const r = await evidenceOf(number);
      return r.some((x) => x.outcome === 'expired') ? r : null;
    });
    expect(rows.find((r) => r.outcome === 'expired')).toMatchObject({ verified: true, desiredState: { exists: true, mustNotHave: [UPDATE] } });
    const held = (await stack.grantsOf(account)).join('\n');
    expect(held).toMatch(/GRANT SELECT ON `cgt\\_billing`\.\*/);
    expect(held).not.toMatch(/UPDATE/);
  });
});

describe('mover whose activity acted and then lost its answer', () => {
  let stack: Stack;
  let worker: { stop(): Promise<void> };
  // The remove phase's one activity acts, reads back and records, and its answer never reaches the workflow; Temporal
  // runs it again, against a target that no longer holds what the first attempt removed.
  const lost = failFirstAttempt('applyVerifyRecord', 'after', ([input]) => {
    const op = (input as { operation?: { op?: string; phase?: string } }).operation;
    return op?.op === 'move' && op.phase === 'remove';
  });
  /** Accounts whose first removal acts on the target and then fails, before the read-back or the evidence row. */
  const failAfterUngrant = new Set<string>();
  beforeAll(async () => {
    stack = await startStack({ inProcessWorker: false });
    worker = await startTestWorker(stack, {
      interceptors: [lost.interceptor],
      registry: (real) =>
        Object.assign(Object.create(real) as ConnectorRegistry, {
          get(system: string): Connector {
            const c = real.get(system);
            return Object.assign(Object.create(c) as Connector, {
              ungrant: async (id: IdentityRef, grants: string[]) => {
                const out = await c.ungrant(id, grants);
                if (failAfterUngrant.delete(id.name)) throw new Error(`${system}: connection lost after the revoke was sent`);
                return out;
              },
            });
          },
        }),
    });
  });
  afterAll(async () => {
    await worker?.stop();
    await stack?.stop();
  });

  it('still reports what the remove phase removed, as the retried read-back confirms it gone', async () => {
    const INSERT = 'INSERT ON `cgt_billing`.`invoices`';
    const account = uniqueAccount('movl');
    await createAccount(stack.admin, account, ['SELECT ON `cgt\\_billing`.*', INSERT]);
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({
      number, state: '-5', approval: 'requested',
      u_identity_actions: JSON.stringify([{ kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*'] }]),
    });
    const state = await waitFor('the move verified', async () => {
      const s = await stack.workflows.status('servicenow', number);
      return s?.steps[0]?.status === 'verified' ? s : null;
    }, 30_000);
    expect(lost.hits()).toBeGreaterThanOrEqual(1);
    expect(state.steps[0]?.move).toMatchObject({ kept: ['SELECT ON `cgt\\_billing`.*'], removed: [INSERT] });
    expect(state.steps[0]?.detail).toContain(`removed: ${INSERT}`);
    expect((await stack.grantsOf(account)).join('\n')).not.toMatch(/INSERT/);
    const note = await waitFor('the work note', () => stack.sim.journal(change.sys_id as string, 'work_notes').find((n) => n.value.includes('Verified: mover')));
    expect(note.value).toContain(`removed: ${INSERT}`);
    // One evidence row for the step, whichever attempt wrote it, naming what the read-back must no longer find.
    const rows = await stack.evidence.list(`servicenow:${number}`);
    expect(rows.map((r) => [r.outcome, r.verified])).toEqual([['ungranted', true]]);
    expect(rows[0]?.desiredState).toMatchObject({ mustNotHave: [INSERT] });
  });

  it('a removal that acted and then failed before its evidence row records and reports what it removed, once retried', async () => {
    const INSERT = 'INSERT ON `cgt_billing`.`invoices`';
    const account = uniqueAccount('movf');
    await createAccount(stack.admin, account, ['SELECT ON `cgt\\_billing`.*', INSERT]);
    failAfterUngrant.add(account);
    const number = uniqueTicketNumber();
    stack.sim.createChange({
      number, state: '-5', approval: 'requested',
      u_identity_actions: JSON.stringify([{ kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*'] }]),
    });
    const state = await waitFor('the move verified', async () => {
      const s = await stack.workflows.status('servicenow', number);
      return s?.steps[0]?.status === 'verified' ? s : null;
    }, 30_000);
    expect(failAfterUngrant.has(account)).toBe(false);
    expect(state.steps[0]?.move).toMatchObject({ removed: [INSERT] });
    // The row the retry wrote is the first: it names the removal and what the read-back must no longer find.
    const rows = await stack.evidence.list(`servicenow:${number}`);
    expect(rows.map((r) => [r.outcome, r.verified])).toEqual([['ungranted', true]]);
    expect(rows[0]?.desiredState).toMatchObject({ mustNotHave: [INSERT] });
    expect(rows[0]?.verification).toMatchObject({ applied: expect.stringContaining(`removed: ${INSERT}`) });
  });
});
