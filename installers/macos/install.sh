#!/bin/sh
# Sealtrail for macOS: installs, upgrades or removes the agent and/or the
# collector as launchd daemons, from the bundle this script sits in
# (sealtrail-VERSION-darwin-x64.tar.gz; runs under Rosetta 2 on Apple
# silicon). Idempotent: running it again changes nothing that is already
# right, and never overwrites a config you edited.
#
#   sudo ./install.sh [agent] [collector] [--collector HOST:PORT] [--no-start]
#   sudo ./install.sh --uninstall [agent] [collector] [--purge]
#
# Layout: the bundle in /opt/sealtrail, configs in /etc/sealtrail, data in
# /var/lib/sealtrail/{agent,collector}, logs in /var/log/sealtrail, daemons
# in /Library/LaunchDaemons/com.sealtrail.{agent,collector}.plist, CLIs linked
# from /usr/local/bin. The agent runs as root; the collector as _sealtrail.
set -eu

PROG=install.sh
PREFIX=/opt/sealtrail
USER_NAME=_sealtrail
ACTION=install
PURGE=no
START=yes
COLLECTOR_ADDRESS=""
COMPONENTS=""
DAEMON_DIR=/Library/LaunchDaemons
CONF_DIR=/etc/sealtrail
DATA_DIR=/var/lib/sealtrail
LOG_DIR=/var/log/sealtrail

usage() {
  cat <<'EOF'
Usage:
  install.sh [agent] [collector] [--collector HOST:PORT] [--no-start]
      Install or upgrade the named daemons (default: agent). Upgrades keep
      the data and the config; an absent config is created from the sample.
  install.sh --uninstall [agent] [collector] [--purge]
      Unload and remove the named daemons (default: every installed one).
      Data and config are kept unless --purge is given.
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
[ "$(uname -s)" = Darwin ] || die "this is the macOS installer; on Linux use the linux bundle's install.sh"
[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 ...)"

BUNDLE=$(cd "$(dirname "$0")" && pwd -P)

label() { printf 'com.sealtrail.%s' "$1"; }
plist() { printf '%s/com.sealtrail.%s.plist' "$DAEMON_DIR" "$1"; }
loaded() { launchctl print "system/$(label "$1")" >/dev/null 2>&1; }

# A hidden system user and group (id below 500, name with a leading
# underscore, as macOS's own daemons have), created with dscl.
ensure_user() {
  if ! dscl . -read "/Groups/$USER_NAME" >/dev/null 2>&1; then
    gid=$(free_id /Groups PrimaryGroupID)
    dscl . -create "/Groups/$USER_NAME" PrimaryGroupID "$gid"
    dscl . -create "/Groups/$USER_NAME" RealName "Sealtrail audit pipeline"
    dscl . -create "/Groups/$USER_NAME" Password '*'
    say "created group $USER_NAME ($gid)"
  fi
  gid=$(dscl . -read "/Groups/$USER_NAME" PrimaryGroupID | awk '{ print $2 }')
  if ! dscl . -read "/Users/$USER_NAME" >/dev/null 2>&1; then
    uid=$(free_id /Users UniqueID)
    dscl . -create "/Users/$USER_NAME" UniqueID "$uid"
    dscl . -create "/Users/$USER_NAME" PrimaryGroupID "$gid"
    dscl . -create "/Users/$USER_NAME" RealName "Sealtrail audit pipeline"
    dscl . -create "/Users/$USER_NAME" NFSHomeDirectory /var/empty
    dscl . -create "/Users/$USER_NAME" UserShell /usr/bin/false
    dscl . -create "/Users/$USER_NAME" Password '*'
    dscl . -create "/Users/$USER_NAME" IsHidden 1
    say "created user $USER_NAME ($uid)"
  fi
}

# The first id from 300 up that no user (or group) has.
free_id() { # /Users|/Groups attribute
  used=$(dscl . -list "$1" "$2" | awk '{ print $2 }')
  id=300
  while printf '%s\n' "$used" | grep -qx "$id"; do id=$((id + 1)); done
  printf '%s' "$id"
}

ensure_dir() { # path mode owner group
  mkdir -p "$1"
  chown "$3:$4" "$1"
  chmod "$2" "$1"
}

installed_components() {
  for c in agent collector; do
    [ -f "$(plist "$c")" ] && printf '%s ' "$c"
  done
  return 0
}

RESTART=""
install_bundle() {
  if [ ! -f "$BUNDLE/BUILD.json" ] || [ ! -x "$BUNDLE/runtime/bin/node" ]; then
    die "$BUNDLE is not an unpacked Sealtrail bundle (run install.sh from the extracted tarball)"
  fi
  if [ "$BUNDLE" = "$PREFIX" ]; then return 0; fi
  if [ -f "$PREFIX/BUILD.json" ] && cmp -s "$BUNDLE/BUILD.json" "$PREFIX/BUILD.json"; then
    say "$PREFIX already holds this build"
    return 0
  fi
  staging=$PREFIX.new.$$
  rm -rf "$staging"
  mkdir -p "$staging"
  for part in BUILD.json bin runtime lib share; do
    cp -R "$BUNDLE/$part" "$staging/"
  done
  chown -R root:wheel "$staging"
  chmod -R u=rwX,go=rX "$staging"
  # A tarball fetched by a browser carries the quarantine attribute; the
  # bundled node would then be refused by Gatekeeper when launchd runs it.
  xattr -dr com.apple.quarantine "$staging" 2>/dev/null || true
  for c in agent collector; do
    if loaded "$c"; then
      launchctl bootout "system/$(label "$c")" 2>/dev/null || true
      RESTART="$RESTART $c"
    fi
  done
  if [ -d "$PREFIX" ]; then
    rm -rf "$PREFIX.old"
    mv "$PREFIX" "$PREFIX.old"
  fi
  mv "$staging" "$PREFIX"
  rm -rf "$PREFIX.old"
  mkdir -p /usr/local/bin
  for c in agent collector; do
    ln -sfn "$PREFIX/bin/sealtrail-$c" "/usr/local/bin/sealtrail-$c"
  done
  say "installed in $PREFIX"
}

install_config() { # component owner-group
  conf=$CONF_DIR/$1.yaml
  if [ -f "$conf" ]; then
    if [ "$1" = agent ] && [ -n "$COLLECTOR_ADDRESS" ] &&
      ! grep -q "address: $COLLECTOR_ADDRESS\$" "$conf"; then
      say "warning: $conf exists and is kept; set collector.address to $COLLECTOR_ADDRESS there yourself"
    fi
  else
    tmp=$conf.tmp.$$
    if [ "$1" = agent ] && [ -n "$COLLECTOR_ADDRESS" ]; then
      sed "s|^  address: .*|  address: $COLLECTOR_ADDRESS|" "$PREFIX/share/config/agent.yaml" >"$tmp"
    else
      cp "$PREFIX/share/config/$1.yaml" "$tmp"
    fi
    mv "$tmp" "$conf"
    say "created $conf from the sample"
  fi
  chown "root:$2" "$conf"
  chmod 0640 "$conf"
  "$PREFIX/bin/sealtrail-$1" check-config "$conf" >/dev/null ||
    die "$conf is not valid (see above); the daemon was not started"
}

do_install() {
  [ -n "$COMPONENTS" ] || COMPONENTS=agent
  ensure_user
  install_bundle
  ensure_dir "$CONF_DIR" 0755 root wheel
  ensure_dir "$DATA_DIR" 0755 root wheel
  ensure_dir "$LOG_DIR" 0755 root wheel
  for c in $COMPONENTS; do
    if [ "$c" = collector ]; then owner=$USER_NAME group=$USER_NAME; else owner=root group=wheel; fi
    ensure_dir "$DATA_DIR/$c" 0750 "$owner" "$group"
    touch "$LOG_DIR/$c.log"
    chown "$owner:$group" "$LOG_DIR/$c.log"
    chmod 0640 "$LOG_DIR/$c.log"
    install_config "$c" "$group"
    if ! cmp -s "$PREFIX/share/launchd/com.sealtrail.$c.plist" "$(plist "$c")"; then
      if loaded "$c"; then
        launchctl bootout "system/$(label "$c")" 2>/dev/null || true
        RESTART="$RESTART $c"
      fi
      cp "$PREFIX/share/launchd/com.sealtrail.$c.plist" "$(plist "$c")"
      chown root:wheel "$(plist "$c")"
      chmod 0644 "$(plist "$c")"
      say "installed $(plist "$c")"
    fi
  done
  for c in $COMPONENTS $RESTART; do
    case " $COMPONENTS " in *" $c "*) [ "$START" = yes ] || continue ;; esac
    if ! loaded "$c"; then
      launchctl bootstrap system "$(plist "$c")"
      say "started $(label "$c") (log: $LOG_DIR/$c.log)"
    fi
  done
}

