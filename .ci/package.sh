#!/usr/bin/env bash
# The Debian package, end to end: builds it with cargo-deb, checks it with lintian and the
# unit with systemd-analyze, installs it with dpkg, starts the installed binary as the service
# user the way the unit does, runs a script with the installed client, then removes and purges
# it and checks nothing is left. Needs root (dpkg) and no standard input.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

apt_updated=""
need() { # need COMMAND PACKAGE: installs PACKAGE from Debian when COMMAND is missing.
  command -v "$1" >/dev/null && return
  if [ -z "$apt_updated" ]; then apt-get update -qq </dev/null; apt_updated=1; fi
  apt-get install -y -qq "$2" </dev/null >/dev/null
}
need lintian lintian
need systemd-analyze systemd
need adduser adduser
need runuser util-linux
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet </dev/null
# The check installs and purges the package: it never touches an installation it did not make.
if dpkg -s scriptd >/dev/null 2>&1 && [ "${SCRIPTD_PACKAGE_REPLACE:-}" != 1 ]; then
  echo "package: skipped: a scriptd package is installed here and this check would purge it" \
    "(SCRIPTD_PACKAGE_REPLACE=1 to run it anyway)" >&2
  exit 0
fi
if dpkg -s scriptd >/dev/null 2>&1; then dpkg -P scriptd >/dev/null; fi

cargo build --release --quiet </dev/null
mkdir -p target/man
target/release/scriptd man | gzip -9n >target/man/scriptd.1.gz
deb=$(cargo deb --no-build --quiet </dev/null | tail -n 1)
echo "package: built $deb"
# Tags explained in .ci/lintian-overrides: anything else at warning level or above fails.
lintian --fail-on error,warning --suppress-tags-from-file .ci/lintian-overrides "$deb"
echo "package: lintian passed"

server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
}
trap cleanup EXIT

dpkg -i "$deb" >/dev/null
systemd-analyze verify /lib/systemd/system/scriptd.service
echo "package: installed; the unit verifies"
getent passwd scriptd >/dev/null
[ "$(stat -c '%U %a' /var/lib/scriptd)" = "scriptd 700" ]
[ "$(stat -c '%U:%G %a' /etc/scriptd/scriptd.toml)" = "root:scriptd 640" ]

# Started as the unit starts it: the scriptd user, its state directory, the packaged config.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cd /var/lib/scriptd
runuser -u scriptd -- env -i HOME=/var/lib/scriptd PATH=/usr/sbin:/usr/bin:/sbin:/bin RUST_LOG=warn \
  /usr/bin/scriptd serve --config /etc/scriptd/scriptd.toml --listen "127.0.0.1:$port" \
  >/tmp/scriptd-package.out 2>&1 </dev/null &
server=$!
cd - >/dev/null
url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS "$url/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$url/healthz" >/dev/null
grep -q "initial-admin-password" /tmp/scriptd-package.out
password=$(cat /var/lib/scriptd/initial-admin-password)
if grep -qF "$password" /tmp/scriptd-package.out; then
  echo "package: the generated password reached the service's output" >&2
  exit 1
fi
curl -fsS -u "admin:$password" -H 'content-type: application/json' \
  -d '{"name":"Package check","codeIdentifier":"package-check","type":"bash","script":"echo \"ran as $(id -un)\""}' \
  "$url/api/admin/scripts" >/dev/null
output=$(SCRIPTD_URL="$url" SCRIPTD_ADMIN_PASSWORD="$password" /usr/bin/scriptd run package-check 2>/dev/null)
[ "$output" = "ran as scriptd" ] || { echo "package: the run printed '$output'" >&2; exit 1; }
echo "package: the installed service ran a script as the scriptd user"
kill "$server"
wait "$server" 2>/dev/null || true
server=""

dpkg -r scriptd >/dev/null
[ ! -e /usr/bin/scriptd ]
[ -e /etc/scriptd/scriptd.toml ] # a removed package keeps its configuration
dpkg -P scriptd >/dev/null
[ ! -e /etc/scriptd ] && [ ! -e /var/lib/scriptd ] && [ ! -e /lib/systemd/system/scriptd.service ]
! getent passwd scriptd >/dev/null
echo "package: removed and purged cleanly"
