#!/bin/sh
# Sealtrail for Linux with systemd: installs, upgrades or removes the agent
# and/or the collector as services, from the bundle this script sits in
# (sealtrail-VERSION-linux-ARCH.tar.gz). Idempotent: running it again changes
# nothing that is already right, and never overwrites a config you edited.
#
#   sudo ./install.sh [agent] [collector] [--collector HOST:PORT] [--no-start]
#   sudo ./install.sh --uninstall [agent] [collector] [--purge]
#
# Layout: the bundle in /opt/sealtrail, configs in /etc/sealtrail (0750
# root:sealtrail, files 0640), data in /var/lib/sealtrail/{agent,collector}
# (0750 sealtrail:sealtrail), units in /etc/systemd/system, and the two CLIs
# linked from /usr/local/bin. Both services run as the system user sealtrail.
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

usage() {
  cat <<'EOF'
Usage:
  install.sh [agent] [collector] [--collector HOST:PORT] [--no-start]
      Install or upgrade the named services (default: agent). Upgrades keep
      the data and the config; an absent config is created from the sample.
  install.sh --uninstall [agent] [collector] [--purge]
      Stop, disable and remove the named services (default: every installed
      one). Data and config are kept unless --purge is given.

Options:
  --collector HOST:PORT  the agent's collector address, written into a new
                         /etc/sealtrail/agent.yaml (an existing one is kept)
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

do_install() {
  [ -n "$COMPONENTS" ] || COMPONENTS=agent
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
  done
  if use_systemd; then
    systemctl daemon-reload
    for c in $COMPONENTS; do
      systemctl enable --quiet "sealtrail-$c.service"
    done
    for c in $COMPONENTS $RESTART; do
      case " $COMPONENTS " in *" $c "*) [ "$START" = yes ] || continue ;; esac
      if ! unit_active "$c"; then
        systemctl start "sealtrail-$c.service"
        say "started sealtrail-$c (journalctl -u sealtrail-$c -f)"
      fi
    done
  elif [ -z "$ROOT" ]; then
    say "systemd is not running here: units installed, nothing enabled or started"
  fi
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
