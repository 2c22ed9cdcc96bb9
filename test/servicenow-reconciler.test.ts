import type { DataSource } from 'typeorm';
import { AppError } from '../src/errors';
import { createLogger } from '../src/logger';
import { ServiceNowClient } from '../src/itsm/servicenow/servicenow-client';
import { ServiceNowReconciler } from '../src/itsm/servicenow/servicenow-reconciler';
import { type ListeningSimulator, type ServiceNowSimulator, createServiceNowSimulator } from '../src/itsm/servicenow/servicenow-simulator';
import type { RawDelivery } from '../src/itsm/source';
import { openDatabase } from '../src/persistence/data-source';
import { TEST_ENV } from './support/test-env';

/**
 * The reconciler's own contract, against the simulator's Table API and the real cursor table in MariaDB, reached as
 * the application account the gateway runs as (deploy/'s grants: INSERT, and UPDATE on the cursors): every change
 * updated since the cursor is handed over once per version, in (sys_updated_on, sys_id) order, across pages even
 * when a whole page shares one second; a failure keeps the cursor before what was not handed over; and two passes
 * never run at once. The delivery path is a stand-in that de-duplicates as the real one does (its own tests
 * are the webhook's).
 */
const USER = 'reconcile-user';
const PASSWORD = 'reconcile-password-81';

describe('ServiceNow reconciliation against the Table API and the cursor table', () => {
  let ds: DataSource;
  let sim: ServiceNowSimulator;
  let server: ListeningSimulator;
  beforeAll(async () => {
    ds = await openDatabase(TEST_ENV.databaseUrl);
  });
  afterAll(async () => {
    await ds.destroy();
  });
  beforeEach(async () => {
    sim = createServiceNowSimulator({ username: USER, password: PASSWORD });
    server = await sim.listen(0);
  });
  afterEach(async () => {
    await server.close();
  });

  /** The delivery path's de-duplication on sys_id + sys_mod_count, and what it was handed, in order. */
  function deliveryPath(fail?: (record: { sys_id: string; sys_mod_count: string }) => Error | undefined) {
    const handed: string[] = [];
    const seen = new Set<string>();
    const accept = async (delivery: RawDelivery) => {
      const record = JSON.parse(delivery.raw.toString('utf8')) as { sys_id: string; sys_mod_count: string };
      const error = fail?.(record);
      if (error) throw error;
      const key = `${record.sys_id}:${record.sys_mod_count}`;
      if (seen.has(key)) return { duplicate: true };
      seen.add(key);
      handed.push(key);
      return { duplicate: false };
    };
    return { handed, accept };
  }

  function reconciler(accept: (d: RawDelivery) => Promise<{ duplicate: boolean }>, pageSize = 2) {
    return new ServiceNowReconciler({
      client: new ServiceNowClient({ baseUrl: server.url, username: USER, password: PASSWORD }),
      ds,
      instanceUrl: server.url,
      accept,
      log: createLogger('test', 'error'),
      pageSize,
    });
  }

  const inOrder = (rows: Array<Record<string, string>>) =>
    [...rows].sort((a, b) => a.sys_updated_on.localeCompare(b.sys_updated_on) || a.sys_id.localeCompare(b.sys_id)).map((r) => `${r.sys_id}:${r.sys_mod_count}`);

  it('hands every change over once, in order, across pages of one second, and a later pass only what changed', async () => {
    const made = Array.from({ length: 5 }, () => sim.createChange({}));
    const path = deliveryPath();
    const r = reconciler(path.accept);

    const first = await r.runOnce();
    expect(first).toMatchObject({ ran: true, read: 5, accepted: 5, duplicates: 0 });
    expect(path.handed).toEqual(inOrder(made.map((c) => ({ ...c }))));

    const updated = sim.updateChange(made[1].sys_id, { short_description: 'edited' });
    const second = await r.runOnce();
    expect(second.accepted).toBe(1);
    expect(path.handed.slice(5)).toEqual([`${updated.sys_id}:${updated.sys_mod_count}`]);
    const [cursor] = (await ds.query('SELECT updated_on FROM itsm_sync_cursors WHERE cursor_key = ?', [`servicenow:${server.url}`])) as Array<{ updated_on: string }>;
    expect(cursor.updated_on).toBe(updated.sys_updated_on);
  });

  it('a record that cannot be handed over (the workflow engine is down) stops the pass; the next pass hands it and the rest', async () => {
    const made = Array.from({ length: 4 }, () => sim.createChange({}));
    const order = inOrder(made.map((c) => ({ ...c })));
    let down = true;
    const path = deliveryPath((rec) => (down && `${rec.sys_id}:${rec.sys_mod_count}` === order[2] ? new AppError(503, 'UNAVAILABLE', 'temporal down') : undefined));
    const r = reconciler(path.accept);

    await expect(r.runOnce()).rejects.toThrow('temporal down');
    expect(path.handed).toEqual(order.slice(0, 2));
    down = false;
    await r.runOnce();
    expect(path.handed).toEqual(order);
  });

  it('a record the delivery path refuses (invalid, or its workflow has finished) is counted and passed over', async () => {
    const made = [sim.createChange({}), sim.createChange({})];
    const order = inOrder(made.map((c) => ({ ...c })));
    const path = deliveryPath((rec) => (`${rec.sys_id}:${rec.sys_mod_count}` === order[0] ? new AppError(400, 'VALIDATION_FAILED', 'invalid') : undefined));

    const pass = await reconciler(path.accept).runOnce();
    expect(pass).toMatchObject({ read: 2, accepted: 1, refused: 1 });
    expect(path.handed).toEqual([order[1]]);
  });

  it('a pass while another holds the instance\'s lock does nothing', async () => {
    sim.createChange({});
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered: () => void = () => undefined;
    const inside = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const slow = reconciler(async () => {
      entered();
      await held;
      return { duplicate: false };
    });
    const first = slow.runOnce();
    await inside;
    const second = await reconciler(async () => ({ duplicate: false })).runOnce();
    expect(second).toEqual({ ran: false, read: 0, accepted: 0, duplicates: 0, refused: 0 });
    release();
    expect((await first).ran).toBe(true);
  });
});
