#!/usr/bin/env bash
# Installs and starts what `npm start` and `npm test` need on a fresh machine of this kind. Idempotent and quick
# when everything is already there. Versions are pinned here, in scripts/setup.d/ and in package-lock.json.
#
# Each scripts/setup.d/*.sh is a separate process, started from the checkout with a fixed umask and no variables of
# this script, so nothing one step sets (umask, working directory, variables) reaches the next; files a step writes
# outside the checkout get the owner and mode their reader needs from that step itself.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022
mkdir -p .data
. scripts/lib/setup-common.sh

# Local demo secrets: generated once, never printed, readable by the owner only. Keys added since a machine's file
# was made are appended, never regenerated.
for key in CHANGEGATE_APP_PASSWORD CHANGEGATE_MIGRATE_PASSWORD MYSQL_LOCAL_PASSWORD SERVICENOW_WEBHOOK_SECRET \
  CHANGEGATE_ADMIN_TOKEN SERVICENOW_PASSWORD POSTGRES_LOCAL_PASSWORD REDIS_LOCAL_PASSWORD RABBITMQ_LOCAL_PASSWORD \
  LDAP_LOCAL_PASSWORD LDAP_LOCAL_ADMIN_PASSWORD DEPLOY_WEBHOOK_SECRET OPENBAO_DEMO_ROOT_TOKEN \
  SECRET_SCANNING_WEBHOOK_SECRET JIRA_API_TOKEN JIRA_WEBHOOK_SECRET; do
  ensure_secret "$key"
done
# The evidence seal key: at least 32 bytes (48 random bytes give ~64 characters). Kept across setups: a new key would
# report every row sealed under the old one as broken.
ensure_secret CHANGEGATE_EVIDENCE_SEAL_KEY 48

# The Jira simulator's integration account is an e-mail, not a secret: written once like the rest.
grep -q '^JIRA_USERNAME=' "$(demo_env_file)" 2>/dev/null || (umask 077 && printf 'JIRA_USERNAME=changegate@example.com\n' >> "$(demo_env_file)")

for part in scripts/setup.d/*.sh; do
  [ -e "$part" ] || continue
  (umask 022 && exec bash "$part") || { log "failed: ${part}"; exit 1; }
done

log "ready (temporal: $(pwd)/.venv/bin/temporal, node: $(bash scripts/with-node.sh node --version))"
