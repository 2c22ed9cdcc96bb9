import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The identity inventory: one row per identity the gateway knows, per (system, name, host). A projection, written in
 * the same transaction as the evidence row of the step (or scan, or operator decision) that changed it, so it never
 * says more than the evidence proves. Unlike the evidence it is updated in place; the application account gets
 * UPDATE on this one table (and still no DELETE: an identity that is gone keeps its row, as `revoked`).
 */
export class IdentityInventory1764300000000 implements MigrationInterface {
  name = 'IdentityInventory1764300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE identity_inventory (
        id BIGINT NOT NULL AUTO_INCREMENT,
        system VARCHAR(100) NOT NULL,
        name VARCHAR(256) NOT NULL,
        host VARCHAR(255) NOT NULL DEFAULT '',
        type VARCHAR(32) NOT NULL,
        owner VARCHAR(200) NULL,
        owner_source VARCHAR(16) NULL,
        workload VARCHAR(200) NULL,
        workload_source VARCHAR(16) NULL,
        created_by_ticket VARCHAR(120) NULL,
        grants JSON NOT NULL,
        status VARCHAR(16) NOT NULL,
        verified_state JSON NULL,
        verified_at DATETIME(3) NULL,
        last_event VARCHAR(200) NOT NULL,
        last_ticket VARCHAR(120) NULL,
        changed_at DATETIME(3) NOT NULL,
        discovered_at DATETIME(3) NULL,
        first_seen_at DATETIME(3) NOT NULL,
        updated_at DATETIME(3) NOT NULL,
        PRIMARY KEY (id),
        UNIQUE KEY uq_inventory_identity (system, name, host),
        KEY ix_inventory_status (status, id),
        KEY ix_inventory_owner (owner, id),
        KEY ix_inventory_workload (workload, id)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
    // Rows are never deleted: an identity that is gone stays listed as revoked, with the evidence that says so.
    await q.query(`
      CREATE TRIGGER identity_inventory_no_delete BEFORE DELETE ON identity_inventory FOR EACH ROW
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'identity_inventory rows are never deleted'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER identity_inventory_no_delete');
    await q.query('DROP TABLE identity_inventory');
  }
}
