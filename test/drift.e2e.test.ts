import axios from 'axios';
import type mysql from 'mysql2/promise';
import { InventoryStore } from '../src/inventory/inventory-store';
import { createAccount, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { runScheduledDiscovery } from './support/discovery';
import { TEST_ENV } from './support/test-env';
import { listAll } from './support/listing';

/**
 * Drift on the real parts: scheduled discovery reads back every identity whose approved state the inventory holds,
 * on the machine's MariaDB, finds what differs, keeps each finding under a stable id (GET /api/drift), and under a
 * `remediate` policy opens a standard change in the ServiceNow simulator that brings the target back and runs like
 * any other change.
 */
describe('drift: found by scheduled discovery, listed, and remediated by a change that runs like any other', () => {
  let stack: Stack;
  let auditor: string;
  const DISABLE = 'mysql-disable';

  beforeAll(async () => {
    stack = await startStack({
      extraConnectors: [{
        name: DISABLE, type: 'mysql', host: '127.0.0.1', port: 3306, user: TEST_ENV.connectorUser, passwordEnv: 'CG_TEST_CONNECTOR_PASSWORD',
        policy: { protectedAccounts: ['root', 'mysql', 'mariadb.sys'], revokeMode: 'disable' },
      }],
      policy: { version: 1, drift: [{ system: 'mysql-local', on: { 'extra-grant': 'remediate' } }, { system: DISABLE, on: { 're-enabled': 'remediate' } }] },
    });
    auditor = (await stack.tokenFor('auditor')).token;
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const scheduledDiscovery = () => runScheduledDiscovery(stack);
  /** The findings a query matches, every page of them (the targets keep what earlier runs left). */
  const drift = async (query: string) => ({ items: await listAll<Record<string, string | null>>(`${stack.apiUrl}/api/drift?${query}`, auditor) });
  const table = (method: 'GET' | 'PATCH', path: string, data?: unknown, params?: Record<string, string>) =>
    axios.request({ method, url: `${stack.simUrl}/api/now/table/change_request${path}`, data, params, auth: { username: TEST_ENV.snUser, password: TEST_ENV.snPassword }, validateStatus: () => true });
  const locked = async (name: string) => {
    const [rows] = await stack.admin.query<mysql.RowDataPacket[]>("SELECT JSON_VALUE(Priv, '$.account_locked') AS locked FROM mysql.global_priv WHERE User = ? AND Host = ?", [name, '%']);
    return ['1', 'true'].includes(String(rows[0]?.locked));
  };

  it('a grant added behind the gateway\'s back is found, and the standard change it opens takes it away, keeps what changes hold, and closes', async () => {
    const account = uniqueAccount('dft');
    const granting = uniqueTicketNumber();
    stack.sim.createChange({
      number: granting, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT1H' }]),
    });
    await waitFor('the grant verified', async () => (await stack.closureCheck(granting)).data.steps?.[0]?.status === 'verified', 30_000);
    await stack.admin.query('GRANT INSERT ON `cgt_billing`.`invoices` TO ?@?', [account, '%']);

    await scheduledDiscovery();
    const [finding] = (await drift(`system=mysql-local&type=extra-grant&status=open`)).items.filter((f) => f.name === account);
    expect(finding).toMatchObject({ type: 'extra-grant', grant: 'INSERT ON `cgt_billing`.`invoices`', status: 'open', action: 'remediate', change: expect.stringMatching(/^servicenow:CHG\d+$/) });
    expect(finding?.firstSeenAt).toEqual(expect.any(String));
    const number = String(finding?.change).slice('servicenow:'.length);
    const [change] = (await table('GET', '', undefined, { sysparm_query: `number=${number}` })).data.result as Array<Record<string, string>>;
    expect(change).toMatchObject({ type: 'standard', correlation_id: `changegate-drift-${finding?.id}` });
    expect(JSON.parse(String(change?.u_identity_actions))).toEqual([{ kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON `cgt\\_billing`.*'] }]);

    await waitFor('the remediation verified', async () => (await stack.closureCheck(number)).data.allowed === true, 30_000);
    const held = (await stack.grantsOf(account)).join('\n');
    expect(held).not.toMatch(/INSERT/);
    expect(held).toMatch(/SELECT ON `cgt\\_billing`/);
    // The remediation holds nothing: the joiner's ticket still does, and its expiry will end it.
    const row = await new InventoryStore(stack.ds).find('mysql-local', account, '%');
    expect(row?.grants).toEqual([{ grant: 'SELECT ON `cgt\\_billing`.*', tickets: [`servicenow:${granting}`] }]);
    expect((await table('PATCH', `/${change?.sys_id}`, { state: '3', close_code: 'successful', close_notes: 'drift removed' })).status).toBe(200);

    // The next discovery no longer finds it: resolved, first seen kept.
    await scheduledDiscovery();
    const after = (await drift(`system=mysql-local&type=extra-grant`)).items.find((f) => f.id === finding?.id);
    expect(after).toMatchObject({ status: 'resolved', firstSeenAt: finding?.firstSeenAt, change: finding?.change, resolvedAt: expect.any(String) });
    // Opening the change is evidence in the finding's own chain.
    const opened = await stack.evidence.list(`drift:${finding?.id}`);
    expect(opened.map((r) => [r.outcome, (r.observedState as { change: string }).change])).toEqual([['remediation-opened', finding?.change]]);
  }, 120_000);

  it('removing an extra grant does not give back a missing one the policy only reports', async () => {
    const account = uniqueAccount('dfm');
    const granting = uniqueTicketNumber();
    stack.sim.createChange({
      number: granting, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*', 'INSERT ON cgt_billing.invoices'], ttl: 'PT1H' }]),
    });
    await waitFor('the grant verified', async () => (await stack.closureCheck(granting)).data.steps?.[0]?.status === 'verified', 30_000);
    // Behind the gateway's back: one held grant taken away (missing-grant: report), one added (extra-grant: remediate).
    await stack.admin.query('REVOKE SELECT ON `cgt\\_billing`.* FROM ?@?', [account, '%']);
    await stack.admin.query('GRANT UPDATE ON `cgt_billing`.`invoices` TO ?@?', [account, '%']);
    await scheduledDiscovery();
    // Both were found, each under its policy (read from the findings table: the server's many orphans page the listing).
    const found = (await stack.ds.query('SELECT finding_type AS type, action, change_key AS `change` FROM drift_findings WHERE system = ? AND name = ? ORDER BY finding_type', ['mysql-local', account])) as Array<{ type: string; action: string; change: string | null }>;
    expect(found.map((f) => [f.type, f.action])).toEqual([['extra-grant', 'remediate'], ['missing-grant', 'report']]);
    const number = String(found.find((f) => f.type === 'extra-grant')?.change).slice('servicenow:'.length);
    const [change] = (await table('GET', '', undefined, { sysparm_query: `number=${number}` })).data.result as Array<Record<string, string>>;
    // The mover keeps what the target holds of the changes' grants: the reported missing one is not in it.
    expect(JSON.parse(String(change?.u_identity_actions))).toEqual([{ kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['INSERT ON `cgt_billing`.`invoices`'] }]);
    await waitFor('the remediation verified', async () => (await stack.closureCheck(number)).data.allowed === true, 30_000);
    const held = (await stack.grantsOf(account)).join('\n');
    expect(held).not.toMatch(/UPDATE/);
    expect(held).not.toMatch(/SELECT ON `cgt\\_billing`/);
  }, 120_000);

  it('an account a leaver disabled and someone enabled again is found and disabled again by its remediation change', async () => {
    const account = uniqueAccount('dfr');
    await createAccount(stack.admin, account);
    const leaving = uniqueTicketNumber();
    stack.sim.createChange({ number: leaving, state: '-5', u_identity_actions: JSON.stringify([{ kind: 'leaver', system: DISABLE, identity: { type: 'service_account', name: account, host: '%' } }]) });
    await waitFor('the leaver verified', async () => (await stack.closureCheck(leaving)).data.allowed === true, 30_000);
    expect(await locked(account)).toBe(true);
    await stack.admin.query('ALTER USER ?@? ACCOUNT UNLOCK', [account, '%']);

    await scheduledDiscovery();
    const [finding] = (await drift(`system=${DISABLE}&type=re-enabled&status=open`)).items.filter((f) => f.name === account);
    expect(finding).toMatchObject({ type: 're-enabled', action: 'remediate', detail: expect.stringContaining(`servicenow:${leaving}`), change: expect.stringMatching(/^servicenow:CHG\d+$/) });
    const number = String(finding?.change).slice('servicenow:'.length);
    await waitFor('the remediation verified', async () => (await stack.closureCheck(number)).data.allowed === true, 30_000);
    expect(await locked(account)).toBe(true);
  }, 120_000);

  it('refuses an unknown filter, a bad type and a bad cursor on GET /api/drift, naming each', async () => {
    const res = await axios.get(`${stack.apiUrl}/api/drift?kind=x&type=bogus&cursor=zz`, { headers: { authorization: `Bearer ${auditor}` }, validateStatus: () => true });
    expect(res.status).toBe(400);
    expect(res.data.error.issues.map((i: { path: string }) => i.path).sort()).toEqual(['query', 'query.cursor', 'query.type']);
  });
});
