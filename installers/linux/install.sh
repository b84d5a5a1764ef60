#!/bin/sh
# Sealtrail for Linux with systemd: installs, upgrades or removes the agent
# and/or the collector as services, from the bundle this script sits in
# (sealtrail-VERSION-linux-ARCH.tar.gz). Idempotent: running it again changes
# nothing that is already right, and never overwrites a config you edited.
#
#   sudo ./install.sh collector [--san NAME]...
#   sudo ./install.sh agent --collector HOST:PORT --token T --ca-fingerprint sha256:...
#   sudo ./install.sh --uninstall [agent] [collector] [--purge]
#
# Layout: the bundle in /opt/sealtrail, configs in /etc/sealtrail (0750
# root:sealtrail, files 0640), data in /var/lib/sealtrail/{agent,collector}
# (0750 sealtrail:sealtrail), units in /etc/systemd/system, and the two CLIs
# linked from /usr/local/bin. Both services run as the system user sealtrail.
#
# TLS: a collector install runs `sealtrail-collector init` once, when its PKI
# (<data_dir>/pki) is absent, and prints the CA fingerprint and the admin API
# key. An agent install with --token runs `sealtrail-agent enroll` once, when
# <data_dir>/enrollment.json is absent; an agent that is neither enrolled nor
# configured `insecure: true` is installed and enabled but not started. Both
# commands run as the sealtrail user with umask 077.
set -eu

PROG=install.sh
PREFIX=/opt/sealtrail
USER_NAME=sealtrail
ROOT=""
ACTION=install
PURGE=no
START=yes
COLLECTOR_ADDRESS=""
COMPONENTS=""
TOKEN=""
CA_FINGERPRINT=""
CA_FILE=""
SAN_ARGS=""

usage() {
  cat <<'EOF'
Usage:
  install.sh [agent] [collector] [options]
      Install or upgrade the named services (default: agent). Upgrades keep
      the data and the config; an absent config is created from the sample.
      The collector's PKI is created when absent (sealtrail-collector init);
      the agent enrolls when given a token and not enrolled yet.
  install.sh --uninstall [agent] [collector] [--purge]
      Stop, disable and remove the named services (default: every installed
      one). Data and config are kept unless --purge is given.

Options:
  --collector HOST:PORT  the agent's collector address, written into a new
                         /etc/sealtrail/agent.yaml (an existing one is kept)
  --token T              agent: enroll with this one-time token (from
                         `sealtrail-collector token create`) before starting
  --ca-fingerprint sha256:HEX
                         agent: pin the collector's CA by its fingerprint
                         (printed by `sealtrail-collector init`)
  --ca FILE              agent: the collector's CA certificate, instead
  --san NAME             collector: another DNS name or IP address for the
                         server certificate that init creates (repeatable)
  --no-start             enable the services but do not start them
  --purge                with --uninstall: also delete data, config and,
                         once nothing is left, the sealtrail user
  --root DIR             act on the system image under DIR instead of /
                         (no systemctl; for image builds and tests)
  -h, --help             this text
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 2
}
fail() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case $1 in
  agent | collector) COMPONENTS="$COMPONENTS $1" ;;
  --uninstall) ACTION=uninstall ;;
  --purge) PURGE=yes ;;
  --no-start) START=no ;;
  --collector)
    [ $# -ge 2 ] || die "--collector needs HOST:PORT"
    COLLECTOR_ADDRESS=$2
    shift
    ;;
  --collector=*) COLLECTOR_ADDRESS=${1#--collector=} ;;
  --token | --ca-fingerprint | --ca | --san)
    [ $# -ge 2 ] || die "$1 needs a value"
    case $1 in
    --token) TOKEN=$2 ;;
    --ca-fingerprint) CA_FINGERPRINT=$2 ;;
    --ca) CA_FILE=$2 ;;
    --san)
      case $2 in
      '' | -* | *[!A-Za-z0-9.:_-]*) die "--san takes a DNS name or an IP address, got '$2'" ;;
      esac
      SAN_ARGS="$SAN_ARGS --san $2"
      ;;
    esac
    shift
    ;;
  --root)
    [ $# -ge 2 ] || die "--root needs a directory"
    ROOT=$2
    shift
    ;;
  --root=*) ROOT=${1#--root=} ;;
  -h | --help)
    usage
    exit 0
    ;;
  *)
    usage >&2
    die "unknown argument: $1"
    ;;
  esac
  shift
