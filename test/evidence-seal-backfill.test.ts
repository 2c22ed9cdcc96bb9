import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { GENESIS_HASH, jcs, sha256Hex } from '../src/evidence/canonical-json';
import { SEAL_MISSING, evidenceSealer } from '../src/evidence/evidence-seal';
import { EvidenceStore } from '../src/evidence/evidence-store';
import { MIGRATIONS, createDataSource, migrateDatabase, openDatabase } from '../src/persistence/data-source';
import { EvidenceSeals1764900000000, sealingBeganText } from '../src/persistence/migrations/1764900000000-evidence-seals';
import { TEST_ENV } from './support/test-env';

/**
 * Rows recorded before sealing existed, on a real MariaDB database of this test's own: the seal migration seals exactly
 * them, once, with the key (refusing to start without one), and records when sealing began under the same key. The
 * gateway seals nothing at any other time, so a row anyone adds later stays unsealed (reported), whatever id it takes
 * and however often the gateway restarts. Sealing never rewrites a row: the application account has no UPDATE on it.
 */
describe('evidence recorded before sealing began', () => {
  const database = `${TEST_ENV.database}_sealing`;
  const url = `mysql://root@127.0.0.1:3306/${database}`;
  const sealer = evidenceSealer(TEST_ENV.evidenceSealKey);
  let admin: mysql.Connection;
  let ds: DataSource;

  /** A row as the gateway wrote it before sealing: chained, hashed over RFC 8785, no seal. */
  async function insertRow(conn: mysql.Connection, row: { id?: number; ticketKey: string; seq: number; prevHash: string; stepId: string }): Promise<string> {
    const at = new Date('2026-11-01T10:00:00.000Z');
    const canonical = jcs({ ticketKey: row.ticketKey, seq: row.seq, prevHash: row.prevHash, stepId: row.stepId, outcome: 'revoked', verified: true, recordedAt: at.toISOString() });
    const hash = sha256Hex(canonical);
    await conn.query(
      `INSERT INTO \`${database}\`.evidence_records (${row.id ? 'id, ' : ''}ticket_key, seq, step_id, outcome, action_kind, system, identity, desired_state, observed_state, verified,
         verification, actor, event_received_at, started_at, verified_at, recorded_at, prev_hash, hash, canonical)
       VALUES (${row.id ? '?, ' : ''}?, ?, ?, 'revoked', 'leaver', 'mysql-local', '{}', '{}', '{}', 1, '{}', 'forger', ?, ?, ?, ?, ?, ?, ?)`,
      [...(row.id ? [row.id] : []), row.ticketKey, row.seq, row.stepId, at, at, at, at, row.prevHash, hash, canonical],
    );
    return hash;
  }

  beforeAll(async () => {
    admin = await mysql.createConnection({ uri: TEST_ENV.adminUrl });
    await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    // The schema as it was before sealing, and rows written then: ticket A's two, ticket B's one (ids 1, 2 and 5).
    await migrateBeforeSealing(url);
    const a1 = await insertRow(admin, { id: 1, ticketKey: 'servicenow:A', seq: 1, prevHash: GENESIS_HASH, stepId: 'leaver:a1' });
    await insertRow(admin, { id: 2, ticketKey: 'servicenow:A', seq: 2, prevHash: a1, stepId: 'leaver:a2' });
    await insertRow(admin, { id: 5, ticketKey: 'servicenow:B', seq: 1, prevHash: GENESIS_HASH, stepId: 'leaver:b1' });
  });
  afterAll(async () => {
    await ds?.destroy();
    await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await admin.end();
  });

  const columns = async () => (await admin.query<mysql.RowDataPacket[]>(`SHOW COLUMNS FROM \`${database}\`.evidence_records LIKE 'seal'`))[0].length;
  const tables = async () => (await admin.query<mysql.RowDataPacket[]>(`SHOW TABLES FROM \`${database}\` LIKE 'evidence\\_%'`))[0].map((r) => String(Object.values(r)[0])).sort();

  it('a database holding evidence is not migrated without the seal key, and nothing is changed', async () => {
    await expect(migrateDatabase(url)).rejects.toThrow('CHANGEGATE_EVIDENCE_SEAL_KEY is required to migrate: the evidence rows recorded so far are sealed with it now (nothing was changed)');
    expect(await columns()).toBe(0);
    expect(await tables()).toEqual(['evidence_records']);
  });

  it('with the key, the migration seals exactly the rows recorded so far and records when, under the same key', async () => {
    await migrateDatabase(url, { evidenceSealer: sealer });
    ds = await openDatabase(url);
    const [seals] = await admin.query<mysql.RowDataPacket[]>(`SELECT evidence_id, seal FROM \`${database}\`.evidence_backfilled_seals ORDER BY evidence_id`);
    expect(seals.map((s) => [String(s.evidence_id), String(s.seal).replace(/[0-9a-f]{64}$/, 'mac')])).toEqual([['1', 'hmac-sha256:backfilled:mac'], ['2', 'hmac-sha256:backfilled:mac'], ['5', 'hmac-sha256:backfilled:mac']]);
    const [[began]] = await admin.query<mysql.RowDataPacket[]>(`SELECT through_id, at, seal FROM \`${database}\`.evidence_sealing WHERE event = 'began'`);
    expect(String(began!.through_id)).toBe('5');
    expect(sealer.check(sealingBeganText('5', String(began!.at)), String(began!.seal), 'backfilled')).toEqual({ ok: true, kind: 'backfilled' });
    const store = new EvidenceStore(ds, sealer);
    expect(await store.verifyChain('servicenow:A')).toEqual({ valid: true, rows: 2 });
    expect(await store.verifyChain('servicenow:B')).toEqual({ valid: true, rows: 1 });
  });

  it('a row added after the migration stays unsealed, whatever id it takes and however often the gateway restarts', async () => {
    const [[headA]] = await admin.query<mysql.RowDataPacket[]>(`SELECT hash FROM \`${database}\`.evidence_records WHERE ticket_key = 'servicenow:A' AND seq = 2`);
    await insertRow(admin, { ticketKey: 'servicenow:A', seq: 3, prevHash: String(headA!.hash), stepId: 'leaver:forged' });
    // An old id: a gap below the newest row recorded before sealing.
    await insertRow(admin, { id: 3, ticketKey: 'servicenow:C', seq: 1, prevHash: GENESIS_HASH, stepId: 'leaver:c1' });
    // A restart, migrations and all.
    await ds.destroy();
    await migrateDatabase(url, { evidenceSealer: sealer });
    ds = await openDatabase(url);
    const store = new EvidenceStore(ds, sealer);
    expect(await store.verifyChain('servicenow:A')).toEqual({ valid: false, rows: 3, brokenAt: { seq: 3, reason: SEAL_MISSING } });
    expect(await store.verifyChain('servicenow:C')).toEqual({ valid: false, rows: 1, brokenAt: { seq: 1, reason: SEAL_MISSING } });
    const [[count]] = await admin.query<mysql.RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${database}\`.evidence_backfilled_seals`);
    expect(Number(count!.n)).toBe(3);
  });

  it('rows written from now on carry their own seal and verify after the older ones', async () => {
    const store = new EvidenceStore(ds, sealer);
    const now = new Date().toISOString();
    const row = { ticketKey: 'servicenow:B', stepId: 'leaver:b2', outcome: 'revoked', actionKind: 'leaver', system: 'mysql-local', identity: {}, desiredState: {}, observedState: {}, verified: true, verification: {}, actor: 'test', eventReceivedAt: now, startedAt: now, verifiedAt: now };
    await store.append(row);
    expect(await store.verifyChain('servicenow:B')).toEqual({ valid: true, rows: 2 });
    // Under another key, neither the backfilled nor the written seal verifies.
    expect(await new EvidenceStore(ds, evidenceSealer('another-key-0123456789abcdef0123456789')).verifyChain('servicenow:B')).toMatchObject({ valid: false, brokenAt: { seq: 1 } });
  });

  it('the application account cannot rewrite the record of when sealing began, nor remove a backfilled seal; the tables refuse UPDATE and DELETE', async () => {
    const user = `cg_seal_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [user, '127.0.0.1', password]);
    await admin.query(`GRANT SELECT, INSERT ON \`${database}\`.* TO ?@?`, [user, '127.0.0.1']);
    const app = await mysql.createConnection({ host: '127.0.0.1', user, password, database });
    try {
      await expect(app.query("INSERT INTO evidence_sealing (event, through_id, at) VALUES ('began', 1000, '2026-11-30T00:00:00.000Z')")).rejects.toMatchObject({ code: 'ER_DUP_ENTRY' });
      await expect(app.query("UPDATE evidence_sealing SET through_id = 1000 WHERE event = 'began'")).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
      await expect(app.query("DELETE FROM evidence_sealing WHERE event = 'began'")).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
      await expect(app.query('DELETE FROM evidence_backfilled_seals WHERE evidence_id = 1')).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    } finally {
      await app.end();
      await admin.query('DROP USER IF EXISTS ?@?', [user, '127.0.0.1']);
    }
    for (const sql of [`UPDATE \`${database}\`.evidence_sealing SET through_id = 1000`, `DELETE FROM \`${database}\`.evidence_sealing`, `UPDATE \`${database}\`.evidence_backfilled_seals SET seal = 'x'`, `DELETE FROM \`${database}\`.evidence_backfilled_seals`]) {
      await expect(admin.query(sql)).rejects.toMatchObject({ sqlMessage: expect.stringMatching(/is append-only$/) });
    }
  });
});

/** Runs the migrations that came before the seal migration: the schema as it was before sealing existed. */
async function migrateBeforeSealing(url: string): Promise<void> {
  const before = new DataSource({ ...createDataSource(url).options, migrations: MIGRATIONS.slice(0, MIGRATIONS.indexOf(EvidenceSeals1764900000000)) } as DataSourceOptions);
  await before.initialize();
  await before.runMigrations({ transaction: 'each' });
  await before.destroy();
}
