import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The emergency-exception ledger: one row per grant an emergency change made before it was authorized, with who
 * asked, who implemented, when, the deadline, and the decision once taken. A projection of the ticket's evidence rows
 * (written in their transactions) for the security reviewers' queue; updated in place, never deleted. The
 * application account gets UPDATE on this table, and no DELETE.
 */
export class EmergencyExceptions1764700000000 implements MigrationInterface {
  name = 'EmergencyExceptions1764700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE emergency_exceptions (
        id CHAR(20) NOT NULL,
        source VARCHAR(20) NOT NULL,
        ticket VARCHAR(100) NOT NULL,
        step_id VARCHAR(300) NOT NULL,
        action_kind VARCHAR(32) NOT NULL,
        system VARCHAR(100) NOT NULL,
        identity JSON NOT NULL,
        grants JSON NOT NULL,
        requester VARCHAR(200) NULL,
        implementer VARCHAR(200) NULL,
        granted_at DATETIME(3) NOT NULL,
        escalate_at DATETIME(3) NOT NULL,
        deadline DATETIME(3) NOT NULL,
        on_deadline VARCHAR(10) NOT NULL,
        status VARCHAR(16) NOT NULL,
        escalated_at DATETIME(3) NULL,
        notified VARCHAR(500) NULL,
        decision VARCHAR(10) NULL,
        decided_by JSON NULL,
        decided_by_policy TINYINT(1) NOT NULL DEFAULT 0,
        decided_at DATETIME(3) NULL,
        justification TEXT NULL,
        outcome VARCHAR(500) NULL,
        PRIMARY KEY (id),
        KEY ix_exceptions_deadline (deadline, id),
        KEY ix_exceptions_status (status, deadline),
        KEY ix_exceptions_ticket (source, ticket)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
    await q.query(`
      CREATE TRIGGER emergency_exceptions_no_delete BEFORE DELETE ON emergency_exceptions FOR EACH ROW
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'emergency_exceptions rows are never deleted'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER emergency_exceptions_no_delete');
    await q.query('DROP TABLE emergency_exceptions');
  }
}
