import axios from 'axios';
import { workflowIdFor } from '../src/change/ticket';
import { leaverActions, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';

/**
 * What the API answers when the workflow engine cannot: no worker polls this stack's task queue, so a query of the
 * ticket's workflow fails. That is a 503 UNAVAILABLE saying to retry, never a detail-free 500 (found by probing beside
 * the schemathesis run: closure-check of a ticket whose workflow had not published a verdict answered 500).
 */
describe('the API when no worker answers', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ inProcessWorker: false });
  });
  afterAll(async () => {
    await stack?.stop();
  });
  const operator = { authorization: `Bearer ${TEST_ENV.adminToken}` };

  it('closure-check of a ticket whose workflow has not published a verdict and cannot be queried: 503', async () => {
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state: '-5', type: 'emergency', u_identity_actions: leaverActions(uniqueAccount('unav')) });
    // The simulator's business rule delivers it: the workflow exists, and nothing runs it.
    const handle = stack.workflows.client.workflow.getHandle(workflowIdFor('servicenow', number));
    await waitFor('the delivery started the workflow', () => handle.describe().then(() => true, () => false));
    // Temporal gives up on the query after its own timeout (about 30 s here).
    const res = await axios.get(`${stack.apiUrl}/api/changes/servicenow/${number}/closure-check`, { headers: operator, validateStatus: () => true });
    expect([res.status, res.data.error?.code]).toEqual([503, 'UNAVAILABLE']);
    expect(res.data.error.message).toMatch(/retry/);
  }, 90_000);
});