do_uninstall() {
  if [ -z "$COMPONENTS" ]; then
    # --purge alone also clears what an earlier plain --uninstall kept.
    if [ "$PURGE" = yes ]; then COMPONENTS="agent collector"; else COMPONENTS=$(installed_components); fi
  fi
  for c in $COMPONENTS; do
    if loaded "$c"; then launchctl bootout "system/$(label "$c")" 2>/dev/null || true; fi
    if [ -f "$(plist "$c")" ]; then
      rm -f "$(plist "$c")"
      say "removed $(label "$c")"
    fi
    if [ "$PURGE" = yes ]; then
      rm -rf "${DATA_DIR:?}/$c" "$CONF_DIR/$c.yaml" "$LOG_DIR/$c.log"
      say "purged $DATA_DIR/$c, $CONF_DIR/$c.yaml and $LOG_DIR/$c.log"
    fi
  done
  if [ -z "$(installed_components)" ]; then
    for c in agent collector; do
      if [ -L "/usr/local/bin/sealtrail-$c" ]; then rm -f "/usr/local/bin/sealtrail-$c"; fi
    done
    if [ -d "$PREFIX" ]; then
      rm -rf "${PREFIX:?}"
      say "removed $PREFIX"
    fi
    if [ "$PURGE" = yes ]; then
      rmdir "$CONF_DIR" "$DATA_DIR" "$LOG_DIR" 2>/dev/null || true
      dscl . -delete "/Users/$USER_NAME" 2>/dev/null || true
      dscl . -delete "/Groups/$USER_NAME" 2>/dev/null || true
      say "removed the $USER_NAME user"
    else
      say "kept $CONF_DIR, $DATA_DIR and $LOG_DIR (--purge deletes them)"
    fi
  fi
}

case $ACTION in
install) do_install ;;
uninstall) do_uninstall ;;
esac
