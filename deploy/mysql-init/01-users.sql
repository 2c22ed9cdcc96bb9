-- changegate: least-privilege MySQL accounts for the docker-compose stack.
--
-- Mounted read-only into mysql's /docker-entrypoint-initdb.d. The official image runs this file ONCE, as root,
-- when the data volume is empty; later `up`s never run it again (to change a grant on an existing volume, run
-- the statement by hand or recreate the volume).
--
-- PASSWORDS: the values below are DEV PLACEHOLDERS. A .sql init file cannot read environment variables, so the
-- compose file's defaults (TEMPORAL_DB_PASSWORD, CHANGEGATE_DB_PASSWORD, MYSQL_LOCAL_PASSWORD in
-- deploy/compose.env.example) are set to exactly these strings. Production does not use this file: it replaces
-- it with one generated from the secret store (or creates the accounts out of band) and passes the same secrets to
-- compose. If you change a password here, change the matching variable too, or the service cannot log in.
--
-- Every account is '<name>'@'%' because the clients are other containers on the compose network.
--
-- Written for MySQL 8.4 LTS. Each account names caching_sha2_password (the default since 8.0, so the clients here
-- already used it) rather than leaving it to the server: mysql_native_password is disabled by default in 8.4 and
-- removed in 9.0, and an account created with it could not log in.

-- ---------------------------------------------------------------------------------------------------------------
-- temporal: Temporal server + the temporal-admin-tools schema one-shot.
-- All privileges on its two databases and nothing else. In a db-level GRANT `_` is a wildcard, so the underscore
-- in temporal_visibility is escaped to match that one database only. `temporal-sql-tool create-database` runs
-- CREATE DATABASE IF NOT EXISTS, which this db-level grant allows.
-- ---------------------------------------------------------------------------------------------------------------
CREATE USER IF NOT EXISTS 'temporal'@'%' IDENTIFIED WITH caching_sha2_password BY 'temporal-dev';
GRANT ALL PRIVILEGES ON `temporal`.* TO 'temporal'@'%';
GRANT ALL PRIVILEGES ON `temporal\_visibility`.* TO 'temporal'@'%';

-- ---------------------------------------------------------------------------------------------------------------
-- changegate_app: the API, the worker AND the changegate-migrate one-shot (the migrate step uses this account too,
-- so it needs the DDL privileges; splitting out a separate migration account is a possible further hardening).
--
-- No UPDATE (except on api_tokens, below), no DELETE, no DROP: the evidence table (evidence_records) is append-only,
-- and this account cannot rewrite or remove rows even if the BEFORE UPDATE / BEFORE DELETE triggers from the
-- migration were bypassed.
-- Without DROP it also cannot TRUNCATE, DROP or RENAME the table. The gateway only ever INSERTs and SELECTs
-- (evidence rows and webhook_deliveries); the TypeORM `migrations` bookkeeping table is insert-only as well.
--
-- TRIGGER: the initial migration creates the two append-only triggers. With binary logging on (the MySQL 8
-- default), CREATE TRIGGER by an account without SUPER / SET_ANY_DEFINER fails with error 1419 unless
-- log_bin_trust_function_creators=1. docker-compose.yml sets that on mysqld's command line rather than granting
-- SUPER (which would hand this account far more than it needs). The triggers only SIGNAL; they do not write.
--
-- The database is created here so the grant has a target; the migrate entry point also runs
-- CREATE DATABASE IF NOT EXISTS (allowed by the db-level CREATE privilege).
-- ---------------------------------------------------------------------------------------------------------------
CREATE DATABASE IF NOT EXISTS `changegate` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'changegate_app'@'%' IDENTIFIED WITH caching_sha2_password BY 'changegate-app-dev';
GRANT SELECT, INSERT, CREATE, ALTER, INDEX, REFERENCES, TRIGGER ON `changegate`.* TO 'changegate_app'@'%';
-- UPDATE on one table, api_tokens, and on nothing else: revoking an API token sets its revoked_at. The table's own
-- BEFORE UPDATE trigger refuses every other change (un-revoking, new roles, another hash), and there is still no
-- DELETE. CREATE is listed only because a table-level GRANT on a table that does not exist yet (the migration makes
-- it later) is refused unless it includes CREATE; the account already holds CREATE on the whole database.
GRANT CREATE, UPDATE ON `changegate`.`api_tokens` TO 'changegate_app'@'%';
-- UPDATE on the identity inventory, a projection kept in place (written in the transaction of the evidence row that
-- justifies each change); still no DELETE, and a trigger refuses it too: an identity that is gone stays as revoked.
GRANT CREATE, UPDATE ON `changegate`.`identity_inventory` TO 'changegate_app'@'%';
-- UPDATE on the reconciliation cursors (one row per ServiceNow instance, moved forward in place); no DELETE.
GRANT CREATE, UPDATE ON `changegate`.`itsm_sync_cursors` TO 'changegate_app'@'%';
-- UPDATE on drift findings, kept in place the same way (seen again, resolved, the remediation change named); no DELETE.
GRANT CREATE, UPDATE ON `changegate`.`drift_findings` TO 'changegate_app'@'%';
-- UPDATE on the emergency-exception ledger (escalated and decided in place); no DELETE.
GRANT CREATE, UPDATE ON `changegate`.`emergency_exceptions` TO 'changegate_app'@'%';
-- UPDATE on certification items, kept in place the same way (decided, escalated, the revocation change named); no DELETE.
GRANT CREATE, UPDATE ON `changegate`.`certification_items` TO 'changegate_app'@'%';

