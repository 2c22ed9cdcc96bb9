#!/usr/bin/env bash
# Node dependencies, exactly as package-lock.json records them (`npm ci`: it never rewrites the lockfile), on the
# project's Node. Re-run when the lockfile or the Node version changes.
set -euo pipefail
. scripts/lib/setup-common.sh
stamp=node_modules/.changegate-ci-stamp
want="$(sha256sum package-lock.json | cut -d' ' -f1) $(bash scripts/with-node.sh node --version)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
log "npm ci (locked versions)"
bash scripts/with-node.sh npm ci --no-audit --no-fund --loglevel=error
printf '%s' "$want" > "$stamp"
