#!/bin/sh
# Prepares a Debian host for development and tests: the packages a fresh machine
# lacks, then a Docker Engine started in the background with the test runtime
# registered. Idempotent: safe to run again on a prepared host.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PKGS="docker.io busybox-static docker-registry age apache2-utils shellcheck openssl curl wget ca-certificates iproute2 xz-utils binutils prometheus chromium git"

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup-host: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The Debian docker-registry package starts its own service on :5000 on some
# hosts; tests start their own registry on a free loopback port instead.
# Likewise Debian's prometheus package (installed for promtool, which tests use
# to check the server's /metrics page) may start a Prometheus on :9090.
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop docker-registry >/dev/null 2>&1 || true
  systemctl stop prometheus >/dev/null 2>&1 || true
fi

# A second runtime whose wrapper records each call and then execs runc: tests
# use it to prove SPACELIFT_WORKER_RUNTIME reaches the engine. Installed on
# every run (atomically), so a running engine uses the current wrapper too.
if ! cmp -s "$ROOT/test/fixtures/recording-runtime" /usr/local/bin/launcher-test-runtime; then
  cp "$ROOT/test/fixtures/recording-runtime" /usr/local/bin/.launcher-test-runtime.new
  chmod 755 /usr/local/bin/.launcher-test-runtime.new
  mv /usr/local/bin/.launcher-test-runtime.new /usr/local/bin/launcher-test-runtime
fi

SOCK=/var/run/docker.sock
if ! curl -fsS --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1; then
  echo "setup-host: starting dockerd (log: /var/log/launcher-dockerd.log)"
  nohup dockerd --add-runtime launcher-test-runtime=/usr/local/bin/launcher-test-runtime \
    >/var/log/launcher-dockerd.log 2>&1 &
  i=0
  until curl -fsS --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 120 ]; then
      echo "setup-host: dockerd did not answer on $SOCK within 60s; last log lines:" >&2
      tail -20 /var/log/launcher-dockerd.log >&2
      exit 1
    fi
    sleep 0.5
  done
fi
echo "setup-host: Docker Engine $(curl -fsS --unix-socket "$SOCK" http://localhost/version | sed -n 's/.*"ApiVersion":"\([^"]*\)".*/API \1/p') ready on $SOCK"
