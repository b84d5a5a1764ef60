#!/usr/bin/env bash
# Runs the Linux packages under a real systemd: boots a throwaway Debian 12
# container with systemd-nspawn (private network, nothing shared with the
# host but the kernel), then
#   1. installs the .deb packages with apt: the collector's postinst creates
#      its PKI and starts it; the agent waits, unstarted, until it enrolls
#      with a token (as the docs say), then starts; both run with their
#      hardening (user, capabilities, seccomp), pass /readyz, ship an event
#      over TLS; `systemctl reload` of the collector keeps it running;
#   2. upgrades them to a rebuilt next version while five events wait in the
#      agent's journal (collector stopped): the edited conffile is kept and
#      the backlog is exported after the upgrade;
#   3. purges them: units, config and data go;
#   4. installs the tarball with install.sh (collector: PKI; agent: enrolled
#      with --token and --ca), runs it again (no change), upgrades,
#      uninstalls (data kept) and purges.
#
# Not part of `npm test` (it needs root, systemd-container and debootstrap,
# and the first run downloads a Debian base of ~250 MB from the Debian
# mirror, cached under dist/nspawn/). Run after `npm run package`:
#   sudo installers/linux/systemd-check.sh [dist/packages]
set -euo pipefail

cd "$(dirname "$0")/../.."
DIST=${1:-dist/packages}
VERSION=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json | head -n 1)
NEXT=$VERSION.1
BASE=dist/nspawn/bookworm
WORK=$(mktemp -d /tmp/sealtrail-nspawn.XXXXXX)
NSPAWN_PID=""
FAILED=0

for tool in systemd-nspawn debootstrap dpkg-deb nsenter; do
  command -v "$tool" >/dev/null || {
    echo "missing $tool (apt-get install systemd-container debootstrap)" >&2
    exit 2
  }
done
[ "$(id -u)" -eq 0 ] || {
  echo "run as root" >&2
  exit 2
}
for f in "sealtrail_${VERSION}_amd64.deb" "sealtrail-agent_${VERSION}_all.deb" \
  "sealtrail-collector_${VERSION}_all.deb" "sealtrail-${VERSION}-linux-x64.tar.gz"; do
  [ -f "$DIST/$f" ] || {
    echo "$DIST/$f is missing: npm run package -- --platform linux-x64" >&2
    exit 2
  }
done

cleanup() {
  if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
    kill "$NSPAWN_PID" 2>/dev/null || true
    wait "$NSPAWN_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

pass() { printf 'PASS  %s\n' "$*"; }
fail() {
  printf 'FAIL  %s\n' "$*"
  FAILED=1
}
check() { # description command...
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

if [ ! -x "$BASE/usr/lib/systemd/systemd" ]; then
  echo "debootstrap: a minimal Debian 12 with systemd into $BASE (once)"
  rm -rf "$BASE"
  mkdir -p "$(dirname "$BASE")"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,curl,ca-certificates \
    bookworm "$BASE" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 20 "$WORK/debootstrap.log" >&2
    exit 1
  }
fi

ROOTFS=$WORK/root
cp -a "$BASE" "$ROOTFS"
mkdir -p "$ROOTFS/root/pkg"
cp "$DIST/sealtrail_${VERSION}_amd64.deb" "$DIST/sealtrail-agent_${VERSION}_all.deb" \
  "$DIST/sealtrail-collector_${VERSION}_all.deb" "$DIST/sealtrail-${VERSION}-linux-x64.tar.gz" "$ROOTFS/root/pkg/"

# The same packages as the next version, for the upgrade.
for deb in "sealtrail_${VERSION}_amd64" "sealtrail-agent_${VERSION}_all" "sealtrail-collector_${VERSION}_all"; do
  dpkg-deb -R "$DIST/$deb.deb" "$WORK/$deb"
  sed -i "s/^Version: $VERSION\$/Version: $NEXT/; s/sealtrail (= $VERSION)/sealtrail (= $NEXT)/" "$WORK/$deb/DEBIAN/control"
  dpkg-deb --root-owner-group -Zgzip -z1 --build "$WORK/$deb" "$ROOTFS/root/pkg/${deb/$VERSION/$NEXT}.deb" >/dev/null
done

systemd-nspawn -D "$ROOTFS" --boot --private-network --register=no --keep-unit --console=passive \
  >"$WORK/nspawn.log" 2>&1 &
NSPAWN_PID=$!

INIT=""
for _ in $(seq 1 100); do
  INIT=$(pgrep -P "$NSPAWN_PID" | head -n 1 || true)
  if [ -n "$INIT" ]; then
    state=$(nsenter -t "$INIT" -a systemctl is-system-running 2>/dev/null || true)
    case $state in running | degraded) break ;; esac
  fi
  sleep 0.3
