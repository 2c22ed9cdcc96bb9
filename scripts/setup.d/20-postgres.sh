#!/usr/bin/env bash
# PostgreSQL 15 for the postgres connector. Its tests start their own throwaway cluster (initdb + postgres on a free
# port, scram-sha-256) from these binaries; the machine cluster on 5432 is for the demo configuration.
set -euo pipefail
. scripts/lib/setup-common.sh
PG_MAJOR=15
# The exact Debian build this was tested with. Debian replaces point releases in place, so when the mirror no longer
# has it, the current build of the same major is installed instead (and said so).
PG_DEB_VERSION=15.20-0+deb12u1
if [ ! -x "/usr/lib/postgresql/${PG_MAJOR}/bin/initdb" ] || ! command -v psql >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  if apt-cache madison "postgresql-${PG_MAJOR}" | grep -qF " ${PG_DEB_VERSION} "; then
    pg_pkgs=("postgresql-${PG_MAJOR}=${PG_DEB_VERSION}" "postgresql-client-${PG_MAJOR}=${PG_DEB_VERSION}")
  else
    log "postgresql-${PG_MAJOR} ${PG_DEB_VERSION} is no longer in the archive; installing its current build"
    pg_pkgs=("postgresql-${PG_MAJOR}" "postgresql-client-${PG_MAJOR}")
  fi
  apt_install "${pg_pkgs[@]}"
fi

# The machine cluster: started when down.
if ! pg_isready -q -h 127.0.0.1 -p 5432 -t 2; then
  log "starting PostgreSQL ${PG_MAJOR}"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -n | tail -1)" main start
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 -t 1 && break; sleep 0.5; done
  pg_isready -q -h 127.0.0.1 -p 5432
fi

# Demo target and the connector's least-privilege role (see src/connectors/postgres/README.md), once
# POSTGRES_LOCAL_PASSWORD is among the demo secrets. Runs as the OS user postgres over the local socket.
POSTGRES_LOCAL_PASSWORD=$(secret POSTGRES_LOCAL_PASSWORD)
if [ -n "${POSTGRES_LOCAL_PASSWORD}" ]; then
  pg_admin() { PGOPTIONS='-c client_min_messages=warning' runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"; }
  pg_admin -d postgres <<'SQL'
SELECT 'CREATE DATABASE cg_demo' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'cg_demo') \gexec
SELECT 'CREATE ROLE ' || r || ' NOLOGIN' FROM unnest(ARRAY['cg_readers', 'cg_orphans']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
SELECT 'CREATE ROLE changegate_connector LOGIN CREATEROLE'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'changegate_connector') \gexec
REVOKE CONNECT ON DATABASE cg_demo FROM PUBLIC;
GRANT pg_signal_backend TO changegate_connector;
GRANT cg_orphans TO changegate_connector;
GRANT CONNECT ON DATABASE cg_demo TO changegate_connector WITH GRANT OPTION;
SQL
  # The password reaches psql through its environment (\getenv), never through argv where `ps` would show it.
  CG_PG_CONNECTOR_PASSWORD="$POSTGRES_LOCAL_PASSWORD" pg_admin -d postgres <<'SQL'
\getenv pw CG_PG_CONNECTOR_PASSWORD
ALTER ROLE changegate_connector LOGIN CREATEROLE PASSWORD :'pw';
SQL
  pg_admin -d cg_demo <<'SQL'
CREATE SCHEMA IF NOT EXISTS sales;
CREATE SCHEMA IF NOT EXISTS work;
CREATE TABLE IF NOT EXISTS sales.orders (id int PRIMARY KEY, total numeric);
CREATE TABLE IF NOT EXISTS sales.invoices (id int PRIMARY KEY, amount numeric);
GRANT USAGE ON SCHEMA sales TO changegate_connector WITH GRANT OPTION;
GRANT USAGE, CREATE ON SCHEMA work TO changegate_connector WITH GRANT OPTION;
GRANT SELECT, INSERT, UPDATE, DELETE ON sales.orders, sales.invoices TO changegate_connector WITH GRANT OPTION;
GRANT USAGE ON SCHEMA sales TO cg_readers;
GRANT SELECT ON sales.invoices TO cg_readers;
SQL
fi
