import { createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WorkflowNotFoundError } from '@temporalio/client';
import axios from 'axios';
import type mysql from 'mysql2/promise';
import { certificationId, certificationWorkflowId } from '../src/certification/certification';
import { InventoryStore } from '../src/inventory/inventory-store';
import type { PolicyInput } from '../src/policy/policy';
import { runScheduledDiscovery } from './support/discovery';
import { type LdapTestServer, LDAP_BASE_DN, ldapConnectorEntry, startLdapServer } from './support/servers/ldap';
import { type OpenBao, setupVaultFixture, startOpenBao, type VaultFixture, vaultConnectorEntry } from './support/servers/openbao';
import { TEST_ENV } from './support/test-env';
import { createAccount, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';

type Item = {
  id: string; system: string; name: string; owner: string | null; workload: string | null; grants: string[]; trigger: string; reference: string;
  reviewer: Record<string, string>; dueAt: string; status: string; decisions: Array<{ grant: string; decision: string }> | null; change: string | null;
  decidedBy: { name: string } | null; revocationError: string | null;
};

const SELECT = 'SELECT ON `cgt\\_billing`.*';
const INSERT = 'INSERT ON `cgt_billing`.`invoices`';
const UPDATE = 'UPDATE ON `cgt_billing`.`invoices`';

/** The directory user `alice` is any principal named alice-*: an owner who must not certify her own identities. */
const ALICE = 'alice';

/**
 * Statements waiting on a lock of certification_items, as InnoDB lists them. MariaDB serves INNODB_TRX from a cache it
 * refreshes only when the last read is over 100 ms old: a probe polled faster would read the first snapshot forever.
 */
async function itemLockWaits(stack: Stack): Promise<number> {
  // Only this run's database: another database's waits on a table of that name are not this test's.
  const [rows] = await stack.admin.query<mysql.RowDataPacket[]>(
    "SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id WHERE t.trx_state = 'LOCK WAIT' AND t.trx_query LIKE '%certification_items%' AND p.DB = ?",
    [TEST_ENV.database],
  );
  return Number(rows[0]?.n);
}
const LOCK_WAIT_POLL_MS = 250;

function certificationPolicy(due: string): PolicyInput {
  return {
    version: 1,
    people: [{ source: 'directory', user: ALICE, principal: 'alice-*' }],
    drift: [{ system: 'mysql-local', on: { 'extra-grant': 'certify' } }],
    certification: { triggers: { 'owner-change': true, reassign: true, mover: true, rotation: true }, reviewer: { role: 'security-reviewer' }, due },
  };
}

/** The helpers each stack's tests use: the API as a given token, the item list, one item. */
function client(stack: Stack) {
  const api = (token: string, method: 'GET' | 'POST' | 'PATCH', path: string, data?: unknown) =>
    axios.request({ method, url: `${stack.apiUrl}${path}`, data, headers: { authorization: `Bearer ${token}` }, validateStatus: () => true });
  return {
    api,
    async items(token: string, query = ''): Promise<Item[]> {
      const res = await api(token, 'GET', `/api/certifications?limit=500${query}`);
      expect(res.status).toBe(200);
      return res.data.items as Item[];
    },
    /** Names an orphan's owner (and workload) through the API, as an operator: the owner-change trigger. */
    async attribute(operator: string, system: string, name: string, set: { owner?: string; workload?: string }) {
      expect((await api(operator, 'POST', '/api/inventory/scan', { systems: [system] })).status).toBe(200);
      const row = await new InventoryStore(stack.ds).find(system, name, '%');
      expect(row).toMatchObject({ status: 'orphan' });
      const patched = await api(operator, 'PATCH', `/api/inventory/${row!.id}`, set);
      expect(patched.status).toBe(200);
      return patched.data as { certification?: string };
    },
  };
}

/**
 * Event-driven certification on the real parts (Temporal dev server, MariaDB as target and store, the ServiceNow
 * simulator, OpenBao for the rotation): each trigger opens an item with the grants read back from the target, the
 * item's workflow takes the reviewer's decision as an update whose validator refuses what must not be decided, and a
 * revoke runs as a standard change that is read back like any other.
 */
describe('certification: opened by what changed, decided by the reviewer, revocations carried out by a change', () => {
  let stack: Stack;
  let bao: OpenBao;
  let fx: VaultFixture;
  let reviewer: string;
  let operator: string;
  let c: ReturnType<typeof client>;

  beforeAll(async () => {
    bao = await startOpenBao();
    fx = await setupVaultFixture(bao);
    stack = await startStack({ policy: certificationPolicy('PT1H'), extraConnectors: [vaultConnectorEntry(bao, fx, 'CG_TEST_CERTIFICATION_VAULT_TOKEN')] });
    reviewer = (await stack.tokenFor('security-reviewer')).token;
    operator = (await stack.tokenFor('operator')).token;
    c = client(stack);
  });
  afterAll(async () => {
    await stack?.stop();
    await fx?.cleanup();
    await bao?.stop();
  });

  const itemFor = (name: string, trigger: string) =>
    waitFor(`the ${trigger} certification item of ${name}`, async () => (await c.items(reviewer, '&system=mysql-local')).find((i) => i.name === name && i.trigger === trigger), 30_000);

  it('a verified mover opens an item with the grants read back now; revoking one opens a standard change whose mover takes it away, verified on MariaDB', async () => {
    const account = uniqueAccount('cmv');
    await createAccount(stack.admin, account, [SELECT, INSERT]);
    const number = uniqueTicketNumber();
    stack.sim.createChange({
      number, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*', 'INSERT ON cgt_billing.invoices'] }]),
    });
    const item = await itemFor(account, 'mover');
    expect(item).toMatchObject({ status: 'open', grants: [INSERT, SELECT], reference: expect.stringMatching(new RegExp(`^servicenow:${number}#mover:`)), reviewer: { kind: 'role', role: 'security-reviewer' } });
    expect(Date.parse(item.dueAt) - Date.now()).toBeGreaterThan(50 * 60_000);

    // Granted after the item opened: not the item's to decide, so its revocation leaves it alone.
    await stack.admin.query('GRANT UPDATE ON `cgt_billing`.`invoices` TO ?@?', [account, '%']);
    const decided = await c.api(reviewer, 'POST', `/api/certifications/${item.id}/decision`, { decisions: [{ grant: SELECT, decision: 'keep' }, { grant: INSERT, decision: 'revoke' }], justification: 'inserts are the batch job\'s, not this service\'s' });
    expect(decided.status).toBe(200);
    expect(decided.data).toMatchObject({ id: item.id, status: 'revoking' });
    const revoking = await waitFor('the revocation change named on the item', async () => (await c.items(reviewer)).find((i) => i.id === item.id && i.change !== null), 30_000);
    expect(revoking.change).toMatch(/^servicenow:CHG\d+$/);
    const changeNumber = String(revoking.change).slice('servicenow:'.length);
    const [change] = (await axios.get(`${stack.simUrl}/api/now/table/change_request`, { params: { sysparm_query: `number=${changeNumber}` }, auth: { username: 'changegate-int', password: 'sn-test-password-42' } })).data.result as Array<Record<string, string>>;
    expect(change).toMatchObject({ type: 'standard', correlation_id: `changegate-certification-${item.id}` });
    expect(JSON.parse(String(change?.u_identity_actions))).toEqual([{ kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: [SELECT, UPDATE] }]);

    // The change runs like any other: its mover is read back and evidenced, and closure opens.
    await waitFor('the revocation change verified', async () => (await stack.closureCheck(changeNumber)).data.allowed === true, 60_000);
    const held = (await stack.grantsOf(account)).join('\n');
    expect(held).not.toMatch(/INSERT/);
    expect(held).toMatch(/SELECT ON `cgt\\_billing`/);
    expect(held).toMatch(/UPDATE ON `cgt_billing`\.`invoices`/);
    const moved = (await stack.evidence.list(`servicenow:${changeNumber}`)).find((r) => r.actionKind === 'mover' && r.verified);
    expect(moved).toMatchObject({ verified: true, desiredState: { mustNotHave: [INSERT] } });
    // The gateway's own revocation change opens no certification of its mover (its trigger ran before closure opened).
    const own = certificationId({ trigger: 'mover', reference: `servicenow:${changeNumber}#${String(moved?.stepId)}`, system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' } });
    await expect(stack.workflows.client.workflow.getHandle(certificationWorkflowId(own)).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    // The item's own chain: opened with the read-back, the reviewer's decision naming the principal, the change opened.
    const chain = await stack.evidence.list(`certification:${item.id}`);
    expect(chain.map((r) => r.outcome)).toEqual(['certification-opened', 'certification-decided', 'revocation-opened']);
    expect(chain[0]?.observedState).toMatchObject({ grants: [INSERT, SELECT], trigger: 'mover' });
    expect(chain[1]).toMatchObject({ principal: { kind: 'token' }, desiredState: { keep: [SELECT], revoke: [INSERT] } });
    expect(await stack.evidence.verifyChain(`certification:${item.id}`)).toMatchObject({ valid: true });
  }, 120_000);

  it('an owner named through the API opens an item; the decision refuses the wrong role, the owner, the identity itself, a missing justification, an unknown grant or item, and a second decision', async () => {
    const account = uniqueAccount('cow');
    await createAccount(stack.admin, account, [SELECT]);
    const { certification } = await c.attribute(operator, 'mysql-local', account, { owner: ALICE });
    expect(certification).toMatch(/^[0-9a-f]{32}$/);
    const item = await itemFor(account, 'owner-change');
    expect(item).toMatchObject({ id: certification, owner: ALICE, grants: [SELECT], reference: expect.stringMatching(/^inventory-identity:\d+#\d+$/) });
    const decide = (token: string, body: unknown, id = item.id) => c.api(token, 'POST', `/api/certifications/${id}/decision`, body);
    const keep = { decisions: [{ grant: SELECT, decision: 'keep' }], justification: 'still needed for invoicing' };

    const manager = (await stack.tokenFor('change-manager')).token;
    const wrongRole = await decide(manager, keep);
    expect([wrongRole.status, wrongRole.data.error.message]).toEqual([403, 'only a principal with the role security-reviewer reviews this item']);
    const alice = await stack.tokens.create(`alice-${randomBytes(4).toString('hex')}`, ['security-reviewer'], 'test');
    const self = await decide(alice.token, keep);
    expect([self.status, self.data.error.message]).toEqual([403, 'the owner of the identity may not certify its access (self-certification)']);
    // The identity's own principal (a token named as the account, as a workload might hold) does not certify itself either.
    const itself = await stack.tokens.create(account, ['security-reviewer'], 'test');
    const selfIdentity = await decide(itself.token, keep);
    expect([selfIdentity.status, selfIdentity.data.error.message]).toEqual([403, 'an identity may not certify its own access (self-certification)']);
    const noWhy = await decide(reviewer, { decisions: keep.decisions });
    expect([noWhy.status, noWhy.data.error.message]).toEqual([400, 'justification: a decision needs one']);
    const otherGrant = await decide(reviewer, { ...keep, decisions: [...keep.decisions, { grant: INSERT, decision: 'revoke' }] });
    expect(otherGrant.status).toBe(400);
    expect(otherGrant.data.error.message).toMatch(/^decisions\.1\.grant: 'INSERT ON `cgt_billing`\.`invoices`' is not a grant of this item/);
    const missing = await decide(reviewer, { decisions: [], justification: 'x' });
    expect([missing.status, missing.data.error.message]).toEqual([400, `decisions: every grant of the item needs a decision; missing: ${SELECT}`]);
    const unknown = await decide(reviewer, keep, randomBytes(16).toString('hex'));
    expect(unknown.status).toBe(404);
    const badBody = await decide(reviewer, { decisions: [{ grant: SELECT, decision: 'maybe' }], justification: 'x' });
    expect([badBody.status, badBody.data.error.issues]).toEqual([400, [{ path: 'decisions[0].decision', message: "must be 'keep' or 'revoke'" }]]);
    // Refused decisions left no trace in the item's chain.
    expect((await stack.evidence.list(`certification:${item.id}`)).map((r) => r.outcome)).toEqual(['certification-opened']);

    const kept = await decide(reviewer, keep);
    expect([kept.status, kept.data.status]).toEqual([200, 'certified']);
    const again = await decide(reviewer, keep);
    expect(again.status).toBe(409);
    expect((await c.items(reviewer, '&status=certified')).find((i) => i.id === item.id)).toMatchObject({ decisions: keep.decisions, decidedBy: { name: expect.stringMatching(/^t-security-reviewer-/) } });
    // Nothing was revoked.
    expect((await stack.grantsOf(account)).join('\n')).toMatch(/SELECT ON `cgt\\_billing`/);
  }, 90_000);

  it('a leaver by owner that hands a serving account over opens an item for its new owner', async () => {
    const account = uniqueAccount('cra');
    await createAccount(stack.admin, account, [SELECT]);
    const owner = `jdoe-${randomBytes(4).toString('hex')}`;
    await c.attribute(operator, 'mysql-local', account, { owner, workload: `orders-${randomBytes(4).toString('hex')}` });
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state: '-5', u_identity_actions: JSON.stringify([{ kind: 'leaver', owner, reassignTo: 'team-orders' }]) });
    const item = await itemFor(account, 'reassign');
    expect(item).toMatchObject({ owner: 'team-orders', grants: [SELECT], status: 'open', reference: expect.stringMatching(new RegExp(`^servicenow:${number}#`)) });
  }, 90_000);

  it('drift under `certify` opens an item for the identity and names it on the finding', async () => {
    const account = uniqueAccount('cdr');
    const granting = uniqueTicketNumber();
    stack.sim.createChange({
      number: granting, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT1H' }]),
    });
    await waitFor('the grant verified', async () => (await stack.closureCheck(granting)).data.steps?.[0]?.status === 'verified', 30_000);
    await stack.admin.query('GRANT INSERT ON `cgt_billing`.`invoices` TO ?@?', [account, '%']);
    const auditor = (await stack.tokenFor('auditor')).token;
    const findingOf = async () => ((await c.api(auditor, 'GET', '/api/drift?system=mysql-local&type=extra-grant&status=open')).data.items as Array<Record<string, string>>).find((f) => f.name === account);
    // Hold every item row (and the gaps between them) so that the item cannot land yet: its finding names no item meanwhile.
    const lock = stack.ds.createQueryRunner();
    await lock.connect();
    await lock.startTransaction();
    try {
      await lock.query('SELECT id FROM certification_items FOR UPDATE');
      await runScheduledDiscovery(stack);
      await waitFor("the item's opening waiting on the table", async () => (await itemLockWaits(stack)) > 0, 30_000, LOCK_WAIT_POLL_MS);
      expect(await findingOf()).toMatchObject({ action: 'certify', change: null });
    } finally {
      await lock.rollbackTransaction();
      await lock.release();
    }
    const finding = await waitFor('the finding naming its item', async () => {
      const f = await findingOf();
      return f?.change ? f : null;
    }, 30_000);
    expect(finding).toMatchObject({ action: 'certify', change: expect.stringMatching(/^certification:[0-9a-f]{32}$/) });
    const item = await itemFor(account, 'drift');
    expect(item).toMatchObject({ id: String(finding?.change).slice('certification:'.length), reference: finding?.id, grants: [INSERT, SELECT] });
    // The same finding seen again opens nothing new.
    await runScheduledDiscovery(stack);
    expect((await c.items(reviewer, '&system=mysql-local')).filter((i) => i.name === account && i.trigger === 'drift')).toHaveLength(1);
  }, 90_000);

  it('a verified rotation opens an item for the rotated identity', async () => {
    const account = uniqueAccount('crt');
    await createAccount(stack.admin, account, [SELECT]);
    const number = uniqueTicketNumber();
    stack.sim.createChange({
      number, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'rotate', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, deliverTo: { system: 'vault-local', path: `apps/${account}/db` } }]),
    });
    const item = await itemFor(account, 'rotation');
    expect(item).toMatchObject({ grants: [SELECT], status: 'open', reference: expect.stringMatching(new RegExp(`^servicenow:${number}#rotate:`)) });
  }, 90_000);

  it('GET /api/certifications filters by status, reviewer and overdue, pages by id, and refuses unknown filters naming each', async () => {
    const [account, other] = [uniqueAccount('cls'), uniqueAccount('cls')];
    for (const a of [account, other]) await createAccount(stack.admin, a, [SELECT]);
    const { certification } = await c.attribute(operator, 'mysql-local', account, { owner: 'bob' });
    await c.attribute(operator, 'mysql-local', other, { owner: 'bob' });
    await itemFor(account, 'owner-change');
    await itemFor(other, 'owner-change');
    const ids = async (query: string) => (await c.items(reviewer, query)).map((i) => i.id);
    expect(await ids('&status=open&reviewer=role:security-reviewer&overdue=false')).toContain(certification);
    expect(await ids('&reviewer=role:change-manager')).not.toContain(certification);
    expect(await ids('&overdue=true')).not.toContain(certification);
    expect(await ids('&status=certified')).not.toContain(certification);
    const first = await c.api(reviewer, 'GET', '/api/certifications?limit=1');
    const second = await c.api(reviewer, 'GET', `/api/certifications?limit=1&cursor=${first.data.nextCursor}`);
    expect([first.data.items.length, second.data.items.length, second.data.items[0].id > first.data.items[0].id]).toEqual([1, 1, true]);
    const res = await c.api(reviewer, 'GET', '/api/certifications?owner=x&status=bogus&overdue=maybe&cursor=zz');
    expect(res.status).toBe(400);
    expect(res.data.error.issues.map((i: { path: string }) => i.path).sort()).toEqual(['query', 'query.cursor', 'query.overdue', 'query.status']);
    const integration = (await stack.tokenFor('integration')).token;
    expect((await c.api(integration, 'GET', '/api/certifications')).status).toBe(403);
  });
});

describe('certification at the due date: the policy default keeps the access and escalates', () => {
  let stack: Stack;
  const secret = randomBytes(24).toString('hex');
  const received: Array<{ headers: http.IncomingHttpHeaders; raw: Buffer }> = [];
  let receiver: http.Server;
  beforeAll(async () => {
    receiver = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push({ headers: req.headers, raw: Buffer.concat(chunks) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    stack = await startStack({ policy: certificationPolicy('PT3S'), notify: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/changegate`, secret } });
  });
  afterAll(async () => {
    await stack?.stop();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  });

  it('an item no one decides by its due date is kept and escalated (evidenced, listed as overdue), and its reviewer can still decide it', async () => {
    const c = client(stack);
    const reviewer = (await stack.tokenFor('security-reviewer')).token;
    const account = uniqueAccount('cto');
    await createAccount(stack.admin, account, [SELECT]);
    const { certification } = await c.attribute((await stack.tokenFor('operator')).token, 'mysql-local', account, { owner: 'bob' });
    const escalated = await waitFor('the item escalated at its due date', async () => (await c.items(reviewer, '&status=escalated')).find((i) => i.id === certification), 30_000);
    // Escalation is not a decision: nothing decided, nothing revoked, still the reviewer's to decide.
    expect(escalated).toMatchObject({ decisions: null, decidedBy: null, change: null });
    expect((await c.items(reviewer, '&overdue=true')).map((i) => i.id)).toContain(certification);
    expect((await c.items(reviewer, '&overdue=false')).map((i) => i.id)).not.toContain(certification);
    const [, escalation] = await stack.evidence.list(`certification:${certification}`);
    expect(escalation).toMatchObject({ outcome: 'certification-escalated', observedState: { status: 'escalated', kept: [SELECT] }, verification: { decidedBy: expect.stringMatching(/^policy: onTimeout keep-and-escalate/) } });
    expect(escalation?.principal).toBeUndefined();
    // Announced, signed over the timestamp and the raw bytes, checked as a receiver would.
    const note = await waitFor('the escalation notification', () => received.find((r) => r.headers['x-changegate-event'] === 'certification.escalated' && r.raw.toString().includes(String(certification))));
    const timestamp = String(note.headers['x-changegate-timestamp']);
    expect(note.headers['x-changegate-signature']).toBe(`sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(note.raw).digest('hex')}`);
    expect(JSON.parse(note.raw.toString())).toMatchObject({ event: 'certification.escalated', certification, system: 'mysql-local', identity: account, grants: [SELECT] });
    expect((await stack.grantsOf(account)).join('\n')).toMatch(/SELECT ON `cgt\\_billing`/);

    // The row and the notification come from inside the escalation, before the workflow hears of it (until then it
    // refuses a decision as one being recorded): decide once the workflow itself holds the item escalated.
    const workflow = stack.workflows.client.workflow.getHandle(`certification-${certification}`);
    await waitFor('the workflow to hold the item escalated', async () => (await workflow.query<Item>('certification')).status === 'escalated');
    const late = await c.api(reviewer, 'POST', `/api/certifications/${certification}/decision`, { decisions: [{ grant: SELECT, decision: 'revoke' }], justification: 'bob left the billing team' });
    expect([late.status, late.data.status]).toEqual([200, 'revoking']);
    const revoking = await waitFor('the revocation change of the escalated item', async () => (await c.items(reviewer, '&status=revoking')).find((i) => i.id === certification && i.change !== null), 30_000);
    expect(revoking).toMatchObject({ decisions: [{ grant: SELECT, decision: 'revoke' }], decidedBy: { name: expect.stringMatching(/^t-security-reviewer-/) } });
    expect((await c.items(reviewer, '&overdue=true')).map((i) => i.id)).not.toContain(certification);
    expect((await stack.evidence.list(`certification:${certification}`)).map((r) => r.outcome)).toEqual(['certification-opened', 'certification-escalated', 'certification-decided', 'revocation-opened']);
    const again = await c.api(reviewer, 'POST', `/api/certifications/${certification}/decision`, { decisions: [{ grant: SELECT, decision: 'keep' }], justification: 'changed my mind' });
    expect(again.status).toBe(409);
  }, 60_000);
});

describe('certification at the due date under onTimeout revoke: the policy revokes through a change', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ policy: { ...certificationPolicy('PT3S'), certification: { triggers: { 'owner-change': true }, reviewer: { role: 'security-reviewer' }, due: 'PT3S', onTimeout: 'revoke' } } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('an item no one decides is revoked whole at its due date: a mover to no grants on a standard change, verified on MariaDB, the account itself left to its owner', async () => {
    const c = client(stack);
    const reviewer = (await stack.tokenFor('security-reviewer')).token;
    const account = uniqueAccount('ctr');
    await createAccount(stack.admin, account, [SELECT]);
    const { certification } = await c.attribute((await stack.tokenFor('operator')).token, 'mysql-local', account, { owner: 'bob' });
    const revoking = await waitFor('the revocation change opened at the due date', async () => (await c.items(reviewer, '&status=revoking')).find((i) => i.id === certification && i.change !== null), 30_000);
    expect(revoking).toMatchObject({ decisions: [{ grant: SELECT, decision: 'revoke' }], decidedBy: null });
    const number = String(revoking.change).slice('servicenow:'.length);
    await waitFor('the mover verified', async () => (await stack.closureCheck(number)).data.allowed === true, 60_000);
    expect(await stack.accountExists(account)).toBe(true);
    expect((await stack.grantsOf(account)).join('\n')).not.toMatch(/SELECT ON `cgt\\_billing`/);
    const chain = await stack.evidence.list(`certification:${certification}`);
    expect(chain.map((r) => r.outcome)).toEqual(['certification-opened', 'certification-timeout', 'revocation-opened']);
    expect(chain[2]?.desiredState).toEqual({ action: { kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: [] } });
  }, 90_000);

  it('the policy and a person never both decide: a decision sent while the policy records its own is refused as being decided, and the row, the chain and the workflow hold the policy\'s', async () => {
    const c = client(stack);
    const reviewer = (await stack.tokenFor('security-reviewer')).token;
    const account = uniqueAccount('crc');
    await createAccount(stack.admin, account, [SELECT]);
    const { certification } = await c.attribute((await stack.tokenFor('operator')).token, 'mysql-local', account, { owner: 'bob' });
    await waitFor('the item row', async () => (await c.items(reviewer)).some((i) => i.id === certification), 30_000);
    // Hold the item's row so that the policy's decision at the due date stays in flight until released.
    const lock = stack.ds.createQueryRunner();
    await lock.connect();
    await lock.startTransaction();
    const waiting = () => itemLockWaits(stack);
    let answer: Promise<{ status: number; data: { error?: { message: string } } }> | undefined;
    try {
      await lock.query('SELECT id FROM certification_items WHERE id = ? FOR UPDATE', [certification]);
      await waitFor("the policy's decision waiting on the item's row", async () => (await waiting()) === 1, 30_000, LOCK_WAIT_POLL_MS);
      answer = c.api(reviewer, 'POST', `/api/certifications/${certification}/decision`, { decisions: [{ grant: SELECT, decision: 'keep' }], justification: 'still needed' });
      // Refused at once; were it let through, its record would wait on the row beside the policy's.
      const first = await Promise.race([answer, waitFor('a second decision recording', async () => (await waiting()) >= 2, 30_000, LOCK_WAIT_POLL_MS).then(() => null)]);
      expect(first).toMatchObject({ status: 409, data: { error: { message: `certification ${certification} is being decided` } } });
    } finally {
      await lock.rollbackTransaction();
      await lock.release();
      await answer;
    }
    const item = await waitFor('the revocation change opened', async () => (await c.items(reviewer, '&status=revoking')).find((i) => i.id === certification && i.change !== null), 30_000);
    expect(item).toMatchObject({ decisions: [{ grant: SELECT, decision: 'revoke' }], decidedBy: null });
    expect((await stack.evidence.list(`certification:${certification}`)).map((r) => r.outcome)).toEqual(['certification-opened', 'certification-timeout', 'revocation-opened']);
    const held = await stack.workflows.client.workflow.getHandle(`certification-${certification}`).query<Item>('certification');
    expect(held).toMatchObject({ status: 'revoking', decisions: item.decisions, decidedBy: null, change: item.change });
  }, 90_000);

  it('a revocation change the ticket system refuses leaves the item revocation-failed, saying why, not revoking with no change', async () => {
    const c = client(stack);
    const reviewer = (await stack.tokenFor('security-reviewer')).token;
    const account = uniqueAccount('crf');
    await createAccount(stack.admin, account, [SELECT]);
    stack.sim.faults.refuseWrites();
    try {
      const { certification } = await c.attribute((await stack.tokenFor('operator')).token, 'mysql-local', account, { owner: 'bob' });
      const item = await waitFor('the item revocation-failed', async () => (await c.items(reviewer, '&status=revocation-failed')).find((i) => i.id === certification), 30_000);
      expect(item).toMatchObject({ change: null, decisions: [{ grant: SELECT, decision: 'revoke' }], revocationError: expect.stringMatching(/^the ticket source servicenow refused to open the revocation change: /) });
      expect((await stack.evidence.list(`certification:${certification}`)).map((r) => r.outcome)).toEqual(['certification-opened', 'certification-timeout', 'revocation-failed']);
    } finally {
      await stack.sim.faults.restore();
    }
    // Nothing was revoked behind the item's back.
    expect((await stack.grantsOf(account)).join('\n')).toMatch(/SELECT ON `cgt\\_billing`/);
  }, 60_000);
});

describe('certification reviewed by a named group (the people mapping, source group)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      policy: {
        version: 1,
        people: [{ source: 'group', user: 'iam-reviewers', principal: 'iam-*' }],
        certification: { triggers: { 'owner-change': true }, reviewer: { group: 'iam-reviewers' }, due: 'PT1H' },
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('names the group as the reviewer and admits only its members', async () => {
    const c = client(stack);
    const reviewer = (await stack.tokenFor('security-reviewer')).token;
    const account = uniqueAccount('cgr');
    await createAccount(stack.admin, account, [SELECT]);
    const { certification } = await c.attribute((await stack.tokenFor('operator')).token, 'mysql-local', account, { owner: 'bob' });
    const item = await waitFor('the item opened', async () => (await c.items(reviewer, '&reviewer=group:iam-reviewers')).find((i) => i.id === certification), 30_000);
    expect(item.reviewer).toEqual({ kind: 'group', group: 'iam-reviewers' });
    const keep = { decisions: [{ grant: SELECT, decision: 'keep' }], justification: 'the reporting job needs it' };
    const outsider = await c.api(reviewer, 'POST', `/api/certifications/${certification}/decision`, keep);
    expect([outsider.status, outsider.data.error.message]).toEqual([403, 'only a member of the group iam-reviewers reviews this item']);
    const member = await stack.tokens.create(`iam-${randomBytes(4).toString('hex')}`, ['change-manager'], 'test');
    const decided = await c.api(member.token, 'POST', `/api/certifications/${certification}/decision`, keep);
    expect([decided.status, decided.data.status]).toEqual([200, 'certified']);
  }, 60_000);
});

describe("certification reviewed by the owner's manager, read from the directory (OpenLDAP)", () => {
  let stack: Stack;
  let ldap: LdapTestServer;
  const suffix = randomBytes(4).toString('hex');
  const carol = `carol-${suffix}`;
  const dave = `dave-${suffix}`;
  const erin = `erin-${suffix}`;
  const person = (uid: string, manager?: string) => ({
    objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson'], uid, cn: uid, sn: uid, ...(manager ? { manager: `uid=${manager},ou=people,${LDAP_BASE_DN}` } : {}),
  });

  beforeAll(async () => {
    ldap = await startLdapServer();
    await ldap.asAdmin(async (admin) => {
      for (const [uid, manager] of [[dave], [carol, dave], [erin]] as Array<[string, string?]>) await admin.add(`uid=${uid},ou=people,${LDAP_BASE_DN}`, person(uid, manager));
    });
    stack = await startStack({
      extraConnectors: [ldapConnectorEntry(ldap, 'ldap-people', { protectedAccounts: [] })],
      policy: {
        version: 1,
        people: [{ source: 'directory', user: dave, principal: 'dave-*' }],
        certification: { triggers: { 'owner-change': true }, reviewer: { manager: { directory: 'ldap-people' }, fallbackRole: 'change-manager' }, due: 'PT1H' },
      },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await ldap?.stop();
  });

  it("names the owner's manager as the reviewer, admits only that person, and falls back to the role for an owner with no manager", async () => {
    const c = client(stack);
    const operator = (await stack.tokenFor('operator')).token;
    const reviewer = (await stack.tokenFor('security-reviewer')).token;
    const managed = uniqueAccount('cmg');
    const unmanaged = uniqueAccount('cmg');
    await createAccount(stack.admin, managed, [SELECT]);
    await createAccount(stack.admin, unmanaged, [SELECT]);
    const { certification } = await c.attribute(operator, 'mysql-local', managed, { owner: carol });
    const { certification: fallback } = await c.attribute(operator, 'mysql-local', unmanaged, { owner: erin });
    const items = await waitFor('both items opened', async () => {
      const all = await c.items(reviewer, '&system=mysql-local');
      const a = all.find((i) => i.id === certification);
      const b = all.find((i) => i.id === fallback);
      return a && b ? { a, b } : null;
    }, 30_000);
    expect(items.a.reviewer).toEqual({ kind: 'manager', user: dave, directory: 'ldap-people' });
    expect(items.b.reviewer).toEqual({ kind: 'role', role: 'change-manager' });
    expect((await c.items(reviewer, `&reviewer=user:${dave}`)).map((i) => i.id)).toEqual([certification]);

    const keep = { decisions: [{ grant: SELECT, decision: 'keep' }], justification: 'carol still runs the invoicing job' };
    const other = await c.api(reviewer, 'POST', `/api/certifications/${certification}/decision`, keep);
    expect([other.status, other.data.error.message]).toEqual([403, `only ${dave}, the owner's manager reviews this item`]);
    const manager = await stack.tokens.create(`dave-${randomBytes(4).toString('hex')}`, ['security-reviewer'], 'test');
    const decided = await c.api(manager.token, 'POST', `/api/certifications/${certification}/decision`, keep);
    expect([decided.status, decided.data.status]).toEqual([200, 'certified']);
  }, 60_000);
});

describe('certification trigger failures never fail the change that happened', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ policy: certificationPolicy('PT1H') });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('an owner set while the workflow service cannot be reached answers 200 with the owner set and the certification error, not 500', async () => {
    const c = client(stack);
    const operator = (await stack.tokenFor('operator')).token;
    const account = uniqueAccount('cof');
    await createAccount(stack.admin, account, [SELECT]);
    expect((await c.api(operator, 'POST', '/api/inventory/scan', { systems: ['mysql-local'] })).status).toBe(200);
    const row = await new InventoryStore(stack.ds).find('mysql-local', account, '%');
    // The API's own Temporal connection closed: the trigger's start fails, the ownership (in MariaDB) does not.
    await stack.workflows.client.connection.close();
    const res = await c.api(operator, 'PATCH', `/api/inventory/${row!.id}`, { owner: 'bob' });
    expect(res.status).toBe(200);
    expect(res.data).toMatchObject({ identity: { owner: 'bob' }, certification: { error: expect.stringMatching(/^the certification item could not be opened/) } });
    expect(await new InventoryStore(stack.ds).find('mysql-local', account, '%')).toMatchObject({ owner: 'bob' });
  }, 60_000);
});
