import { createHmac, randomBytes } from 'node:crypto';
import axios from 'axios';
import mysql from 'mysql2/promise';
import { fingerprintOf } from '../src/connectors/secret';
import { type OpenBao, setupVaultFixture, startOpenBao, type VaultFixture, vaultConnectorEntry } from './support/servers/openbao';
import { startGitHubStandIn } from './support/github-standin';
import { postSigned } from './support/signed-webhook';
import { createAccount, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';
import { historyText } from './support/history-text';

/**
 * From a leak report to a verified rotation: a credential the gateway rotated into OpenBao is reported by GitHub
 * secret scanning (a stand-in that follows the documented webhook and alert shapes); the gateway fetches the alert,
 * fingerprints the literal, finds the rotation that delivered it, and opens an emergency change in the ServiceNow
 * simulator that rotates it before authorization (the policy allows it). The leaked value stops working on MariaDB,
 * the new one works, and the same report again changes nothing.
 */
describe('exposed secrets: a leak report becomes a verified rotation on an emergency change', () => {
  const SECRET = randomBytes(24).toString('base64url');
  let bao: OpenBao;
  let fx: VaultFixture;
  let github: Awaited<ReturnType<typeof startGitHubStandIn>>;
  let stack: Stack;

  beforeAll(async () => {
    bao = await startOpenBao();
    fx = await setupVaultFixture(bao);
    github = await startGitHubStandIn();
    stack = await startStack({
      extraConnectors: [vaultConnectorEntry(bao, fx, 'CG_TEST_LEAK_VAULT_TOKEN')],
      policy: { version: 1, emergency: [{ system: 'mysql-local', kinds: ['rotate'] }] },
      leaks: { webhookSecret: SECRET, github: { apiUrl: github.apiUrl, token: github.token } },
    });
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
    await github?.stop();
    await fx?.cleanup();
    await bao?.stop();
  });

  const report = (body: unknown, opts: { event?: string; secret?: string } = {}) => {
    const raw = Buffer.from(JSON.stringify(body));
    const sig = `sha256=${createHmac('sha256', opts.secret ?? SECRET).update(raw).digest('hex')}`;
    return axios.post(`${stack.apiUrl}/webhooks/secret-scanning`, raw, {
      headers: { 'content-type': 'application/json', 'x-hub-signature-256': sig, ...(opts.event ? { 'x-github-event': opts.event } : {}) },
      validateStatus: () => true,
    });
  };
  const served = async (path: string) =>
    (await bao.root<{ data: { data: { value: string }; metadata: { version: number } } }>('GET', `secret/data/${fx.kvPrefix}/${path}`)).body.data;
  const canLogIn = async (user: string, password: string) => {
    try {
      const c = await mysql.createConnection({ host: '127.0.0.1', user, password });
      await c.end();
      return true;
    } catch {
      return false;
    }
  };
  const changesCorrelated = async (correlation: string) =>
    (await axios.get(`${stack.simUrl}/api/now/table/change_request`, { auth: { username: TEST_ENV.snUser, password: TEST_ENV.snPassword }, params: { sysparm_query: `correlation_id=${correlation}` } })).data.result as Array<Record<string, string>>;

  it('rotates a reported credential at once through an emergency change, and a repeated report changes nothing', async () => {
    const account = uniqueAccount('leak');
    await createAccount(stack.admin, account);
    const path = `apps/${account}/db`;
    const first = uniqueTicketNumber();
    stack.sim.createChange({
      number: first, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'rotate', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, deliverTo: { system: 'vault-local', path } }]),
    });
    await waitFor('the first rotation', async () => (await stack.evidence.list(`servicenow:${first}`)).find((r) => r.outcome === 'rotated'), 30_000);
    const leaked = (await served(path)).data.value;
    expect(await canLogIn(account, leaked)).toBe(true);

    // Someone commits it; GitHub's webhook names the alert, not the secret.
    const { webhook } = github.alert('acme/billing', leaked, 'mysql_password');
    expect(JSON.stringify(webhook)).not.toContain(leaked);
    const accepted = await report(webhook, { event: 'secret_scanning_alert' });
    expect(accepted.status).toBe(202);
    const fingerprint = fingerprintOf(leaked);
    expect(accepted.data).toEqual({ fingerprint, workflowId: `leak-${fingerprint.slice('sha256:'.length)}`, duplicate: false });
    expect(github.requests).toHaveLength(1);

    const correlation = `changegate-leak-${fingerprint.slice('sha256:'.length)}`;
    const [change] = await waitFor('the emergency change opened in ServiceNow', async () => {
      const rows = await changesCorrelated(correlation);
      return rows.length > 0 ? rows : null;
    }, 30_000);
    expect(change).toMatchObject({ type: 'emergency', state: '-5' });
    expect(change?.description).toContain('https://github.com/acme/billing/security/secret-scanning/1');
    expect(JSON.parse(change?.u_identity_actions ?? '[]')).toEqual([{ kind: 'rotate', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, deliverTo: { system: 'vault-local', path } }]);

    // Not authorized (state New), yet rotated: the policy lets an emergency rotation run at once.
    const number = String(change?.number);
    const rotated = await waitFor('the emergency rotation verified', async () => (await stack.evidence.list(`servicenow:${number}`)).find((r) => r.outcome === 'rotated'), 30_000);
    expect(rotated).toMatchObject({ verified: true });
    const now = (await served(path)).data.value;
    expect(now).not.toBe(leaked);
    expect(await canLogIn(account, leaked)).toBe(false);
    expect(await canLogIn(account, now)).toBe(true);
    // The row is written before the workflow hears of it: closure-check follows once the workflow has the step verified.
    const check = await waitFor('closure allowed after the rotation', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed === true ? r : null;
    });
    expect(check.data).toMatchObject({ allowed: true, phase: 'draft' });

    const leakRows = await waitFor('the leak evidence', async () => {
      const rows = await stack.evidence.list(`leak:${fingerprint.slice('sha256:'.length)}`);
      return rows.length > 0 ? rows : null;
    });
    expect(leakRows.map((r) => r.outcome)).toEqual(['rotation-opened']);
    expect(leakRows[0]?.observedState).toMatchObject({ fingerprint, deliveredBy: `servicenow:${first}`, change: { source: 'servicenow', key: number } });
    // The literal is nowhere the gateway writes.
    for (const key of [`leak:${fingerprint.slice('sha256:'.length)}`, `servicenow:${number}`]) expect(JSON.stringify(await stack.evidence.list(key))).not.toContain(leaked);
    const history = await stack.workflows.client.workflow.getHandle(accepted.data.workflowId).fetchHistory();
    // Payloads are Base64 in the history's JSON: decoded, so that a leaked value in one would be found (the fingerprint
    // is the positive control).
    const payloads = historyText(history);
    expect(payloads).toContain(fingerprint);
    expect(payloads).not.toContain(leaked);

    // The scanner sends the same alert again: nothing new.
    const again = await report(webhook, { event: 'secret_scanning_alert' });
    expect(again.status).toBe(200);
    expect(again.data).toMatchObject({ fingerprint, duplicate: true });
    expect(await changesCorrelated(correlation)).toHaveLength(1);
  }, 120_000);

  it("ends the pipeline run whose credential leaked: the run's account and delivered copy are gone, verified", async () => {
    const base = uniqueAccount('lkd');
    const path = `apps/${base}/deploy`;
    const number = uniqueTicketNumber();
    stack.sim.createChange({
      number, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'deploy', system: 'mysql-local', identity: { type: 'service_account', name: base, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT30M', deliverTo: { system: 'vault-local', path } }]),
    });
    await waitFor('the deploy step ready', async () => (await stack.closureCheck(number)).data.steps?.[0]?.status === 'verified', 30_000);
    const startedRun = await postSigned(`${stack.apiUrl}/webhooks/deploy`, Buffer.from(JSON.stringify({ ticket: { source: 'servicenow', key: number }, runId: 'r1', event: 'started' })), TEST_ENV.deployWebhookSecret);
    expect(startedRun.status).toBe(201);
    const runAccount = String(startedRun.data.credentials[0].identity);
    const leaked = (await served(`${path}/r1`)).data.value;
    expect(await canLogIn(runAccount, leaked)).toBe(true);

    const res = await report({ secret: leaked, type: 'mysql_password', location: 'pipeline log, run r1' });
    expect(res.status).toBe(202);
    const hex = fingerprintOf(leaked).slice('sha256:'.length);
    const [row] = await waitFor('the run ended for the leak', async () => {
      const rows = await stack.evidence.list(`leak:${hex}`);
      return rows.length > 0 ? rows : null;
    }, 30_000);
    expect(row).toMatchObject({ outcome: 'run-ended', observedState: { deliveredBy: `servicenow:${number}`, run: { runId: 'r1', result: 'revoked' } } });
    expect(await stack.accountExists(runAccount)).toBe(false);
    expect(await canLogIn(runAccount, leaked)).toBe(false);
    expect((await bao.root('GET', `secret/data/${fx.kvPrefix}/${path}/r1`, undefined, [404])).status).toBe(404);
    const status = await stack.workflows.status('servicenow', number);
    expect(status?.steps[0]?.deploy?.runs).toEqual([expect.objectContaining({ runId: 'r1', status: 'revoked', endedBy: 'finished:cancelled' })]);
  }, 120_000);

  it('records a leak it cannot match for a person, and refuses a bad signature, a bad body and a non-reporting action', async () => {
    const value = randomBytes(20).toString('hex');
    const res = await report({ secret: value, type: 'api_key', location: 'ci log of build 812' });
    expect(res.status).toBe(202);
    const hex = fingerprintOf(value).slice('sha256:'.length);
    const rows = await waitFor('the unmatched leak evidence', async () => {
      const r = await stack.evidence.list(`leak:${hex}`);
      return r.length > 0 ? r : null;
    });
    expect(rows[0]).toMatchObject({ outcome: 'unmatched', observedState: { matched: false, location: 'ci log of build 812', reportedAs: 'api_key' } });
    expect(JSON.stringify(rows)).not.toContain(value);

    expect((await report({ secret: value, type: 'api_key', location: 'x' }, { secret: 'not-the-secret-at-all' })).status).toBe(401);
    const bad = await report({ secret: 'Qz7#kP', type: '', location: 'x', extra: 1 });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.data)).not.toContain('Qz7#kP');
    expect(bad.data.error.issues.map((i: { path: string }) => i.path).sort()).toEqual(['(body)', 'secret', 'type']);
    const resolved = await report({ action: 'resolved', alert: { number: 1, secret_type: 'x' }, repository: { full_name: 'acme/billing' } }, { event: 'secret_scanning_alert' });
    expect(resolved.data).toEqual({ ignored: "action 'resolved' reports no exposure" });
  });
});
