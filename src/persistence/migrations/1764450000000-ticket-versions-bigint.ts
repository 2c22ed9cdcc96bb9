import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Ticket versions outgrow INT: a Jira issue's version is its update time in milliseconds with a tie-break
 * (src/itsm/jira/jira-version.ts), about 2^51. BIGINT holds it; ServiceNow's sys_mod_count fits either way.
 */
export class TicketVersionsBigint1764450000000 implements MigrationInterface {
  name = 'TicketVersionsBigint1764450000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE webhook_deliveries MODIFY record_version BIGINT NOT NULL');
    await q.query('ALTER TABLE closure_verdicts MODIFY evaluated_version BIGINT NOT NULL');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE closure_verdicts MODIFY evaluated_version INT NOT NULL');
    await q.query('ALTER TABLE webhook_deliveries MODIFY record_version INT NOT NULL');
  }
}