done

[ "$PURGE" = no ] || [ "$ACTION" = uninstall ] || die "--purge goes with --uninstall"
case $COLLECTOR_ADDRESS in
'' | *:[0-9]*) ;;
*) die "--collector takes HOST:PORT, got '$COLLECTOR_ADDRESS'" ;;
esac
case $COLLECTOR_ADDRESS in
*[!A-Za-z0-9.:_\[\]-]*) die "--collector: unexpected characters in '$COLLECTOR_ADDRESS'" ;;
esac
case $TOKEN in
*[!A-Za-z0-9._-]*) die "--token: unexpected characters (expected st1.<payload>.<signature>)" ;;
esac
case $CA_FINGERPRINT in
'' | sha256:[0-9A-Fa-f]*) ;;
*) die "--ca-fingerprint takes sha256:<64 hex digits>, got '$CA_FINGERPRINT'" ;;
esac
case $CA_FINGERPRINT in
*[!A-Za-z0-9:]*) die "--ca-fingerprint: unexpected characters in '$CA_FINGERPRINT'" ;;
esac
[ -z "$CA_FILE" ] || [ -z "$CA_FINGERPRINT" ] || die "give --ca or --ca-fingerprint, not both"
if [ -n "$TOKEN" ] && [ -z "$CA_FILE$CA_FINGERPRINT" ]; then
  die "--token needs the collector's CA: --ca-fingerprint sha256:... (printed by sealtrail-collector init) or --ca FILE"
fi
if [ -z "$TOKEN" ] && [ -n "$CA_FILE$CA_FINGERPRINT" ]; then
  die "--ca and --ca-fingerprint go with --token"
fi
if [ -n "$CA_FILE" ]; then
  [ -f "$CA_FILE" ] || die "--ca $CA_FILE: no such file"
fi
if [ -n "$ROOT" ]; then
  [ -d "$ROOT" ] || die "--root $ROOT: no such directory"
  ROOT=$(cd "$ROOT" && pwd -P)
fi
[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 ...)"

BUNDLE=$(cd "$(dirname "$0")" && pwd -P)
UNIT_DIR=$ROOT/etc/systemd/system
CONF_DIR=$ROOT/etc/sealtrail
DATA_DIR=$ROOT/var/lib/sealtrail
BIN_LINK_DIR=$ROOT/usr/local/bin

# systemctl only on the running system, and only when systemd runs it.
use_systemd() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }

# The id of a user or group: from NSS on this system (LDAP users count), from
# the image's own files under --root (whose ids the host does not know).
id_of() { # passwd|group name
  if [ -z "$ROOT" ]; then
    getent "$1" "$2" | cut -d: -f3 | grep .
  else
    awk -F: -v n="$2" '$1 == n { print $3; found = 1 } END { exit !found }' "$ROOT/etc/$1"
  fi
}

# useradd and friends: --prefix only for --root (shadow 4.9+; older ones lack it).
accounts() { # command args...
  cmd=$1
  shift
  if [ -n "$ROOT" ]; then "$cmd" --prefix "$ROOT" "$@"; else "$cmd" "$@"; fi
}

ensure_user() {
  if ! id_of group "$USER_NAME" >/dev/null 2>&1; then
    accounts groupadd --system "$USER_NAME"
    say "created group $USER_NAME"
  fi
  if ! id_of passwd "$USER_NAME" >/dev/null 2>&1; then
    nologin=/usr/sbin/nologin
    [ -x "$ROOT$nologin" ] || nologin=/sbin/nologin
    accounts useradd --system --gid "$USER_NAME" --no-create-home \
      --home-dir /var/lib/sealtrail --shell "$nologin" --comment "Sealtrail audit pipeline" "$USER_NAME"
    say "created user $USER_NAME"
  fi
  UID_N=$(id_of passwd "$USER_NAME")
  GID_N=$(id_of group "$USER_NAME")
}

# mkdir -p, then owner and mode, every time (idempotent).
ensure_dir() { # path mode owner group
  mkdir -p "$1"
  chown "$3:$4" "$1"
  chmod "$2" "$1"
}

installed_components() {
  for c in agent collector; do
    [ -f "$UNIT_DIR/sealtrail-$c.service" ] && printf '%s ' "$c"
  done
  return 0
}

