import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { ApiTokenStore } from '../src/auth/api-tokens';
import { evidenceSealer } from '../src/evidence/evidence-seal';
import { MIGRATIONS, createDataSource, migrateDatabase, openDatabase } from '../src/persistence/data-source';
import { TriggerDefiners1765100000000 } from '../src/persistence/migrations/1765100000000-trigger-definers';
import { accountOf, createDeployedAccount, deployGrants, grantAsDeployed } from './support/db-accounts';
import { TEST_ENV } from './support/test-env';

/** The tables the application account keeps in place: its only UPDATE, and never DELETE. */
const KEPT_IN_PLACE = ['api_tokens', 'identity_inventory', 'itsm_sync_cursors', 'drift_findings', 'emergency_exceptions', 'certification_items'];
/** MariaDB's refusal of a statement the account holds no privilege for. */
const denied = (command: string) => ({ errno: 1142, code: 'ER_TABLEACCESS_DENIED_ERROR', sqlMessage: expect.stringContaining(`${command} command denied to user '${TEST_ENV.appUser}'@'127.0.0.1'`) });

/**
 * The gateway's two database accounts as deploy/ makes them (scripts/setup.sh and this test run make them the same
 * way): the API and the worker run as the application account, which holds no DDL and no DELETE, so it cannot drop
 * the triggers that keep the evidence append-only, alter or drop a table, or delete evidence; the migration account
 * runs the migrations, from an empty database, and defines every trigger. Real MariaDB: the run's own accounts
 * (global-setup) on the run's database, and accounts of this test's own on databases of its own.
 */
