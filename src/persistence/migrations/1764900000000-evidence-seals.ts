import type { MigrationInterface, QueryRunner } from 'typeorm';
import type { EvidenceSealer } from '../../evidence/evidence-seal';

/**
 * Evidence rows carry a keyed seal (src/evidence/evidence-seal.ts): `evidence_records.seal`, written with the row.
 *
 * Rows recorded before this migration have none. They are sealed here, once, as part of the migration itself: the
 * gateway never seals a row it did not write at any other time, so no state in the database (which the application
 * account could mangle: it holds ALTER) can make it seal a forged row later. Their seals go to
 * `evidence_backfilled_seals` (the application account cannot UPDATE evidence_records), marked `backfilled` inside
 * the MAC: they prove the row was in the database when sealing began, not who wrote it. `evidence_sealing` records
 * when that was and through which row, sealed under the same key. Both tables are insert-only.
 *
 * A database with rows to seal needs the key here (CHANGEGATE_EVIDENCE_SEAL_KEY); without one the migration stops
 * before changing anything. A rerun fails at its first CREATE TABLE, before sealing anything.
 */
export class EvidenceSeals1764900000000 implements MigrationInterface {
  name = 'EvidenceSeals1764900000000';
  /** Set by evidenceSealsMigration(); absent, only a database without evidence rows can be migrated. */
  protected sealer?: EvidenceSealer;

  async up(q: QueryRunner): Promise<void> {
    const [{ throughId }] = (await q.query('SELECT COALESCE(MAX(id), 0) AS throughId FROM evidence_records')) as [{ throughId: string | number }];
    const through = String(throughId);
    if (through !== '0' && !this.sealer) {
      throw new Error('CHANGEGATE_EVIDENCE_SEAL_KEY is required to migrate: the evidence rows recorded so far are sealed with it now (nothing was changed)');
    }
    await q.query(`
      CREATE TABLE evidence_backfilled_seals (
        evidence_id BIGINT NOT NULL,
        seal VARCHAR(100) NOT NULL,
        PRIMARY KEY (evidence_id)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
    await q.query(`
      CREATE TABLE evidence_sealing (
        event VARCHAR(20) NOT NULL,
        through_id BIGINT NOT NULL,
        at VARCHAR(30) NOT NULL,
        seal VARCHAR(100) NULL,
        PRIMARY KEY (event)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
    await q.query('ALTER TABLE evidence_records ADD COLUMN seal VARCHAR(100) NULL');
    // Insert-only in the database itself, like the evidence (an administrator can drop these; the key still holds).
    for (const table of ['evidence_backfilled_seals', 'evidence_sealing']) {
      for (const op of ['UPDATE', 'DELETE']) {
        await q.query(`
          CREATE TRIGGER ${table}_no_${op.toLowerCase()} BEFORE ${op} ON ${table} FOR EACH ROW
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '${table} is append-only'`);
      }
    }
    let after = '0';
    for (;;) {
      const batch = (await q.query('SELECT id, hash FROM evidence_records WHERE id > ? AND id <= ? ORDER BY id LIMIT 500', [after, through])) as Array<{ id: string | number; hash: string }>;
      if (batch.length === 0) break;
      const sealer = this.sealer as EvidenceSealer;
      await q.query(
        `INSERT INTO evidence_backfilled_seals (evidence_id, seal) VALUES ${batch.map(() => '(?, ?)').join(', ')}`,
        batch.flatMap((r) => [String(r.id), sealer.seal(r.hash, 'backfilled')]),
      );
      after = String(batch.at(-1)!.id);
    }
    // When sealing began and through which row, sealed (when there was anything to seal) so that it cannot be rewritten.
    const at = new Date().toISOString();
    await q.query("INSERT INTO evidence_sealing (event, through_id, at, seal) VALUES ('began', ?, ?, ?)", [
      through,
      at,
      this.sealer ? this.sealer.seal(sealingBeganText(through, at), 'backfilled') : null,
    ]);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE evidence_sealing');
    await q.query('DROP TABLE evidence_backfilled_seals');
    await q.query('ALTER TABLE evidence_records DROP COLUMN seal');
  }
}

/** What the `began` record's seal is over. */
export function sealingBeganText(throughId: string, at: string): string {
  return `evidence sealing began after row ${throughId} at ${at}`;
}

/** The seal migration holding the key it seals the rows recorded so far with. */
export function evidenceSealsMigration(sealer: EvidenceSealer | undefined): typeof EvidenceSeals1764900000000 {
  return class EvidenceSealsWithKey1764900000000 extends EvidenceSeals1764900000000 {
    protected override sealer = sealer;
  };
}
