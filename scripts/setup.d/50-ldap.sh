#!/usr/bin/env bash
# OpenLDAP for the ldap connector: slapd (server, with the mdb backend and the ppolicy and memberof overlays, and
# slapadd) and ldap-utils (clients). The tests start their own slapd on a free port from the packaged binaries and
# src/connectors/ldap/slapd.conf.in. This part installs the packages and prepares the local demo directory in
# .data/ldap; `npm start` runs its slapd on 127.0.0.1:3890 as a child and stops it on Ctrl-C
# (src/launcher/demo-ldap.ts). Tested with Debian bookworm's 2.5.13+dfsg-5.
set -euo pipefail
. scripts/lib/setup-common.sh
ldap_missing=()
{ [ -x /usr/sbin/slapd ] && [ -x /usr/sbin/slapadd ] && [ -e /usr/lib/ldap/ppolicy.so ]; } || ldap_missing+=(slapd)
command -v ldapwhoami >/dev/null 2>&1 || ldap_missing+=(ldap-utils)
if [ ${#ldap_missing[@]} -gt 0 ]; then
  # The package's own database is built from debconf defaults and nothing here uses it: tell it not to create one.
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
  apt_install "${ldap_missing[@]}"
fi

# The demo directory: same configuration and seed as the tests. Its two credentials (the connector's bind password
# and the rootdn's, for an operator) are among the demo secrets setup.sh generates.
LDAP_DEMO_DIR="$(pwd)/.data/ldap"
LDAP_LOCAL_PASSWORD=$(secret LDAP_LOCAL_PASSWORD)
LDAP_LOCAL_ADMIN_PASSWORD=$(secret LDAP_LOCAL_ADMIN_PASSWORD)
ldap_hash() { printf '%s' "$1" | /usr/sbin/slappasswd -n -T /dev/stdin; }

(umask 077 && mkdir -p "$LDAP_DEMO_DIR/db")
chmod 700 "$LDAP_DEMO_DIR"
[ -s "$LDAP_DEMO_DIR/rootpw.hash" ] || (umask 077 && ldap_hash "$LDAP_LOCAL_ADMIN_PASSWORD" > "$LDAP_DEMO_DIR/rootpw.hash")
ldap_conf=$(sed -e "s|@DIR@|${LDAP_DEMO_DIR}|g" -e "s|@ROOTPW_HASH@|$(cat "$LDAP_DEMO_DIR/rootpw.hash")|g" src/connectors/ldap/slapd.conf.in)
if [ ! -f "$LDAP_DEMO_DIR/slapd.conf" ] || [ "$ldap_conf" != "$(cat "$LDAP_DEMO_DIR/slapd.conf")" ]; then
  (umask 077 && printf '%s\n' "$ldap_conf" > "$LDAP_DEMO_DIR/slapd.conf")
  # A demo slapd of this checkout still running (an earlier launcher killed hard) would keep the old configuration.
  if [ -f "$LDAP_DEMO_DIR/slapd.pid" ] && kill -0 "$(cat "$LDAP_DEMO_DIR/slapd.pid")" 2>/dev/null; then
    log "stopping this checkout's demo slapd (its configuration changed)"
    kill "$(cat "$LDAP_DEMO_DIR/slapd.pid")" || true
  fi
fi
if [ ! -f "$LDAP_DEMO_DIR/db/data.mdb" ]; then
  log "loading the demo LDAP directory (.data/ldap)"
  sed "s|@CONNECTOR_PASSWORD_HASH@|$(ldap_hash "$LDAP_LOCAL_PASSWORD")|" src/connectors/ldap/seed.ldif.in \
    | (umask 077 && /usr/sbin/slapadd -q -f "$LDAP_DEMO_DIR/slapd.conf")
fi
