#!/bin/sh
# Starts a Sealtrail binary on the Node.js runtime bundled beside it, so the
# host needs no Node of its own. This one file is installed as both
# bin/sealtrail-agent and bin/sealtrail-collector: its name picks the binary.
set -e
self=$0
# Follow links such as /usr/local/bin/sealtrail-agent -> /opt/sealtrail/bin/sealtrail-agent.
while [ -L "$self" ]; do
  link=$(readlink "$self")
  case $link in
  /*) self=$link ;;
  *) self=${self%/*}/$link ;;
  esac
done
case $self in
*/*) dir=${self%/*} ;;
*) dir=. ;;
esac
root=$(cd "$dir/.." && pwd -P)
name=${self##*/}
case $name in
sealtrail-agent | sealtrail-collector) ;;
*)
  echo "$name: this launcher must be named sealtrail-agent or sealtrail-collector" >&2
  exit 2
  ;;
esac
# The agent's young generation is capped (bench/README.md, "sources"): a FIM scan of a large tree
# otherwise lets V8 grow it to 128 MiB, most of the agent's resident memory.
case $name in
sealtrail-agent) exec "$root/runtime/bin/node" --max-semi-space-size=8 "$root/lib/node_modules/@sealtrail/agent/bin/$name.js" "$@" ;;
*) exec "$root/runtime/bin/node" "$root/lib/node_modules/@sealtrail/${name#sealtrail-}/bin/$name.js" "$@" ;;
esac
