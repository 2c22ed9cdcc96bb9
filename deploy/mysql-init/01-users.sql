-- changegate: least-privilege MySQL accounts for the docker-compose stack.
--
-- Mounted read-only into mysql's /docker-entrypoint-initdb.d. The official image runs this file ONCE, as root,
-- when the data volume is empty; later `up`s never run it again (to change a grant on an existing volume, run
-- the statement by hand or recreate the volume).
--
-- PASSWORDS: the values below are DEV PLACEHOLDERS. A .sql init file cannot read environment variables, so the
-- compose file's defaults (TEMPORAL_DB_PASSWORD, CHANGEGATE_MIGRATE_DB_PASSWORD, CHANGEGATE_DB_PASSWORD,
-- MYSQL_LOCAL_PASSWORD in deploy/compose.env.example) are set to exactly these strings. Production does not use this
-- file: it replaces it with one generated from the secret store (or creates the accounts out of band) and passes the
-- same secrets to compose. If you change a password here, change the matching variable too, or the service cannot
-- log in.
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
-- changegate_migrate: the changegate-migrate one-shot, and nothing else. It runs the TypeORM migrations, so it holds
-- what they use on `changegate` (and creates that database if it is missing): tables, columns, indexes and the
-- append-only triggers, and SELECT / INSERT for their bookkeeping and the evidence seal backfill. No UPDATE, DELETE
-- or DROP: no migration rewrites or removes a row or a table.
--
-- TRIGGER: with binary logging on (the MySQL 8 default), CREATE TRIGGER by an account without SUPER /
-- SET_ANY_DEFINER fails with error 1419 unless log_bin_trust_function_creators=1. docker-compose.yml sets that on
-- mysqld's command line rather than granting SUPER. A trigger runs as its definer, this account, which must keep
-- TRIGGER for the triggers to keep working; they only SIGNAL.
--
-- changegate_app: the API and the worker. SELECT and INSERT on `changegate`, and UPDATE on the tables kept in place
-- (deploy/mysql-grants/changegate-app.sql, granted after every migration run by the changegate-grants one-shot:
-- MySQL grants on a table only once it exists, unless the grant also gives CREATE). No DDL: it cannot drop or
-- replace the triggers that keep the evidence append-only, alter a table or create one. No UPDATE on the evidence
-- and no DELETE anywhere: the evidence table (evidence_records) is append-only by privilege as well as by its BEFORE
-- UPDATE / BEFORE DELETE triggers, and without DROP it cannot TRUNCATE, DROP or RENAME a table either.
--
-- The database is created here so the grants have a target; the migrate entry point also runs
-- CREATE DATABASE IF NOT EXISTS (allowed by changegate_migrate's database-level CREATE).
-- ---------------------------------------------------------------------------------------------------------------
CREATE DATABASE IF NOT EXISTS `changegate` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'changegate_migrate'@'%' IDENTIFIED WITH caching_sha2_password BY 'changegate-migrate-dev';
GRANT SELECT, INSERT, CREATE, ALTER, INDEX, TRIGGER ON `changegate`.* TO 'changegate_migrate'@'%';
CREATE USER IF NOT EXISTS 'changegate_app'@'%' IDENTIFIED WITH caching_sha2_password BY 'changegate-app-dev';
GRANT SELECT, INSERT ON `changegate`.* TO 'changegate_app'@'%';

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
GRANT SYSTEM_USER ON *.* TO 'changegate_migrate'@'%';
GRANT SYSTEM_USER ON *.* TO 'changegate_app'@'%';