unit_active() { use_systemd && systemctl is-active --quiet "sealtrail-$1.service"; }

# Copies the bundle to $PREFIX unless the same build is already there; stops
# running services first and says which ones to start again.
RESTART=""
install_bundle() {
  target=$ROOT$PREFIX
  if [ ! -f "$BUNDLE/BUILD.json" ] || [ ! -x "$BUNDLE/runtime/bin/node" ]; then
    die "$BUNDLE is not an unpacked Sealtrail bundle (run install.sh from the extracted tarball)"
  fi
  if [ "$BUNDLE" = "$target" ]; then return 0; fi
  if [ -f "$target/BUILD.json" ] && cmp -s "$BUNDLE/BUILD.json" "$target/BUILD.json"; then
    say "$PREFIX already holds this build"
    return 0
  fi
  staging=$target.new.$$
  rm -rf "$staging"
  mkdir -p "$staging"
  for part in BUILD.json bin runtime lib share; do
    cp -R "$BUNDLE/$part" "$staging/"
  done
  chown -R 0:0 "$staging"
  chmod -R u=rwX,go=rX "$staging"
  for c in agent collector; do
    if unit_active "$c"; then
      systemctl stop "sealtrail-$c.service"
      RESTART="$RESTART $c"
    fi
  done
  if [ -d "$target" ]; then
    rm -rf "$target.old"
    mv "$target" "$target.old"
  fi
  mv "$staging" "$target"
  rm -rf "$target.old"
  mkdir -p "$BIN_LINK_DIR"
  for c in agent collector; do
    ln -sfn "$PREFIX/bin/sealtrail-$c" "$BIN_LINK_DIR/sealtrail-$c"
  done
  say "installed $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$target/BUILD.json" | head -n 1) in $PREFIX"
}

install_config() { # component
  conf=$CONF_DIR/$1.yaml
  if [ -f "$conf" ]; then
    if [ "$1" = agent ] && [ -n "$COLLECTOR_ADDRESS" ] &&
      ! grep -q "address: $COLLECTOR_ADDRESS\$" "$conf"; then
      say "warning: $conf exists and is kept; set collector.address to $COLLECTOR_ADDRESS there yourself"
    fi
  else
    tmp=$conf.tmp.$$
    if [ "$1" = agent ] && [ -n "$COLLECTOR_ADDRESS" ]; then
      sed "s|^  address: .*|  address: $COLLECTOR_ADDRESS|" "$ROOT$PREFIX/share/config/agent.yaml" >"$tmp"
    else
      cp "$ROOT$PREFIX/share/config/$1.yaml" "$tmp"
    fi
    chown "0:$GID_N" "$tmp"
    chmod 0640 "$tmp"
    mv "$tmp" "$conf"
    say "created $conf from the sample"
  fi
  # The running service reads it as the sealtrail group; keep that true.
  chown "0:$GID_N" "$conf"
  chmod g+r,o-rwx "$conf"
  if ! "$ROOT$PREFIX/bin/sealtrail-$1" check-config "$conf" >/dev/null; then
    die "$conf is not valid (see above); the service was not started"
  fi
}

install_unit() { # component
  unit=sealtrail-$1.service
  mkdir -p "$UNIT_DIR"
  if ! cmp -s "$ROOT$PREFIX/share/systemd/$unit" "$UNIT_DIR/$unit"; then
    cp "$ROOT$PREFIX/share/systemd/$unit" "$UNIT_DIR/$unit.tmp.$$"
    chmod 0644 "$UNIT_DIR/$unit.tmp.$$"
    mv "$UNIT_DIR/$unit.tmp.$$" "$UNIT_DIR/$unit"
    say "installed $UNIT_DIR/$unit"
  fi
}

# The settings install.sh acts on (data_dir, pki_dir, address, insecure), read
# from a config by the bundle's own config loader: key=value lines.
settings() { # component config
  "$ROOT$PREFIX/runtime/bin/node" "$ROOT$PREFIX/share/installer/settings.mjs" "$1" "$2"
}
setting() { # settings-output key
  printf '%s\n' "$1" | sed -n "s/^$2=//p"
}

