#!/usr/bin/env bash
# Redis 7.0 for the redis connector (its grant allow-list is Redis 7.0's command table). The connector's tests start
# their own redis-server on a free port from this package; the machine's Redis on 6379 serves the demo and CI.
set -euo pipefail
. scripts/lib/setup-common.sh
if ! command -v redis-server >/dev/null 2>&1 || ! redis-server --version | grep -q ' v=7\.0\.'; then
  apt_install 'redis-server=5:7.0.*' 'redis-tools=5:7.0.*'
fi

redis_ping() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null || true; }
if [[ "$(redis_ping)" != PONG && "$(redis_ping)" != NOAUTH* ]]; then
  log "starting Redis on 6379"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 50); do [[ "$(redis_ping)" == PONG ]] && break; sleep 0.2; done
fi

# The demo's least-privilege connector user (config/connectors.demo.json: redis-local). Its password lives in
# .data/demo.env like the others and reaches redis-cli on stdin, not on a command line.
ensure_secret REDIS_LOCAL_PASSWORD
REDIS_LOCAL_PASSWORD=$(secret REDIS_LOCAL_PASSWORD)
printf 'ACL SETUSER changegate_connector reset on >%s -@all +acl|setuser +acl|deluser +acl|getuser +acl|list +acl|cat +client|list +client|kill\n' \
  "$REDIS_LOCAL_PASSWORD" | redis-cli -h 127.0.0.1 -p 6379 >/dev/null
