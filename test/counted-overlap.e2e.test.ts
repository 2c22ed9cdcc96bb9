import mysql from 'mysql2/promise';
import type { DataSource } from 'typeorm';
import { type ApplyVerifyRecordInput, createConnectorActivities } from '../activities/connector-activities';
import type { Connector } from '../src/connectors/connector';
import { ConnectorRegistry } from '../src/connectors/registry';
import { evidenceSealer } from '../src/evidence/evidence-seal';
import { EvidenceStore } from '../src/evidence/evidence-store';
import { InventoryStore } from '../src/inventory/inventory-store';
import { openDatabase } from '../src/persistence/data-source';
import { connectorsFile, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';

/**
 * Counted overlap under concurrency, against the real MariaDB target and evidence database: the steps' one activity
 * (applyVerifyRecord) as two workers would run it at the same moment for two tickets on one identity.
 */
describe('counted overlap: tickets ending or granting the same grant at the same time', () => {
  let ds: DataSource;
  let registry: ConnectorRegistry;
  let admin: mysql.Connection;
  let evidence: EvidenceStore;
  let inventory: InventoryStore;
  beforeAll(async () => {
    ds = await openDatabase(TEST_ENV.databaseUrl);
    registry = new ConnectorRegistry(connectorsFile());
    admin = await mysql.createConnection({ uri: TEST_ENV.adminUrl });
    evidence = new EvidenceStore(ds, evidenceSealer(TEST_ENV.evidenceSealKey));
    inventory = new InventoryStore(ds);
  });
  const made: string[] = [];
  afterAll(async () => {
    for (const name of made) await admin.query('DROP USER IF EXISTS ?@?', [name, '%']);
    await registry.close();
    await admin.end();
    await ds.destroy();
  });

  const GRANT = 'SELECT ON `cgt\\_billing`.*';
  const activities = (reg: Pick<ConnectorRegistry, 'get'> = registry) =>
    createConnectorActivities({ registry: Object.assign(Object.create(registry) as ConnectorRegistry, { get: reg.get.bind(reg) }), evidence, actor: 'test', inventory });
  const step = (ticketKey: string, account: string, operation: ApplyVerifyRecordInput['operation'], outcome: string): ApplyVerifyRecordInput => ({
    ticketKey, stepId: `a1:${outcome}`, outcome, actionKind: outcome === 'granted' ? 'joiner' : 'joiner-expiry', system: 'mysql-local',
    identity: { type: 'service_account', name: account, host: '%' },
    desired: operation.op === 'grant' ? { exists: true, mustHave: operation.grants } : { exists: true },
    eventReceivedAt: new Date().toISOString(), operation, attempts: 3,
  });
  const grantsOf = async (account: string) => {
    const [rows] = await admin.query<mysql.RowDataPacket[]>('SHOW GRANTS FOR ?@?', [account, '%']);
    return rows.map((r) => String(Object.values(r)[0])).join('\n');
  };
  const holdersOf = async (account: string) => (await inventory.find('mysql-local', account, '%'))?.grants.find((g) => g.grant === GRANT)?.tickets ?? [];

  it('two tickets ending the same grant at once: the last to end removes it, and only the first says it was still held', async () => {
    const account = uniqueAccount('ovc');
    made.push(account);
    const [first, second] = [`servicenow:${uniqueTicketNumber()}`, `servicenow:${uniqueTicketNumber()}`];
    const a = activities();
    for (const t of [first, second]) expect(await a.applyVerifyRecord(step(t, account, { op: 'grant', grants: [GRANT] }, 'granted'))).toMatchObject({ verified: true });
    expect(await holdersOf(account)).toEqual([first, second].sort());

    const [one, two] = await Promise.all([first, second].map((t) => a.applyVerifyRecord(step(t, account, { op: 'take-back', grants: [GRANT], dropAccount: false }, 'expired'))));
    expect(one).toMatchObject({ verified: true });
    expect(two).toMatchObject({ verified: true });
    // Nobody holds it any more, so it is gone from the target and from the inventory.
    expect(await grantsOf(account)).not.toMatch(/SELECT ON `cgt\\_billing`/);
    expect(await holdersOf(account)).toEqual([]);
    // The first to end did so while the other still held it, and says so; the other found itself the last holder.
    // Which ended first is the order the rows were written in (the identity's lock lets the second write only after
    // the first committed): the table's ids, not the rows' clock readings, which a coarse or stepped clock could tie
    // or swap. Each row is the second of its own ticket's chain, so neither chain's seq orders them.
    const order: Array<{ t: string }> = await ds.query('SELECT ticket_key AS t FROM evidence_records WHERE ticket_key IN (?, ?) AND outcome = ? ORDER BY id', [first, second, 'expired']);
    const [earlier, later] = await Promise.all(order.map(async ({ t }) => ({ t, row: (await evidence.list(t)).find((r) => r.outcome === 'expired') })));
    expect(String(earlier?.row?.verification.applied)).toContain(`kept: ${GRANT} still held by ${later?.t}`);
    expect(String(later?.row?.verification.applied)).not.toContain('kept:');
  });

  it('a grant arriving while another ticket takes the same grant back ends granted: held by the new ticket, on the target and in the inventory', async () => {
    const account = uniqueAccount('ovg');
    made.push(account);
    const [leaving, arriving] = [`servicenow:${uniqueTicketNumber()}`, `servicenow:${uniqueTicketNumber()}`];
    expect(await activities().applyVerifyRecord(step(leaving, account, { op: 'grant', grants: [GRANT] }, 'granted'))).toMatchObject({ verified: true });

    // The take-back decides (the inventory lists only its own ticket), then reaches the target only once the arriving
    // grant has been recorded — or once the arriving grant is waiting for this step's turn on the identity to end.
    let releaseTakeBack: () => void = () => undefined;
    const takeBackMayAct = new Promise<void>((r) => {
      releaseTakeBack = r;
    });
    const gated: Pick<ConnectorRegistry, 'get'> = {
      get(system: string): Connector {
        const c = registry.get(system);
        return Object.assign(Object.create(c) as Connector, {
          ungrant: async (...args: Parameters<Connector['ungrant']>) => {
            await takeBackMayAct;
            return c.ungrant(...args);
          },
        });
      },
    };
    const takeBack = activities(gated).applyVerifyRecord(step(leaving, account, { op: 'take-back', grants: [GRANT], dropAccount: false }, 'expired'));
    const grant = activities().applyVerifyRecord(step(arriving, account, { op: 'grant', grants: [GRANT] }, 'granted'));
    await waitFor('the arriving grant recorded, or waiting for the identity', async () => {
      const recorded = (await evidence.list(arriving)).some((r) => r.outcome === 'granted');
      const [waiting] = await admin.query<mysql.RowDataPacket[]>("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'SELECT GET_LOCK(%' AND STATE = 'User lock'", [TEST_ENV.database]);
      return recorded || Number(waiting[0]?.n) > 0;
    });
    releaseTakeBack();
    const [back, granted] = await Promise.all([takeBack, grant]);
    expect(back).toMatchObject({ verified: true });
    expect(granted).toMatchObject({ verified: true });
    // The arriving ticket's grant is what the target holds at the end, and the inventory says it is its.
    expect(await grantsOf(account)).toMatch(/GRANT SELECT ON `cgt\\_billing`\.\*/);
    expect(await holdersOf(account)).toEqual([arriving]);
  });
});
