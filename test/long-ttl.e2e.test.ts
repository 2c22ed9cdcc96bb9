import type { TestWorkflowEnvironment } from '@temporalio/testing';
import axios from 'axios';
import type mysql from 'mysql2/promise';
import type { Gateway } from '../src/gateway';
import type { ServiceNowSimulator } from '../src/itsm/servicenow/servicenow-simulator';
import { createAccount, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';
import { startTimeSkippingGateway, type TimeSkippingGateway } from './support/time-skipping';

/**
 * Hour-long grants, on Temporal's time-skipping test server: the same gateway (webhook, workflow, activities against
 * the real MariaDB, evidence) with workflow time advanced by the test instead of waited for. An 8-hour ttl ends after
 * seconds of wall time, and the take-back is read back and evidenced like any step.
 */
describe('hour-long ttls on the time-skipping server: the grant is taken back when its time is up, not before', () => {
  let env: TestWorkflowEnvironment;
  let gw: Gateway;
  let admin: mysql.Connection;
  let sim: ServiceNowSimulator;

  let skip: TimeSkippingGateway;

  beforeAll(async () => {
    skip = await startTimeSkippingGateway('cg-skip');
    ({ env, gw, sim, admin } = skip);
  }, 120_000);
  afterAll(async () => {
    await skip?.stop();
  }, 60_000);

  const grantsOf = async (name: string) => {
    const [rows] = await admin.query<mysql.RowDataPacket[]>('SHOW GRANTS FOR ?@?', [name, '%']);
    return rows.map((r) => String(Object.values(r)[0])).join('\n');
  };
  const closureCheck = (number: string) =>
    axios.get(`${gw.apiUrl}/api/changes/servicenow/${number}/closure-check`, { headers: { authorization: `Bearer ${TEST_ENV.adminToken}` }, validateStatus: () => true });

  it('an 8-hour joiner grant is still held after 7 hours and taken back, verified and evidenced, after 8', async () => {
    const name = uniqueAccount('ttl');
    // Made by an administrator with a grant of its own: the expiry takes back only what the joiner granted.
    await createAccount(admin, name, ['SELECT ON `cgt_reporting`.*']);
    const number = uniqueTicketNumber();
    sim.createChange({
      number, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT8H' }]),
    });
    const granted = await waitFor('the grant verified', async () => {
      const r = await closureCheck(number);
      return r.data.steps?.[0]?.status === 'verified' ? r.data : null;
    }, 30_000);
    expect(granted.steps[0].cleanup).toMatchObject({ status: 'scheduled', expiresAt: expect.any(String) });
    const expiresAt = Date.parse(granted.steps[0].cleanup.expiresAt);
    expect(await grantsOf(name)).toMatch(/cgt\\?_billing/);

    await env.sleep('7 hours');
    expect(await grantsOf(name)).toMatch(/cgt\\?_billing/);
    expect((await closureCheck(number)).data.steps[0].cleanup.status).toBe('scheduled');

    await env.sleep('61 minutes');
    const expired = await waitFor('the expiry verified', async () => {
      const r = await closureCheck(number);
      return r.data.steps[0].cleanup?.status === 'verified' ? r.data : null;
    }, 30_000);
    expect(expired.allowed).toBe(true);
    const held = await grantsOf(name);
    expect(held).not.toMatch(/cgt\\?_billing/);
    expect(held).toMatch(/cgt_reporting/);
    const row = (await gw.evidence.list(`servicenow:${number}`)).find((r) => r.outcome === 'expired');
    expect(row).toMatchObject({ verified: true, desiredState: { exists: true, mustNotHave: ['SELECT ON `cgt\\_billing`.*'] } });
    // The clock that ended it is the workflow's: the ttl counted from the verified grant.
    expect(Date.parse(expired.steps[0].cleanup.verifiedAt)).toBeGreaterThan(0);
    expect(expiresAt - Date.parse(granted.steps[0].verifiedAt)).toBeGreaterThanOrEqual(8 * 3_600_000 - 1_000);
  }, 120_000);

  it("a grant until the change window's end, three hours away, is held for two hours and taken back at the window's end", async () => {
    const name = uniqueAccount('win');
    const number = uniqueTicketNumber();
    // Three hours from the server's clock, which the earlier test moved ahead of the wall clock.
    const end = new Date((await env.currentTimeMs()) + 3 * 3_600_000);
    sim.createChange({
      number, state: '-1', approval: 'approved', end_date: end.toISOString().slice(0, 19).replace('T', ' '),
      u_identity_actions: JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' }, grants: ['SELECT ON cgt_billing.*'], until: 'window-end' }]),
    });
    const granted = await waitFor('the grant verified', async () => {
      const r = await closureCheck(number);
      return r.data.steps?.[0]?.status === 'verified' ? r.data : null;
    }, 30_000);
    expect(granted.steps[0].cleanup).toMatchObject({ status: 'scheduled', until: 'window-end', expiresAt: `${end.toISOString().slice(0, 19)}.000Z` });
    await env.sleep('2 hours');
    expect(await grantsOf(name)).toMatch(/cgt\\?_billing/);
    await env.sleep('61 minutes');
    await waitFor('the expiry verified', async () => {
      const r = await closureCheck(number);
      return r.data.steps[0].cleanup?.status === 'verified' ? r.data : null;
    }, 30_000);
    // The joiner created the account, so its end drops it.
    const [rows] = await admin.query<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n FROM mysql.user WHERE User = ?', [name]);
    expect(Number(rows[0]?.n)).toBe(0);
  }, 120_000);
});
