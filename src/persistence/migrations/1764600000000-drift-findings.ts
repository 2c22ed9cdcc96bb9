import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Drift findings: what discovery found different from the approved state, one row per stable finding id. Updated in
 * place (seen again, resolved, a remediation change named) in the transaction of the scan's evidence row; never
 * deleted. The application account gets UPDATE on this table, and no DELETE.
 */
export class DriftFindings1764600000000 implements MigrationInterface {
  name = 'DriftFindings1764600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE drift_findings (
        id CHAR(32) NOT NULL,
        system VARCHAR(100) NOT NULL,
        name VARCHAR(256) NOT NULL,
        host VARCHAR(255) NOT NULL DEFAULT '',
        finding_type VARCHAR(32) NOT NULL,
        grant_text VARCHAR(300) NULL,
        detail VARCHAR(500) NOT NULL,
        status VARCHAR(16) NOT NULL,
        action VARCHAR(16) NOT NULL,
        change_key VARCHAR(120) NULL,
        first_seen_at DATETIME(3) NOT NULL,
        last_seen_at DATETIME(3) NOT NULL,
        resolved_at DATETIME(3) NULL,
        last_scan VARCHAR(120) NOT NULL,
        PRIMARY KEY (id),
        KEY ix_drift_status (status, id),
        KEY ix_drift_system (system, status)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
    await q.query(`
      CREATE TRIGGER drift_findings_no_delete BEFORE DELETE ON drift_findings FOR EACH ROW
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'drift_findings rows are never deleted'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER drift_findings_no_delete');
    await q.query('DROP TABLE drift_findings');
  }
}
