#!/usr/bin/env bash
# MariaDB (server and client) and docker-compose (validates docker-compose.yml; there is no engine here); the
# gateway's own database, its two least-privilege accounts and its migrations, and the mysql connector's account on
# the local server.
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
  # Matched by the machine server's pid file (my.cnf's pid-file): another mariadbd, a test run's own, is not this one.
  start-stop-daemon --start --oknodo --background --pidfile /run/mysqld/mysqld.pid --exec /usr/sbin/mariadbd
  wait_until 120 mariadb-admin -uroot --connect-timeout=1 ping || { log "MariaDB did not start"; exit 1; }
fi

# The gateway's two accounts on its database, with the grants deploy/ gives them in production (rewritten for each
# local host): changegate_migrate runs the migrations and holds their DDL; changegate_app, which the gateway runs
# as, holds SELECT and INSERT, and UPDATE only on the tables it keeps in place.
app_password=$(secret CHANGEGATE_APP_PASSWORD)
migrate_password=$(secret CHANGEGATE_MIGRATE_PASSWORD)
if [ -z "$app_password" ] || [ -z "$migrate_password" ]; then
  log "no database passwords in $(demo_env_file): run scripts/setup.sh"
  exit 1
fi
hosts=(localhost 127.0.0.1)
account() { # NAME PASSWORD: the account on each local host, with this password
  local host
  for host in "${hosts[@]}"; do
    echo "CREATE USER IF NOT EXISTS '$1'@'${host}' IDENTIFIED BY '$2';"
    echo "ALTER USER '$1'@'${host}' IDENTIFIED BY '$2';"
  done
}
deploy_grants() { # NAME FILE: deploy's GRANTs to the account on `changegate` in FILE, for each local host
  local host
  for host in "${hosts[@]}"; do
    grep -E "^GRANT .+ ON \`changegate\`\.\S+ TO '$1'@'%';$" "$2" | sed "s/@'%';\$/@'${host}';/"
  done
}
{
  echo "CREATE DATABASE IF NOT EXISTS changegate CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;"
  account changegate_app "$app_password"
  account changegate_migrate "$migrate_password"
  deploy_grants changegate_migrate deploy/mysql-init/01-users.sql
  deploy_grants changegate_app deploy/mysql-init/01-users.sql
} | mariadb -uroot

# The migrations, as the migration account: its run here makes the tables the application account's UPDATE grants
# name (MariaDB grants on a table only once it exists, unless the grant also gives CREATE), and it makes the
# migration account the definer of every trigger before the application account's TRIGGER is taken back below.
MIGRATION_DATABASE_URL="mysql://changegate_migrate:${migrate_password}@127.0.0.1:3306/changegate" \
  CHANGEGATE_EVIDENCE_SEAL_KEY="$(secret CHANGEGATE_EVIDENCE_SEAL_KEY)" \
  bash scripts/with-node.sh node --import tsx src/persistence/migrate-main.ts >/dev/null

{
  deploy_grants changegate_app deploy/mysql-grants/changegate-app.sql
  # What setups before the migration account gave the application account: DDL on the database, and CREATE with
  # each table's UPDATE (then granted before the migrations had made the table).
  for host in "${hosts[@]}"; do
    echo "REVOKE CREATE, ALTER, INDEX, REFERENCES, TRIGGER ON changegate.* FROM 'changegate_app'@'${host}';"
    for table in api_tokens identity_inventory itsm_sync_cursors drift_findings emergency_exceptions \
      certification_items; do
      echo "REVOKE CREATE ON changegate.${table} FROM 'changegate_app'@'${host}';"
    done
  done
} | mariadb -uroot
CONNECTOR_PASSWORD="$(secret MYSQL_LOCAL_PASSWORD)" bash scripts/mysql-connector-account.sh changegate_connector
