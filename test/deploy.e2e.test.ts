import { randomBytes } from 'node:crypto';
import axios, { type AxiosResponse } from 'axios';
import mysql from 'mysql2/promise';
import { fingerprintOf } from '../src/connectors/secret';
import { asApplicationAccount, insertEvidenceRow } from './support/app-account';
import { postSigned, type SignedPostOptions } from './support/signed-webhook';
import { type OpenBao, setupVaultFixture, startOpenBao, type VaultFixture, vaultConnectorEntry } from './support/servers/openbao';
import { runIdentityName } from '../src/kinds/deploy/run';
import { connectorsFile, createAccount, dropRunAccounts, runAccounts as accountsOfRuns, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';
import { InventoryStore } from '../src/inventory/inventory-store';
import type { IdentityRef } from '../src/actions/identity-action';
import type { Connector } from '../src/connectors/connector';
import type { ConnectorRegistry, ConnectorsFile } from '../src/connectors/registry';
import { GATE_FIELD } from '../src/itsm/servicenow/servicenow-gate';
import { ticketProxy } from './support/ticket-proxy';
import { failFirstAttempt, startTestWorker } from './support/test-worker';
import { attemptsOf, historyText } from './support/history-text';
import { type FlakyPort, startFlakyPort } from './support/flaky-port';
import { killHard, startWorkerProcess } from './support/worker-process';
import type { ChildProcess } from 'node:child_process';

const deployAction = (name: string, path: string, ttl = 'PT10M', system = 'mysql-local') =>
  JSON.stringify([{ kind: 'deploy', system, identity: { type: 'service_account', name, host: '%' }, grants: ['SELECT ON cgt_billing.*', 'INSERT ON cgt_billing.invoices'], ttl, deliverTo: { system: 'vault-local', path } }]);

/**
 * Deploy end to end on real parts: a ServiceNow change carries a deploy action; a pipeline reports its runs on the
 * signed deploy webhook; each run gets its own MariaDB account with exactly the listed grants, its password delivered
 * to OpenBao, and loses it when the run finishes or the ttl ends. The value is nowhere but the store and the target.
 */
describe('deploy: a short-lived credential per pipeline run, minted on started and revoked on finished or at the ttl', () => {
  let bao: OpenBao;
  let fx: VaultFixture;
  let stack: Stack;
  beforeAll(async () => {
    bao = await startOpenBao();
    fx = await setupVaultFixture(bao);
    stack = await startStack({
      // Grants on cgt_reporting are privileged: a deploy that holds one waits for a change manager's approval.
      policy: { version: 1, people: [], privileged: [{ system: 'mysql-local', grants: ['* ON `cgt\\_reporting`.*'] }] },
      extraConnectors: [vaultConnectorEntry(bao, fx, 'CG_TEST_DEPLOY_VAULT_TOKEN')],
    });
  });
  /** Base names this file used: a failing test must not leave its runs' accounts behind for other suites to see. */
  const bases: string[] = [];
  afterAll(async () => {
    for (const base of bases) await dropRunAccounts(stack.admin, base).catch(() => undefined);
    await stack?.stop();
    await fx?.cleanup();
    await bao?.stop();
  });

  const deployEvent = (body: unknown, o: SignedPostOptions & { secret?: string } = {}): Promise<AxiosResponse> =>
    postSigned(`${stack.apiUrl}/webhooks/deploy`, Buffer.from(JSON.stringify(body)), o.secret ?? TEST_ENV.deployWebhookSecret, o);
  const started = (key: string, runId: string) => deployEvent({ ticket: { source: 'servicenow', key }, runId, event: 'started' });
  const finished = (key: string, runId: string, outcome = 'success') => deployEvent({ ticket: { source: 'servicenow', key }, runId, event: 'finished', outcome });

  /** An authorized change whose deploy step is ready. */
  async function readyChange(base: string, path: string, ttl?: string): Promise<{ number: string; sysId: string }> {
    bases.push(base);
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: deployAction(base, path, ttl) });
    await waitFor('the deploy step to be ready', async () => (await stack.closureCheck(number)).data.steps?.[0]?.status === 'verified', 30_000);
    return { number, sysId: change.sys_id as string };
  }

  const runAccounts = (base: string) => accountsOfRuns(stack.admin, base);

  async function served(path: string): Promise<{ status: number; value?: string; version?: number }> {
    const res = await bao.root<{ data: { data: { value: string }; metadata: { version: number } } }>('GET', `secret/data/${fx.kvPrefix}/${path}`, undefined, [404]);
    return res.status === 404 ? { status: 404 } : { status: res.status, value: res.body.data.data.value, version: res.body.data.metadata.version };
  }

  it("mints a run's own credential with exactly the listed grants, delivered and verified; 'finished' revokes it, and the value is in no evidence, history or note", async () => {
    const base = uniqueAccount('dep');
    const path = `apps/${base}/db`;
    const { number, sysId } = await readyChange(base, path);
    const runId = `run-${randomBytes(3).toString('hex')}`;

    const res = await started(number, runId);
    expect(res.status).toBe(201);
    expect(res.data).toMatchObject({ runId, event: 'started', result: 'started', duplicate: false });
    const [cred] = res.data.credentials;
    expect(cred).toMatchObject({ system: 'mysql-local', deliveredTo: { system: 'vault-local', path: `${path}/${runId}` }, status: 'live' });
    expect(cred.identity).toMatch(new RegExp(`^${base}_d[0-9a-f]{10}$`));
    expect(await runAccounts(base)).toEqual([cred.identity]);

    // What the pipeline reads: the value works for exactly the listed grants.
    const kv = await served(`${path}/${runId}`);
    expect(kv.status).toBe(200);
    const value = kv.value as string;
    expect(cred.fingerprint).toBe(fingerprintOf(value));
    expect(cred.version).toBe(kv.version);
    const session = await mysql.createConnection({ host: '127.0.0.1', user: cred.identity, password: value });
    await session.end();
    const grants = await stack.grantsOf(cred.identity);
    expect(grants.filter((g) => !/GRANT USAGE/.test(g)).sort()).toEqual([
      expect.stringContaining('GRANT INSERT ON `cgt_billing`.`invoices`'),
      expect.stringContaining('GRANT SELECT ON `cgt\\_billing`.*'),
    ]);

    // Closure waits for the run's credential, and says which run holds it.
    const blocked = await waitFor('closure blocked by the live run', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed === false && r.data.reasons.some((x: string) => x.includes(runId)) ? r : null;
    });
    expect(blocked.data.reasons.join(' ')).toMatch(/still live/);

    // The run's identity is in the inventory from its verified mint, created by this ticket and holding its grants.
    const inventory = new InventoryStore(stack.ds);
    expect(await inventory.find('mysql-local', cred.identity, '%')).toMatchObject({
      status: 'managed', createdByTicket: `servicenow:${number}`,
      grants: expect.arrayContaining([{ grant: 'SELECT ON `cgt\\_billing`.*', tickets: [`servicenow:${number}`] }]),
    });

    const done = await finished(number, runId);
    expect(done.status).toBe(200);
    expect(done.data).toMatchObject({ result: 'revoked', credentials: [expect.objectContaining({ status: 'revoked' })] });
    expect(await inventory.find('mysql-local', cred.identity, '%')).toMatchObject({ status: 'revoked' });
    expect(await runAccounts(base)).toEqual([]);
    expect((await served(`${path}/${runId}`)).status).toBe(404);
    const again = await finished(number, runId);
    expect(again.status).toBe(200);
    expect(again.data.result).toBe('already-revoked');
    await waitFor('closure allowed once the run is revoked', async () => (await stack.closureCheck(number)).data.allowed === true);

    const rows = await stack.evidence.list(`servicenow:${number}`);
    const runRows = rows.filter((r) => r.stepId.includes(`:run:${runId}`));
    // The claim (the identity was absent before the run created it), the mint, and the revocation as a step of its own.
    expect(runRows.map((r) => [r.stepId.split(`:run:${runId}`)[1], r.outcome, r.verified])).toEqual([['', 'claimed', true], ['', 'minted', true], [':revoke', 'revoked', true]]);
    expect(runRows[2]?.desiredState).toMatchObject({ reason: 'finished:success' });
    const handle = stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`);
    const history = historyText(await handle.fetchHistory());
    const notes = await waitFor('the revocation work note', () => {
      const n = JSON.stringify(stack.sim.journal(sysId));
      return n.includes(`pipeline run ${runId}`) && n.includes('Verified revocation') ? n : null;
    });
    // Positive controls: the fingerprint is in each place, so a search there would find the value if it were.
    expect(history).toContain(cred.fingerprint);
    expect(notes).toContain(cred.fingerprint);
    expect(JSON.stringify(rows)).toContain(cred.fingerprint);
    // Notes first: a note's text also passes through history, so a leak into a note is named as such.
    for (const [where, text] of [['work notes', notes], ['evidence', JSON.stringify(rows)], ['workflow history', history]] as const) {
      expect({ where, leaked: text.includes(value) }).toEqual({ where, leaked: false });
    }
  });

  it('two runs on one ticket each get their own credential, and closure waits for the last', async () => {
    const base = uniqueAccount('dep');
    const path = `apps/${base}/db`;
    const { number } = await readyChange(base, path);
    const [a, b] = [`a-${randomBytes(3).toString('hex')}`, `b-${randomBytes(3).toString('hex')}`];
    const [ra, rb] = await Promise.all([started(number, a), started(number, b)]);
    expect([ra.status, rb.status]).toEqual([201, 201]);
    const [ca, cb] = [ra.data.credentials[0], rb.data.credentials[0]];
    expect(ca.identity).not.toBe(cb.identity);
    expect(ca.deliveredTo.path).toBe(`${path}/${a}`);
    expect(cb.deliveredTo.path).toBe(`${path}/${b}`);
    expect(ca.fingerprint).not.toBe(cb.fingerprint);
    expect(await runAccounts(base)).toEqual([ca.identity, cb.identity].sort());

    expect((await finished(number, a)).status).toBe(200);
    expect(await runAccounts(base)).toEqual([cb.identity]);
    const blocked = await waitFor('closure blocked by run b only', async () => {
      const r = await stack.closureCheck(number);
      const text = (r.data.reasons ?? []).join(' ');
      return r.data.allowed === false && text.includes(b) && !text.includes(a) ? r : null;
    });
    expect(blocked.data.steps[0].cleanup).toMatchObject({ status: 'scheduled' });
    expect((await finished(number, b, 'failure')).status).toBe(200);
    expect(await runAccounts(base)).toEqual([]);
    await waitFor('closure allowed', async () => (await stack.closureCheck(number)).data.allowed === true);
  });

  it("revokes a run's credential when its ttl ends before 'finished' arrives", async () => {
    const base = uniqueAccount('dep');
    const path = `apps/${base}/db`;
    const { number } = await readyChange(base, path, 'PT3S');
    const runId = `ttl-${randomBytes(3).toString('hex')}`;
    const res = await started(number, runId);
    expect(res.status).toBe(201);
    await waitFor('the account dropped at the ttl', async () => (await runAccounts(base)).length === 0, 20_000);
    await waitFor('the delivered secret deleted', async () => (await served(`${path}/${runId}`)).status === 404);
    const row = await waitFor('the ttl revocation evidence', async () => (await stack.evidence.list(`servicenow:${number}`)).find((r) => r.outcome === 'revoked'));
    expect(row).toMatchObject({ verified: true, desiredState: expect.objectContaining({ reason: 'ttl' }) });
    await waitFor('closure allowed', async () => (await stack.closureCheck(number)).data.allowed === true);
    const late = await finished(number, runId);
    expect(late.status).toBe(200);
    expect(late.data.result).toBe('already-revoked');
  });

  it('cancelling the change revokes every live run at once, verified, and a repeated event id changes nothing', async () => {
    const base = uniqueAccount('dep');
    const path = `apps/${base}/db`;
    const { number, sysId } = await readyChange(base, path);
    const eventId = `evt-${randomBytes(6).toString('hex')}`;
    const body = { ticket: { source: 'servicenow', key: number }, runId: 'cancel-1', event: 'started' };
    expect((await deployEvent(body, { eventId })).status).toBe(201);
    const repeat = await deployEvent(body, { eventId });
    expect(repeat.status).toBe(200);
    expect(repeat.data).toEqual({ runId: 'cancel-1', event: 'started', duplicate: true });
    expect(await runAccounts(base)).toHaveLength(1);

    stack.sim.updateChange(sysId, { state: '4' });
    await waitFor('the run account dropped on cancellation', async () => (await runAccounts(base)).length === 0);
    await waitFor('the delivered secret deleted', async () => (await served(`${path}/cancel-1`)).status === 404);
    const row = await waitFor('the cancellation evidence', async () => (await stack.evidence.list(`servicenow:${number}`)).find((r) => r.outcome === 'revoked'));
    expect(row).toMatchObject({ verified: true, desiredState: expect.objectContaining({ reason: 'cancelled' }) });
  });

  it("a deploy holding a privileged grant serves no run (409) until a change manager approves it", async () => {
    const base = uniqueAccount('dep');
    const path = `apps/${base}/db`;
    const number = uniqueTicketNumber();
    bases.push(base);
    const actions = JSON.stringify([{ kind: 'deploy', system: 'mysql-local', identity: { type: 'service_account', name: base, host: '%' }, grants: ['SELECT ON cgt_reporting.*'], ttl: 'PT10M', deliverTo: { system: 'vault-local', path } }]);
    stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: actions });
    const waiting = await waitFor('the deploy step waiting for approval', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.[0]?.status === 'waiting-approval' ? r.data : null;
    });
    const early = await started(number, 'priv-1');
    expect(early.status).toBe(409);
    expect(early.data.error.message).toMatch(/waits for a change manager's approval/);
    expect(await runAccounts(base)).toEqual([]);

    const manager = await stack.tokenFor('change-manager');
    const decided = await axios.post(
      `${stack.apiUrl}/api/changes/servicenow/${number}/steps/${encodeURIComponent(waiting.steps[0].stepId)}/decision`,
      { decision: 'approve', justification: 'release 42 reads the reporting schema' },
      { headers: { authorization: `Bearer ${manager.token}` }, validateStatus: () => true },
    );
    expect(decided.status).toBe(200);
    await waitFor('the deploy step ready once approved', async () => (await stack.closureCheck(number)).data.steps?.[0]?.status === 'verified');
    const res = await started(number, 'priv-2');
    expect(res.status).toBe(201);
    expect(await runAccounts(base)).toEqual([res.data.credentials[0].identity]);
    expect((await finished(number, 'priv-2')).status).toBe(200);
    expect(await runAccounts(base)).toEqual([]);
  });

  it("refuses 'started' before the change is authorized (409) and mints nothing", async () => {
    const base = uniqueAccount('dep');
    const path = `apps/${base}/db`;
    const number = uniqueTicketNumber();
    bases.push(base);
    stack.sim.createChange({ number, state: '-3', approval: 'requested', u_identity_actions: deployAction(base, path) });
    await waitFor('the ticket to reach its workflow', async () => (await stack.closureCheck(number)).status === 200);
    const res = await started(number, 'early-1');
    expect(res.status).toBe(409);
    expect(res.data.error.message).toMatch(/not authorized/);
    expect(await runAccounts(base)).toEqual([]);
    expect((await served(`${path}/early-1`)).status).toBe(404);
    const state = await stack.workflows.status('servicenow', number);
    expect(state?.steps[0]?.deploy?.runs ?? []).toEqual([]);
  });

  it("never takes over an account that already bears the run's name: 409, the account untouched, nothing delivered", async () => {
    const base = uniqueAccount('dep');
    const path = `apps/${base}/db`;
    const { number } = await readyChange(base, path);
    const actionId = String((await stack.closureCheck(number)).data.steps[0].stepId).split(':')[1] as string;
    const runId = 'taken-1';
    const name = runIdentityName(base, `servicenow:${number}`, actionId, runId);
    await createAccount(stack.admin, name);
    const before = await stack.grantsOf(name);
    const res = await started(number, runId);
    expect(res.status).toBe(409);
    expect(res.data.error.message).toMatch(/already exists, so it is not this run's own credential/);
    expect(await stack.grantsOf(name)).toEqual(before);
    expect((await served(`${path}/${runId}`)).status).toBe(404);
    await waitFor('closure allowed: nothing of the run is live', async () => (await stack.closureCheck(number)).data.allowed === true);
  });

  it("never takes over an account that bears the run's name because a forged row claims the gateway created it: 409, the account untouched", async () => {
    const base = uniqueAccount('dep');
    const path = `apps/${base}/db`;
    const { number } = await readyChange(base, path);
    const stepId = String((await stack.closureCheck(number)).data.steps[0].stepId);
    const runId = 'forged-claim-1';
    const name = runIdentityName(base, `servicenow:${number}`, stepId.split(':')[1] as string, runId);
    await createAccount(stack.admin, name);
    const before = await stack.grantsOf(name);
    // The claim a mint records before creating the run's identity, forged with the application account: linked to
    // the ticket's chain, hashed as the gateway hashes, without the gateway's seal.
    await asApplicationAccount(stack.admin, async (app) => {
      const [[head]] = await app.query<mysql.RowDataPacket[]>('SELECT seq, hash, canonical FROM evidence_records WHERE ticket_key = ? ORDER BY seq DESC LIMIT 1', [`servicenow:${number}`]);
      const at = new Date().toISOString();
      await insertEvidenceRow(app, {
        ...JSON.parse(String(head!.canonical)), seq: Number(head!.seq) + 1, prevHash: String(head!.hash), recordedAt: at, stepId: `${stepId}:run:${runId}`, outcome: 'claimed',
        identity: { type: 'service_account', name, host: '%' }, desiredState: { exists: false, run: runId }, observedState: { exists: false, grants: [] }, verified: true,
      });
    });
    const res = await started(number, runId);
    expect(res.status).toBe(409);
    expect(res.data.error.message).toMatch(/already exists, so it is not this run's own credential/);
    expect(await stack.grantsOf(name)).toEqual(before);
    expect((await served(`${path}/${runId}`)).status).toBe(404);
  });

  it('refuses a bad signature or a stale timestamp (401) and changes nothing', async () => {
    const base = uniqueAccount('dep');
    const path = `apps/${base}/db`;
    const { number } = await readyChange(base, path);
    const body = { ticket: { source: 'servicenow', key: number }, runId: 'forged-1', event: 'started' };
    const forged = await deployEvent(body, { secret: 'not-the-deploy-secret-000' });
    expect(forged.status).toBe(401);
    // The ServiceNow secret is not the pipelines' secret.
    expect((await deployEvent(body, { secret: TEST_ENV.webhookSecret })).status).toBe(401);
    const stale = await deployEvent(body, { timestamp: Math.floor(Date.now() / 1000) - 600 });
    expect(stale.status).toBe(401);
    expect(stale.data.error.message).toMatch(/stale-timestamp/);
    const future = await deployEvent(body, { timestamp: Math.floor(Date.now() / 1000) + 600 });
    expect(future.status).toBe(401);
    expect(await runAccounts(base)).toEqual([]);
    const state = await stack.workflows.status('servicenow', number);
    expect(state?.steps[0]?.deploy?.runs ?? []).toEqual([]);
  });

  it("answers 'finished' for an unknown run or ticket with 404 and the reason, and names an invalid field with 400", async () => {
    const base = uniqueAccount('dep');
    const { number } = await readyChange(base, `apps/${base}/db`);
    const unknownRun = await finished(number, 'never-started');
    expect(unknownRun.status).toBe(404);
    expect(unknownRun.data.error.message).toMatch(/no pipeline run 'never-started' was started on CHG/);
    const unknownTicket = await finished(uniqueTicketNumber(), 'r1');
    expect(unknownTicket.status).toBe(404);
    expect(unknownTicket.data.error.message).toMatch(/has not received change/);
    const bad = await deployEvent({ ticket: { source: 'servicenow', key: number }, runId: '../etc', event: 'started' });
    expect(bad.status).toBe(400);
    expect(bad.data.error.issues).toEqual([expect.objectContaining({ path: 'runId' })]);
    const badEvent = await deployEvent({ ticket: { source: 'servicenow', key: number }, runId: 'r1', event: 'halfway' });
    expect(badEvent.status).toBe(400);
    expect(badEvent.data.error.issues).toEqual([expect.objectContaining({ path: 'event' })]);
  });
});

/**
 * Deploy under faults, on the same real parts: the stack's worker is the test's, with an attempt of an activity failed
 * before it acts or its answer lost after it acted, a target that acknowledges what it does not do, a target whose
 * port goes away, and a ticket that refuses a note.
 */
describe('deploy under faults: retried mints, failed cleanups and notes the ticket refuses', () => {
  let bao: OpenBao;
  let fx: VaultFixture;
  let stack: Stack;
  let worker: { stop(): Promise<void> };
  let proxy: Awaited<ReturnType<typeof ticketProxy>>;
  /** The machine's MariaDB as the FLAKY connector, behind a port a test takes away. */
  let flaky: FlakyPort;
  const FLAKY = 'mysql-deploy-flaky';
  /** Base names of the tickets whose target acknowledges grants and removals it does not (quite) carry out. */
  const unfaithful = new Set<string>();
  /** Tickets (sys_id) whose revocation notes ServiceNow refuses. */
  const refusesRevocationNotes = new Set<string>();
  const bases: string[] = [];
  const runIs = (prefix: string) => ([input]: unknown[]) => String((input as { runId?: string }).runId ?? '').startsWith(prefix);
  const lostAnswer = failFirstAttempt('mintDeployCredential', 'after', runIs('lost-'));
  const failedBefore = failFirstAttempt('mintDeployCredential', 'before', runIs('taken-'));
  const EXTRA = 'UPDATE ON `cgt_billing`.`invoices`';

  beforeAll(async () => {
    bao = await startOpenBao();
    fx = await setupVaultFixture(bao);
    flaky = await startFlakyPort({ host: '127.0.0.1', port: TEST_ENV.mariadbPort });
    const vault = [
      vaultConnectorEntry(bao, fx, 'CG_TEST_DEPLOY_VAULT_TOKEN'),
      { name: FLAKY, type: 'mysql', host: '127.0.0.1', port: flaky.port, user: TEST_ENV.connectorUser, passwordEnv: 'CG_TEST_CONNECTOR_PASSWORD', policy: { protectedAccounts: ['root', 'mysql', 'mariadb.sys'] } },
    ];
    stack = await startStack({ inProcessWorker: false, extraConnectors: vault });
    proxy = await ticketProxy(stack.simUrl, (req) => {
      const notes = JSON.stringify(req.body.work_notes ?? '');
      return req.method === 'PATCH' && [...refusesRevocationNotes].some((id) => req.path.includes(id)) && notes.includes('Verified revocation') ? 'refuse' : undefined;
    });
    worker = await startTestWorker(stack, {
      extraConnectors: vault,
      interceptors: [lostAnswer.interceptor, failedBefore.interceptor],
      servicenowUrl: proxy.url,
      registry: (real) =>
        Object.assign(Object.create(real) as ConnectorRegistry, {
          get(system: string): Connector {
            const c = real.get(system);
            const faithless = (id: IdentityRef) => system === 'mysql-local' && [...unfaithful].some((b) => id.name.startsWith(`${b}_d`));
            return Object.assign(Object.create(c) as Connector, {
              // One grant more than asked for: the mint's read-back finds it and the mint is not verified.
              provision: (id: IdentityRef, grants: string[]) => c.provision(id, faithless(id) ? [...grants, EXTRA] : grants),
              // Acknowledged, not done: the revocation's read-back still finds the account.
              remove: async (id: IdentityRef) => (faithless(id) ? { changed: true, detail: `removed '${id.name}' (acknowledged only)` } : c.remove(id)),
            });
          },
        }),
    });
  });
  afterAll(async () => {
    for (const base of bases) await dropRunAccounts(stack.admin, base);
    await worker?.stop();
    await proxy?.close();
    await stack?.stop();
    await flaky?.stop();
    await fx?.cleanup();
    await bao?.stop();
  });

  const event = (key: string, runId: string, what: 'started' | 'finished') =>
    postSigned(`${stack.apiUrl}/webhooks/deploy`, Buffer.from(JSON.stringify({ ticket: { source: 'servicenow', key }, runId, event: what, ...(what === 'finished' ? { outcome: 'success' } : {}) })), TEST_ENV.deployWebhookSecret);
  async function readyChange(o: { ttl?: string; system?: string } = {}): Promise<{ base: string; path: string; number: string; sysId: string; actionId: string }> {
    const base = uniqueAccount('depf');
    bases.push(base);
    const path = `apps/${base}/db`;
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: deployAction(base, path, o.ttl, o.system) });
    const ready = await waitFor('the deploy step to be ready', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.[0]?.status === 'verified' ? r.data : null;
    }, 30_000);
    return { base, path, number, sysId: change.sys_id as string, actionId: String(ready.steps[0].stepId).split(':')[1] as string };
  }
  const runRows = async (number: string, runId: string) =>
    (await stack.evidence.list(`servicenow:${number}`)).filter((r) => r.stepId.includes(`:run:${runId}`)).map((r) => ({ ...r, part: r.stepId.split(`:run:${runId}`)[1] }));
  const servedVersion = async (path: string) =>
    (await bao.root<{ data: { metadata: { version: number } } }>('GET', `secret/data/${fx.kvPrefix}/${path}`, undefined, [404])).body?.data?.metadata?.version;

  it('a mint whose answer was lost after it minted is answered from its evidence: one credential, delivered once, not refused as foreign', async () => {
    const { base, path, number } = await readyChange();
    const runId = `lost-${randomBytes(3).toString('hex')}`;
    const res = await event(number, runId, 'started');
    expect(res.status).toBe(201);
    expect(lostAnswer.hits()).toBeGreaterThanOrEqual(1);
    const [cred] = res.data.credentials;
    const rows = await runRows(number, runId);
    // The credential the run was told about is the one the evidence recorded and the store serves: minted once.
    expect(await servedVersion(`${path}/${runId}`)).toBe(1);
    expect(cred.fingerprint).toBe(rows.find((r) => r.outcome === 'minted')?.observedState.fingerprint);
    expect(rows.map((r) => [r.part, r.outcome, r.verified])).toEqual([['', 'claimed', true], ['', 'minted', true]]);
    expect(await accountsOfRuns(stack.admin, base)).toEqual([cred.identity]);
    expect((await event(number, runId, 'finished')).status).toBe(200);
  });

  it('a mint retried after its first attempt failed before acting still refuses an account that already bears the run name', async () => {
    const { base, path, number, actionId } = await readyChange();
    const runId = `taken-${randomBytes(3).toString('hex')}`;
    const name = runIdentityName(base, `servicenow:${number}`, actionId, runId);
    await createAccount(stack.admin, name);
    const before = await stack.grantsOf(name);
    const res = await event(number, runId, 'started');
    expect(failedBefore.hits()).toBeGreaterThanOrEqual(1);
    expect(res.status).toBe(409);
    expect(res.data.error.message).toMatch(/already exists, so it is not this run's own credential/);
    expect(await stack.grantsOf(name)).toEqual(before);
    expect(await servedVersion(`${path}/${runId}`)).toBeUndefined();
    expect((await runRows(number, runId)).map((r) => r.outcome)).not.toContain('claimed');
  });

  it('a mint that fails and whose cleanup revocation fails too leaves a failed row for each, and closure names the failed revocation', async () => {
    const { base, number } = await readyChange();
    unfaithful.add(base);
    const runId = `broken-${randomBytes(3).toString('hex')}`;
    const res = await event(number, runId, 'started');
    expect(res.status).toBeGreaterThanOrEqual(400);
    await waitFor('closure blocked by the failed revocation', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed === false && (r.data.reasons ?? []).some((x: string) => x.includes(`revoking the credential of pipeline run ${runId} failed`)) ? r : null;
    });
    const rows = await runRows(number, runId);
    expect(rows.map((r) => [r.part, r.outcome, r.verified])).toEqual([['', 'claimed', true], ['', 'failed', false], [':revoke', 'failed', false]]);
    expect(JSON.stringify(rows[1]?.verification)).toContain(`grant beyond the listed ones: ${EXTRA}`);
    expect(rows[2]?.desiredState).toMatchObject({ exists: false, reason: 'mint-failed' });
  });

  it('a revocation note the ticket refuses keeps closure blocked: the gate never shows the ticket closable without it', async () => {
    const { number, sysId } = await readyChange();
    refusesRevocationNotes.add(sysId);
    const runId = `note-${randomBytes(3).toString('hex')}`;
    expect((await event(number, runId, 'started')).status).toBe(201);
    // A deploy with no live credential lets the ticket close (the gate said so before the run); from the run's end on
    // the ticket may be told so again only together with the run's revocation note.
    const ended = proxy.seen.length;
    expect((await event(number, runId, 'finished')).status).toBe(200);
    await waitFor('the refused revocation note', () => proxy.seen.some((w) => w.path.includes(sysId) && w.status === 403));
    const blocked = await waitFor('closure blocked by the unwritten note', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed === false && (r.data.reasons ?? []).some((x: string) => /evidence could not be written to the ticket/.test(x)) ? r : null;
    });
    expect(blocked.data.allowed).toBe(false);
    // Nothing told the ticket it may close once the run ended: no write that set the gate to verified was accepted.
    const opened = proxy.seen.slice(ended).filter((w) => w.path.includes(sysId) && w.status !== undefined && w.status < 300 && w.body[GATE_FIELD] === 'verified');
    expect(opened).toEqual([]);
    expect(stack.sim.getChange(sysId)?.[GATE_FIELD]).not.toBe('verified');
  });

  it("a revocation that fails while its target is unreachable is a failed row, tried again until it is revoked: on its timer once the target is back, or at once on the run's 'finished'", async () => {
    const { number, sysId } = await readyChange({ system: FLAKY, ttl: 'PT5S' });
    const suffix = randomBytes(3).toString('hex');
    // `timed` is left to the retry timer; `told` gets a 'finished' while the target is away and again once it is back.
    const [timed, told] = [`gone-${suffix}`, `told-${suffix}`];
    const starts = await Promise.all([event(number, timed, 'started'), event(number, told, 'started')]);
    expect(starts.map((r) => r.status)).toEqual([201, 201]);
    const identity = { [timed]: String(starts[0].data.credentials[0].identity), [told]: String(starts[1].data.credentials[0].identity) };
    const accounts = async () => {
      const [rows] = await stack.admin.query<mysql.RowDataPacket[]>('SELECT User AS u FROM mysql.user WHERE User IN (?, ?)', [identity[timed], identity[told]]);
      return rows.map((r) => String(r.u)).sort();
    };
    const revokeRows = async (runId: string) => (await runRows(number, runId)).filter((r) => r.part === ':revoke');
    const report = async () =>
      (await axios.get(`${stack.apiUrl}/api/reports/deploy-credentials?system=${FLAKY}`, { headers: { authorization: `Bearer ${(await stack.tokenFor('auditor')).token}` } })).data;

    // Gone before the ttl ends: each revocation's every attempt finds the port closed (about a minute of back-off).
    await flaky.down();
    const firstFailures = await waitFor('a failed revocation row for each run', async () => {
      const rows = await Promise.all([revokeRows(timed), revokeRows(told)]);
      return rows.every((r) => r.length > 0) ? rows.map((r) => r[0]!) : null;
    }, 150_000, 500);
    for (const [runId, row] of [[timed, firstFailures[0]], [told, firstFailures[1]]] as const) {
      expect(row).toMatchObject({ outcome: 'failed', verified: false, system: FLAKY, identity: expect.objectContaining({ name: identity[runId] }), desiredState: { exists: false } });
      expect(String(row.verification.error)).toMatch(/ECONNREFUSED/);
    }
    // Closure names each run, says that it is tried again, and when.
    const blocked = await waitFor('closure naming both runs as retrying', async () => {
      const r = await stack.closureCheck(number);
      const says = (runId: string) => (r.data.reasons ?? []).some((x: string) =>
        new RegExp(`revoking the credential of pipeline run ${runId} failed: .*; retrying \\(attempt \\d+ failed; next at \\d{4}-\\d\\d-\\d\\dT[^)]+\\)$`).test(x));
      return r.data.allowed === false && says(timed) && says(told) ? r.data : null;
    });
    expect(blocked.steps[0].cleanup).toMatchObject({ status: 'scheduled', detail: expect.stringMatching(new RegExp(`run ${timed} tried again at`)) });
    expect(blocked.steps[0].detail).toMatch(/2 failed \(run .* tried again at /);
    // The dashboard: both credentials live, their revocation failed.
    const failing = await report();
    expect(failing.credentials.filter((c: { ticket: string }) => c.ticket === number).map((c: { runId: string; revocationFailed: boolean }) => [c.runId, c.revocationFailed]).sort())
      .toEqual([[timed, true], [told, true]].sort());

    // A 'finished' while the target is still away tries once more at once, fails (502) and says when it is tried next.
    const early = await event(number, told, 'finished');
    expect([early.status, early.data.error?.code]).toEqual([502, 'DEPLOY_FAILED']);
    expect(early.data.error.message).toMatch(new RegExp(`revoking the credential of pipeline run '${told}' failed: .*ECONNREFUSED.* \\(attempt \\d+ failed; tried again at \\S+\\)`));
    expect(await accounts()).toEqual([identity[timed], identity[told]].sort());

    await flaky.up();
    // Back: the run's 'finished' revokes it now, not at its next retry (at least 20 s away after the 502's attempt).
    const done = await event(number, told, 'finished');
    expect(done.status).toBe(200);
    expect(done.data).toMatchObject({ result: 'revoked', credentials: [expect.objectContaining({ status: 'revoked' })] });
    expect(await accounts()).not.toContain(identity[told]);
    // The other run's retry timer (10 s after its first failure, doubling) revokes it within its back-off.
    await waitFor("the timed run's account removed by its retry", async () => (await accounts()).length === 0, 60_000, 500);
    for (const runId of [timed, told]) {
      const rows = await revokeRows(runId);
      // The failure stays in the chain (one row per step and outcome: the attempts after it that failed too return
      // it), and the verified revocation follows it.
      expect(rows.map((r) => [r.outcome, r.verified])).toEqual([['failed', false], ['revoked', true]]);
      expect(rows[1]).toMatchObject({ desiredState: expect.objectContaining({ exists: false, run: runId, reason: 'ttl' }) });
    }
    await waitFor('closure allowed once both are revoked', async () => (await stack.closureCheck(number)).data.allowed === true);
    const late = await event(number, timed, 'finished');
    expect([late.status, late.data.result]).toEqual([200, 'already-revoked']);
    // The dashboard counts them revoked, not live.
    const after = await report();
    expect(after.credentials.filter((c: { ticket: string }) => c.ticket === number)).toEqual([]);
    expect([after.revoked - failing.revoked, after.live - failing.live, after.failedRevocations - failing.failedRevocations]).toEqual([2, -2, -2]);
    // The work notes say that the revocation failed, is tried again, and was revoked in the end.
    await waitFor('the retried revocation notes', () => {
      const notes = JSON.stringify(stack.sim.journal(sysId));
      return [timed, told].every((runId) => notes.includes(`Verified revocation (ttl): deploy`) && new RegExp(`pipeline run ${runId} — [^"]*It had failed \\d+ time\\(s\\) before and was tried again`).test(notes))
        && notes.includes('it is tried again (next at');
    });
    const described = await stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`).describe();
    expect(described.status.name).toBe('RUNNING');
  }, 300_000);
});

/**
 * Deploy when the worker process dies in the middle of a mint: the stack's workers are real worker processes, and the
 * target is reached through a port that can stall what a worker sends, to hold the mint in its call.
 */
describe('deploy with a worker lost mid-mint', () => {
  let bao: OpenBao;
  let fx: VaultFixture;
  let stack: Stack;
  let flaky: FlakyPort;
  let extra: ConnectorsFile['connectors'];
  const STALLED = 'mysql-deploy-stalled';
  const children: ChildProcess[] = [];
  const bases: string[] = [];
  beforeAll(async () => {
    bao = await startOpenBao();
    fx = await setupVaultFixture(bao);
    flaky = await startFlakyPort({ host: '127.0.0.1', port: TEST_ENV.mariadbPort });
    extra = [vaultConnectorEntry(bao, fx, 'CG_TEST_DEPLOY_VAULT_TOKEN'), { ...connectorsFile().connectors[0]!, name: STALLED, port: flaky.port }];
    stack = await startStack({ inProcessWorker: false, extraConnectors: extra });
  });
  afterAll(async () => {
    for (const c of children) await killHard(c);
    for (const base of bases) await dropRunAccounts(stack.admin, base);
    await stack?.stop();
    flaky?.release();
    await flaky?.stop();
    await fx?.cleanup();
    await bao?.stop();
  });

  it('the mint heartbeats, so a worker lost in its call is noticed in seconds: the mint is retried on a new worker and the run gets one credential', async () => {
    children.push(await startWorkerProcess(stack, extra));
    const base = uniqueAccount('deph');
    bases.push(base);
    const path = `apps/${base}/db`;
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: deployAction(base, path, 'PT10M', STALLED) });
    await waitFor('the deploy step to be ready', async () => (await stack.closureCheck(number)).data.steps?.[0]?.status === 'verified', 30_000);

    // Nothing the worker sends reaches MariaDB from now on: the mint starts and hangs in its call.
    flaky.hold();
    const runId = `hb-${randomBytes(3).toString('hex')}`;
    const reply = postSigned(`${stack.apiUrl}/webhooks/deploy`, Buffer.from(JSON.stringify({ ticket: { source: 'servicenow', key: number }, runId, event: 'started' })), TEST_ENV.deployWebhookSecret);
    const handle = stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`);
    // PendingActivityState STARTED (2): a worker has the mint, is in its call, and says it is alive.
    await waitFor('the mint running and heartbeating', async () => {
      const pending = (await handle.describe()).raw.pendingActivities ?? [];
      return pending.some((a) => a.activityType?.name === 'mintDeployCredential' && Number(a.state) === 2 && a.lastHeartbeatTime);
    }, 30_000);
    await killHard(children[0]!);
    flaky.release();

    children.push(await startWorkerProcess(stack, extra));
    // Within the heartbeat timeout (15 s) and a retry, not the 2-minute start-to-close timeout.
    const minted = await waitFor('the run minted', async () => {
      const rows = (await stack.evidence.list(`servicenow:${number}`)).filter((r) => r.stepId.endsWith(`:run:${runId}`));
      return rows.some((r) => r.outcome === 'minted') ? rows : null;
    }, 45_000);
    expect(minted.map((r) => [r.outcome, r.verified])).toEqual([['claimed', true], ['minted', true]]);
    const res = await reply;
    expect(res.status).toBe(201);
    // Scheduled once, and the attempt that completed was the second: the first died with its worker.
    expect(attemptsOf((await handle.fetchHistory()).events ?? [], 'mintDeployCredential')).toEqual([2]);
  }, 150_000);
});