# Runs a command as the service user, with umask 077, from / (numeric ids, so
# that it also works for a --root image whose users the host does not know).
as_service_user() { # command args...
  command -v setpriv >/dev/null 2>&1 || fail "setpriv (util-linux) is needed to run $1 as $USER_NAME"
  (cd / && umask 077 && exec setpriv --reuid="$UID_N" --regid="$GID_N" --clear-groups -- "$@")
}

# sealtrail-collector init, once: only when none of the files it writes exist.
# Its output (CA fingerprint, admin API key) is shown here and never again.
init_pki() {
  s=$(settings collector "$CONF_DIR/collector.yaml") || die "cannot read $CONF_DIR/collector.yaml (see above)"
  pki_dir=$(setting "$s" pki_dir)
  pki=$ROOT$pki_dir
  for f in ca.key server.key api-keys token.secret; do
    if [ -e "$pki/$f" ]; then
      if [ -n "$SAN_ARGS" ]; then
        say "warning: $pki_dir exists and is kept; --san does not change its server certificate"
      fi
      return 0
    fi
  done
  mkdir -p "$pki"
  chown "$UID_N:$GID_N" "$pki"
  chmod 0700 "$pki"
  say "creating the collector's CA, server certificate and admin API key in $pki_dir"
  # shellcheck disable=SC2086 # SAN_ARGS: "--san NAME" words, names checked above
  as_service_user "$ROOT$PREFIX/bin/sealtrail-collector" init --dir "$pki" $SAN_ARGS ||
    fail "sealtrail-collector init failed (see above)"
  say "store the admin API key above now: only its hash is kept"
}

AGENT_DATA=""
AGENT_INSECURE=""
agent_settings() {
  s=$(settings agent "$CONF_DIR/agent.yaml") || die "cannot read $CONF_DIR/agent.yaml (see above)"
  AGENT_DATA=$(setting "$s" data_dir)
  AGENT_ADDRESS=$(setting "$s" address)
  AGENT_INSECURE=$(setting "$s" insecure)
}
agent_enrolled() { [ -f "$ROOT$AGENT_DATA/enrollment.json" ]; }

# sealtrail-agent enroll, once: with --token, when enrollment.json is absent.
# It dials the collector.address of the config (which --collector set when it
# created the config).
enroll_agent() {
  agent_settings
  if agent_enrolled; then
    if [ -n "$TOKEN" ]; then say "$AGENT_DATA/enrollment.json exists: already enrolled, --token not used"; fi
    return 0
  fi
  [ -n "$TOKEN" ] || return 0
  data=$ROOT$AGENT_DATA
  if [ ! -d "$data" ]; then ensure_dir "$data" 0750 "$UID_N" "$GID_N"; fi
  if [ -n "$CA_FILE" ]; then
    # A copy the service user can read (the operator's file may be root's only).
    ca=$data/.enroll-ca.$$.crt
    cp "$CA_FILE" "$ca"
    chown "$UID_N:$GID_N" "$ca"
    chmod 0600 "$ca"
    set -- --ca "$ca"
  else
    ca=""
    set -- --ca-fingerprint "$CA_FINGERPRINT"
  fi
  # Under --root the config's data_dir is the image's: name the directory here.
  if [ -n "$ROOT" ]; then set -- "$@" --data-dir "$data"; else set -- "$@" --config "$CONF_DIR/agent.yaml"; fi
  say "enrolling with the collector at $AGENT_ADDRESS"
  rc=0
  as_service_user "$ROOT$PREFIX/bin/sealtrail-agent" enroll --collector "$AGENT_ADDRESS" --token "$TOKEN" "$@" || rc=$?
  if [ -n "$ca" ]; then rm -f "$ca"; fi
  [ "$rc" -eq 0 ] || fail "enrollment failed (see above); the agent is installed but not started: fix it and run install.sh again with a new token"
}

# What to do after an agent install without enrollment, said once per run.
agent_not_enrolled() {
  say "sealtrail-agent is not enrolled with a collector, and cannot run until it is"
  say "(not started). On the collector host: sealtrail-collector token create; then here,"
  say "with that token and the CA fingerprint sealtrail-collector init printed:"
  say "  $0 agent --token TOKEN --ca-fingerprint sha256:..."
}

unit_start() { # component
  if ! unit_active "$1"; then
    systemctl start "sealtrail-$1.service"
    say "started sealtrail-$1 (journalctl -u sealtrail-$1 -f)"
  fi
}

