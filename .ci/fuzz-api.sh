#!/usr/bin/env bash
# Fuzzes the whole API from its OpenAPI document with schemathesis (PyPI), running every check:
# no server error, responses and status codes as documented, schema-violating requests
# refused, schema-valid ones accepted, and stateful sequences that follow the document's
# links (create -> get/run -> stream/cancel). Any finding fails the pass unless
# .ci/fuzz-exceptions.txt lists it with the reason.
#
# No generated code runs on this machine: the broad pass runs a server whose host runners are
# off (--allowed-runners), so generated node scripts run only in the locked-down isolated
# worker; the trigger is fuzzed with a real token against an isolated script; and the run
# endpoints of host scripts are fuzzed against scripts with fixed, harmless bodies, with the
# operations that create or edit scripts left out. Uses the debug binary `cargo test` built
# (or $SCRIPTD_BIN). KEEP_FUZZ=1 keeps the reports (the work directory) for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v st >/dev/null || python3 -m pip install -q --disable-pip-version-check schemathesis </dev/null
command -v st >/dev/null || export PATH="$HOME/.local/bin:$PATH"
python3 -c 'import openapi_spec_validator' 2>/dev/null ||
  python3 -m pip install -q --disable-pip-version-check openapi-spec-validator </dev/null

work="$(mktemp -d)"
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  [ -n "${KEEP_FUZZ:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
SEED=271454562254785957515814346118113092544
PASSWORD=fuzz-password

# start NAME [serve flags…]: starts a server with data under $work/NAME; sets $base.
start() {
  local name="$1"
  shift
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$work/$name"
  HOME="$work/$name" RUST_LOG=warn "${SCRIPTD_BIN:-target/debug/scriptd}" serve --listen "127.0.0.1:$port" \
    --data-dir "$work/$name" --admin-password "$PASSWORD" --auth-failure-limit 1000000 "$@" \
    >"$work/$name.log" 2>&1 &
  servers+=("$!")
  base="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "fuzz: the $name server did not start" >&2
  exit 1
}

# create JSON: creates a script, prints its id.
create() {
  curl -fsS -u "admin:$PASSWORD" -H 'content-type: application/json' -d "$1" \
    "$base/api/admin/scripts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

# token ID: issues a script's trigger token, prints it.
token() {
  curl -fsS -u "admin:$PASSWORD" -X POST "$base/api/admin/scripts/$1/api-token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}

failed=0
# fuzz NAME [st run flags…]: one schemathesis pass; its findings are checked against the list.
fuzz() {
  local name="$1"
  shift
  local out="$work/st-$name.txt"
  st "$@" --checks all --max-examples 25 --request-timeout 10 --seed "$SEED" --no-color \
    </dev/null >"$out" 2>&1 || true
  tail -n 12 "$out"
  if ! grep -qE '^Test cases:' "$out"; then
    echo "fuzz ($name): schemathesis did not run" >&2
    cat "$out" >&2
    failed=1
    return
  fi
  if grep -qE '^Errors:' "$out"; then
    echo "fuzz ($name): schemathesis reported errors" >&2
    failed=1
  fi
  # Each finding as "CODE METHOD PATH", from the "____ METHOD PATH ____" headers and the
  # "- CODE title" lines under them; a finding of a stateful sequence as
  # "CODE stateful METHOD PATH" of the sequence's last request, ids written as {}.
  local findings
  findings=$(awk '
    function flush() { if (pending != "") print pending " stateful " last; pending = "" }
    /^_+ Stateful tests _+$/ { flush(); stateful = 1; next }
    /^_+ [A-Z]+ \/.* _+$/ { flush(); stateful = 0; op = $2 " " $3; next }
    /^- ST[0-9]+ / { flush(); if (stateful) pending = $2; else print $2 " " op; next }
    stateful && /^ +curl -X / {
      url = $NF; gsub(/\047/, "", url); sub(/^https?:\/\/[^\/]*/, "", url); sub(/\?.*$/, "", url)
      gsub(/\/[0-9a-f]+-[0-9a-f]+-[0-9a-f]+-[0-9a-f]+-[0-9a-f]+/, "/{}", url)
      last = $3 " " url
    }
    /^=+ / { flush() }
    END { flush() }' "$out" | sort -u)
  while read -r finding; do
    [ -z "$finding" ] && continue
    if ! grep -qxF "$finding" <(sed -e 's/[[:space:]]*#.*$//' -e '/^$/d' .ci/fuzz-exceptions.txt); then
      echo "fuzz ($name): unexplained finding: $finding" >&2
      failed=1
    fi
  done <<<"$findings"
}

# 1. Everything, with host runners off: generated scripts only ever run isolated. The served
#    document must first be valid OpenAPI.
start broad --allowed-runners isolated,browser
broad="$base"
curl -fsS "$base/api/openapi.json" | python3 -c '
import json, sys
from openapi_spec_validator import validate
validate(json.load(sys.stdin))
print("fuzz: the served document is valid OpenAPI")'

# The run events stream never ends by design, so it cannot be fuzzed as a request/response
# (tests/api/events.rs covers it).
fuzz broad run "$base/api/openapi.json" --auth "admin:$PASSWORD" --exclude-operation-id runEvents

# 2. The public trigger with a real token, on an isolated script that echoes its input.
id=$(create '{"name":"fuzz trigger","codeIdentifier":"fuzz-trigger","type":"node","runner":"isolated","script":"input","concurrency":"parallel","apiTrigger":{"enabled":true}}')
cat >"$work/trigger.toml" <<EOF
[[operations]]
include-operation-id = "triggerScript"
parameters = { codeIdentifier = "fuzz-trigger" }
headers = { Authorization = "Bearer $(token "$id")" }
EOF
fuzz trigger --config-file "$work/trigger.toml" run "$broad/api/openapi.json" \
  --include-operation-id triggerScript --phases coverage,fuzzing

# 3. Host scripts with fixed bodies: only their run endpoints are fuzzed, so no generated
#    body is ever saved, let alone run.
start host
bash_id=$(create '{"name":"fuzz bash","codeIdentifier":"fuzz-bash","type":"bash","script":"exit 0","concurrency":"parallel","apiTrigger":{"enabled":true}}')
node_id=$(create '{"name":"fuzz node","codeIdentifier":"fuzz-node","type":"node","script":"process.exit(0)","concurrency":"parallel"}')
for script in "$bash_id" "$node_id"; do
  cat >"$work/host-run.toml" <<EOF
[[operations]]
include-operation-id = "runScript"
parameters = { id = "$script" }
EOF
  fuzz "host-run-$script" --config-file "$work/host-run.toml" run "$base/api/openapi.json" \
    --auth "admin:$PASSWORD" --include-operation-id runScript --phases coverage,fuzzing
done
cat >"$work/host-trigger.toml" <<EOF
[[operations]]
include-operation-id = "triggerScript"
parameters = { codeIdentifier = "fuzz-bash" }
headers = { Authorization = "Bearer $(token "$bash_id")" }
EOF
fuzz host-trigger --config-file "$work/host-trigger.toml" run "$base/api/openapi.json" \
  --include-operation-id triggerScript --phases coverage,fuzzing

if grep -q "panicked" "$work"/*.log; then
  echo "fuzz: a server panicked" >&2
  failed=1
fi
if [ "$failed" -ne 0 ]; then
  exit 1
fi
echo "fuzz: every check passed (findings only as listed in .ci/fuzz-exceptions.txt)"
