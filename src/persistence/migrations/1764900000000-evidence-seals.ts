import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Evidence rows carry a keyed seal (src/evidence/evidence-seal.ts): `evidence_records.seal`, written with the row.
 *
 * Rows recorded before this migration have none, and the application account cannot UPDATE the table to add one, so
 * their seals go to `evidence_backfilled_seals` (insert-only, like everything this account writes here). Which rows
 * those are is fixed now, before any key is involved: `evidence_sealing` gets the event `began`, naming the newest
 * row recorded before sealing began. The gateway's first start with a key seals exactly the rows up to it, once (the
 * event `backfilled`, unique like `began`); any row without a seal is reported as a break at that row, forever after.
 * A forger holding the application account cannot pass a row of theirs off as old: the boundary is already written
 * and cannot be rewritten (no UPDATE, no DELETE), and the backfill runs once.
 */
export class EvidenceSeals1764900000000 implements MigrationInterface {
  name = 'EvidenceSeals1764900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE evidence_records ADD COLUMN seal VARCHAR(100) NULL');
    await q.query(`
      CREATE TABLE evidence_backfilled_seals (
        evidence_id BIGINT NOT NULL,
        seal VARCHAR(100) NOT NULL,
        sealed_at DATETIME(3) NOT NULL,
        PRIMARY KEY (evidence_id)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
    await q.query(`
      CREATE TABLE evidence_sealing (
        event VARCHAR(20) NOT NULL,
        through_id BIGINT NOT NULL,
        at DATETIME(3) NOT NULL,
        PRIMARY KEY (event)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
    await q.query("INSERT INTO evidence_sealing (event, through_id, at) SELECT 'began', COALESCE(MAX(id), 0), NOW(3) FROM evidence_records");
    // Insert-only in the database itself, like the evidence (an administrator can drop these; the key still holds).
    for (const table of ['evidence_backfilled_seals', 'evidence_sealing']) {
      for (const op of ['UPDATE', 'DELETE']) {
        await q.query(`
          CREATE TRIGGER ${table}_no_${op.toLowerCase()} BEFORE ${op} ON ${table} FOR EACH ROW
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '${table} is append-only'`);
      }
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE evidence_sealing');
    await q.query('DROP TABLE evidence_backfilled_seals');
    await q.query('ALTER TABLE evidence_records DROP COLUMN seal');
  }
}
