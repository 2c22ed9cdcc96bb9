import { resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { parseIdentityActions } from '../src/actions/plan-actions';
import { GrammarRegistry } from '../src/connectors/registry';
import { kindNames, register } from '../src/kinds/registry';
import { attestEdge } from './kinds/attest-edge';
import { type Stack, connectorsFile, createAccount, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';

const noop = () => undefined;

/**
 * The action-kind seam: a kind defined only in test code (test/kinds/) — its edge half registered through the edge
 * registry's public register(), its workflow half bundled into a test workflow bundle that re-exports the real
 * workflows — runs end to end without a core file naming it.
 */
describe('an action kind defined only in test code, registered through both kind registries', () => {
  let stack: Stack;
  beforeAll(async () => {
    register(attestEdge);
    const { code } = await bundleWorkflowCode({
      workflowsPath: resolve(__dirname, 'kinds', 'workflows.ts'),
      logger: { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop },
    });
    stack = await startStack({ workflowBundle: { code } });
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it('the edge registry plans the registered kind and lists it in the refusal of an unknown kind', () => {
    const grammars = new GrammarRegistry(connectorsFile());
    const identity = { type: 'service_account', name: 'svc_x', host: '%' };
    const planned = parseIdentityActions(JSON.stringify([{ kind: 'attest', system: 'mysql-local', identity }]), grammars, 'u_identity_actions');
    expect(planned).toEqual({ ok: true, value: [{ actionId: expect.stringMatching(/^[0-9a-f]{16}$/), kind: 'attest', system: 'mysql-local', identity }] });
    expect(kindNames()).toEqual(['joiner', 'leaver', 'mover', 'rotate', 'deploy', 'decommission', 'attest']);
    const refused = parseIdentityActions(JSON.stringify([{ kind: 'offboard', system: 'mysql-local', identity }]), grammars, 'u_identity_actions');
    expect(refused).toEqual({ ok: false, issues: [{ path: 'u_identity_actions[0].kind', message: 'kind must be one of joiner, leaver, mover, rotate, deploy, decommission, attest (spec v1)' }] });
  });

  it('a ServiceNow webhook carrying the test kind runs it to a verified evidence row and closure-check allows closure', async () => {
    const account = uniqueAccount('att');
    await createAccount(stack.admin, account);
    const number = uniqueTicketNumber();
    stack.sim.createChange({
      number, state: '-2',
      u_identity_actions: JSON.stringify([{ kind: 'attest', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' } }]),
    });
    const rows = await waitFor('attested evidence', async () => {
      const r = await stack.evidence.list(`servicenow:${number}`);
      return r.some((x) => x.outcome === 'attested') ? r : null;
    });
    expect(rows).toEqual([expect.objectContaining({ outcome: 'attested', actionKind: 'attest', verified: true, stepId: expect.stringMatching(/^attest:/), observedState: expect.objectContaining({ exists: true }) })]);
    const check = await waitFor('closure-check allowing closure', async () => {
      const r = await stack.closureCheck(number);
      return r.status === 200 && r.data.allowed ? r : null;
    });
    expect(check.data.steps).toEqual([expect.objectContaining({ kind: 'attest', status: 'verified' })]);
    expect(check.data.reasons).toEqual([]);
    expect(await stack.accountExists(account)).toBe(true);
  });
});
