import type { MigrationInterface, QueryRunner } from 'typeorm';
import type { EvidenceSealer } from '../../evidence/evidence-seal';

const KEY_REQUIRED = 'CHANGEGATE_EVIDENCE_SEAL_KEY is required to migrate: the evidence rows recorded so far are sealed with it now (nothing was changed)';
/** Rows sealed per INSERT, each committed on its own. */
const BATCH = 500;

/**
 * Evidence rows carry a keyed seal (src/evidence/evidence-seal.ts): `evidence_records.seal`, written with the row.
 *
 * Rows recorded before this migration have none. They are sealed here, once, as part of the migration itself: the
 * gateway never seals a row it did not write at any other time. Their seals go to `evidence_backfilled_seals` (the
 * application account cannot UPDATE evidence_records), marked `backfilled` inside the MAC: they prove the row was in
 * the database when sealing began, not who wrote it. `evidence_sealing` records, before any row is sealed, when that
 * was, through which row, and how many rows there were then, each under the same key. Both tables are insert-only.
 *
 * A database with rows to seal needs the key here (CHANGEGATE_EVIDENCE_SEAL_KEY); without one the migration stops
 * before changing anything.
 *
 * Not in a transaction: each batch of seals is committed as it is written, so that a run cut short (the process
 * killed, the connection lost) is finished by the next one, which seals only the rows still without a seal. It
 * takes through which row to seal from the recorded start, and only if that record verifies under the key and the
 * rows up to it are still the ones counted then: a row added since, in a gap below that one, is not sealed by it.
 */
export class EvidenceSeals1764900000000 implements MigrationInterface {
  name = 'EvidenceSeals1764900000000';
  transaction = false;
  /** Set by evidenceSealsMigration(); absent, only a database without evidence rows can be migrated. */
  protected sealer?: EvidenceSealer;

