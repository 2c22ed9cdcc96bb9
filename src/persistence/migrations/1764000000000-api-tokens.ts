import type { MigrationInterface, QueryRunner } from 'typeorm';

export class ApiTokens1764000000000 implements MigrationInterface {
  name = 'ApiTokens1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE api_tokens (
        id BIGINT NOT NULL AUTO_INCREMENT,
        name VARCHAR(64) NOT NULL,
        token_sha256 CHAR(64) NOT NULL,
        roles JSON NOT NULL,
        created_at DATETIME(3) NOT NULL,
        created_by VARCHAR(255) NOT NULL,
        revoked_at DATETIME(3) NULL,
        revoked_by VARCHAR(255) NULL,
        PRIMARY KEY (id),
        UNIQUE KEY uq_api_tokens_name (name),
        UNIQUE KEY uq_api_tokens_sha256 (token_sha256)
      ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
    // The application account holds UPDATE on this one table, for revocation only. The trigger narrows that to
    // exactly one change, once: revoked_at and revoked_by go from unset to set. A token cannot be un-revoked, given
    // other roles or pointed at another hash, and its row cannot be deleted.
    await q.query(`
      CREATE TRIGGER api_tokens_revoke_only BEFORE UPDATE ON api_tokens FOR EACH ROW
      BEGIN
        IF OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL OR NEW.revoked_by IS NULL
           OR NOT (NEW.id <=> OLD.id) OR NOT (NEW.name <=> OLD.name) OR NOT (NEW.token_sha256 <=> OLD.token_sha256)
           OR NOT (NEW.roles <=> OLD.roles) OR NOT (NEW.created_at <=> OLD.created_at) OR NOT (NEW.created_by <=> OLD.created_by) THEN
          SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'api_tokens rows only change by being revoked, once';
        END IF;
      END`);
    await q.query(`
      CREATE TRIGGER api_tokens_no_delete BEFORE DELETE ON api_tokens FOR EACH ROW
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'api_tokens rows are revoked, not deleted'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER api_tokens_no_delete');
    await q.query('DROP TRIGGER api_tokens_revoke_only');
    await q.query('DROP TABLE api_tokens');
  }
}
