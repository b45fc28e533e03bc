#!/usr/bin/env bash
# Installs what the UI end-to-end tests (tests/ui_e2e.rs) need: Debian's Chromium and the pinned
# playwright-core in tests/ui. Idempotent, needs no standard input, and never downloads a browser
# build of its own (Playwright's browser download is not used).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq </dev/null
  apt-get install -y -qq chromium </dev/null >/dev/null
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt-get update -qq </dev/null
  apt-get install -y -qq nodejs npm </dev/null >/dev/null
fi

# playwright-core is a single package with no install script: npm ci takes a second or two.
(cd tests/ui && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error </dev/null)
/usr/bin/chromium --version 2>/dev/null | head -n1 || true
echo "UI test dependencies ready: $(node -p 'require("./tests/ui/node_modules/playwright-core/package.json").version' 2>/dev/null | sed 's/^/playwright-core /')"
