import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A decided emergency exception keeps its decision: who decided, what, when and why cannot be rewritten through the
 * UPDATE the application account holds on the ledger (its status and outcome still move on as the decision is
 * carried out). The evidence chain holds the decision too; this keeps the queue from contradicting it.
 */
export class ExceptionDecisionsOnce1764700000001 implements MigrationInterface {
  name = 'ExceptionDecisionsOnce1764700000001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TRIGGER emergency_exceptions_decided_once BEFORE UPDATE ON emergency_exceptions FOR EACH ROW
        IF OLD.decided_at IS NOT NULL AND NOT (NEW.decision <=> OLD.decision AND NEW.decided_by <=> OLD.decided_by AND NEW.decided_by_policy <=> OLD.decided_by_policy
            AND NEW.decided_at <=> OLD.decided_at AND NEW.justification <=> OLD.justification) THEN
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'a decided emergency exception keeps its decision';
        END IF`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER emergency_exceptions_decided_once');
  }
}
