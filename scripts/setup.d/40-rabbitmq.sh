# RabbitMQ 3.10 with its management plugin, for the rabbitmq connector (it speaks the management HTTP API; the
# rotation check speaks AMQP 0-9-1 on 5672). The tests use the machine's broker with uniquely named users.
if ! command -v rabbitmq-server >/dev/null 2>&1 || ! dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null | grep -q '^3\.10\.'; then
  log "apt-get install rabbitmq-server=3.10.*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq 'rabbitmq-server=3.10.*' >/dev/null
fi

rabbitmq_api() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:15672/api/overview || true; }
if [[ ! "$(rabbitmq_api)" =~ ^(200|401)$ ]]; then
  if ! rabbitmqctl -q status >/dev/null 2>&1; then
    log "starting RabbitMQ"
    rabbitmq-server -detached
    for _ in $(seq 1 120); do rabbitmqctl -q status >/dev/null 2>&1 && break; sleep 0.5; done
  fi
  if ! rabbitmq-plugins -q is_enabled rabbitmq_management >/dev/null 2>&1; then
    log "enabling rabbitmq_management"
    rabbitmq-plugins -q enable rabbitmq_management >/dev/null
  fi
  for _ in $(seq 1 120); do [[ "$(rabbitmq_api)" =~ ^(200|401)$ ]] && break; sleep 0.5; done
  [[ "$(rabbitmq_api)" =~ ^(200|401)$ ]] || { log "RabbitMQ management API did not answer on 15672"; exit 1; }
fi

# The demo's connector user (config/connectors.demo.json: rabbitmq-local): administrator tag, which user management
# requires, and no vhost permissions. The password lives in .data/demo.env and reaches curl on stdin.
if ! grep -q '^RABBITMQ_LOCAL_PASSWORD=' .data/demo.env; then
  (umask 077; echo "RABBITMQ_LOCAL_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" >> .data/demo.env)
fi
RABBITMQ_LOCAL_PASSWORD=$(sed -n 's/^RABBITMQ_LOCAL_PASSWORD=//p' .data/demo.env)
printf '{"password":"%s","tags":"administrator"}' "$RABBITMQ_LOCAL_PASSWORD" \
  | curl -sf -o /dev/null -u guest:guest -X PUT -H 'content-type: application/json' --data-binary @- \
      http://127.0.0.1:15672/api/users/changegate_connector
