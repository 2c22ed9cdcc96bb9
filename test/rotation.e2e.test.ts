import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { fingerprintOf } from '../src/connectors/secret';
import { type OpenBao, setupVaultFixture, startOpenBao, type VaultFixture, vaultConnectorEntry } from './support/servers/openbao';
import { InventoryStore } from '../src/inventory/inventory-store';
import { createAccount, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { historyText } from './support/history-text';

/**
 * Rotation end to end on real parts: a ServiceNow change asks for a MariaDB service account's password to be rotated
 * and delivered to OpenBao, where the workload reads it. The value must work, be where the workload reads it, and
 * appear nowhere else: not in evidence, workflow history, search attributes or ticket notes.
 */
describe('credential rotation: MariaDB account → OpenBao KV, verified on both sides', () => {
  let bao: OpenBao;
  let fx: VaultFixture;
  let stack: Stack;
  beforeAll(async () => {
    bao = await startOpenBao();
    fx = await setupVaultFixture(bao);
    stack = await startStack({
      extraConnectors: [vaultConnectorEntry(bao, fx, 'CG_TEST_ROTATION_VAULT_TOKEN')],
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await fx?.cleanup();
    await bao?.stop();
  });

  const rotate = (name: string, path: string, system = 'mysql-local', store = 'vault-local') =>
    JSON.stringify([{ kind: 'rotate', system, identity: { type: 'service_account', name, host: '%' }, deliverTo: { system: store, path } }]);

  it('sets a new password, delivers it to the KV path, and proves the target accepts what the store serves', async () => {
    const account = uniqueAccount('rot');
    await createAccount(stack.admin, account);
    const path = `apps/${account}/db`;
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: rotate(account, path) });
    const rows = await waitFor('rotation evidence', async () => {
      const r = await stack.evidence.list(`servicenow:${number}`);
      return r.some((x) => x.actionKind === 'rotate') ? r : null;
    }, 30_000);
    const row = rows.find((x) => x.actionKind === 'rotate')!;
    expect(row).toMatchObject({ outcome: 'rotated', verified: true, observedState: { targetAccepts: true } });

    // What the workload reads, read as the store's administrator.
    const served = await bao.root<{ data: { data: { value: string }; metadata: { version: number } } }>('GET', `secret/data/${fx.kvPrefix}/${path}`);
    const value = served.body.data.data.value;
    expect(row.observedState.fingerprint).toBe(fingerprintOf(value));
    expect(row.observedState.storeFingerprint).toBe(fingerprintOf(value));
    expect(row.observedState.storeVersion).toBe(served.body.data.metadata.version);
    const session = await mysql.createConnection({ host: '127.0.0.1', user: account, password: value });
    await session.end();
    // The inventory row rode with the rotation's evidence: managed, its verified state the fingerprint, never the value.
    const listed = await new InventoryStore(stack.ds).find('mysql-local', account, '%');
    expect(listed).toMatchObject({ status: 'managed', lastTicket: `servicenow:${number}`, lastVerified: { state: { fingerprint: fingerprintOf(value), targetAccepts: true } } });
    expect(JSON.stringify(listed)).not.toContain(value);

    // The value is nowhere else. The work note follows the evidence row; it names the fingerprint, never the value.
    const notes = await waitFor('the rotation work note', () => {
      const n = stack.sim.journal(change.sys_id as string);
      return JSON.stringify(n).includes(fingerprintOf(value)) ? n : null;
    });
    // Read once the note is on the ticket: the row is written before the workflow hears of the rotation, and only then
    // does its history hold the step's result (the fingerprint searched for below).
    const history = await stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`).fetchHistory();
    const description = await stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`).describe();
    // Every payload decoded (they are bytes in the history): the account name and the fingerprint are in there, so the
    // search looks where a leaked value would be.
    const payloads = historyText(history);
    expect(payloads).toContain(account);
    expect(payloads).toContain(fingerprintOf(value));
    for (const [where, text] of [
      ['evidence', JSON.stringify(rows)],
      ['workflow history', payloads],
      ['search attributes', JSON.stringify(description.searchAttributes)],
      ['ticket notes', JSON.stringify(notes)],
    ] as const) {
      expect({ where, leaked: text.includes(value) }).toEqual({ where, leaked: false });
    }
    await waitFor('closure allowed', async () => (await stack.closureCheck(number)).data.allowed === true);
    await stack.admin.query('DROP USER ?@?', [account, '%']);
  });

  it('refuses at the edge a rotation delivered to something that is not a secrets store, or to a path outside the grammar', async () => {
    const account = uniqueAccount('rot');
    const bad = (actions: string) => ({
      sys_id: randomBytes(16).toString('hex'), number: uniqueTicketNumber(), sys_mod_count: '0', state: '-1', approval: 'approved', type: 'normal',
      u_identity_actions: actions,
    });
    const notStore = await stack.deliver(bad(rotate(account, 'apps/x', 'mysql-local', 'mysql-local')));
    expect(notStore.status).toBe(400);
    expect(notStore.data.error.issues).toEqual([{ path: 'u_identity_actions[0].deliverTo.system', message: "'mysql-local' is not a configured secrets store" }]);
    const traversal = await stack.deliver(bad(rotate(account, '../../sys/policy')));
    expect(traversal.status).toBe(400);
    expect(traversal.data.error.issues[0].path).toBe('u_identity_actions[0].deliverTo.path');
  });

  it('a rotation the target refuses (no such account) fails the step with the cause, writes nothing to the store, and blocks closure', async () => {
    const account = uniqueAccount('ghost');
    const path = `apps/${account}/db`;
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: rotate(account, path) });
    const check = await waitFor('closure-check shows the failure', async () => {
      const r = await stack.closureCheck(number);
      return r.data.reasons?.some((x: string) => /failed/.test(x)) ? r : null;
    }, 30_000);
    expect(check.data.allowed).toBe(false);
    expect(check.data.reasons.join(' ')).toMatch(/does not exist, so it has no password to rotate/);
    expect((await bao.root('GET', `secret/data/${fx.kvPrefix}/${path}`, undefined, [404])).status).toBe(404);
  });

  it('a destination the store refuses stops the rotation before the target changes: the old password still works', async () => {
    const account = uniqueAccount('rot');
    const oldPassword = 'old-' + randomBytes(8).toString('hex');
    await stack.admin.query('CREATE USER ?@? IDENTIFIED BY ?', [account, '%', oldPassword]);
    // Someone else's secret already lives there, with fields its readers expect: delivering would clobber it.
    const path = `apps/${account}/shared`;
    await bao.root('POST', `secret/data/${fx.kvPrefix}/${path}`, { data: { username: 'other', password: 'theirs' } });
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: rotate(account, path) });
    await waitFor('the step to fail', async () => (await stack.closureCheck(number)).data.reasons?.some((x: string) => /failed/.test(x)), 30_000);
    const session = await mysql.createConnection({ host: '127.0.0.1', user: account, password: oldPassword });
    await session.end();
    const served = await bao.root<{ data: { data: Record<string, string> } }>('GET', `secret/data/${fx.kvPrefix}/${path}`);
    expect(served.body.data.data).toEqual({ username: 'other', password: 'theirs' });
    await stack.admin.query('DROP USER ?@?', [account, '%']);
  });
});