-- ---------------------------------------------------------------------------------------------------------------
-- changegate_connector: the "mysql-local" demo connector (config/connectors.demo.json, password from
-- MYSQL_LOCAL_PASSWORD; only the worker holds it). It provisions and revokes OTHER accounts:
--   CREATE USER       create / ALTER (lock) / DROP accounts, REVOKE ALL ... FROM an account
--   PROCESS           see other accounts' sessions (activeSessions in the evidence)
--   CONNECTION_ADMIN  KILL other accounts' sessions on a leaver (MySQL 8 dynamic privilege; replaces SUPER here)
--   SELECT on the mysql schema: read accounts and their grants (SHOW GRANTS FOR / SHOW CREATE USER) to verify
--   WITH GRANT OPTION on the demo target schemas only (billing, reporting: the same defaults as
--   scripts/mysql-connector-account.sh): MySQL lets an account grant only what it holds itself, so these
--   schema-level privileges are the ceiling of anything the connector can ever hand out. The list is exactly the
--   privileges the connector's grammar accepts (MYSQL_PRIVILEGES in src/connectors/mysql/mysql-grammar.ts).
-- It has no global data privileges and cannot grant on changegate, temporal or mysql.
-- ---------------------------------------------------------------------------------------------------------------
CREATE DATABASE IF NOT EXISTS `billing` CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS `reporting` CHARACTER SET utf8mb4;

CREATE USER IF NOT EXISTS 'changegate_connector'@'%' IDENTIFIED WITH caching_sha2_password BY 'changegate-connector-dev';
GRANT CREATE USER, PROCESS ON *.* TO 'changegate_connector'@'%';
GRANT CONNECTION_ADMIN ON *.* TO 'changegate_connector'@'%';
-- Read access to the grant tables. The connector verifies with SHOW GRANTS FOR and SHOW CREATE USER on OTHER
-- accounts, and MySQL requires SELECT on the `mysql` system schema (schema level) for both; table-level grants on
-- mysql.user / mysql.db are not enough for those statements. Trade-off, accepted for the demo: this also exposes
-- mysql.user's password hashes and, were replication configured (it is not here), replication credentials in
-- mysql.slave_master_info. A production connector host should use a dedicated instance, or verify through
-- column-level grants on mysql.user / mysql.db / mysql.tables_priv instead of SHOW GRANTS.
GRANT SELECT ON `mysql`.* TO 'changegate_connector'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES, EXECUTE, CREATE VIEW, SHOW VIEW, TRIGGER,
      LOCK TABLES, CREATE TEMPORARY TABLES, EVENT, CREATE ROUTINE, ALTER ROUTINE
  ON `billing`.* TO 'changegate_connector'@'%' WITH GRANT OPTION;
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES, EXECUTE, CREATE VIEW, SHOW VIEW, TRIGGER,
      LOCK TABLES, CREATE TEMPORARY TABLES, EVENT, CREATE ROUTINE, ALTER ROUTINE
  ON `reporting`.* TO 'changegate_connector'@'%' WITH GRANT OPTION;

-- ---------------------------------------------------------------------------------------------------------------
-- Database-enforced protected accounts. CREATE USER and CONNECTION_ADMIN would otherwise let the connector alter,
-- drop or kill the sessions of ANY account. Since MySQL 8.0.16 an account holding SYSTEM_USER can only be
-- modified (and its sessions killed) by another SYSTEM_USER account. root already holds it; granting it to the
-- gateway's own accounts makes the connector's protectedAccounts policy hold in the server, not just in code.
-- SYSTEM_USER adds no data access of its own. The connector itself must NOT hold it.
-- ---------------------------------------------------------------------------------------------------------------
GRANT SYSTEM_USER ON *.* TO 'temporal'@'%';
GRANT SYSTEM_USER ON *.* TO 'changegate_app'@'%';
