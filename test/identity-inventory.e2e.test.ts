import { ScheduleOverlapPolicy } from '@temporalio/client';
import { randomBytes } from 'node:crypto';
import axios from 'axios';
import type { EntityManager } from 'typeorm';
import { createConnectorActivities } from '../activities';
import { ConnectorRegistry } from '../src/connectors/registry';
import { InventoryStore } from '../src/inventory/inventory-store';
import { ensureDiscoverySchedule } from '../src/temporal/discovery-schedule';
import { type ExpiryHold, startExpiryHold } from './support/held-expiry';
import { LDAP_BASE_DN, type LdapTestServer, ldapConnectorEntry, startLdapServer } from './support/servers/ldap';
import { connectorsFile, createAccount, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { runScheduledDiscovery } from './support/discovery';
import { TEST_ENV } from './support/test-env';

/**
 * The identity inventory on the real parts: MariaDB as target and as the gateway's database, a private slapd with
 * revoke policy `disable`, the change workflow on the run's Temporal dev server, and this stack's own discovery
 * schedule, triggered instead of waited for.
 */
describe('identity inventory: written with the evidence, reconciled by scheduled discovery', () => {
  let ldap: LdapTestServer;
  let stack: Stack;
  let inventory: InventoryStore;
  /** The run's MariaDB once more, where a test can keep an expiry at the server's door while it reads. */
  let expiry: ExpiryHold;
  const ticketKey = (n: string) => `servicenow:${n}`;

  beforeAll(async () => {
    ldap = await startLdapServer();
    expiry = await startExpiryHold();
    stack = await startStack({
      extraConnectors: [
        expiry.connector,
        ldapConnectorEntry(ldap, 'ldap-inv', {
            protectedAccounts: [], revokeMode: 'disable',
            ownership: [{ attribute: 'description', equals: 'billing', owner: 'team-billing', workload: 'billing-api' }],
          }),
        {
          // A second instance on the same MariaDB, whose policy maps names to owners.
          name: 'mysql-owned', type: 'mysql', host: '127.0.0.1', port: 3306, user: TEST_ENV.connectorUser, passwordEnv: 'CG_TEST_CONNECTOR_PASSWORD',
          policy: {
            protectedAccounts: ['root', 'mysql', 'mariadb.sys'],
            ownership: [{ namePrefix: 'cgo_', owner: 'team-ops', workload: 'ops-ci' }, { namePrefix: 'cgo_x', owner: 'never-used' }],
          },
        },
      ],
    });
    inventory = new InventoryStore(stack.ds);
  });
  afterAll(async () => {
    await stack?.stop();
    await ldap?.stop();
    await expiry?.stop();
  });

  const api = (method: 'GET' | 'PATCH', path: string, token: string = TEST_ENV.adminToken, data?: unknown) =>
    axios.request({ method, url: `${stack.apiUrl}${path}`, data, headers: { authorization: `Bearer ${token}` }, validateStatus: () => true });

  const scheduledDiscovery = () => runScheduledDiscovery(stack);

  const grantOf = (text: string) => new ConnectorRegistry(connectorsFile()).get('mysql-local').grammar.parseGrant(text);

  it("a joiner's grant lands in the inventory with its ticket, owner and workload, and its ttl expiry takes back that ticket's grant only", async () => {
    const name = uniqueAccount('inv');
    // Made behind the gateway's back with a grant of its own, so the joiner does not create it and expiry keeps it.
    await createAccount(stack.admin, name, ['SELECT ON `cgt_reporting`.*']);
    const number = uniqueTicketNumber();
    const system = expiry.system;
    // The expiry waits at the target's door once the workflow has the verified grant, until the inventory after the
    // grant has been read: the read sees the grant's inventory however long the machine takes to get to it.
    expiry.holdAfterGrant(name, async () => (await stack.workflows.status('servicenow', number))?.steps[0]?.status === 'verified');
    try {
      stack.sim.createChange({
        number, state: '-1', approval: 'approved',
        u_identity_actions: JSON.stringify([{
          kind: 'joiner', system, identity: { type: 'service_account', name, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT4S',
          owner: 'team-billing', workload: 'billing-api',
        }]),
      });
      const granted = await waitFor('granted evidence', async () => (await stack.evidence.list(ticketKey(number))).find((r) => r.outcome === 'granted' && r.verified));
      const billing = (grantOf('SELECT ON cgt_billing.*') as { canonical: string[] }).canonical[0]!;
      // As the server reports the grant made behind the gateway's back: no ticket holds it.
      const reporting = 'SELECT ON `cgt_reporting`.*';
      const afterGrant = await inventory.find(system, name, '%');
      expect(afterGrant).toMatchObject({
        type: 'service_account', status: 'managed', owner: 'team-billing', ownerSource: 'action', workload: 'billing-api', workloadSource: 'action',
        createdByTicket: null, lastTicket: ticketKey(number),
        lastVerified: { state: granted.observedState, at: granted.verifiedAt },
      });
      expect(afterGrant?.grants).toHaveLength(2);
      expect(afterGrant?.grants).toEqual(expect.arrayContaining([{ grant: billing, tickets: [ticketKey(number)] }, { grant: reporting, tickets: [] }]));
      // Owner and workload are in the evidence row the inventory change rode with.
      expect(granted.identity).toMatchObject({ name, owner: 'team-billing', workload: 'billing-api' });

      expiry.release();
      await waitFor('expired evidence', async () => (await stack.evidence.list(ticketKey(number))).some((r) => r.outcome === 'expired' && r.verified), 30_000);
      expect(await inventory.find(system, name, '%')).toMatchObject({
        status: 'managed', owner: 'team-billing', grants: [{ grant: reporting, tickets: [] }], lastEvent: expect.stringMatching(/^expired/),
      });
    } finally {
      expiry.release();
      await stack.admin.query('DROP USER IF EXISTS ?@?', [name, '%']);
    }
  });

  it("a mover's verified step leaves the inventory holding exactly the grants it wants, each held by its ticket, and what it removed gone", async () => {
    const name = uniqueAccount('imov');
    await createAccount(stack.admin, name, ['INSERT ON `cgt_billing`.`invoices`']);
    const number = uniqueTicketNumber();
    try {
      stack.sim.createChange({
        number, state: '-1', approval: 'approved',
        u_identity_actions: JSON.stringify([{
          kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' }, grants: ['SELECT ON cgt_billing.*', 'UPDATE ON cgt_billing.invoices'], ttl: 'PT8H', owner: 'team-moved',
        }]),
      });
      const granted = await waitFor('mover grant evidence', async () => (await stack.evidence.list(ticketKey(number))).find((r) => r.outcome === 'granted' && r.verified));
      const row = await inventory.find('mysql-local', name, '%');
      expect(row).toMatchObject({ status: 'managed', owner: 'team-moved', lastTicket: ticketKey(number), lastVerified: { state: granted.observedState } });
      expect(row?.grants.map((g) => g.grant).sort()).toEqual([...(granted.observedState as { grants: string[] }).grants].sort());
      expect(row?.grants).toHaveLength(2);
      expect(row?.grants.every((g) => g.tickets.length === 1 && g.tickets[0] === ticketKey(number))).toBe(true);
      expect(JSON.stringify(row?.grants)).not.toContain('INSERT');
    } finally {
      await stack.admin.query('DROP USER IF EXISTS ?@?', [name, '%']);
    }
  });

  it('a forced evidence failure leaves no inventory change: the step and its inventory row commit together or not at all', async () => {
    const registry = new ConnectorRegistry(connectorsFile());
    const activities = createConnectorActivities({ registry, evidence: stack.evidence, actor: 'inventory-test', inventory });
    const name = uniqueAccount('txn');
    const key = `test:refused-${randomBytes(4).toString('hex')}`;
    const trigger = `cgt_refuse_${randomBytes(4).toString('hex')}`;
    const grant = (grantOf('SELECT ON cgt_billing.*') as { canonical: string[] }).canonical[0]!;
    const step = {
      ticketKey: key, stepId: 'step-1', outcome: 'granted', actionKind: 'joiner', system: 'mysql-local',
      identity: { type: 'service_account' as const, name, host: '%' }, desired: { exists: true, mustHave: [grant] },
      eventReceivedAt: new Date().toISOString(), operation: { op: 'grant' as const, grants: [grant] }, attempts: 1, owner: 'team-txn',
    };
    // The database refuses this ticket's evidence rows; the inventory write runs first in the same transaction.
    await stack.admin.query(
      `CREATE TRIGGER \`${TEST_ENV.database}\`.\`${trigger}\` BEFORE INSERT ON \`${TEST_ENV.database}\`.evidence_records FOR EACH ROW
       BEGIN IF NEW.ticket_key = '${key}' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'evidence refused by the test'; END IF; END`,
    );
    try {
      await expect(activities.applyVerifyRecord(step)).rejects.toThrow(/evidence refused by the test/);
      expect(await stack.accountExists(name)).toBe(true);
      expect(await stack.evidence.list(key)).toEqual([]);
      expect(await inventory.find('mysql-local', name, '%')).toBeNull();
      await stack.admin.query(`DROP TRIGGER \`${TEST_ENV.database}\`.\`${trigger}\``);
      // The retry (as Temporal would run it) records both.
      await expect(activities.applyVerifyRecord(step)).resolves.toMatchObject({ verified: true });
      expect(await stack.evidence.list(key)).toHaveLength(1);
      expect(await inventory.find('mysql-local', name, '%')).toMatchObject({ status: 'managed', owner: 'team-txn', grants: [{ grant, tickets: [key] }] });
    } finally {
      await stack.admin.query(`DROP TRIGGER IF EXISTS \`${TEST_ENV.database}\`.\`${trigger}\``);
      await stack.admin.query('DROP USER IF EXISTS ?@?', [name, '%']);
      await registry.close();
    }
  });

  it('two evidence rows whose inventory changes collide on a new identity (both lock its absence, then both insert) both commit, each with its grant holder', async () => {
    const name = uniqueAccount('par');
    const grant = (grantOf('SELECT ON cgt_billing.*') as { canonical: string[] }).canonical[0]!;
    const keys = [`test:par-a-${randomBytes(3).toString('hex')}`, `test:par-b-${randomBytes(3).toString('hex')}`];
    // Both transactions take the gap lock on the missing row before either inserts: InnoDB then rolls one back as a
    // deadlock (or refuses its insert as a duplicate), and append must run that transaction again.
    // Neither inserts before both hold it, however long the other takes to get there; the transaction run again
    // finds both arrived and goes straight on.
    let arrived = 0;
    const collide = (projection: (tx: EntityManager) => Promise<void>) => async (tx: EntityManager) => {
      await tx.query('SELECT id FROM identity_inventory WHERE system = ? AND name = ? AND host = ? FOR UPDATE', ['mysql-local', name, '%']);
      arrived++;
      await waitFor('both transactions holding the lock on the missing row', () => arrived >= 2);
      await projection(tx);
    };
    const now = new Date().toISOString();
    const rows = await Promise.all(keys.map((ticketKey) => stack.evidence.append(
      {
        ticketKey, stepId: 'step-1', outcome: 'granted', actionKind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' },
        desiredState: { exists: true, mustHave: [grant] }, observedState: { exists: true, grants: [grant] }, verified: true, verification: { mismatches: [] },
        actor: 'inventory-test', eventReceivedAt: now, startedAt: now, verifiedAt: now,
      },
      collide(inventory.stepProjection({
        ticketKey, system: 'mysql-local', identity: { type: 'service_account', name }, host: '%', outcome: 'granted', operation: 'grant',
        desired: { exists: true, mustHave: [grant] }, observed: { exists: true, grants: [grant] }, verifiedAt: now, grants: [grant],
      })),
    )));
    expect(arrived).toBeGreaterThanOrEqual(3);
    expect(rows.map((r) => r.seq)).toEqual([1, 1]);
    expect(await inventory.find('mysql-local', name, '%')).toMatchObject({ status: 'managed', grants: [{ grant, tickets: [...keys].sort() }] });
  });

  it('a leaver under delete policy leaves the row revoked with no grants; under disable policy, disabled', async () => {
    const gone = uniqueAccount('lvd');
    const uid = `cgt-${randomBytes(4).toString('hex')}`;
    await ldap.asAdmin((admin) => admin.add(`uid=${uid},ou=people,${LDAP_BASE_DN}`, { objectClass: ['inetOrgPerson'], uid, cn: uid, sn: uid }));
    const joinTicket = uniqueTicketNumber();
    stack.sim.createChange({
      number: joinTicket, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([
        { kind: 'joiner', system: 'ldap-inv', identity: { type: 'person', name: uid }, grants: ['group=cg-readers'], ttl: 'P1D', owner: 'jdoe' },
        { kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: gone, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'P1D', workload: 'billing-api' },
      ]),
    });
    await waitFor('both grants', async () => (await stack.evidence.list(ticketKey(joinTicket))).filter((r) => r.outcome === 'granted' && r.verified).length === 2);
    expect(await inventory.find('ldap-inv', uid)).toMatchObject({ status: 'managed', type: 'person', owner: 'jdoe', createdByTicket: null, grants: [{ tickets: [ticketKey(joinTicket)] }] });
    // The joiner made this account: the inventory names the ticket that created it.
    expect(await inventory.find('mysql-local', gone, '%')).toMatchObject({ status: 'managed', createdByTicket: ticketKey(joinTicket), workload: 'billing-api' });

    const leaveTicket = uniqueTicketNumber();
    stack.sim.createChange({
      number: leaveTicket, state: '-2',
      u_identity_actions: JSON.stringify([
        { kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: gone, host: '%' } },
        { kind: 'leaver', system: 'ldap-inv', identity: { type: 'person', name: uid } },
      ]),
    });
    await waitFor('both revocations', async () => (await stack.evidence.list(ticketKey(leaveTicket))).filter((r) => r.outcome === 'revoked' && r.verified).length === 2);
    expect(await inventory.find('mysql-local', gone, '%')).toMatchObject({
      status: 'revoked', grants: [], createdByTicket: ticketKey(joinTicket), workload: 'billing-api', lastTicket: ticketKey(leaveTicket), lastVerified: { state: { exists: false } },
    });
    expect(await inventory.find('ldap-inv', uid)).toMatchObject({
      status: 'disabled', grants: [], owner: 'jdoe', lastTicket: ticketKey(leaveTicket), lastVerified: { state: { exists: true, locked: true, grants: [] } },
    });
  });

  it('scheduled discovery lists an identity made behind the gateway\'s back as an orphan, never adopts it, and marks a known one that vanished as revoked', async () => {
    const orphan = uniqueAccount('orph');
    await createAccount(stack.admin, orphan);
    const vanished = uniqueAccount('van');
    await createAccount(stack.admin, vanished);
    try {
      const first = await scheduledDiscovery();
      const row = await inventory.find('mysql-local', orphan, '%');
      expect(row).toMatchObject({ status: 'orphan', createdByTicket: null, grants: [], owner: null, lastEvent: expect.stringContaining('no change accounts for it') });
      const scanKey = row!.lastTicket!;
      expect(scanKey).toMatch(/^inventory:[0-9a-f-]{36}$/);
      const scanRows = await stack.evidence.list(scanKey);
      expect(scanRows.find((r) => r.system === 'mysql-local')).toMatchObject({
        actionKind: 'inventory-scan', observedState: { trigger: 'schedule', inventory: { added: expect.any(Number) } },
      });
      expect(scanRows.every((r) => r.principal === undefined)).toBe(true);
      expect(first).toContain(stack.discoveryScheduleId);

      await stack.admin.query('DROP USER ?@?', [vanished, '%']);
      await scheduledDiscovery();
      // Still an orphan after another run: discovery never turns what it finds into something managed.
      expect(await inventory.find('mysql-local', orphan, '%')).toMatchObject({ status: 'orphan', createdByTicket: null });
      const gone = await inventory.find('mysql-local', vanished, '%');
      expect(gone).toMatchObject({ status: 'revoked', lastEvent: 'not found by discovery', grants: [] });
      const missingIn = (await stack.evidence.list(gone!.lastTicket!)).find((r) => r.system === 'mysql-local');
      // Other accounts on the shared server may vanish too (other suites' and benchmarks'): this one must be listed.
      expect((missingIn?.observedState as { inventory: { missing: unknown[] } }).inventory.missing).toEqual(expect.arrayContaining([{ name: vanished, host: '%' }]));
    } finally {
      await stack.admin.query('DROP USER IF EXISTS ?@?, ?@?', [orphan, '%', vanished, '%']);
    }
  });

  it('an account named like a credential is counted, never written: discovery still records the system and lists nothing of it', async () => {
    const hashLike = `*${randomBytes(20).toString('hex').toUpperCase()}`;
    await stack.admin.query('CREATE USER ?@? IDENTIFIED BY ?', [hashLike, '%', randomBytes(12).toString('hex')]);
    try {
      await scheduledDiscovery();
      expect(await inventory.find('mysql-local', hashLike, '%')).toBeNull();
      const scanKey = (await waitFor('a scan row for mysql-local', async () => {
        const rows = await stack.ds.query("SELECT ticket_key AS k FROM evidence_records WHERE step_id = 'scan:mysql-local' ORDER BY id DESC LIMIT 1");
        return rows[0]?.k as string | undefined;
      }));
      const row = (await stack.evidence.list(scanKey)).find((r) => r.system === 'mysql-local');
      expect(row?.observedState).toMatchObject({ withheldOrphans: expect.any(Number), inventory: { skipped: expect.any(Number) } });
      const all = await stack.ds.query('SELECT COUNT(*) AS n FROM evidence_records WHERE canonical LIKE ?', [`%${hashLike.slice(1)}%`]);
      expect(Number(all[0].n)).toBe(0);
    } finally {
      await stack.admin.query('DROP USER IF EXISTS ?@?', [hashLike, '%']);
    }
  });

  it('the discovery schedule is created once and brought to the configured interval and task queue at every later start', async () => {
    const scheduleId = `discovery-idempotent-${randomBytes(4).toString('hex')}`;
    const client = stack.workflows.client;
    try {
      await ensureDiscoverySchedule(client, { scheduleId, taskQueue: 'queue-a', intervalMs: 3_600_000 });
      await ensureDiscoverySchedule(client, { scheduleId, taskQueue: 'queue-b', intervalMs: 15 * 60_000 });
      const d = await client.schedule.getHandle(scheduleId).describe();
      expect(d.spec.intervals).toEqual([expect.objectContaining({ every: 15 * 60_000 })]);
      expect(d.action).toMatchObject({ type: 'startWorkflow', workflowType: 'discoveryWorkflow', taskQueue: 'queue-b' });
      expect(d.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
      // The stack's own schedule, made by startGateway: hourly by default, on the stack's task queue.
      const own = await client.schedule.getHandle(stack.discoveryScheduleId).describe();
      expect(own.spec.intervals).toEqual([expect.objectContaining({ every: 3_600_000 })]);
      expect(own.action).toMatchObject({ workflowType: 'discoveryWorkflow', taskQueue: stack.taskQueue });
    } finally {
      await client.schedule.getHandle(scheduleId).delete().catch(() => undefined);
    }
  });

  it('ownership rules map an orphan\'s owner and workload (by name prefix, by LDAP attribute) and it stays an orphan', async () => {
    const prefixed = `cgo_${randomBytes(4).toString('hex')}`;
    await createAccount(stack.admin, prefixed);
    const uid = `cgt-${randomBytes(4).toString('hex')}`;
    const other = `cgt-${randomBytes(4).toString('hex')}`;
    await ldap.asAdmin(async (admin) => {
      await admin.add(`uid=${uid},ou=services,${LDAP_BASE_DN}`, { objectClass: ['inetOrgPerson'], uid, cn: uid, sn: uid, description: 'billing' });
      await admin.add(`uid=${other},ou=services,${LDAP_BASE_DN}`, { objectClass: ['inetOrgPerson'], uid: other, cn: other, sn: other, description: 'payroll' });
    });
    try {
      await scheduledDiscovery();
      expect(await inventory.find('mysql-owned', prefixed, '%')).toMatchObject({ status: 'orphan', owner: 'team-ops', ownerSource: 'rule', workload: 'ops-ci', workloadSource: 'rule' });
      // The same account seen through an instance without rules has no owner.
      expect(await inventory.find('mysql-local', prefixed, '%')).toMatchObject({ status: 'orphan', owner: null });
      expect(await inventory.find('ldap-inv', uid)).toMatchObject({ status: 'orphan', type: 'service_account', owner: 'team-billing', workload: 'billing-api' });
      expect(await inventory.find('ldap-inv', other)).toMatchObject({ status: 'orphan', owner: null, workload: null });
    } finally {
      await stack.admin.query('DROP USER IF EXISTS ?@?', [prefixed, '%']);
    }
  });

  it('GET /api/inventory filters by system, name, owner, workload and status, pages by cursor, and refuses a bad filter with 400 naming it', async () => {
    const names = [`cgo_${randomBytes(4).toString('hex')}`, `cgo_${randomBytes(4).toString('hex')}`, `cgo_${randomBytes(4).toString('hex')}`];
    for (const n of names) await createAccount(stack.admin, n);
    try {
      await scheduledDiscovery();
      const auditor = await stack.tokenFor('auditor');
      const all = await api('GET', '/api/inventory?system=mysql-owned&owner=team-ops&workload=ops-ci&status=orphan&limit=500', auditor.token);
      expect(all.status).toBe(200);
      const listed = all.data.items.map((i: { name: string }) => i.name);
      for (const n of names) expect(listed).toContain(n);
      expect(all.data.items.every((i: { system: string; owner: string; status: string }) => i.system === 'mysql-owned' && i.owner === 'team-ops' && i.status === 'orphan')).toBe(true);

      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { status: number; data: { items: Array<{ id: string }>; nextCursor: string | null; limit: number } } = await api(
          'GET', `/api/inventory?system=mysql-owned&owner=team-ops&status=orphan&limit=2${cursor ? `&cursor=${cursor}` : ''}`, auditor.token,
        );
        expect(page.status).toBe(200);
        expect(page.data.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.data.items.map((i) => i.id));
        cursor = page.data.nextCursor;
      } while (cursor);
      expect(seen).toEqual(all.data.items.map((i: { id: string }) => i.id));
      expect([...seen].sort((a, b) => Number(a) - Number(b))).toEqual(seen);

      expect((await api('GET', '/api/inventory?status=managed&system=mysql-owned', auditor.token)).data.items).toEqual([]);
      // By name: the one identity, on the system asked for; without a system, on every system that has it.
      const byName = await api('GET', `/api/inventory?system=mysql-owned&name=${names[1]}`, auditor.token);
      expect(byName.status).toBe(200);
      expect(byName.data.items).toEqual([expect.objectContaining({ system: 'mysql-owned', name: names[1], host: '%', status: 'orphan' })]);
      const everywhere = (await api('GET', `/api/inventory?name=${names[1]}&limit=500`, auditor.token)).data.items as Array<{ system: string; name: string }>;
      expect(everywhere.map((i) => i.name)).toEqual(everywhere.map(() => names[1]));
      expect(everywhere.map((i) => i.system)).toEqual(expect.arrayContaining(['mysql-owned', 'mysql-local']));
      expect((await api('GET', `/api/inventory?name=${names[1]}x`, auditor.token)).data.items).toEqual([]);

      const bad = async (query: string, path: string) => {
        const res = await api('GET', `/api/inventory?${query}`, auditor.token);
        expect(res.status).toBe(400);
        expect(res.data.error).toMatchObject({ code: 'VALIDATION_FAILED', issues: [expect.objectContaining({ path })] });
        return res.data.error.issues[0].message as string;
      };
      expect(await bad('status=adopted', 'query.status')).toMatch(/managed, protected, orphan, disabled, revoked/);
      expect(await bad('limit=0', 'query.limit')).toMatch(/1 to 500/);
      expect(await bad('limit=501', 'query.limit')).toMatch(/1 to 500/);
      expect(await bad('limit=ten', 'query.limit')).toMatch(/1 to 500/);
      expect(await bad('cursor=abc', 'query.cursor')).toMatch(/nextCursor/);
      expect(await bad('owner=a%0Ab', 'query.owner')).toMatch(/control characters/);
      expect(await bad('name=', 'query.name')).toMatch(/must not be empty/);
      expect(await bad(`name=${'n'.repeat(257)}`, 'query.name')).toMatch(/at most 256/);
      expect(await bad('status=orphan&status=managed', 'query.status')).toMatch(/once/);
      expect(await bad('colour=red', 'query')).toMatch(/unknown filter 'colour'/);
    } finally {
      for (const n of names) await stack.admin.query('DROP USER IF EXISTS ?@?', [n, '%']);
    }
  });

  it('PATCH /api/inventory/{id} lets an operator name an orphan\'s owner and workload, recorded as evidence naming the principal; auditor 403, unknown 404, non-orphan 409', async () => {
    const name = uniqueAccount('own');
    await createAccount(stack.admin, name);
    try {
      await scheduledDiscovery();
      const row = await inventory.find('mysql-local', name, '%');
      expect(row).toMatchObject({ status: 'orphan', owner: null });
      const operator = await stack.tokenFor('operator');
      const auditor = await stack.tokenFor('auditor');

      const refused = await api('PATCH', `/api/inventory/${row!.id}`, auditor.token, { owner: 'team-x' });
      expect(refused.status).toBe(403);

      const res = await api('PATCH', `/api/inventory/${row!.id}`, operator.token, { owner: 'team-data', workload: 'warehouse' });
      expect(res.status).toBe(200);
      expect(res.data.identity).toMatchObject({ id: row!.id, status: 'orphan', owner: 'team-data', ownerSource: 'operator', workload: 'warehouse', workloadSource: 'operator' });
      const chain = `inventory-identity:${row!.id}`;
      const rows = await stack.evidence.list(chain);
      const id = (await stack.tokens.authenticate(operator.token))?.actor.id;
      expect(rows).toEqual([expect.objectContaining({
        outcome: 'ownership-set', actionKind: 'inventory-ownership', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' },
        desiredState: { owner: 'team-data', workload: 'warehouse' }, principal: { kind: 'token', id, name: operator.name },
        observedState: expect.objectContaining({ previous: expect.objectContaining({ owner: null }) }),
      })]);
      expect(await stack.evidence.verifyChain(chain)).toEqual({ valid: true, rows: 1 });
      // A later discovery keeps what the operator said.
      await scheduledDiscovery();
      expect(await inventory.find('mysql-local', name, '%')).toMatchObject({ owner: 'team-data', ownerSource: 'operator', status: 'orphan' });

      expect((await api('PATCH', '/api/inventory/999999999999', operator.token, { owner: 'x' })).status).toBe(404);
      const protectedRow = await inventory.find('mysql-local', 'root', 'localhost');
      const conflict = await api('PATCH', `/api/inventory/${protectedRow!.id}`, operator.token, { owner: 'dba' });
      expect(conflict.status).toBe(409);
      expect(conflict.data.error.message).toMatch(/protected, not an orphan/);

      const badBody = async (body: unknown, path: string) => {
        const r = await api('PATCH', `/api/inventory/${row!.id}`, operator.token, body);
        expect(r.status).toBe(400);
        expect(r.data.error.issues).toEqual([expect.objectContaining({ path })]);
      };
      await badBody({}, '(body)');
      await badBody({ owner: 'a\u0007b' }, 'owner');
      await badBody({ owner: 'x'.repeat(201) }, 'owner');
      await badBody({ owner: 'team', status: 'managed' }, '(body)');
      await badBody({ owner: 'Bearer abcdefghijklmnopqrstuvwxyz012345' }, 'owner');
      expect((await api('PATCH', '/api/inventory/abc', operator.token, { owner: 'x' })).status).toBe(400);
      expect(await stack.evidence.list(chain)).toHaveLength(1);
      // Nothing of a refused request reached the table.
      expect(await inventory.find('mysql-local', name, '%')).toMatchObject({ owner: 'team-data' });
    } finally {
      await stack.admin.query('DROP USER IF EXISTS ?@?', [name, '%']);
    }
  });
});
