#!/usr/bin/env bash
# MariaDB (server and client) and docker-compose (validates docker-compose.yml; there is no engine here); the
# gateway's own database and least-privilege account, and the mysql connector's account on the local server.
set -euo pipefail
. scripts/lib/setup-common.sh
missing=()
command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

if ! mariadb-admin -uroot --connect-timeout=2 ping >/dev/null 2>&1; then
  log "starting MariaDB"
  install -d -o mysql -g mysql -m 755 /run/mysqld
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_until 120 mariadb-admin -uroot --connect-timeout=1 ping || { log "MariaDB did not start"; exit 1; }
fi

app_password=$(secret CHANGEGATE_APP_PASSWORD)
mariadb -uroot <<SQL
CREATE DATABASE IF NOT EXISTS changegate CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'changegate_app'@'localhost' IDENTIFIED BY '${app_password}';
CREATE USER IF NOT EXISTS 'changegate_app'@'127.0.0.1' IDENTIFIED BY '${app_password}';
ALTER USER 'changegate_app'@'localhost' IDENTIFIED BY '${app_password}';
ALTER USER 'changegate_app'@'127.0.0.1' IDENTIFIED BY '${app_password}';
-- No UPDATE or DELETE: evidence and deliveries are append-only for the application.
GRANT SELECT, INSERT, CREATE, ALTER, INDEX, REFERENCES, TRIGGER ON changegate.* TO 'changegate_app'@'localhost';
GRANT SELECT, INSERT, CREATE, ALTER, INDEX, REFERENCES, TRIGGER ON changegate.* TO 'changegate_app'@'127.0.0.1';
-- API tokens are revoked in place: UPDATE on that one table (a trigger admits only setting revoked_at/revoked_by
-- once). CREATE as well, because MariaDB refuses a table-level grant on a table the migration has not made yet.
GRANT CREATE, UPDATE ON changegate.api_tokens TO 'changegate_app'@'localhost';
GRANT CREATE, UPDATE ON changegate.api_tokens TO 'changegate_app'@'127.0.0.1';
-- The identity inventory is a projection updated in place (in the evidence row's transaction); no DELETE.
GRANT CREATE, UPDATE ON changegate.identity_inventory TO 'changegate_app'@'localhost';
GRANT CREATE, UPDATE ON changegate.identity_inventory TO 'changegate_app'@'127.0.0.1';
-- The reconciliation cursor (one row per ServiceNow instance) moves forward in place; no DELETE.
GRANT CREATE, UPDATE ON changegate.itsm_sync_cursors TO 'changegate_app'@'localhost';
GRANT CREATE, UPDATE ON changegate.itsm_sync_cursors TO 'changegate_app'@'127.0.0.1';
-- Drift findings are updated in place too (seen again, resolved, a remediation named); no DELETE.
GRANT CREATE, UPDATE ON changegate.drift_findings TO 'changegate_app'@'localhost';
GRANT CREATE, UPDATE ON changegate.drift_findings TO 'changegate_app'@'127.0.0.1';
-- The emergency-exception ledger: escalated and decided in place; no DELETE.
GRANT CREATE, UPDATE ON changegate.emergency_exceptions TO 'changegate_app'@'localhost';
GRANT CREATE, UPDATE ON changegate.emergency_exceptions TO 'changegate_app'@'127.0.0.1';
-- Certification items are updated in place too (decided, escalated, a revocation change named); no DELETE.
GRANT CREATE, UPDATE ON changegate.certification_items TO 'changegate_app'@'localhost';
GRANT CREATE, UPDATE ON changegate.certification_items TO 'changegate_app'@'127.0.0.1';
SQL
CONNECTOR_PASSWORD="$(secret MYSQL_LOCAL_PASSWORD)" bash scripts/mysql-connector-account.sh changegate_connector
