#!/usr/bin/env bash
# Debian's Chromium for the dashboard's browser tests (playwright-core drives /usr/bin/chromium; a test tool's own
# browser download cannot reach its host from here). Debian replaces Chromium's security builds in place, so the
# archive's current build is installed rather than a pinned one.
set -euo pipefail
. scripts/lib/setup-common.sh
if [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi
/usr/bin/chromium --headless --no-sandbox --version >/dev/null
