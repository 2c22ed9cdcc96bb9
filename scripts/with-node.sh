#!/usr/bin/env bash
# Runs a command on the project's Node.js: the checkout's pinned build when setup installed one (the machine's Node
# is older than the supported LTS lines), else the machine's. Refuses to run on an unsupported Node.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/node-version.sh
. "$root/scripts/lib/node-version.sh"
if [ -x "$root/$NODE_LOCAL_DIR/bin/node" ]; then
  PATH="$root/$NODE_LOCAL_DIR/bin:$PATH"
fi
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt "$NODE_MIN_MAJOR" ]; then
  echo "changegate needs Node.js ${NODE_MIN_MAJOR} or newer (found $(node --version 2>/dev/null || echo none)): run scripts/setup.sh" >&2
  exit 1
fi
PATH="$PATH" exec "$@"
