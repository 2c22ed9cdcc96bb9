# OpenLDAP for the ldap connector: slapd (server, with the mdb backend and the ppolicy and memberof overlays, and
# slapadd) and ldap-utils (clients). The tests start their own slapd on a free port from the packaged binaries and
# src/connectors/ldap/slapd.conf.in; this part installs the packages and keeps the local demo directory running on
# 127.0.0.1:3890 with its data in .data/ldap. Tested with Debian bookworm's 2.5.13+dfsg-5.
ldap_missing=()
{ [ -x /usr/sbin/slapd ] && [ -x /usr/sbin/slapadd ] && [ -e /usr/lib/ldap/ppolicy.so ]; } || ldap_missing+=(slapd)
command -v ldapwhoami >/dev/null 2>&1 || ldap_missing+=(ldap-utils)
if [ ${#ldap_missing[@]} -gt 0 ]; then
  log "apt-get install ${ldap_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The package's own database is built from debconf defaults and nothing here uses it: tell it not to create one.
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq "${ldap_missing[@]}" >/dev/null
fi

# The demo directory: same configuration and seed as the tests. Its two credentials are generated once, never
# printed, and kept with the other demo secrets: the connector's bind password and the rootdn's (for an operator).
LDAP_DEMO_DIR="$(pwd)/.data/ldap"
LDAP_DEMO_URL=ldap://127.0.0.1:3890
LDAP_DEMO_CONNECTOR_DN="uid=changegate-connector,ou=services,dc=changegate,dc=test"
ldap_secrets="${SECRETS:-.data/demo.env}"
for key in LDAP_LOCAL_PASSWORD LDAP_LOCAL_ADMIN_PASSWORD; do
  if ! grep -q "^${key}=" "$ldap_secrets" 2>/dev/null; then
    (umask 077 && printf '%s=%s\n' "$key" "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" >> "$ldap_secrets")
  fi
done
# shellcheck disable=SC1090
. "$ldap_secrets"

ldap_hash() { printf '%s' "$1" | /usr/sbin/slappasswd -n -T /dev/stdin; }
ldap_pid() { [ -f "$LDAP_DEMO_DIR/slapd.pid" ] && cat "$LDAP_DEMO_DIR/slapd.pid"; }
ldap_running() { local pid; pid=$(ldap_pid) && kill -0 "$pid" 2>/dev/null; }
ldap_binds() { ldapwhoami -x -H "$LDAP_DEMO_URL" -D "$LDAP_DEMO_CONNECTOR_DN" -y <(printf '%s' "$LDAP_LOCAL_PASSWORD") >/dev/null 2>&1; }

mkdir -p "$LDAP_DEMO_DIR/db" && chmod 700 "$LDAP_DEMO_DIR"
[ -s "$LDAP_DEMO_DIR/rootpw.hash" ] || (umask 077 && ldap_hash "$LDAP_LOCAL_ADMIN_PASSWORD" > "$LDAP_DEMO_DIR/rootpw.hash")
ldap_conf=$(sed -e "s|@DIR@|${LDAP_DEMO_DIR}|g" -e "s|@ROOTPW_HASH@|$(cat "$LDAP_DEMO_DIR/rootpw.hash")|g" src/connectors/ldap/slapd.conf.in)
ldap_restart=false
if [ ! -f "$LDAP_DEMO_DIR/slapd.conf" ] || [ "$ldap_conf" != "$(cat "$LDAP_DEMO_DIR/slapd.conf")" ]; then
  (umask 077 && printf '%s\n' "$ldap_conf" > "$LDAP_DEMO_DIR/slapd.conf")
  ldap_restart=true
fi
if [ ! -f "$LDAP_DEMO_DIR/db/data.mdb" ]; then
  log "loading the demo LDAP directory (.data/ldap)"
  sed "s|@CONNECTOR_PASSWORD_HASH@|$(ldap_hash "$LDAP_LOCAL_PASSWORD")|" src/connectors/ldap/seed.ldif.in \
    | /usr/sbin/slapadd -q -f "$LDAP_DEMO_DIR/slapd.conf"
fi
if $ldap_restart && ldap_running; then
  log "restarting the demo LDAP directory (its configuration changed)"
  ldap_old=$(ldap_pid)
  kill "$ldap_old"
  for _ in $(seq 1 100); do kill -0 "$ldap_old" 2>/dev/null || break; sleep 0.1; done
fi
if ! ldap_running; then
  log "starting the demo LDAP directory on ${LDAP_DEMO_URL}"
  if /usr/sbin/slapd -h "${LDAP_DEMO_URL}/" -f "$LDAP_DEMO_DIR/slapd.conf"; then
    for _ in $(seq 1 100); do ldap_binds && break; sleep 0.1; done
  else
    log "slapd did not start on ${LDAP_DEMO_URL} (is the port taken?)"
  fi
fi
if ! ldap_binds; then
  log "the demo LDAP directory on ${LDAP_DEMO_URL} does not accept LDAP_LOCAL_PASSWORD for ${LDAP_DEMO_CONNECTOR_DN}"
  log "(port taken by another server, or .data/ldap was loaded with another password: stop it and remove .data/ldap)"
  log "continuing: the tests start their own slapd; only the demo's ldap-local connector needs this one"
fi
