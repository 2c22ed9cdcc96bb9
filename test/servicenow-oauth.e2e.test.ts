import { Writable } from 'node:stream';
import { createLogger } from '../src/logger';
import { type Stack, captureRuntimeLog, createAccount, leaverActions, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { historyText } from './support/history-text';

/**
 * The worker's write-backs with OAuth instead of basic auth (real Temporal and MariaDB, the simulator's token
 * endpoint): a token that expires between two tickets is refreshed and the run goes on, and no token or client
 * secret reaches the logs, the workflow histories or closure-check.
 */
/** Every byte field of a history (payloads: activity inputs and results, signals, markers) as text. */
const CLIENT = { clientId: 'cg-e2e-client', clientSecret: 'cg-e2e-client-secret-never-logged' };

describe('ServiceNow OAuth through the gateway: token expiry mid-run', () => {
  let stack: Stack;
  const logged: string[] = [];
  const workerLogged: string[] = [];

  beforeAll(async () => {
    // The worker's own log (activities, workflows) as well as the gateway's, at debug.
    captureRuntimeLog((line) => workerLogged.push(line));
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logged.push(chunk.toString());
        cb();
      },
    });
    stack = await startStack({ oauth: { ...CLIENT, tokenLifetimeSeconds: 1800 }, log: createLogger('test', 'debug', stream) });
  });
  afterAll(async () => {
    await stack.stop();
  });

  async function leaverClosed(): Promise<{ number: string; sysId: string }> {
    const account = uniqueAccount('oa');
    await createAccount(stack.admin, account);
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, type: 'emergency', state: '-1', u_identity_actions: leaverActions(account) });
    await waitFor('closure allowed', async () => (await stack.closureCheck(number)).data.allowed === true);
    return { number, sysId: change.sys_id as string };
  }

  it('a token that expires between two tickets is refreshed and the second ticket gets its note and gate; no token or secret is logged or recorded', async () => {
    const first = await leaverClosed();
    expect(stack.sim.oauth.issued.map((t) => t.grant)).toEqual(['password']);

    stack.sim.oauth.expireAccessTokens();
    const second = await leaverClosed();
    expect(stack.sim.oauth.refusedBearer).toBe(1);
    expect(stack.sim.oauth.issued.map((t) => t.grant)).toEqual(['password', 'refresh_token']);
    for (const { sysId } of [first, second]) {
      expect(stack.sim.getChange(sysId)?.u_identity_cleanup).toBe('verified');
      const notes = stack.sim.journal(sysId, 'work_notes').map((n) => n.value).join('\n');
      expect(notes.match(/\[changegate leaver:[^\]]+:verified\]/g)).toHaveLength(1);
      // Written as the integration user the tokens were issued to.
      expect(stack.sim.journal(sysId, 'work_notes').every((n) => n.sys_created_by === 'changegate-int')).toBe(true);
    }

    const secrets = [CLIENT.clientSecret, ...stack.sim.oauth.issued.flatMap((t) => [t.accessToken, t.refreshToken ?? t.accessToken])];
    const recorded: string[] = [logged.join(''), workerLogged.join('\n')];
    for (const { number } of [first, second]) {
      recorded.push(JSON.stringify((await stack.closureCheck(number)).data));
      recorded.push(JSON.stringify(await stack.workflows.status('servicenow', number)));
      const history = await stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`).fetchHistory();
      recorded.push(historyText(history));
    }
    // Positive controls: the history holds what was written (so the search looks where the payloads are), and the
    // worker's log was captured at debug.
    expect(recorded.join('\n')).toContain('Identity cleanup verified');
    expect(workerLogged.some((l) => l.includes('deliverToTicket'))).toBe(true);
    for (const secret of secrets) expect(recorded.join('\n')).not.toContain(secret);
  }, 60_000);
});
