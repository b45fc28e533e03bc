#!/usr/bin/env bash
# Fuzzes the whole API from its OpenAPI document with schemathesis (PyPI): every generated
# request must get an answer other than 5xx. Uses the debug binary `cargo test` just built.
# Host runners are off (--allowed-runners), so no generated script ever runs on this machine:
# generated node scripts run only in the locked-down isolated worker.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v st >/dev/null || python3 -m pip install -q --disable-pip-version-check schemathesis </dev/null
command -v st >/dev/null || export PATH="$HOME/.local/bin:$PATH"

work="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOME="$work" RUST_LOG=warn target/debug/scriptd serve --listen "127.0.0.1:$port" --data-dir "$work" \
  --admin-password fuzz-password --auth-failure-limit 1000000 \
  --allowed-runners isolated,browser >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

st run "http://127.0.0.1:$port/api/openapi.json" --auth admin:fuzz-password \
  --checks not_a_server_error --max-examples 25 --max-time 90 --request-timeout 10 \
  --seed 271454562254785957515814346118113092544 --no-color </dev/null | tail -n 25
if grep -q "panicked" "$work/server.log"; then
  echo "fuzz: the server panicked" >&2
  exit 1
fi
echo "fuzz: no server error"
