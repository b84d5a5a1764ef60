#!/bin/sh
# Sealtrail for macOS: installs, upgrades or removes the agent and/or the
# collector as launchd daemons, from the bundle this script sits in
# (sealtrail-VERSION-darwin-x64.tar.gz; runs under Rosetta 2 on Apple
# silicon). Idempotent: running it again changes nothing that is already
# right, and never overwrites a config you edited.
#
#   sudo ./install.sh collector [--san NAME]...
#   sudo ./install.sh agent --collector HOST:PORT --token T --ca-fingerprint sha256:...
#   sudo ./install.sh --uninstall [agent] [collector] [--purge]
#
# Layout: the bundle in /opt/sealtrail, configs in /etc/sealtrail, data in
# /var/lib/sealtrail/{agent,collector}, logs in /var/log/sealtrail, daemons
# in /Library/LaunchDaemons/com.sealtrail.{agent,collector}.plist, CLIs linked
# from /usr/local/bin. The agent runs as root; the collector as _sealtrail.
#
# TLS: a collector install runs `sealtrail-collector init` once (as
# _sealtrail, umask 077), when its PKI (<data_dir>/pki) is absent, and prints
# the CA fingerprint and the admin API key. An agent install with --token runs
# `sealtrail-agent enroll` once (as root, umask 077), when
# <data_dir>/enrollment.json is absent; an agent that is neither enrolled nor
# configured `insecure: true` is installed but not loaded.
set -eu

PROG=install.sh
PREFIX=/opt/sealtrail
USER_NAME=_sealtrail
ACTION=install
PURGE=no
START=yes
COLLECTOR_ADDRESS=""
COMPONENTS=""
TOKEN=""
CA_FINGERPRINT=""
CA_FILE=""
SAN_ARGS=""
DAEMON_DIR=/Library/LaunchDaemons
CONF_DIR=/etc/sealtrail
DATA_DIR=/var/lib/sealtrail
LOG_DIR=/var/log/sealtrail

usage() {
  cat <<'EOF'
Usage:
  install.sh [agent] [collector] [options]
      Install or upgrade the named daemons (default: agent). Upgrades keep
      the data and the config; an absent config is created from the sample.
      The collector's PKI is created when absent (sealtrail-collector init);
      the agent enrolls when given a token and not enrolled yet.
  install.sh --uninstall [agent] [collector] [--purge]
      Unload and remove the named daemons (default: every installed one).
      Data and config are kept unless --purge is given.

Options:
  --collector HOST:PORT  the agent's collector address, written into a new
                         /etc/sealtrail/agent.yaml (an existing one is kept)
  --token T              agent: enroll with this one-time token (from
                         `sealtrail-collector token create`) before starting
  --ca-fingerprint sha256:HEX
                         agent: pin the collector's CA by its fingerprint
  --ca FILE              agent: the collector's CA certificate, instead
  --san NAME             collector: another DNS name or IP address for the
                         server certificate that init creates (repeatable)
  --no-start             install the daemons but do not load them
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

# The settings install.sh acts on (data_dir, pki_dir, address, insecure), read
# from a config by the bundle's own config loader: key=value lines.
settings() { # component config
  "$PREFIX/runtime/bin/node" "$PREFIX/share/installer/settings.mjs" "$1" "$2"
}
setting() { # settings-output key
  printf '%s\n' "$1" | sed -n "s/^$2=//p"
}

# sealtrail-collector init, once: only when none of the files it writes exist;
# as _sealtrail (the collector's user), umask 077. Its output (CA fingerprint,
# admin API key) is shown here and never again.
init_pki() {
  s=$(settings collector "$CONF_DIR/collector.yaml") || die "cannot read $CONF_DIR/collector.yaml (see above)"
  pki=$(setting "$s" pki_dir)
  for f in ca.key server.key api-keys token.secret; do
    if [ -e "$pki/$f" ]; then
      if [ -n "$SAN_ARGS" ]; then
        say "warning: $pki exists and is kept; --san does not change its server certificate"
      fi
      return 0
    fi
  done
  ensure_dir "$pki" 0700 "$USER_NAME" "$USER_NAME"
  say "creating the collector's CA, server certificate and admin API key in $pki"
  # shellcheck disable=SC2086 # SAN_ARGS: "--san NAME" words, names checked above
  (cd / && umask 077 && exec sudo -u "$USER_NAME" -- "$PREFIX/bin/sealtrail-collector" init --dir "$pki" $SAN_ARGS) ||
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
agent_enrolled() { [ -f "$AGENT_DATA/enrollment.json" ]; }

# sealtrail-agent enroll, once: with --token, when enrollment.json is absent;
# as root (the agent's user), umask 077. It dials the config's collector.address.
enroll_agent() {
  agent_settings
  if agent_enrolled; then
    if [ -n "$TOKEN" ]; then say "$AGENT_DATA/enrollment.json exists: already enrolled, --token not used"; fi
    return 0
  fi
  [ -n "$TOKEN" ] || return 0
  if [ -n "$CA_FILE" ]; then set -- --ca "$CA_FILE"; else set -- --ca-fingerprint "$CA_FINGERPRINT"; fi
  say "enrolling with the collector at $AGENT_ADDRESS"
  (umask 077 && exec "$PREFIX/bin/sealtrail-agent" enroll --config "$CONF_DIR/agent.yaml" \
    --collector "$AGENT_ADDRESS" --token "$TOKEN" "$@") ||
    fail "enrollment failed (see above); the agent is installed but not loaded: fix it and run install.sh again with a new token"
}

agent_not_enrolled() {
  say "sealtrail-agent is not enrolled with a collector, and cannot run until it is"
  say "(not loaded). On the collector host: sealtrail-collector token create; then here,"
  say "with that token and the CA fingerprint sealtrail-collector init printed:"
  say "  sudo $0 agent --token TOKEN --ca-fingerprint sha256:..."
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
    if [ "$c" = collector ]; then init_pki; fi
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
    # Loaded again after the upgrade: it ran before. Otherwise as asked, once it can run.
    if [ "$stopped" = yes ] || { [ "$listed" = yes ] && [ "$START" = yes ] && [ "$can_run" = yes ]; }; then
      if ! loaded "$c"; then
        launchctl bootstrap system "$(plist "$c")"
        say "started $(label "$c") (log: $LOG_DIR/$c.log)"
      fi
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
