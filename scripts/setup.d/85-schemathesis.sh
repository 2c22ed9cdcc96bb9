#!/usr/bin/env bash
# schemathesis: the property-based API fuzzer test/openapi-fuzz.e2e.test.ts runs against /openapi.json, in the
# project's own venv.
set -euo pipefail
. scripts/lib/setup-common.sh
SCHEMATHESIS_VERSION=4.32.5
if [ ! -x .venv/bin/schemathesis ] || [ "$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" != "$SCHEMATHESIS_VERSION" ]; then
  log "installing schemathesis==${SCHEMATHESIS_VERSION}"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "schemathesis==${SCHEMATHESIS_VERSION}"
fi