done
[ -n "$INIT" ] || {
  cat "$WORK/nspawn.log" >&2
  exit 1
}
echo "container up: systemd $(nsenter -t "$INIT" -a systemctl is-system-running 2>/dev/null || true)"

ns() { nsenter -t "$INIT" -a "$@"; }
nsh() { nsenter -t "$INIT" -a sh -c "$1"; }
http_status() { ns curl -s -o /dev/null -w '%{http_code}' "$1" || true; }
wait_for() { # seconds description command...
  local secs=$1 what=$2
  shift 2
  for _ in $(seq 1 $((secs * 4))); do
    if "$@" >/dev/null 2>&1; then
      pass "$what"
      return 0
    fi
    sleep 0.25
  done
  fail "$what (waited ${secs}s)"
}
ready() { [ "$(http_status "$1")" = 200 ]; }
post() { # type
  ns curl -s -X POST http://127.0.0.1:7780/v1/events -H 'content-type: application/json' \
    -d "{\"category\":\"application\",\"type\":\"$1\",\"action\":\"test\"}" >/dev/null
}
exported() { # type count
  [ "$(nsh "grep -c '\"type\":\"$1\"' /var/lib/sealtrail/collector/export/events.jsonl || true")" = "$2" ]
}
status_field() { # unit field
  local pid
  pid=$(ns systemctl show -p MainPID --value "$1")
  nsh "sed -n 's/^$2:[[:space:]]*//p' /proc/$pid/status" | awk '{ print $1 }'
}
apt_install() { nsh "cd /root/pkg && DEBIAN_FRONTEND=noninteractive apt-get install -y $* </dev/null >/tmp/apt.log 2>&1"; }
apt_purge() { nsh "DEBIAN_FRONTEND=noninteractive apt-get purge -y $* </dev/null >/tmp/apt.log 2>&1"; }

echo "== 1. .deb with apt"
check "apt installs the three packages" apt_install "./sealtrail_${VERSION}_amd64.deb" \
  "./sealtrail-agent_${VERSION}_all.deb" "./sealtrail-collector_${VERSION}_all.deb"
check "sealtrail-collector is active" ns systemctl is-active --quiet sealtrail-collector
# shellcheck disable=SC2016 # expanded in the container
check "the postinst made the PKI as sealtrail, keys 0600" nsh 'cd /var/lib/sealtrail/collector/pki && [ "$(stat -c %a:%U ca.key server.key api-keys token.secret | sort -u)" = 600:sealtrail ]'
check "apt showed the CA fingerprint and the admin API key" nsh "grep -q 'CA fingerprint *sha256:' /tmp/apt.log && grep -q '^ *stk_' /tmp/apt.log"
check "sealtrail-agent is enabled but not started before enrollment" \
  nsh '! systemctl is-active --quiet sealtrail-agent && systemctl is-enabled --quiet sealtrail-agent && grep -q "agent is not enrolled" /tmp/apt.log'
