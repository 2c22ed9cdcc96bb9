#!/usr/bin/env bash
# SCIM 2.0 target: nothing to install or start. The service provider the tests (and a demo) run against is
# src/simulators/scim-server.ts, built on the npm packages scimmy and scimmy-routers, pinned in package.json and
# installed by setup's npm install above. Tests start their own provider on a free port; this only checks the pins.
set -euo pipefail
. scripts/lib/setup-common.sh
for pin in scimmy@1.3.5 scimmy-routers@1.3.2; do
  pkg=${pin%@*}
  have=$(node -p "require('./node_modules/${pkg}/package.json').version" 2>/dev/null || echo none)
  if [ "$have" != "${pin#*@}" ]; then
    log "SCIM: expected ${pin} in node_modules, found ${have}; run npm install"
    exit 1
  fi
done
