import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A decided certification item keeps its decision: what was kept and revoked, who decided, when and why cannot be
 * rewritten through the UPDATE the application account holds on the table (its status, change and revocation error
 * still move on as the decision is carried out). The evidence chain holds the decision too; this keeps the listing
 * from contradicting it. Also: why an item's revocation change could not be opened, listed with the item.
 */
export class CertificationDecisionsOnce1764800000001 implements MigrationInterface {
  name = 'CertificationDecisionsOnce1764800000001';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE certification_items ADD COLUMN revocation_error VARCHAR(500) NULL, ADD KEY ix_certification_change (change_key)');
    await q.query(`
      CREATE TRIGGER certification_items_decided_once BEFORE UPDATE ON certification_items FOR EACH ROW
        IF OLD.decided_at IS NOT NULL AND NOT (NEW.decisions <=> OLD.decisions AND NEW.decided_by <=> OLD.decided_by AND NEW.decided_at <=> OLD.decided_at
            AND NEW.justification <=> OLD.justification) THEN
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'a decided certification item keeps its decision';
        END IF`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER certification_items_decided_once');
    await q.query('ALTER TABLE certification_items DROP KEY ix_certification_change, DROP COLUMN revocation_error');
  }
}
