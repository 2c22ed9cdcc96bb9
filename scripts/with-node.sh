#!/usr/bin/env bash
# Runs a command on a supported Node.js (see scripts/lib/node-version.sh), refusing to run on an older one with the
# way out: scripts/setup.sh installs the pinned build for the machine when its Node is older.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/node-version.sh
. "$root/scripts/lib/node-version.sh"
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt "$NODE_MIN_MAJOR" ]; then
  echo "changegate needs Node.js ${NODE_MIN_MAJOR} or newer (found $(node --version 2>/dev/null || echo none)): run scripts/setup.sh" >&2
  exit 1
fi
exec "$@"
