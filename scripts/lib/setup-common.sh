# Sourced by scripts/setup.sh and by each scripts/setup.d/*.sh, which setup runs as separate processes so that no
# step's umask, working directory or variables reach the next. Defines functions only; sets nothing process-wide.
log() { printf '[setup] %s\n' "$*"; }

# The demo secrets file (generated once, mode 600, never printed).
demo_env_file() { printf '%s/.data/demo.env' "$(pwd)"; }

# Appends KEY=<random> to the demo secrets file unless the key is already there: BYTES random bytes (default 24) in
# base64 without / + =. The file is created 600 whatever the caller's umask, inside a subshell so the mask never
# outlives this call.
ensure_secret() {
  local key=$1 bytes=${2:-24} file
  file=$(demo_env_file)
  grep -q "^${key}=" "$file" 2>/dev/null && return 0
  (
    umask 077
    printf '%s=%s\n' "$key" "$(head -c "$bytes" /dev/urandom | base64 | tr -d '/+=')" >> "$file"
  )
  chmod 600 "$file"
}

# Prints one value from the demo secrets file (empty if absent), without sourcing the whole file.
secret() { sed -n "s/^$1=//p" "$(demo_env_file)" 2>/dev/null | tail -1; }

apt_install() {
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Waits for a command to succeed: up to $1 tries, 0.5 s apart.
wait_until() {
  local tries=$1; shift
  for _ in $(seq 1 "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  "$@" >/dev/null 2>&1
}
