import type { TestWorkflowEnvironment } from '@temporalio/testing';
import axios from 'axios';
import type mysql from 'mysql2/promise';
import type { ChangeState } from '../src/change';
import type { Gateway } from '../src/gateway';
import type { ServiceNowSimulator } from '../src/itsm/servicenow/servicenow-simulator';
import { createAccount, leaverActions, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';
import { startTimeSkippingGateway, type TimeSkippingGateway } from './support/time-skipping';

/**
 * A ServiceNow outage of four hours, on Temporal's time-skipping test server with the production back-off (a second,
 * doubling to five minutes): longer than the retry budget write-backs had before the outbox (50 attempts, ~3.5 h),
 * after which the update was dropped and the ticket blocked for good. The same gateway, webhook and MariaDB.
 */
describe('a four-hour ServiceNow outage on the time-skipping server: the ticket update is delivered once it is back', () => {
  let env: TestWorkflowEnvironment;
  let gw: Gateway;
  let admin: mysql.Connection;
  let sim: ServiceNowSimulator;

  let skip: TimeSkippingGateway;

  beforeAll(async () => {
    skip = await startTimeSkippingGateway('cg-outage');
    ({ env, gw, sim, admin } = skip);
  }, 120_000);
  afterAll(async () => {
    await sim?.faults.restore();
    await skip?.stop();
  }, 60_000);

  const closureCheck = (number: string) =>
    axios.get(`${gw.apiUrl}/api/changes/servicenow/${number}/closure-check`, { headers: { authorization: `Bearer ${TEST_ENV.adminToken}` }, validateStatus: () => true });
  const status = (number: string): Promise<ChangeState | null> => gw.workflows.status('servicenow', number);

  it('four hours of refused connections: the leaver is verified at once, closure waits with the reason, and the note and gate land once afterwards', async () => {
    const account = uniqueAccount('outage');
    await createAccount(admin, account);
    const number = uniqueTicketNumber();
    await sim.faults.refuseConnections();
    const change = sim.createChange({ number, type: 'emergency', state: '-1', u_identity_actions: leaverActions(account) });
    const sysId = change.sys_id as string;
    await waitFor('the leaver verified while ServiceNow is down', async () => (await status(number))?.steps[0]?.status === 'verified', 30_000);

    await env.sleep('4 hours');
    const during = await waitFor('the outbox still waiting after four hours', async () => {
      const s = await status(number);
      return s?.outbox?.waiting ? s : null;
    });
    // More attempts than the old budget allowed, and nothing given up: no refusal recorded, the batch still there.
    expect(during.outbox?.waiting?.attempts).toBeGreaterThan(50);
    expect(during.outbox?.pending).toHaveLength(1);
    expect(during.writeBackErrors).toEqual([]);
    const blocked = (await closureCheck(number)).data;
    expect(blocked.allowed).toBe(false);
    expect(blocked.reasons).toEqual([expect.stringMatching(/^waiting to deliver to servicenow: ServiceNow (GET|PATCH) \S+ failed: no response \(ECONNREFUSED\) \(attempt \d+/)]);
    expect(sim.journal(sysId, 'work_notes')).toEqual([]);

    await sim.faults.restore();
    // The next attempt is at most one back-off ceiling (five minutes) away.
    await env.sleep('5 minutes');
    const open = await waitFor('closure allowed once delivered', async () => {
      const r = await closureCheck(number);
      return r.data.allowed === true ? r.data : null;
    }, 30_000);
    expect(open.reasons).toEqual([]);
    expect(sim.getChange(sysId)?.u_identity_cleanup).toBe('verified');
    const notes = sim.journal(sysId, 'work_notes').map((n) => n.value).join('\n');
    expect(notes.match(/\[changegate leaver:[^\]]+:verified\]/g)).toHaveLength(1);
    expect(notes.match(/\[changegate gate:\d+\]/g)).toHaveLength(1);
  }, 120_000);
});