wait_for 30 "collector /readyz 200" ready http://127.0.0.1:7700/readyz
# Started anyway, the unenrolled agent fails once with the reason, and is not restarted (exit 2).
ns systemctl start sealtrail-agent || true
wait_for 10 "an unenrolled agent fails" ns systemctl is-failed --quiet sealtrail-agent
sleep 6 # past RestartSec=5s
check "and is not restarted (RestartPreventExitStatus=2)" test "$(ns systemctl show -p NRestarts --value sealtrail-agent)" = 0
check "the journal says to enroll" nsh "journalctl -u sealtrail-agent --no-pager | grep -q 'run .sealtrail-agent enroll. first'"
# As docs/install.md says: a token on the collector, enroll as the service user, start.
FP=$(nsh "sed -n 's/.*CA fingerprint *\(sha256:[0-9a-f]*\).*/\1/p' /tmp/apt.log" | head -n 1)
TOKEN=$(ns sealtrail-collector token create | head -n 1)
check "the agent enrolls as sealtrail" ns runuser -u sealtrail -- sealtrail-agent enroll --config /etc/sealtrail/agent.yaml \
  --collector 127.0.0.1:7701 --token "$TOKEN" --ca-fingerprint "$FP"
check "systemctl start sealtrail-agent" ns systemctl start sealtrail-agent
wait_for 60 "agent /readyz 200 (stream up over TLS)" ready http://127.0.0.1:7780/readyz
post install.check
wait_for 30 "the event is exported" exported install.check 1
collector_pid=$(ns systemctl show -p MainPID --value sealtrail-collector)
check "systemctl reload sealtrail-collector" ns systemctl reload sealtrail-collector
sleep 1
check "the collector runs on after the reload (same pid)" test "$(ns systemctl show -p MainPID --value sealtrail-collector)" = "$collector_pid"
check "and logged it" nsh "journalctl -u sealtrail-collector --no-pager | grep -q 'SIGHUP: re-reading the API keys'"
for u in agent collector; do
  check "$u runs as sealtrail" test "$(status_field "sealtrail-$u" Uid)" = "$(nsh 'id -u sealtrail')"
  check "$u has no_new_privs" test "$(status_field "sealtrail-$u" NoNewPrivs)" = 1
  check "$u runs under a seccomp filter" test "$(status_field "sealtrail-$u" Seccomp)" = 2
done
check "agent holds CAP_DAC_READ_SEARCH only" test "$(status_field sealtrail-agent CapEff)" = 0000000000000004
check "collector holds no capability" test "$(status_field sealtrail-collector CapEff)" = 0000000000000000
ns systemd-analyze security --no-pager sealtrail-agent.service sealtrail-collector.service | grep Overall

echo "== 2. upgrade to $NEXT mid-backlog"
nsh 'echo "# edited by the operator" >> /etc/sealtrail/agent.yaml'
ns systemctl stop sealtrail-collector
for _ in 1 2 3 4 5; do post upgrade.backlog; done
check "five events wait in the agent's journal" \
  sh -c "nsenter -t $INIT -a curl -s http://127.0.0.1:7780/metrics | grep -q '^sealtrail_journal_backlog_records{component=\"agent\"} 5\$'"
old_pid=$(ns systemctl show -p MainPID --value sealtrail-agent)
check "apt upgrades the three packages" apt_install "./sealtrail_${NEXT}_amd64.deb" \
  "./sealtrail-agent_${NEXT}_all.deb" "./sealtrail-collector_${NEXT}_all.deb"
check "the agent was restarted on the new version" test "$(ns systemctl show -p MainPID --value sealtrail-agent)" != "$old_pid"
check "the edited conffile is kept" nsh 'grep -q "edited by the operator" /etc/sealtrail/agent.yaml'
check "both services are active" ns systemctl is-active --quiet sealtrail-agent sealtrail-collector
wait_for 90 "the backlog is exported after the upgrade" exported upgrade.backlog 5

