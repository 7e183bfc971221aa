#!/bin/sh
# Installs the launcher executable from a launcher server (or any directory
# served over HTTP(S) that holds launcher-linux-<arch> and SHA256SUMS).
#
#   curl -fsSL --cacert ca.pem https://SERVER/install.sh | sh -s -- --cacert ca.pem [flags]
#
# Run it with --help for the flags (also in docs/build.md). The binary is
# verified against SHA256SUMS before it replaces anything; on a mismatch
# nothing is installed and an existing launcher is left untouched.
set -eu

base_url='__LAUNCHER_BASE_URL__'
prefix=/usr/local/bin
cacert=
arch=
want_cron=
crontab_file=
want_systemd=
systemd_dir=/etc/systemd/system
env_file=/etc/launcher.env
log_file=/var/log/launcher.log
marker='# managed by launcher install.sh'

say() { printf 'launcher install: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
  cat <<'EOF'
Usage: install.sh [flags]   (or: curl -fsSL https://SERVER/install.sh | sh -s -- [flags])

Flags:
  --base-url URL       where launcher-linux-<arch> and SHA256SUMS live
                       (default: the server this script was downloaded from)
  --prefix DIR         install directory (default /usr/local/bin)
  --cacert FILE        trust this CA certificate (PEM) for HTTPS, e.g. the
                       launcher server's own CA; passed to curl --cacert or
                       wget --ca-certificate
  --arch x64|arm64     override the architecture detected with uname -m
  --cron               add a crontab line that keeps the launcher running
  --crontab-file FILE  edit FILE (user crontab format) instead of `crontab -l`/`crontab -`
  --systemd            write a systemd unit launcher.service
  --systemd-dir DIR    where the unit goes (default /etc/systemd/system)
  --env-file FILE      environment file for cron and systemd (default /etc/launcher.env)
  --log-file FILE      where the cron line appends output (default /var/log/launcher.log)
  -h, --help           this text
EOF
}

need_value() {
  if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "Missing value for $1"; fi
}

while [ "$#" -gt 0 ]; do
  case $1 in
    --base-url) need_value "$@"; base_url=$2; shift 2 ;;
    --base-url=*) base_url=${1#*=}; shift ;;
    --prefix) need_value "$@"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --cacert) need_value "$@"; cacert=$2; shift 2 ;;
    --cacert=*) cacert=${1#*=}; shift ;;
    --arch) need_value "$@"; arch=$2; shift 2 ;;
    --arch=*) arch=${1#*=}; shift ;;
    --cron) want_cron=1; shift ;;
    --crontab-file) need_value "$@"; crontab_file=$2; shift 2 ;;
    --crontab-file=*) crontab_file=${1#*=}; shift ;;
    --systemd) want_systemd=1; shift ;;
    --systemd-dir) need_value "$@"; systemd_dir=$2; shift 2 ;;
    --systemd-dir=*) systemd_dir=${1#*=}; shift ;;
    --env-file) need_value "$@"; env_file=$2; shift 2 ;;
    --env-file=*) env_file=${1#*=}; shift ;;
    --log-file) need_value "$@"; log_file=$2; shift 2 ;;
    --log-file=*) log_file=${1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "Unknown flag \"$1\": expected --base-url, --prefix, --cacert, --arch, --cron, --crontab-file, --systemd, --systemd-dir, --env-file or --log-file" ;;
  esac
done

# Paths end up in a crontab line and a unit file: absolute, and free of
# characters either would misread (whitespace, quotes, cron's %).
absolute() {
  case $2 in
    *[[:space:]\'\"%\\]*) die "Unsupported $1 \"$2\": use a path without spaces, quotes, backslashes or %" ;;
    /*) printf '%s' "$2" ;;
    *) printf '%s/%s' "$(pwd)" "$2" ;;
  esac
}
prefix=$(absolute --prefix "$prefix")
env_file=$(absolute --env-file "$env_file")
log_file=$(absolute --log-file "$log_file")
systemd_dir=$(absolute --systemd-dir "$systemd_dir")

case $base_url in
  https://*|http://*) base_url=${base_url%/} ;;
  *) die "No base URL: pass --base-url https://SERVER (the address of the launcher server)" ;;
esac
if [ -n "$cacert" ] && [ ! -r "$cacert" ]; then
  die "Cannot read the CA certificate \"$cacert\": pass a readable PEM file to --cacert"
fi

[ "$(uname -s)" = Linux ] || die "Unsupported system \"$(uname -s)\": the launcher executable is built for Linux"
if [ -z "$arch" ]; then
  case $(uname -m) in
    x86_64|amd64) arch=x64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) die "Unsupported machine \"$(uname -m)\": expected x86_64 or aarch64 (or pass --arch)" ;;
  esac
fi
case $arch in
  x64|arm64) ;;
  *) die "Unknown --arch \"$arch\": expected x64 or arm64" ;;
esac
name=launcher-linux-$arch
target=$prefix/launcher

# download URL FILE, with curl or else wget, trusting --cacert when given.
if command -v curl >/dev/null 2>&1; then
  download() {
    if [ -n "$cacert" ]; then curl -fsSL --retry 3 --cacert "$cacert" -o "$2" "$1"
    else curl -fsSL --retry 3 -o "$2" "$1"; fi
  }
elif command -v wget >/dev/null 2>&1; then
  download() {
    if [ -n "$cacert" ]; then wget -q --tries=3 --ca-certificate="$cacert" -O "$2" "$1"
    else wget -q --tries=3 -O "$2" "$1"; fi
  }
else
  die "Neither curl nor wget is installed: install one of them, or copy the launcher executable by hand"
fi

if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d ' ' -f 1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d ' ' -f 1; }
else
  die "Neither sha256sum nor shasum is installed: cannot verify the download"
fi

# Everything temporary is removed on any exit; the binary's temporary file
# lives in the target directory so the final mv is an atomic rename.
work=$(mktemp -d "${TMPDIR:-/tmp}/launcher-install.XXXXXX")
partial=
cleanup() {
  rm -rf "$work"
  if [ -n "$partial" ]; then rm -f "$partial"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

download "$base_url/SHA256SUMS" "$work/SHA256SUMS" || die "Cannot download $base_url/SHA256SUMS: check --base-url and, for HTTPS with a private CA, --cacert"
expected=$(awk -v n="$name" '$2 == n || $2 == "*" n { print $1; exit }' "$work/SHA256SUMS")
case $expected in
  [0-9a-f]*) [ "${#expected}" -eq 64 ] || die "SHA256SUMS from $base_url has a malformed line for $name" ;;
  *) die "SHA256SUMS from $base_url lists no $name: this server does not offer the $arch build" ;;
esac

mkdir -p "$prefix" || die "Cannot create the install directory \"$prefix\""
if [ -f "$target" ] && [ "$(sha256 "$target")" = "$expected" ]; then
  say "$target is already the build $base_url offers (sha256 $expected)"
else
  partial=$(mktemp "$prefix/.launcher.XXXXXX") || die "Cannot write to \"$prefix\": run as a user who can, or pass --prefix"
  download "$base_url/$name" "$partial" || die "Cannot download $base_url/$name"
  actual=$(sha256 "$partial")
  if [ "$actual" != "$expected" ]; then
    die "Refusing to install $name: its sha256 is $actual but SHA256SUMS says $expected (nothing was installed)"
  fi
  chmod 755 "$partial"
  "$partial" version >/dev/null 2>&1 || die "Refusing to install $name: the downloaded executable does not run on this host (nothing was installed)"
  mv -f "$partial" "$target"
  partial=
  say "installed $("$target" version 2>/dev/null || echo launcher) as $target"
fi

# The environment file keeps SPACELIFT_TOKEN and SPACELIFT_POOL_PRIVATE_KEY out
# of the crontab and the unit file (both are readable by more people and tools).
ensure_env_file() {
  if [ -e "$env_file" ]; then return 0; fi
  mkdir -p "$(dirname "$env_file")"
  # noclobber makes the create exclusive (O_EXCL): a symlink or file that
  # appears at this path after the check above is not followed or overwritten.
  (
    umask 077
    set -C
    cat >"$env_file" <<EOF
# Environment for the launcher, read by its cron line and systemd unit.
# KEY=value lines, no quotes or spaces; keep this file mode 600.
#SPACELIFT_TOKEN=
#SPACELIFT_POOL_PRIVATE_KEY=
EOF
  ) || die "Cannot create the env file \"$env_file\": something (a dangling symlink?) is in the way; remove it or pass another --env-file"
  say "wrote $env_file: put SPACELIFT_TOKEN and SPACELIFT_POOL_PRIVATE_KEY there"
}

if [ -n "$want_cron" ]; then
  ensure_env_file
  # set -a exports what the env file assigns; flock (when present) keeps a
  # single launcher alive while cron retries every minute. The lock lives
  # beside the env file, not in /tmp, where any local user could create and
  # hold it and so keep the launcher from ever starting.
  run="$target"
  if command -v flock >/dev/null 2>&1; then run="flock -n $(dirname "$env_file")/launcher.cron.lock $target"; fi
  line="* * * * * set -a; . $env_file; exec $run >>$log_file 2>&1 $marker"
  current=$work/crontab.current
  if [ -n "$crontab_file" ]; then
    if [ -f "$crontab_file" ]; then cp "$crontab_file" "$current"; else : >"$current"; fi
  else
    command -v crontab >/dev/null 2>&1 || die "No crontab command: install cron, or pass --crontab-file"
    crontab -l >"$current" 2>/dev/null || : >"$current"
  fi
  if grep -qxF "$line" "$current"; then
    say "crontab already has the launcher line"
  else
    { grep -vF "$marker" "$current" || :; printf '%s\n' "$line"; } >"$work/crontab.new"
    if [ -n "$crontab_file" ]; then
      # A random name beside the target (not NAME.tmp.PID, which anyone could
      # predict and plant a symlink at), created by mktemp with mode 0600.
      staged=$(mktemp "$crontab_file.XXXXXX") || die "Cannot write beside \"$crontab_file\""
      if ! { cat "$work/crontab.new" >"$staged" && chmod 644 "$staged" && mv -f "$staged" "$crontab_file"; }; then
        rm -f "$staged"
        die "Cannot write \"$crontab_file\""
      fi
    else
      crontab "$work/crontab.new"
    fi
    say "added the launcher line to ${crontab_file:-the crontab}"
  fi
fi

if [ -n "$want_systemd" ]; then
  ensure_env_file
  unit=$systemd_dir/launcher.service
  cat >"$work/launcher.service" <<EOF
[Unit]
Description=launcher: runs this worker pool's jobs in Docker
Wants=network-online.target docker.service
After=network-online.target docker.service

[Service]
EnvironmentFile=$env_file
ExecStart=$target
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
EOF
  if [ -f "$unit" ] && cmp -s "$work/launcher.service" "$unit"; then
    say "$unit is already up to date"
  else
    mkdir -p "$systemd_dir"
    staged=$(mktemp "$unit.XXXXXX") || die "Cannot write beside \"$unit\""
    if ! { cat "$work/launcher.service" >"$staged" && chmod 644 "$staged" && mv -f "$staged" "$unit"; }; then
      rm -f "$staged"
      die "Cannot write \"$unit\""
    fi
    say "wrote $unit"
    if [ "$systemd_dir" = /etc/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
      systemctl daemon-reload || say "systemctl daemon-reload failed; run it by hand"
    fi
  fi
  say "start it with: systemctl enable --now launcher"
fi
