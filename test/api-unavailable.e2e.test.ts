import axios from 'axios';
import { workflowIdFor } from '../src/change/ticket';
import { ENGINE_RETRY_AFTER_SECONDS, engineFailure } from '../src/temporal/engine-errors';
import { leaverActions, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { type FlakyPort, startFlakyPort } from './support/flaky-port';
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
    expect(res.headers['retry-after']).toBe(String(ENGINE_RETRY_AFTER_SECONDS));
  }, 90_000);

  it("Temporal's own errors are told apart: a request it refuses is not retryable, a query no worker answers is", async () => {
    // The server refuses a workflow id past its length limit with INVALID_ARGUMENT: retrying the same request cannot help.
    const refused = await stack.workflows.client.workflow
      .start('changeWorkflow', { taskQueue: 'nowhere', workflowId: 'x'.repeat(2000), args: [] })
      .then(() => undefined, (err: unknown) => err);
    expect(engineFailure(refused)).toEqual({ retryable: false, reason: 'gRPC code 3' });
    // A query the worker never answers times out: retryable.
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state: '-5', type: 'emergency', u_identity_actions: leaverActions(uniqueAccount('unav')) });
    const handle = stack.workflows.client.workflow.getHandle(workflowIdFor('servicenow', number));
    await waitFor('the delivery started the workflow', () => handle.describe().then(() => true, () => false));
    const timedOut = await handle.query('status').then(() => undefined, (err: unknown) => err);
    expect(engineFailure(timedOut)).toMatchObject({ retryable: true });
    expect(engineFailure(new Error('not Temporal'))).toBeUndefined();
  }, 90_000);
});

/**
 * What the API answers while its database does not (MariaDB restarting): 503 with Retry-After, never a 500 (seen in a
 * 1000-ticket fault run: closure-check answered 500 "connect ECONNREFUSED" while the run's MariaDB restarted).
 */
describe('the API when the database does not answer', () => {
  let flaky: FlakyPort;
  let stack: Stack;
  beforeAll(async () => {
    flaky = await startFlakyPort({ host: '127.0.0.1', port: TEST_ENV.mariadbPort });
    // The application account, as every stack's, through the port that can be taken down.
    const url = new URL(TEST_ENV.databaseUrl);
    url.port = String(flaky.port);
    stack = await startStack({ databaseUrl: url.toString() });
  });
  afterAll(async () => {
    await flaky?.up();
    await stack?.stop();
    await flaky?.stop();
  });

  it('closure-check and the exception queue answer 503 with Retry-After while the database is away, and answer again once it is back', async () => {
    const operator = { authorization: `Bearer ${TEST_ENV.adminToken}` };
    const get = (path: string) => axios.get(`${stack.apiUrl}${path}`, { headers: operator, validateStatus: () => true });
    const paths = [`/api/changes/servicenow/${uniqueTicketNumber()}/closure-check`, '/api/exceptions'];
    await flaky.down();
    for (const path of paths) {
      const res = await get(path);
      expect({ path, status: res.status, code: res.data.error?.code, retryAfter: res.headers['retry-after'] }).toEqual({ path, status: 503, code: 'UNAVAILABLE', retryAfter: String(ENGINE_RETRY_AFTER_SECONDS) });
      expect(res.data.error.message).toMatch(/database.*retry/);
    }
    await flaky.up();
    await waitFor('the exception queue answering again', async () => (await get('/api/exceptions')).status === 200, 30_000, 250);
  }, 90_000);
});
