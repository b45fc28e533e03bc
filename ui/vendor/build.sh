#!/usr/bin/env bash
# Rebuilds ui/static/vendor/ from the pinned npm packages in this folder. Its output is committed,
# so `cargo build` never needs Node; run this only after changing package.json or icons.txt.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund </dev/null
node build.mjs
