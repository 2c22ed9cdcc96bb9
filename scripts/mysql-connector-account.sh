#!/usr/bin/env bash
# Creates (or refreshes) the least-privilege account the MySQL connector uses on a target server.
# Usage: CONNECTOR_PASSWORD=... mysql-connector-account.sh USER [DB_PATTERN ...]   (run as a MariaDB/MySQL admin;
# the password travels in the environment, not in argv where `ps` would show it). MARIADB_PORT: a server on
# 127.0.0.1 at that port instead of the local socket's.
set -euo pipefail
user=$1; shift
password=${CONNECTOR_PASSWORD:?set CONNECTOR_PASSWORD}
[[ "$password" =~ ^[A-Za-z0-9_.-]{12,}$ ]] || { echo "CONNECTOR_PASSWORD must be 12+ characters of [A-Za-z0-9_.-]" >&2; exit 2; }
patterns=("$@"); [ ${#patterns[@]} -gt 0 ] || patterns=('billing' 'reporting' 'app\_%')
[[ "$user" =~ ^[A-Za-z0-9_]{1,32}$ ]] || { echo "bad user name" >&2; exit 2; }
{
  for host in localhost 127.0.0.1; do
    echo "CREATE USER IF NOT EXISTS '$user'@'$host' IDENTIFIED BY '$password';"
    echo "ALTER USER '$user'@'$host' IDENTIFIED BY '$password';"
    # CREATE USER: create, lock, drop accounts and REVOKE ALL. SELECT on mysql: read accounts and SHOW GRANTS.
    # PROCESS + CONNECTION ADMIN: find and end a leaver's open sessions (dropping an account does not disconnect it).
    echo "GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO '$user'@'$host';"
    echo "GRANT SELECT ON mysql.* TO '$user'@'$host';"
    # Grants can only be handed out on the schemas the gateway manages, never globally.
    # A plain name is escaped (`_` is a wildcard in database grants); a name with % or \ is taken as a pattern.
    for p in "${patterns[@]}"; do
      case "$p" in *%*|*\\*) q=$p ;; *) q=${p//_/\\_} ;; esac
      echo "GRANT ALL PRIVILEGES ON \`$q\`.* TO '$user'@'$host' WITH GRANT OPTION;"
    done
  done
} | mariadb -uroot ${MARIADB_PORT:+--host=127.0.0.1 --port="$MARIADB_PORT"}
