import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { GENESIS_HASH, jcs, sha256Hex } from '../src/evidence/canonical-json';
import { type EvidenceSealer, SEAL_MISSING, evidenceSealer } from '../src/evidence/evidence-seal';
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

/**
 * A seal migration cut short (the process killed, the connection lost) after some batches of seals were written: the
 * next run finishes it, from the start the first recorded, and seals no row twice; it seals no row that was not
 * there when sealing began. On databases of this test's own, with more rows than two batches.
 */
describe('an interrupted seal migration', () => {
  const ROWS = 1_100;
  const TICKETS = ['servicenow:P', 'servicenow:Q', 'servicenow:R', 'servicenow:S'];
  const sealer = evidenceSealer(TEST_ENV.evidenceSealKey);
  let admin: mysql.Connection;
  const databases: string[] = [];

  /** A database as it was before sealing, holding ROWS rows chained over TICKETS, at even ids (the odd ones are gaps). */
  async function databaseBeforeSealing(name: string): Promise<string> {
    const database = `${TEST_ENV.database}_${name}`;
    databases.push(database);
    await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    const url = `${TEST_ENV.adminUrl}${database}`;
    await migrateBeforeSealing(url);
    const heads = new Map(TICKETS.map((t) => [t, { seq: 0, hash: GENESIS_HASH }]));
    const at = new Date('2026-11-01T10:00:00.000Z');
    const rows = Array.from({ length: ROWS }, (_, i) => {
      const ticketKey = TICKETS[i % TICKETS.length] as string;
      const head = heads.get(ticketKey) as { seq: number; hash: string };
      const canonical = jcs({ ticketKey, seq: head.seq + 1, prevHash: head.hash, stepId: `leaver:${i}`, outcome: 'revoked', verified: true, recordedAt: at.toISOString() });
      const row = [2 * (i + 1), ticketKey, head.seq + 1, `leaver:${i}`, at, at, at, at, head.hash, sha256Hex(canonical), canonical];
      heads.set(ticketKey, { seq: head.seq + 1, hash: sha256Hex(canonical) });
      return row;
    });
    for (let i = 0; i < rows.length; i += 200) {
      const chunk = rows.slice(i, i + 200);
      await admin.query(
        `INSERT INTO \`${database}\`.evidence_records (id, ticket_key, seq, step_id, outcome, action_kind, system, identity, desired_state, observed_state, verified,
           verification, actor, event_received_at, started_at, verified_at, recorded_at, prev_hash, hash, canonical)
         VALUES ${chunk.map(() => "(?, ?, ?, ?, 'revoked', 'leaver', 'mysql-local', '{}', '{}', '{}', 1, '{}', 'before-sealing', ?, ?, ?, ?, ?, ?, ?)").join(', ')}`,
        chunk.flat(),
      );
    }
    return url;
  }

  /** The key's sealer, stopping like a killed process at its `n`th seal: the batch it was sealing is never written. */
  function interruptedAt(n: number): EvidenceSealer {
    let seals = 0;
    return {
      seal: (hash, kind) => {
        seals += 1;
        if (seals >= n) throw new Error(`interrupted at seal ${n}`);
        return sealer.seal(hash, kind);
      },
      check: sealer.check,
    };
  }

  const backfilled = async (database: string) =>
    (await admin.query<mysql.RowDataPacket[]>(`SELECT s.evidence_id AS id, s.seal, e.hash FROM \`${database}\`.evidence_backfilled_seals s JOIN \`${database}\`.evidence_records e ON e.id = s.evidence_id`))[0];
  const began = async (database: string) => (await admin.query<mysql.RowDataPacket[]>(`SELECT through_id, at FROM \`${database}\`.evidence_sealing WHERE event = 'began'`))[0][0];
  const migrated = async (database: string) => (await admin.query<mysql.RowDataPacket[]>(`SELECT name FROM \`${database}\`.migrations WHERE name = 'EvidenceSeals1764900000000'`))[0].length;

  beforeAll(async () => {
    admin = await mysql.createConnection({ uri: TEST_ENV.adminUrl });
  });
  afterAll(async () => {
    for (const database of databases) await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await admin.end();
  });

  it('the next run finishes it: every row recorded before sealing is sealed exactly once, the chains verify, and the recorded start is kept', async () => {
    const url = await databaseBeforeSealing('resumed');
    const database = new URL(url).pathname.slice(1);
    // Cut short while sealing the second batch: the first (500 rows) is committed, the rest is not written.
    await expect(migrateDatabase(url, { evidenceSealer: interruptedAt(700) })).rejects.toThrow('interrupted at seal 700');
    expect((await backfilled(database)).length).toBe(500);
    expect(await migrated(database)).toBe(0);
    const start = await began(database);

    await migrateDatabase(url, { evidenceSealer: sealer });
    expect(String(start?.through_id)).toBe(String(2 * ROWS));
    const seals = await backfilled(database);
    expect(seals.length).toBe(ROWS);
    expect(new Set(seals.map((s) => String(s.id))).size).toBe(ROWS);
    expect(seals.filter((s) => !sealer.check(String(s.hash), String(s.seal), 'backfilled').ok)).toEqual([]);
    expect(await began(database)).toEqual(start);
    expect(await migrated(database)).toBe(1);
    const ds = await openDatabase(url);
    try {
      const store = new EvidenceStore(ds, sealer);
      for (const ticket of TICKETS) expect(await store.verifyChain(ticket)).toEqual({ valid: true, rows: ROWS / TICKETS.length });
    } finally {
      await ds.destroy();
    }
  });

  it('the next run seals no row added since sealing began, nor goes on under another key: it refuses, and nothing more is sealed', async () => {
    const url = await databaseBeforeSealing('refused');
    const database = new URL(url).pathname.slice(1);
    await expect(migrateDatabase(url, { evidenceSealer: interruptedAt(700) })).rejects.toThrow('interrupted at seal 700');
    // In a gap below the last row to seal, as the application account (which may INSERT) could add it meanwhile.
    const canonical = jcs({ ticketKey: 'servicenow:X', seq: 1, prevHash: GENESIS_HASH, stepId: 'leaver:forged', outcome: 'revoked', verified: true });
    await admin.query(
      `INSERT INTO \`${database}\`.evidence_records (id, ticket_key, seq, step_id, outcome, action_kind, system, identity, desired_state, observed_state, verified,
         verification, actor, event_received_at, started_at, verified_at, recorded_at, prev_hash, hash, canonical)
       VALUES (3, 'servicenow:X', 1, 'leaver:forged', 'revoked', 'leaver', 'mysql-local', '{}', '{}', '{}', 1, '{}', 'forger', NOW(3), NOW(3), NOW(3), NOW(3), ?, ?, ?)`,
      [GENESIS_HASH, sha256Hex(canonical), canonical],
    );
    await expect(migrateDatabase(url, { evidenceSealer: evidenceSealer('another-key-0123456789abcdef0123456789') })).rejects.toThrow(
      'the evidence seal migration cannot resume: its record of when sealing began does not verify under this key (nothing more was sealed)',
    );
    await expect(migrateDatabase(url, { evidenceSealer: sealer })).rejects.toThrow(
      `the evidence seal migration cannot resume: ${ROWS} rows were recorded through row ${2 * ROWS} when sealing began, and ${ROWS + 1} are now (nothing more was sealed)`,
    );
    expect((await backfilled(database)).length).toBe(500);
    expect(await migrated(database)).toBe(0);
  });
});

/** Runs the migrations that came before the seal migration: the schema as it was before sealing existed. */
async function migrateBeforeSealing(url: string): Promise<void> {
  const before = new DataSource({ ...createDataSource(url).options, migrations: MIGRATIONS.slice(0, MIGRATIONS.indexOf(EvidenceSeals1764900000000)) } as DataSourceOptions);
  await before.initialize();
  await before.runMigrations({ transaction: 'each' });
  await before.destroy();
}