echo "== 3. purge"
check "apt purges the packages" apt_purge sealtrail-agent sealtrail-collector sealtrail
check "units, config and data are gone" nsh '! systemctl cat sealtrail-agent.service >/dev/null 2>&1 && [ ! -e /etc/sealtrail ] && [ ! -e /var/lib/sealtrail ] && [ ! -e /opt/sealtrail ]'

echo "== 4. tarball with install.sh"
# The .deb keeps the sealtrail user on purge; start from none so install.sh creates it.
nsh 'userdel sealtrail 2>/dev/null; groupdel sealtrail 2>/dev/null; true'
B=/root/pkg/sealtrail-$VERSION-linux-x64
check "extract" nsh "cd /root/pkg && tar -xzf sealtrail-$VERSION-linux-x64.tar.gz"
check "install.sh agent collector" nsh "$B/install.sh agent collector >/tmp/out"
check "install.sh created the sealtrail user" nsh 'getent passwd sealtrail >/dev/null && getent group sealtrail >/dev/null'
# shellcheck disable=SC2016 # expanded in the container
check "config 0640 root:sealtrail, data 0750 sealtrail" nsh '[ "$(stat -c %a:%U:%G /etc/sealtrail/agent.yaml)" = 640:root:sealtrail ] && [ "$(stat -c %a:%U:%G /var/lib/sealtrail/agent)" = 750:sealtrail:sealtrail ]'
check "install.sh made the PKI and showed the admin API key" nsh "[ -f /var/lib/sealtrail/collector/pki/ca.key ] && grep -q '^ *stk_' /tmp/out"
check "the agent is not started before it enrolls" nsh "! systemctl is-active --quiet sealtrail-agent && grep -q 'not enrolled' /tmp/out"
wait_for 30 "collector /readyz 200" ready http://127.0.0.1:7700/readyz
check "install.sh agent --token --ca enrolls and starts it" \
  nsh "$B/install.sh agent --token \"\$(sealtrail-collector token create | head -n 1)\" --ca /var/lib/sealtrail/collector/pki/ca.crt"
wait_for 60 "agent /readyz 200" ready http://127.0.0.1:7780/readyz
post tarball.check
wait_for 30 "the event is exported" exported tarball.check 1
since=$(ns systemctl show -p ActiveEnterTimestampMonotonic --value sealtrail-agent)
# (Output to a file first: grep -q would close the pipe and SIGPIPE install.sh mid-run.)
check "a second run changes nothing" nsh "$B/install.sh agent collector >/tmp/out && grep -q 'already holds this build' /tmp/out"
check "and restarts nothing" test "$(ns systemctl show -p ActiveEnterTimestampMonotonic --value sealtrail-agent)" = "$since"
nsh "cp -a $B /root/pkg/next && sed -i 's/\"commit\": \"[^\"]*\"/\"commit\": \"next\"/' /root/pkg/next/BUILD.json"
ns systemctl stop sealtrail-collector
post tarball.backlog
check "install.sh upgrades" nsh "/root/pkg/next/install.sh agent collector >/tmp/out && grep -q 'installed .* in /opt/sealtrail' /tmp/out"
wait_for 90 "the backlog is exported after the upgrade" exported tarball.backlog 1
check "--uninstall keeps config and data" nsh "$B/install.sh --uninstall >/dev/null && ! systemctl is-active --quiet sealtrail-agent && [ -f /etc/sealtrail/agent.yaml ] && [ -d /var/lib/sealtrail/agent ] && [ ! -e /opt/sealtrail ]"
check "--purge removes them and the user" nsh "$B/install.sh --uninstall --purge >/dev/null && [ ! -e /etc/sealtrail ] && [ ! -e /var/lib/sealtrail ] && ! getent passwd sealtrail >/dev/null"

if [ "$FAILED" -ne 0 ]; then
  echo "systemd-check: FAILED"
  exit 1
fi
echo "systemd-check: all passed"
