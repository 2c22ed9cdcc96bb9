import type { MigrationInterface, QueryRunner } from 'typeorm';

export class InitialSchema1763900000000 implements MigrationInterface {
  name = 'InitialSchema1763900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE evidence_records (
        id BIGINT NOT NULL AUTO_INCREMENT,
        ticket_key VARCHAR(120) NOT NULL,
        seq INT NOT NULL,
        step_id VARCHAR(120) NOT NULL,
        outcome VARCHAR(40) NOT NULL,
        action_kind VARCHAR(40) NOT NULL,
        system VARCHAR(100) NOT NULL,
        identity JSON NOT NULL,
        desired_state JSON NOT NULL,
        observed_state JSON NOT NULL,
        verified TINYINT(1) NOT NULL,
        verification JSON NOT NULL,
        actor VARCHAR(200) NOT NULL,
        event_received_at DATETIME(3) NOT NULL,
        started_at DATETIME(3) NOT NULL,
        verified_at DATETIME(3) NULL,
        recorded_at DATETIME(3) NOT NULL,
        prev_hash CHAR(64) NOT NULL,
        hash CHAR(64) NOT NULL,
        canonical MEDIUMTEXT NOT NULL,
        PRIMARY KEY (id),
        UNIQUE KEY uq_evidence_ticket_seq (ticket_key, seq),
        UNIQUE KEY uq_evidence_ticket_step (ticket_key, step_id, outcome)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
    // Append-only in the database itself, not just by convention in the code.
    await q.query(`
      CREATE TRIGGER evidence_records_no_update BEFORE UPDATE ON evidence_records FOR EACH ROW
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'evidence_records is append-only'`);
    await q.query(`
      CREATE TRIGGER evidence_records_no_delete BEFORE DELETE ON evidence_records FOR EACH ROW
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'evidence_records is append-only'`);
    await q.query(`
      CREATE TABLE webhook_deliveries (
        id BIGINT NOT NULL AUTO_INCREMENT,
        source VARCHAR(20) NOT NULL,
        event_id VARCHAR(128) NOT NULL,
        record_id VARCHAR(64) NOT NULL,
        record_version INT NOT NULL,
        ticket_number VARCHAR(40) NOT NULL,
        workflow_id VARCHAR(200) NOT NULL,
        received_at DATETIME(3) NOT NULL,
        PRIMARY KEY (id),
        UNIQUE KEY uq_delivery_event (source, event_id),
        UNIQUE KEY uq_delivery_record_version (source, record_id, record_version),
        KEY ix_delivery_ticket (source, ticket_number)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE webhook_deliveries');
    await q.query('DROP TRIGGER evidence_records_no_delete');
    await q.query('DROP TRIGGER evidence_records_no_update');
    await q.query('DROP TABLE evidence_records');
  }
}