  async up(q: QueryRunner): Promise<void> {
    const started = (await exists(q, 'TABLES', 'evidence_sealing')) ? await recordedStart(q) : undefined;
    const through = started?.through ?? String(((await q.query('SELECT COALESCE(MAX(id), 0) AS n FROM evidence_records')) as [{ n: string | number }])[0].n);
    if (through !== '0' && !this.sealer) throw new Error(KEY_REQUIRED);
    if (started && through !== '0') await checkRecordedStart(q, started, this.sealer as EvidenceSealer);
    await q.query(`
      CREATE TABLE IF NOT EXISTS evidence_backfilled_seals (
        evidence_id BIGINT NOT NULL,
        seal VARCHAR(100) NOT NULL,
        PRIMARY KEY (evidence_id)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
    await q.query(`
      CREATE TABLE IF NOT EXISTS evidence_sealing (
        event VARCHAR(20) NOT NULL,
        through_id BIGINT NOT NULL,
        at VARCHAR(30) NOT NULL,
        seal VARCHAR(100) NULL,
        PRIMARY KEY (event)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
    if (!(await exists(q, 'COLUMNS', 'evidence_records', 'seal'))) await q.query('ALTER TABLE evidence_records ADD COLUMN seal VARCHAR(100) NULL');
    // Insert-only in the database itself, like the evidence (an administrator can drop these; the key still holds).
    for (const table of ['evidence_backfilled_seals', 'evidence_sealing']) {
      for (const op of ['UPDATE', 'DELETE']) {
        const trigger = `${table}_no_${op.toLowerCase()}`;
        if (await exists(q, 'TRIGGERS', trigger)) continue;
        await q.query(`
          CREATE TRIGGER ${trigger} BEFORE ${op} ON ${table} FOR EACH ROW
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '${table} is append-only'`);
      }
    }
    if (!started) await recordStart(q, through, this.sealer);
    if (through !== '0') await backfillSeals(q, this.sealer as EvidenceSealer, through);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE evidence_sealing');
    await q.query('DROP TABLE evidence_backfilled_seals');
    await q.query('ALTER TABLE evidence_records DROP COLUMN seal');
  }
}

/**
 * Whether this database has the table (TABLES), the table's column (COLUMNS) or the trigger (TRIGGERS): a rerun skips
 * the schema steps the interrupted run got through.
 */
async function exists(q: QueryRunner, view: 'TABLES' | 'COLUMNS' | 'TRIGGERS', name: string, column?: string): Promise<boolean> {
  const where = {
    TABLES: 'TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?',
    COLUMNS: 'TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?',
    TRIGGERS: 'TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME = ?',
  }[view];
  const [{ n }] = (await q.query(`SELECT COUNT(*) AS n FROM information_schema.${view} WHERE ${where}`, column ? [name, column] : [name])) as [{ n: string | number }];
  return Number(n) > 0;
}

/** What the `began` record's seal is over. */
export function sealingBeganText(throughId: string, at: string): string {
  return `evidence sealing began after row ${throughId} at ${at}`;
}

/** What the `counted` record's seal is over: the number of rows up to and including the last one to seal. */
function sealingCountedText(rows: string, throughId: string, at: string): string {
  return `evidence sealing counted ${rows} rows through row ${throughId} at ${at}`;
}

interface Start {
  through: string;
  at: string;
  seal: string | null;
  counted?: { rows: string; seal: string | null };
}

/** The start an earlier, interrupted run recorded, if it got that far. */
async function recordedStart(q: QueryRunner): Promise<Start | undefined> {
  const rows = (await q.query("SELECT event, through_id, at, seal FROM evidence_sealing WHERE event IN ('began', 'counted')")) as Array<{ event: string; through_id: string | number; at: string; seal: string | null }>;
  const began = rows.find((r) => r.event === 'began');
  const counted = rows.find((r) => r.event === 'counted');
  if (!began) return undefined;
  return { through: String(began.through_id), at: began.at, seal: began.seal, ...(counted ? { counted: { rows: String(counted.through_id), seal: counted.seal } } : {}) };
}

/** Refuses to go on from a recorded start that this key did not seal, or when rows have appeared below its last row. */
async function checkRecordedStart(q: QueryRunner, start: Start, sealer: EvidenceSealer): Promise<void> {
  const refused = (why: string) => new Error(`the evidence seal migration cannot resume: ${why} (nothing more was sealed)`);
  if (!sealer.check(sealingBeganText(start.through, start.at), start.seal, 'backfilled').ok) throw refused('its record of when sealing began does not verify under this key');
  if (!start.counted || !sealer.check(sealingCountedText(start.counted.rows, start.through, start.at), start.counted.seal, 'backfilled').ok) {
    throw refused('its count of the rows to seal does not verify under this key');
  }
  const [{ n }] = (await q.query('SELECT COUNT(*) AS n FROM evidence_records WHERE id <= ?', [start.through])) as [{ n: string | number }];
  if (String(n) !== start.counted.rows) throw refused(`${start.counted.rows} rows were recorded through row ${start.through} when sealing began, and ${String(n)} are now`);
}

/** When sealing began, through which row and how many rows that was, in one statement: both or neither. */
async function recordStart(q: QueryRunner, through: string, sealer: EvidenceSealer | undefined): Promise<void> {
  const [{ n }] = (await q.query('SELECT COUNT(*) AS n FROM evidence_records WHERE id <= ?', [through])) as [{ n: string | number }];
  const rows = String(n);
  const at = new Date().toISOString();
  await q.query("INSERT INTO evidence_sealing (event, through_id, at, seal) VALUES ('began', ?, ?, ?), ('counted', ?, ?, ?)", [
    through, at, sealer ? sealer.seal(sealingBeganText(through, at), 'backfilled') : null,
    rows, at, sealer ? sealer.seal(sealingCountedText(rows, through, at), 'backfilled') : null,
  ]);
}

/**
 * Seals every row up to `through` that has no backfilled seal yet, in id order, a batch per INSERT; outside a
 * transaction each batch is committed as it lands, so an interrupted run leaves whole batches only.
 */
async function backfillSeals(q: QueryRunner, sealer: EvidenceSealer, through: string): Promise<void> {
  let after = '0';
  for (;;) {
    const batch = (await q.query(
      `SELECT e.id, e.hash FROM evidence_records e LEFT JOIN evidence_backfilled_seals s ON s.evidence_id = e.id
        WHERE e.id > ? AND e.id <= ? AND s.evidence_id IS NULL ORDER BY e.id LIMIT ${BATCH}`,
      [after, through],
    )) as Array<{ id: string | number; hash: string }>;
    if (batch.length === 0) return;
    const values = batch.flatMap((r) => [String(r.id), sealer.seal(r.hash, 'backfilled')]);
    await q.query(`INSERT INTO evidence_backfilled_seals (evidence_id, seal) VALUES ${batch.map(() => '(?, ?)').join(', ')}`, values);
    after = String(batch.at(-1)!.id);
  }
}

/** The seal migration holding the key it seals the rows recorded so far with. */
export function evidenceSealsMigration(sealer: EvidenceSealer | undefined): typeof EvidenceSeals1764900000000 {
  return class EvidenceSealsWithKey1764900000000 extends EvidenceSeals1764900000000 {
    protected override sealer = sealer;
  };
}
