import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Closure verdicts carry a seal, as evidence rows do, made with the same key (src/closure/verdict-store.ts): the
 * application account may INSERT a verdict, and closure-check, the Jira close guard's reasons and drift's holds read
 * the newest one. Verdicts published before this migration stay unsealed and are passed over: unlike evidence, a
 * verdict is a projection of its workflow's state, which every running workflow publishes again at its next turn, and
 * closure-check asks the workflow itself for a ticket with no sealed verdict. So nothing is backfilled, and the
 * migration needs no key. The index serves the reader's check that a sealed verdict is not a copy of an earlier row.
 */
export class ClosureVerdictSeals1765000000000 implements MigrationInterface {
  name = 'ClosureVerdictSeals1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE closure_verdicts ADD COLUMN seal VARCHAR(100) NULL, ADD KEY ix_closure_verdicts_seal (ticket_key, seal)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE closure_verdicts DROP KEY ix_closure_verdicts_seal, DROP COLUMN seal');
  }
}
