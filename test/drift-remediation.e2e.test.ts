import axios from 'axios';
import { jiraWriteBack } from '../src/itsm/jira/jira-runtime';
import { ACTIONS_FIELD, CHANGE_TYPE_FIELD, PLANNED_END_FIELD } from '../src/itsm/jira/jira-simulator';
import { REDIS_ADMIN, type RedisTestServer, startRedis } from './support/servers/redis';
import { runScheduledDiscovery } from './support/discovery';
import { type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';
import { listAll } from './support/listing';

/**
 * Drift remediation of the two finding types that are not about an extra: a grant a change still holds and the target
 * lacks is restored by a mover on a standard change (on the machine's MariaDB), and an identity no change accounts for
 * is removed by a leaver under the system's revoke policy (on a private redis-server, so that no other test's account
 * is ever an orphan here) — never one the connector protects, and never more orphans than the policy's cap per scan.
 */
describe('drift remediation: missing grants restored, orphans removed, protected and excess orphans left alone', () => {
  let stack: Stack;
  let redis: RedisTestServer;
  let auditor: string;
  const REDIS = 'redis-drift';
  const KEEP = 'keep_drift';
  const MYSQL_JIRA = 'mysql-jira';

  beforeAll(async () => {
    redis = await startRedis();
    const connectorPassword = await redis.createUser('changegate_connector', [
      'resetkeys', 'resetchannels', '-@all', '+acl|setuser', '+acl|deluser', '+acl|getuser', '+acl|list', '+acl|cat', '+client|list', '+client|kill',
    ]);
    process.env.CG_TEST_DRIFT_REDIS_PASSWORD = connectorPassword;
    stack = await startStack({
      extraConnectors: [
        { name: REDIS, type: 'redis', host: redis.host, port: redis.port, user: 'changegate_connector', passwordEnv: 'CG_TEST_DRIFT_REDIS_PASSWORD', policy: { protectedAccounts: [REDIS_ADMIN, KEEP], revokeMode: 'delete' } },
        { name: MYSQL_JIRA, type: 'mysql', host: '127.0.0.1', port: 3306, user: TEST_ENV.connectorUser, passwordEnv: 'CG_TEST_CONNECTOR_PASSWORD', policy: { protectedAccounts: ['root', 'mysql', 'mariadb.sys'], revokeMode: 'delete' } },
      ],
      policy: {
        version: 1,
        drift: [
          { system: 'mysql-local', on: { 'missing-grant': 'remediate' } },
          // Orphan remediation only on a target whose every account is the gateway's business: never the shared MariaDB,
          // where every other test's account would be an orphan.
          { system: REDIS, on: { orphan: 'remediate' }, orphanCap: 1 },
          { system: MYSQL_JIRA, on: { 'missing-grant': 'remediate' }, source: 'jira' },
        ],
      },
    });
    auditor = (await stack.tokenFor('auditor')).token;
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
    await redis?.stop();
  });

  /** The findings a query matches, every page of them (the targets keep what earlier runs left). */
  const drift = async (query: string) => ({ items: await listAll<Record<string, string | null>>(`${stack.apiUrl}/api/drift?${query}`, auditor) });
  const table = (method: 'GET' | 'PATCH', path: string, data?: unknown, params?: Record<string, string>) =>
    axios.request({ method, url: `${stack.simUrl}/api/now/table/change_request${path}`, data, params, auth: { username: TEST_ENV.snUser, password: TEST_ENV.snPassword }, validateStatus: () => true });
  const changeOf = async (finding: Record<string, string | null> | undefined) => {
    const number = String(finding?.change).slice('servicenow:'.length);
    const [change] = (await table('GET', '', undefined, { sysparm_query: `number=${number}` })).data.result as Array<Record<string, string>>;
    return { number, change };
  };
  const redisUser = async (name: string) => (await redis.admin.call('ACL', 'GETUSER', name)) as unknown[] | null;

  it('a grant a change still holds, taken away behind the gateway\'s back, is restored by a mover that lasts no longer than the hold, and the finding resolves', async () => {
    const account = uniqueAccount('dfm');
    const granting = uniqueTicketNumber();
    stack.sim.createChange({
      number: granting, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*', 'INSERT ON cgt_billing.*'], ttl: 'PT1H' }]),
    });
    await waitFor('the grant verified', async () => (await stack.closureCheck(granting)).data.steps?.[0]?.status === 'verified', 30_000);
    await stack.admin.query('REVOKE SELECT ON `cgt\\_billing`.* FROM ?@?', [account, '%']);

    await runScheduledDiscovery(stack);
    const [finding] = (await drift('system=mysql-local&type=missing-grant&status=open')).items.filter((f) => f.name === account);
    expect(finding).toMatchObject({ grant: 'SELECT ON `cgt\\_billing`.*', action: 'remediate', change: expect.stringMatching(/^servicenow:CHG\d+$/) });
    const { number, change } = await changeOf(finding);
    expect(change).toMatchObject({ type: 'standard', correlation_id: `changegate-drift-${finding?.id}` });
    const [action] = JSON.parse(String(change?.u_identity_actions)) as Array<Record<string, unknown>>;
    expect(action).toMatchObject({ kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['INSERT ON `cgt\\_billing`.*', 'SELECT ON `cgt\\_billing`.*'] });
    // The restored grant ends when the joiner's hold does (ttl PT1H), not later: a ttl to then, and the change's window
    // ending then, however late the change is authorized.
    const held = (await stack.workflows.status('servicenow', granting))?.steps[0]?.expiry?.expiresAt;
    const seconds = Number(/^PT(\d+)S$/.exec(String(action?.ttl))?.[1]);
    expect(seconds).toBeGreaterThan(3000);
    expect(seconds).toBeLessThanOrEqual(3600);
    expect(action?.until).toBe('window-end');
    expect(change?.end_date).toBe(String(held).slice(0, 19).replace('T', ' '));

    // A standard change runs like any other: the grant is added once it is in Implement.
    expect((await table('PATCH', `/${change?.sys_id}`, { state: '-1', approval: 'approved' })).status).toBe(200);
    await waitFor('the restoring move verified', async () => (await stack.closureCheck(number)).data.steps?.[0]?.status === 'verified', 30_000);
    expect((await stack.grantsOf(account)).join('\n')).toMatch(/GRANT SELECT, INSERT ON `cgt\\_billing`/);
    const restored = (await stack.workflows.status('servicenow', number))?.steps[0]?.expiry?.expiresAt;
    expect(Date.parse(String(restored))).toBeLessThanOrEqual(Date.parse(String(held)));

    await runScheduledDiscovery(stack);
    const after = (await drift('system=mysql-local&type=missing-grant')).items.find((f) => f.id === finding?.id);
    expect(after).toMatchObject({ status: 'resolved', change: finding?.change });
  }, 150_000);

  it('an identity no change accounts for is removed by a leaver change; one the connector protects is never a finding and stays', async () => {
    await redis.createUser(KEEP, ['~keep:*', '+get']);
    const orphan = `orph_${uniqueAccount('r')}`;
    await redis.createUser(orphan, ['~orph:*', '+get', '+set']);

    await runScheduledDiscovery(stack);
    const items = (await drift(`system=${REDIS}&type=orphan`)).items;
    expect(items.map((f) => f.name)).not.toContain(KEEP);
    const finding = items.find((f) => f.name === orphan);
    expect(finding).toMatchObject({ status: 'open', action: 'remediate', change: expect.stringMatching(/^servicenow:CHG\d+$/) });
    const { number, change } = await changeOf(finding);
    expect(change).toMatchObject({ type: 'standard', correlation_id: `changegate-drift-${finding?.id}` });
    expect(JSON.parse(String(change?.u_identity_actions))).toEqual([{ kind: 'leaver', system: REDIS, identity: { type: 'service_account', name: orphan } }]);

    await waitFor('the leaver verified', async () => (await stack.closureCheck(number)).data.allowed === true, 30_000);
    expect(await redisUser(orphan)).toBeNull();
    expect(await redisUser(KEEP)).not.toBeNull();

    await runScheduledDiscovery(stack);
    const after = (await drift(`system=${REDIS}&type=orphan`)).items.find((f) => f.id === finding?.id);
    expect(after).toMatchObject({ status: 'resolved', change: finding?.change });
    const opened = await stack.evidence.list(`drift:${finding?.id}`);
    expect(opened.map((r) => r.outcome)).toEqual(['remediation-opened']);
  }, 150_000);

  it('more orphans than the cap on one scan: none is removed, each is reported with the reason', async () => {
    const names = [`orph_${uniqueAccount('c')}`, `orph_${uniqueAccount('c')}`];
    for (const name of names) await redis.createUser(name, ['~orph:*', '+get']);

    await runScheduledDiscovery(stack);
    const items = (await drift(`system=${REDIS}&type=orphan&status=open`)).items.filter((f) => names.includes(String(f.name)));
    expect(items).toHaveLength(2);
    for (const f of items) {
      expect(f).toMatchObject({ action: 'report', change: null });
      const [row] = await stack.evidence.list(`drift:${f.id}`);
      expect(row).toMatchObject({ outcome: 'remediation-withheld', observedState: { reason: expect.stringMatching(/2 orphans of redis-drift await remediation, more than the cap of 1 per scan: none is removed automatically/) } });
    }
    for (const name of names) expect(await redisUser(name)).not.toBeNull();
  }, 150_000);

  it('with source jira, the remediation is a Jira issue: Standard, labelled with its correlation id, carrying the mover; in Implementing it runs and verifies, and a retried open finds the same issue', async () => {
    const account = uniqueAccount('dfj');
    const granting = uniqueTicketNumber();
    stack.sim.createChange({
      number: granting, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'joiner', system: MYSQL_JIRA, identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*', 'INSERT ON cgt_billing.*'], ttl: 'PT1H' }]),
    });
    await waitFor('the grant verified', async () => (await stack.closureCheck(granting)).data.steps?.[0]?.status === 'verified', 30_000);
    await stack.admin.query('REVOKE SELECT ON `cgt\\_billing`.* FROM ?@?', [account, '%']);

    await runScheduledDiscovery(stack);
    const [finding] = (await drift(`system=${MYSQL_JIRA}&type=missing-grant&status=open`)).items.filter((f) => f.name === account);
    expect(finding).toMatchObject({ action: 'remediate', change: expect.stringMatching(/^jira:CHG-\d+$/) });
    const key = String(finding?.change).slice('jira:'.length);
    const issue = stack.jiraSim.issue(key);
    const correlationId = `changegate-drift-${finding?.id}`;
    expect(issue?.fields).toMatchObject({ labels: [correlationId], [CHANGE_TYPE_FIELD]: { value: 'Standard' }, [PLANNED_END_FIELD]: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+\+0000$/) });
    expect(JSON.parse(String(issue?.fields[ACTIONS_FIELD]))).toEqual([expect.objectContaining({ kind: 'mover', system: MYSQL_JIRA, grants: ['INSERT ON `cgt\\_billing`.*', 'SELECT ON `cgt\\_billing`.*'] })]);

    // The issue's own webhooks bring it to the gateway: in Planning the move waits; in Implementing it restores the grant.
    await waitFor('the move waiting for authorization', async () => (await stack.workflows.status('jira', key))?.steps[0]?.status === 'waiting-authorization', 30_000);
    expect((await stack.grantsOf(account)).join('\n')).not.toMatch(/SELECT/);
    for (const t of ['Request authorization', 'Authorize', 'Start implementation']) expect(stack.jiraSim.transition(key, t)).toEqual({ ok: true });
    const state = await waitFor('the restoring move verified', async () => {
      const s = await stack.workflows.status('jira', key);
      return s?.steps[0]?.status === 'verified' ? s : null;
    }, 30_000);
    expect(state.phase).toBe('implement');
    expect((await stack.grantsOf(account)).join('\n')).toMatch(/GRANT SELECT, INSERT ON `cgt\\_billing`/);

    // A retried open (its first answer lost) finds the issue by its label instead of opening another.
    const again = await jiraWriteBack(stack.jira).openChange!({ correlationId, emergency: false, title: 'retried', description: 'retried', actionsText: '[]' });
    expect(again).toEqual({ key, recordId: issue?.id, created: false });
    const labelled = await stack.jira.client.searchIssues(`project = CHG AND labels = "${correlationId}"`);
    expect(labelled).toEqual([{ id: issue?.id, key }]);
  }, 150_000);
});
