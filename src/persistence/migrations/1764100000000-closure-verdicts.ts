import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The closure verdicts each ticket's workflow publishes, append-only like the evidence: closure-check reads the
 * newest row instead of querying (and so replaying) the workflow. A delivery newer than the verdict's version (from
 * webhook_deliveries, committed with the signal) keeps the answer "not allowed" until the workflow has seen it.
 */
export class ClosureVerdicts1764100000000 implements MigrationInterface {
  name = 'ClosureVerdicts1764100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE closure_verdicts (
        id BIGINT NOT NULL AUTO_INCREMENT,
        ticket_key VARCHAR(120) NOT NULL,
        evaluated_version INT NOT NULL,
        allowed TINYINT(1) NOT NULL,
        body JSON NOT NULL,
        created_at DATETIME(3) NOT NULL,
        PRIMARY KEY (id),
        KEY ix_closure_verdicts_ticket (ticket_key, id)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
    await q.query('CREATE INDEX ix_delivery_ticket_version ON webhook_deliveries (source, ticket_number, record_version)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX ix_delivery_ticket_version ON webhook_deliveries');
    await q.query('DROP TABLE closure_verdicts');
  }
}
