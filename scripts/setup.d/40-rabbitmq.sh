#!/usr/bin/env bash
# RabbitMQ 3.10 with its management plugin, for the rabbitmq connector (it speaks the management HTTP API; the
# rotation check speaks AMQP 0-9-1 on 5672). The tests use the machine's broker with uniquely named users.
set -euo pipefail
. scripts/lib/setup-common.sh
if ! command -v rabbitmq-server >/dev/null 2>&1 || ! dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null | grep -q '^3\.10\.'; then
  apt_install 'rabbitmq-server=3.10.*'
fi

# rabbitmq-plugins writes this file as the invoking user (root) under the invoker's umask; the broker reads it as
# the rabbitmq user, so it is given that owner and a world-readable mode whatever the mask was.
plugins_file=/etc/rabbitmq/enabled_plugins
normalise_plugins_file() {
  if [ -f "$plugins_file" ]; then
    chown rabbitmq:rabbitmq "$plugins_file" 2>/dev/null || true
    chmod 644 "$plugins_file"
  fi
}
normalise_plugins_file

rabbitmq_api() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:15672/api/overview || true; }
if [[ ! "$(rabbitmq_api)" =~ ^(200|401)$ ]]; then
  if ! rabbitmqctl -q status >/dev/null 2>&1; then
    log "starting RabbitMQ"
    rabbitmq-server -detached
    wait_until 120 rabbitmqctl -q status || { log "RabbitMQ did not start"; exit 1; }
  fi
  if ! rabbitmq-plugins -q is_enabled rabbitmq_management >/dev/null 2>&1; then
    log "enabling rabbitmq_management"
    rabbitmq-plugins -q enable rabbitmq_management >/dev/null
    normalise_plugins_file
  fi
  for _ in $(seq 1 120); do [[ "$(rabbitmq_api)" =~ ^(200|401)$ ]] && break; sleep 0.5; done
  [[ "$(rabbitmq_api)" =~ ^(200|401)$ ]] || { log "RabbitMQ management API did not answer on 15672"; exit 1; }
fi

# The demo's connector user (config/connectors.demo.json: rabbitmq-local): administrator tag, which user management
# requires, and no vhost permissions. The password lives in .data/demo.env and reaches curl on stdin.
ensure_secret RABBITMQ_LOCAL_PASSWORD
RABBITMQ_LOCAL_PASSWORD=$(secret RABBITMQ_LOCAL_PASSWORD)
printf '{"password":"%s","tags":"administrator"}' "$RABBITMQ_LOCAL_PASSWORD" \
  | curl -sf -o /dev/null -u guest:guest -X PUT -H 'content-type: application/json' --data-binary @- \
      http://127.0.0.1:15672/api/users/changegate_connector
