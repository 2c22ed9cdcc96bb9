#!/usr/bin/env bash
# moto's server mode: a local stand-in for the AWS IAM API, for the aws-iam connector's tests. The tests start
# their own moto_server on a free port; nothing runs as a service here.
set -euo pipefail
. scripts/lib/setup-common.sh
MOTO_VERSION=5.2.5
if [ ! -x .venv/bin/moto_server ] || [ "$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null)" != "$MOTO_VERSION" ]; then
  log "installing moto[server]==${MOTO_VERSION}"
  .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==${MOTO_VERSION}"
fi
