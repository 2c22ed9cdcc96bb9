import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Certification items: one row per item (its id stable per triggering event), opened with the identity's grants as
 * read back then, and updated in place (decided, escalated at the due date, a revocation change named) in the
 * transaction of the item's evidence row; never deleted. The application account gets UPDATE on this table, and no
 * DELETE.
 */
export class CertificationItems1764800000000 implements MigrationInterface {
  name = 'CertificationItems1764800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE certification_items (
        id CHAR(32) NOT NULL,
        system VARCHAR(100) NOT NULL,
        name VARCHAR(256) NOT NULL,
        host VARCHAR(255) NOT NULL DEFAULT '',
        identity_type VARCHAR(32) NOT NULL,
        owner VARCHAR(200) NULL,
        workload VARCHAR(200) NULL,
        grants JSON NOT NULL,
        trigger_type VARCHAR(32) NOT NULL,
        reference VARCHAR(300) NOT NULL,
        detail VARCHAR(500) NOT NULL,
        reviewer JSON NOT NULL,
        reviewer_key VARCHAR(260) NOT NULL,
        due_at DATETIME(3) NOT NULL,
        on_timeout VARCHAR(32) NOT NULL,
        status VARCHAR(32) NOT NULL,
        decisions JSON NULL,
        decided_by JSON NULL,
        decided_at DATETIME(3) NULL,
        justification TEXT NULL,
        change_key VARCHAR(120) NULL,
        opened_at DATETIME(3) NOT NULL,
        PRIMARY KEY (id),
        KEY ix_certification_status (status, id),
        KEY ix_certification_system (system, status),
        KEY ix_certification_reviewer (reviewer_key, status)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
    await q.query(`
      CREATE TRIGGER certification_items_no_delete BEFORE DELETE ON certification_items FOR EACH ROW
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'certification_items rows are never deleted'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER certification_items_no_delete');
    await q.query('DROP TABLE certification_items');
  }
}