describe("the gateway's database accounts", () => {
  let admin: mysql.Connection;
  let app: mysql.Connection;
  beforeAll(async () => {
    admin = await mysql.createConnection({ uri: TEST_ENV.adminUrl });
    app = await mysql.createConnection({ uri: TEST_ENV.databaseUrl });
  });
  afterAll(async () => {
    await app.end();
    await admin.end();
  });

  it('deploy/ gives the application account SELECT and INSERT, and UPDATE on the tables it keeps in place; the migration account what the migrations use', () => {
    expect(deployGrants('changegate_app', 'accounts')).toEqual([{ privileges: 'SELECT, INSERT', object: '*' }]);
    expect(deployGrants('changegate_app', 'afterMigrations')).toEqual(KEPT_IN_PLACE.map((t) => ({ privileges: 'UPDATE', object: `\`${t}\`` })));
    expect(deployGrants('changegate_migrate', 'accounts')).toEqual([{ privileges: 'SELECT, INSERT, CREATE, ALTER, INDEX, TRIGGER', object: '*' }]);
    expect(deployGrants('changegate_migrate', 'afterMigrations')).toEqual([]);
  });

  it('the application account cannot drop or create a trigger, alter, create, drop or empty a table, or delete evidence', async () => {
    for (const trigger of ['evidence_records_no_delete', 'evidence_records_no_update', 'evidence_backfilled_seals_no_delete', 'evidence_sealing_no_delete', 'api_tokens_revoke_only']) {
      await expect(app.query(`DROP TRIGGER ${trigger}`)).rejects.toMatchObject(denied('TRIGGER'));
    }
    await expect(app.query("CREATE TRIGGER cg_forged BEFORE INSERT ON evidence_records FOR EACH ROW SET NEW.verified = 1")).rejects.toMatchObject(denied('TRIGGER'));
    await expect(app.query('ALTER TABLE evidence_records ADD COLUMN note TEXT')).rejects.toMatchObject(denied('ALTER'));
    await expect(app.query('CREATE TABLE cg_forged (id INT)')).rejects.toMatchObject(denied('CREATE'));
    await expect(app.query('CREATE INDEX ix_forged ON evidence_records (actor)')).rejects.toMatchObject(denied('INDEX'));
    for (const table of ['evidence_records', 'evidence_backfilled_seals', 'evidence_sealing']) {
      await expect(app.query(`DROP TABLE ${table}`)).rejects.toMatchObject(denied('DROP'));
      await expect(app.query(`TRUNCATE TABLE ${table}`)).rejects.toMatchObject(denied('DROP'));
      await expect(app.query(`DELETE FROM ${table}`)).rejects.toMatchObject(denied('DELETE'));
      await expect(app.query(`UPDATE ${table} SET seal = seal`)).rejects.toMatchObject(denied('UPDATE'));
    }
    for (const table of KEPT_IN_PLACE) await expect(app.query(`DELETE FROM ${table}`)).rejects.toMatchObject(denied('DELETE'));
  });

  describe('a database made from nothing', () => {
    const database = `${TEST_ENV.database}_fresh`;
    const suffix = randomBytes(4).toString('hex');
    const appUrl = `mysql://cg_new_app_${suffix}:${randomBytes(12).toString('hex')}@127.0.0.1:${TEST_ENV.mariadbPort}/${database}`;
    const migrateUrl = `mysql://cg_new_mig_${suffix}:${randomBytes(12).toString('hex')}@127.0.0.1:${TEST_ENV.mariadbPort}/${database}`;
    beforeAll(async () => {
      await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
      await createDeployedAccount(admin, 'changegate_migrate', migrateUrl);
      await createDeployedAccount(admin, 'changegate_app', appUrl);
    });
    afterAll(async () => {
      await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
      for (const url of [appUrl, migrateUrl]) await admin.query('DROP USER IF EXISTS ?@?', [accountOf(url).user, '127.0.0.1']);
    });

    it('is created and migrated by the migration account, which defines every trigger; the application account then runs on it', async () => {
      await migrateDatabase(migrateUrl, { evidenceSealer: evidenceSealer(TEST_ENV.evidenceSealKey) });
      const [ran] = await admin.query<mysql.RowDataPacket[]>(`SELECT name FROM \`${database}\`.migrations ORDER BY id`);
      expect(ran.map((r) => r.name)).toEqual(MIGRATIONS.map((m) => m.name));
      const [triggers] = await admin.query<mysql.RowDataPacket[]>('SELECT DISTINCT DEFINER AS definer FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?', [database]);
      expect(triggers.map((t) => t.definer)).toEqual([`${accountOf(migrateUrl).user}@127.0.0.1`]);
      await grantAsDeployed(admin, 'changegate_app', 'afterMigrations', appUrl);
      const ds = await openDatabase(appUrl);
      try {
        // A revocation: UPDATE on api_tokens, through the trigger the migration account defined.
        const tokens = new ApiTokenStore(ds);
        const { info } = await tokens.create(`fresh-${suffix}`, ['auditor'], 'test');
        expect(await tokens.revoke(info.name, 'test')).toMatchObject({ name: info.name, revokedBy: 'test' });
      } finally {
        await ds.destroy();
      }
    });
  });

  describe('a database the application account migrated, before the migration account existed', () => {
    const database = `${TEST_ENV.database}_upgrade`;
    const suffix = randomBytes(4).toString('hex');
    const oldAppUrl = `mysql://cg_upg_app_${suffix}:${randomBytes(12).toString('hex')}@127.0.0.1:${TEST_ENV.mariadbPort}/${database}`;
    const migrateUrl = `mysql://cg_upg_mig_${suffix}:${randomBytes(12).toString('hex')}@127.0.0.1:${TEST_ENV.mariadbPort}/${database}`;
    const dropTriggerDefinersFrom = (url: string) => ({ ...createDataSource(url).options, migrations: MIGRATIONS.slice(0, MIGRATIONS.indexOf(TriggerDefiners1765100000000)) }) as DataSourceOptions;

    beforeAll(async () => {
      await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
      await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
      // The application account as deploy/ and setup made it then: DDL on the database, CREATE with each table grant.
      const { user, host, password } = accountOf(oldAppUrl);
      await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [user, host, password]);
      await admin.query(`GRANT SELECT, INSERT, CREATE, ALTER, INDEX, REFERENCES, TRIGGER ON \`${database}\`.* TO ?@?`, [user, host]);
      for (const table of KEPT_IN_PLACE) await admin.query(`GRANT CREATE, UPDATE ON \`${database}\`.\`${table}\` TO ?@?`, [user, host]);
      // ... which ran every migration there was then, and so defined every trigger.
      const before = new DataSource(dropTriggerDefinersFrom(oldAppUrl));
      await before.initialize();
      await before.runMigrations({ transaction: 'each' });
      await before.destroy();
      await createDeployedAccount(admin, 'changegate_migrate', migrateUrl);
    });
    afterAll(async () => {
      await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
      for (const url of [oldAppUrl, migrateUrl]) await admin.query('DROP USER IF EXISTS ?@?', [accountOf(url).user, '127.0.0.1']);
    });

    it("keeps working once its DDL is taken back: the migration account's run defines the triggers again, and they still refuse", async () => {
      const { user, host } = accountOf(oldAppUrl);
      await admin.query(`REVOKE CREATE, ALTER, INDEX, REFERENCES, TRIGGER ON \`${database}\`.* FROM ?@?`, [user, host]);
      for (const table of KEPT_IN_PLACE) await admin.query(`REVOKE CREATE ON \`${database}\`.\`${table}\` FROM ?@?`, [user, host]);
      const ds = await openDatabase(oldAppUrl);
      try {
        const tokens = new ApiTokenStore(ds);
        const { info } = await tokens.create(`upgrade-${suffix}`, ['auditor'], 'test');
        // A trigger runs as its definer, which no longer holds TRIGGER: the revocation's BEFORE UPDATE trigger refuses.
        await expect(tokens.revoke(info.name, 'test')).rejects.toMatchObject({ driverError: { errno: 1142, sqlMessage: expect.stringContaining(`TRIGGER command denied to user '${user}'`) } });

        await migrateDatabase(migrateUrl, { evidenceSealer: evidenceSealer(TEST_ENV.evidenceSealKey) });
        const [definers] = await admin.query<mysql.RowDataPacket[]>('SELECT DISTINCT DEFINER AS definer FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?', [database]);
        expect(definers.map((d) => d.definer)).toEqual([`${accountOf(migrateUrl).user}@127.0.0.1`]);
        expect(await tokens.revoke(info.name, 'test')).toMatchObject({ name: info.name, revokedBy: 'test' });
        // Even the administrator is refused by them.
        await expect(admin.query(`UPDATE \`${database}\`.api_tokens SET revoked_at = NULL WHERE name = ?`, [info.name])).rejects.toMatchObject({ sqlState: '45000' });
        await expect(admin.query(`DELETE FROM \`${database}\`.api_tokens WHERE name = ?`, [info.name])).rejects.toMatchObject({ sqlState: '45000' });
      } finally {
        await ds.destroy();
      }
    });
  });
});
