import { randomBytes } from 'node:crypto';
import axios from 'axios';
import type { IdentityRef } from '../src/actions/identity-action';
import { InventoryStore } from '../src/inventory/inventory-store';
import { startFlakyPort, type FlakyPort } from './support/flaky-port';
import { type LeaverTargets, startLeaverTargets } from './support/leaver-targets';
import { createAccount, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';

/**
 * Actions that select their identities through the inventory, on real targets: a decommission of a workload with
 * credentials on MariaDB (behind a port that goes away for a while), PostgreSQL and OpenLDAP, and a leaver by owner
 * across the same three kinds of system, one of whose service accounts still serves a workload. The inventory is
 * filled the way an operator fills it: discovery lists what an administrator made as orphans, and the operator names
 * their owner and workload through the API.
 */
describe('decommission and leaver by owner: planned from the inventory, one verified step per identity', () => {
  let targets: LeaverTargets;
  let flaky: FlakyPort;
  let stack: Stack;
  let inventory: InventoryStore;
  let operator: string;
  const PG = 'postgres-delete';
  const LDAP = 'ldap-disable';
  const FLAKY = 'mysql-flaky';

  beforeAll(async () => {
    targets = await startLeaverTargets();
    flaky = await startFlakyPort({ host: '127.0.0.1', port: 3306 });
    stack = await startStack({
      extraConnectors: [
        targets.targets.get('postgres')!.entry('delete'),
        targets.targets.get('ldap')!.entry('disable'),
        {
          // The machine's MariaDB, reached through a port this test can take away.
          name: FLAKY, type: 'mysql', host: '127.0.0.1', port: flaky.port, user: TEST_ENV.connectorUser, passwordEnv: 'CG_TEST_CONNECTOR_PASSWORD',
          policy: { protectedAccounts: ['root', 'mysql', 'mariadb.sys'] },
        },
      ],
    });
    inventory = new InventoryStore(stack.ds);
    operator = (await stack.tokenFor('operator')).token;
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
    await flaky?.stop();
    await targets?.stop();
  }, 60_000);

  const api = (method: 'GET' | 'POST' | 'PATCH', path: string, data?: unknown) =>
    axios.request({ method, url: `${stack.apiUrl}${path}`, data, headers: { authorization: `Bearer ${operator}` }, validateStatus: () => true });

  /** Discovery lists the identities as orphans; the operator names their owner and workload. */
  async function attribute(system: string, identity: IdentityRef, set: { owner?: string; workload?: string }): Promise<void> {
    const scan = await api('POST', '/api/inventory/scan', { systems: [system] });
    expect(scan.status).toBe(200);
    const row = await inventory.find(system, identity.name, identity.host ?? '');
    expect(row).toMatchObject({ status: 'orphan' });
    const patched = await api('PATCH', `/api/inventory/${row!.id}`, set);
    expect(patched.status).toBe(200);
  }

  const pgRole = () => targets.targets.get('postgres')!.kinds[0]!;
  const ldapPerson = () => targets.targets.get('ldap')!.kinds[0]!;
  const mariaExists = (name: string) => stack.accountExists(name);

  it('shows the plan and its size before anything runs, keeps the ticket blocked while one system is unreachable, and revokes every identity once it is back', async () => {
    const workload = `billing-${randomBytes(4).toString('hex')}`;
    const role = await pgRole().present();
    const person = await ldapPerson().present();
    const account = uniqueAccount('dc');
    await createAccount(stack.admin, account);
    const maria: IdentityRef = { type: 'service_account', name: account, host: '%' };
    await attribute(PG, role, { workload });
    await attribute(LDAP, person, { workload });
    await attribute(FLAKY, maria, { workload });

    await flaky.down();
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-5', approval: 'requested', u_identity_actions: JSON.stringify([{ kind: 'decommission', workload }]) });

    const planned = await waitFor('closure-check showing the plan', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.length === 4 ? r.data : null;
    });
    const [parent, ...children] = planned.steps;
    expect(parent).toMatchObject({ kind: 'decommission', system: '*', status: 'verified', plan: { size: 3, revoke: 3, reassign: 0, blocked: 0, systems: [LDAP, FLAKY, PG].sort() } });
    expect(children.map((c: { system: string; identity: IdentityRef; status: string; plannedBy: string }) => [c.system, c.identity.name, c.status, c.plannedBy]).sort()).toEqual(
      [[FLAKY, account, 'waiting-authorization', parent.stepId], [LDAP, person.name, 'waiting-authorization', parent.stepId], [PG, role.name, 'waiting-authorization', parent.stepId]].sort(),
    );
    expect(planned.allowed).toBe(false);
    expect(planned.reasons).toContain(`leaver of ${role.name} on ${PG} waits for the change to be approved and in Implement`);
    // Nothing ran before authorization.
    expect(await pgRole().view(role)).toEqual({ exists: true, locked: false });
    expect(await ldapPerson().view(person)).toEqual({ exists: true, locked: false });
    expect(await mariaExists(account)).toBe(true);
    const planRow = (await stack.evidence.list(`servicenow:${number}`)).find((r) => r.outcome === 'planned');
    expect(planRow).toMatchObject({ verified: true, actionKind: 'decommission', system: '*', observedState: { size: 3 } });

    // Linked to the workload after the plan: the second look at authorization adds it.
    const late = uniqueAccount('dcl');
    await createAccount(stack.admin, late);
    await attribute('mysql-local', { type: 'service_account', name: late, host: '%' }, { workload });

    stack.sim.updateChange(change.sys_id as string, { state: '-1', approval: 'approved' });
    const lateStep = await waitFor('the identity linked since the plan revoked', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps.find((s: { identity: IdentityRef; status: string }) => s.identity.name === late && s.status === 'verified');
    }, 60_000);
    expect(lateStep).toMatchObject({ system: 'mysql-local', plannedBy: parent.stepId });
    expect(await mariaExists(late)).toBe(false);
    const blocked = await waitFor('the unreachable system named in closure-check', async () => {
      const r = await stack.closureCheck(number);
      const others = r.data.steps.filter((s: { system: string }) => s.system === PG || s.system === LDAP);
      return others.every((s: { status: string }) => s.status === 'verified') && r.data.reasons.some((x: string) => x.includes('could not be reached')) ? r.data : null;
    }, 60_000);
    expect(blocked.allowed).toBe(false);
    expect(blocked.reasons).toEqual([expect.stringMatching(new RegExp(`^leaver of ${account}@% on ${FLAKY} is not verified yet: ${FLAKY} could not be reached .*ECONNREFUSED.*next at`))]);
    expect(await pgRole().view(role)).toEqual({ exists: false });
    expect(await ldapPerson().view(person)).toEqual({ exists: true, locked: true });
    expect(await mariaExists(account)).toBe(true);

    await flaky.up();
    const allowed = await waitFor('closure allowed once the system is back', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed ? r.data : null;
    }, 90_000);
    expect(allowed.steps.every((s: { status: string }) => s.status === 'verified')).toBe(true);
    expect(await mariaExists(account)).toBe(false);
    const rows = await stack.evidence.list(`servicenow:${number}`);
    expect(rows.filter((r) => r.outcome === 'revoked' && r.verified).map((r) => r.system).sort()).toEqual([LDAP, FLAKY, PG, 'mysql-local'].sort());
    expect(rows.find((r) => r.outcome === 'planned-at-authorization')).toMatchObject({ verified: true, observedState: { size: 4 } });
    expect(allowed.steps[0]).toMatchObject({ plan: { size: 4 } });
    expect(await stack.evidence.verifyChain(`servicenow:${number}`)).toMatchObject({ valid: true });
    const notes = stack.sim.journal(change.sys_id as string, 'work_notes').map((n) => n.value);
    expect(notes.find((n) => n.includes('Planned: decommission of workload'))).toMatch(new RegExp(`3 identities on .*: 3 to revoke, 0 to hand over, 0 blocked: .*${account}@% on ${FLAKY} to revoke`));
    expect((await inventory.find(FLAKY, account, '%'))?.status).toBe('revoked');
  }, 180_000);

  it('a leaver by owner revokes what the owner holds on three systems, blocks on a service account that still serves a workload, and hands it over once reassignTo is named', async () => {
    const owner = `jdoe-${randomBytes(4).toString('hex')}`;
    const workload = `orders-${randomBytes(4).toString('hex')}`;
    const role = await pgRole().present();
    const person = await ldapPerson().present();
    const serving = uniqueAccount('ow');
    await createAccount(stack.admin, serving);
    const maria: IdentityRef = { type: 'service_account', name: serving, host: '%' };
    await attribute(PG, role, { owner });
    await attribute(LDAP, person, { owner });
    await attribute('mysql-local', maria, { owner, workload });

    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-5', u_identity_actions: JSON.stringify([{ kind: 'leaver', owner }]) });
    const blocked = await waitFor('the revocations verified and the serving account blocked', async () => {
      const r = await stack.closureCheck(number);
      const revoked = r.data.steps?.filter((s: { status: string; plannedBy?: string }) => s.plannedBy && s.status === 'verified') ?? [];
      return revoked.length === 2 ? r.data : null;
    }, 60_000);
    expect(blocked.allowed).toBe(false);
    expect(blocked.reasons).toEqual([`leaver of ${serving}@% on mysql-local is blocked: it still serves ${workload}: name reassignTo on the leaver to hand it over, or decommission ${workload} first`]);
    expect(await pgRole().view(role)).toEqual({ exists: false });
    expect(await ldapPerson().view(person)).toEqual({ exists: true, locked: true });
    expect(await mariaExists(serving)).toBe(true);

    // The change manager names who takes over: the edited action plans again.
    stack.sim.updateChange(change.sys_id as string, { u_identity_actions: JSON.stringify([{ kind: 'leaver', owner, reassignTo: 'team-orders' }]) });
    const allowed = await waitFor('closure allowed after the hand-over', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed ? r.data : null;
    }, 60_000);
    const withdrawn = allowed.steps.filter((s: { status: string }) => s.status === 'withdrawn');
    expect(withdrawn.map((s: { identity: IdentityRef }) => s.identity.name)).toEqual([serving]);
    expect(await mariaExists(serving)).toBe(true);
    const row = await inventory.find('mysql-local', serving, '%');
    expect(row).toMatchObject({ owner: 'team-orders', ownerSource: 'action', workload, lastTicket: `servicenow:${number}` });
    const handOver = (await stack.evidence.list(`servicenow:${number}`)).find((r) => r.outcome === 'reassigned');
    expect(handOver).toMatchObject({ verified: true, system: 'mysql-local', identity: { name: serving }, observedState: { owner: 'team-orders', previousOwner: owner } });
    // The LDAP person was disabled by the first plan; the second finds it still listed (disabled) and verifies it so.
    expect((await inventory.find(LDAP, person.name, ''))?.status).toBe('disabled');
    expect((await inventory.find(PG, role.name, ''))?.status).toBe('revoked');
    expect(await stack.evidence.verifyChain(`servicenow:${number}`)).toMatchObject({ valid: true });
  }, 180_000);
});
