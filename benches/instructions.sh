#!/usr/bin/env bash
# Server instructions per run, counted by callgrind (the same count whatever else the machine
# is doing, unlike wall-clock time): a release server under valgrind, 5 warm-up runs, then
# N runs of `true` from one kept-alive client connection, each POSTed and its stream read to
# `done`. Prints the instructions per run.
# Needs valgrind, curl and python3; build first with `cargo build --release`.
# Usage: benches/instructions.sh [runs (default 100)] [binary (default target/release/scriptd)]
set -euo pipefail
runs=${1:-100}
bin=$(realpath "${2:-target/release/scriptd}")
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
password=bench-instructions
# An empty HOME keeps `bash -l` from reading a profile (see ARCHITECTURE.md).
HOME=$work RUST_LOG=warn SCRIPTD_ADMIN_PASSWORD=$password \
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
  "$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" > /dev/null 2> "$work/log" &
pid=$!
until curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.3; done
script=$(curl -s -u "admin:$password" -H 'content-type: application/json' \
  -d '{"name":"true","codeIdentifier":"true","type":"bash","script":"true","concurrency":"parallel"}' \
  "http://127.0.0.1:$port/api/admin/scripts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
runs_of_true() {
  python3 - "$port" "$password" "$script" "$1" <<'PY'
import base64, http.client, json, sys
port, password, script, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
auth = {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}
conn = http.client.HTTPConnection("127.0.0.1", int(port))
for _ in range(n):
    conn.request("POST", f"/api/admin/scripts/{script}/run", None, auth)
    run = json.loads(conn.getresponse().read())["runId"]
    conn.request("GET", f"/api/admin/scripts/runs/{run}/stream", None, auth)
    assert b"event: done" in conn.getresponse().read()
PY
}
runs_of_true 5
callgrind_control -z "$pid" > /dev/null 2>&1
runs_of_true "$runs"
callgrind_control -d "$pid" > /dev/null 2>&1
total=$(callgrind_annotate "$work/cg.out.1" 2> /dev/null | sed -nE 's/^ *([0-9,]+) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
echo "server instructions for $runs runs of true: $total ($((total / runs)) per run)"
