import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Every trigger the migrations before this one create. */
const GATEWAY_TRIGGERS = [
  'evidence_records_no_update', 'evidence_records_no_delete', 'api_tokens_revoke_only', 'api_tokens_no_delete',
  'identity_inventory_no_delete', 'drift_findings_no_delete', 'emergency_exceptions_no_delete', 'emergency_exceptions_decided_once',
  'certification_items_no_delete', 'certification_items_decided_once', 'evidence_backfilled_seals_no_update',
  'evidence_backfilled_seals_no_delete', 'evidence_sealing_no_update', 'evidence_sealing_no_delete',
];

/**
 * The append-only triggers run as their definer, the account that created them, which must still hold TRIGGER on
 * the table each time one fires (MariaDB and MySQL refuse the statement otherwise). Until the migration account
 * existed, the application account ran the migrations and so defined every trigger; its TRIGGER privilege, which
 * also lets it drop them, could not be revoked without breaking them all. Each of the gateway's triggers defined by
 * another account is created again, the same, as the account running this migration (the migration account). A
 * trigger the gateway did not create is left as it is: its definer is not vouched for by re-creating it. A database
 * migrated by the migration account from the start has nothing to change.
 */
export class TriggerDefiners1765100000000 implements MigrationInterface {
  name = 'TriggerDefiners1765100000000';

  async up(q: QueryRunner): Promise<void> {
    const triggers = (await q.query(
      `SELECT TRIGGER_NAME AS name, ACTION_TIMING AS timing, EVENT_MANIPULATION AS event, EVENT_OBJECT_TABLE AS tbl, ACTION_STATEMENT AS body
         FROM information_schema.TRIGGERS
        WHERE TRIGGER_SCHEMA = DATABASE() AND DEFINER <> CURRENT_USER() AND TRIGGER_NAME IN (?)
        ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER`,
      [GATEWAY_TRIGGERS],
    )) as Array<{ name: string; timing: string; event: string; tbl: string; body: string }>;
    for (const t of triggers) {
      await q.query(`DROP TRIGGER \`${t.name}\``);
      await q.query(`CREATE TRIGGER \`${t.name}\` ${t.timing} ${t.event} ON \`${t.tbl}\` FOR EACH ROW ${t.body}`);
    }
  }

  /** The earlier definers are not put back: the application account no longer holds TRIGGER to run them with. */
  async down(): Promise<void> {}
}
