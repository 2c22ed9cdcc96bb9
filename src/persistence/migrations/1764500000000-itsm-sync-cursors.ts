import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Where reconciliation of each ticket-source instance stands: the newest `updated` time it has handed to the
 * workflows. ServiceNow never retries a webhook, so the gateway reads changed records back from this point on.
 */
export class ItsmSyncCursors1764500000000 implements MigrationInterface {
  name = 'ItsmSyncCursors1764500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE itsm_sync_cursors (
        cursor_key VARCHAR(191) NOT NULL,
        updated_on VARCHAR(32) NOT NULL,
        record_id VARCHAR(64) NOT NULL,
        synced_at DATETIME(3) NOT NULL,
        PRIMARY KEY (cursor_key)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE itsm_sync_cursors');
  }
}