do_install() {
  [ -n "$COMPONENTS" ] || COMPONENTS=agent
  # The collector first: its PKI exists and it runs before a local agent enrolls.
  wanted=""
  for c in collector agent; do
    case " $COMPONENTS " in *" $c "*) wanted="$wanted $c" ;; esac
  done
  COMPONENTS=$wanted
  case " $COMPONENTS " in
  *" agent "*) ;;
  *) [ -z "$TOKEN$COLLECTOR_ADDRESS" ] || die "--collector and --token go with agent" ;;
  esac
  case " $COMPONENTS " in
  *" collector "*) ;;
  *) [ -z "$SAN_ARGS" ] || die "--san goes with collector" ;;
  esac
  ensure_user
  install_bundle
  ensure_dir "$CONF_DIR" 0750 0 "$GID_N"
  ensure_dir "$DATA_DIR" 0755 0 0
  for c in $COMPONENTS; do
    # The unit's StateDirectory= would create it too; this also serves
    # `sealtrail-agent verify --data-dir` before the first start.
    ensure_dir "$DATA_DIR/$c" 0750 "$UID_N" "$GID_N"
    install_config "$c"
    install_unit "$c"
    if [ "$c" = collector ]; then init_pki; fi
  done
  if use_systemd; then
    systemctl daemon-reload
    for c in $COMPONENTS; do
      systemctl enable --quiet "sealtrail-$c.service"
    done
  elif [ -z "$ROOT" ]; then
    say "systemd is not running here: units installed, nothing enabled or started"
  fi
  for c in collector agent; do
    case " $COMPONENTS " in *" $c "*) listed=yes ;; *) listed=no ;; esac
    case " $RESTART " in *" $c "*) stopped=yes ;; *) stopped=no ;; esac
    can_run=yes
    if [ "$c" = agent ] && [ "$listed" = yes ]; then
      enroll_agent
      if [ "$AGENT_INSECURE" != true ] && ! agent_enrolled; then
        can_run=no
        if [ "$stopped" = no ]; then agent_not_enrolled; fi
      fi
    fi
    use_systemd || continue
    # Started again after the upgrade: it ran before. Otherwise as asked, once it can run.
    if [ "$stopped" = yes ] || { [ "$listed" = yes ] && [ "$START" = yes ] && [ "$can_run" = yes ]; }; then
      unit_start "$c"
    fi
  done
}

do_uninstall() {
  if [ -z "$COMPONENTS" ]; then
    # --purge alone also clears what an earlier plain --uninstall kept.
    if [ "$PURGE" = yes ]; then COMPONENTS="agent collector"; else COMPONENTS=$(installed_components); fi
  fi
  for c in $COMPONENTS; do
    unit=sealtrail-$c.service
    if use_systemd; then
      systemctl disable --now --quiet "$unit" 2>/dev/null || true
    fi
    if [ -f "$UNIT_DIR/$unit" ]; then
      rm -f "$UNIT_DIR/$unit"
      say "removed $unit"
    fi
    if [ "$PURGE" = yes ]; then
      rm -rf "${DATA_DIR:?}/$c" "$CONF_DIR/$c.yaml"
      say "purged $DATA_DIR/$c and $CONF_DIR/$c.yaml"
    fi
  done
  if use_systemd; then systemctl daemon-reload; fi
  if [ -z "$(installed_components)" ]; then
    for c in agent collector; do
      link=$BIN_LINK_DIR/sealtrail-$c
      if [ -L "$link" ]; then rm -f "$link"; fi
    done
    if [ -d "$ROOT$PREFIX" ]; then
      rm -rf "${ROOT}${PREFIX:?}"
      say "removed $PREFIX"
    fi
    if [ "$PURGE" = yes ]; then
      rmdir "$CONF_DIR" 2>/dev/null || true
      rmdir "$DATA_DIR" 2>/dev/null || true
      if id_of passwd "$USER_NAME" >/dev/null 2>&1; then
        accounts userdel "$USER_NAME"
      fi
      if id_of group "$USER_NAME" >/dev/null 2>&1; then
        accounts groupdel "$USER_NAME"
      fi
      say "removed the $USER_NAME user"
    else
      say "kept $CONF_DIR and $DATA_DIR (--purge deletes them)"
    fi
  fi
}

case $ACTION in
install) do_install ;;
uninstall) do_uninstall ;;
esac
