# Shared settings for the hack/ scripts; source it, do not run it.
# shellcheck shell=bash

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HACK_DIR/.." && pwd)"
# shellcheck source=versions.env
. "$HACK_DIR/versions.env"

PACKIT_CACHE="${PACKIT_CACHE:-$HOME/.cache/packit-operator}"
# One directory per version set, so changing a pin never mixes binaries.
PACKIT_BIN_DIR="$PACKIT_CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION"
# State of the running cluster; point it elsewhere (with another
# PACKIT_CLUSTER_NAME) to run a second cluster on the same binaries.
PACKIT_CLUSTER_DIR="${PACKIT_CLUSTER_DIR:-$PACKIT_CACHE/cluster}"
PACKIT_CLUSTER_NAME="${PACKIT_CLUSTER_NAME:-packit}"
export PACKIT_CACHE PACKIT_BIN_DIR PACKIT_CLUSTER_DIR PACKIT_CLUSTER_NAME

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A port nothing listens on, from the range the kernel does not hand out
# to outgoing connections by default.
free_port() {
  local port tries
  for ((tries = 0; tries < 100; tries++)); do
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  die "no free port found"
}

# stop_pidfile FILE NAME: end the process recorded in FILE if it is still NAME.
stop_pidfile() {
  local pid
  [[ -f "$1" ]] || return 0
  pid="$(cat "$1")"
  if [[ -n "$pid" ]] && grep -qF "$2" "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

# prune_target: keep cargo's target directory under PACKIT_TARGET_LIMIT_GB
# (default 40). Every build leaves its incremental data and its test
# binaries (hundreds of MB each, a new one whenever a dependency or flag
# changes) behind, and nothing else removes them. Above the limit go, in
# order and until below it: every test binary but the newest of its name,
# the incremental data, then the debug build (rebuilt on the next run).
prune_target() {
  local dir="${CARGO_TARGET_DIR:-$PACKIT_CACHE/target}" limit="${PACKIT_TARGET_LIMIT_GB:-40}"
  over() { (($(du -s --block-size=1G "$dir" | cut -f1) > limit)); }
  [[ -d "$dir" ]] && over || return 0
  log "cargo target directory above ${limit} GB: removing superseded test binaries"
  find "$dir"/*/deps -maxdepth 1 -type f -executable -name '*-????????????????' -printf '%T@ %p\n' |
    sort -rn | cut -d' ' -f2- |
    awk '{ key = $0; sub(/-[0-9a-f]+$/, "", key); if (seen[key]++) print }' |
    xargs -r rm -f
  over || return 0
  log "still above ${limit} GB: removing incremental build data"
  rm -rf "$dir"/*/incremental
  over || return 0
  log "still above ${limit} GB: removing the debug build"
  rm -rf "$dir/debug"
}
