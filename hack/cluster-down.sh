#!/usr/bin/env bash
# Stops the local test clusters (home and remote) and the registry and removes their state.
# Safe to run when nothing is running.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$PACKIT_CLUSTER_DIR"
exec 9>"$PACKIT_CLUSTER_DIR/lock"
flock 9

export KWOK_WORKDIR="$PACKIT_CLUSTER_DIR/kwok"
REG_DIR="$PACKIT_CLUSTER_DIR/registry"

# delete NAME KUBECONFIG
delete() {
  if [[ -x "$PACKIT_BIN_DIR/kwokctl" && -d "$KWOK_WORKDIR/clusters/$1" ]]; then
    "$PACKIT_BIN_DIR/kwokctl" delete cluster --name "$1" --kubeconfig "$2" >/dev/null 2>&1 ||
      log "kwokctl could not delete cluster $1 cleanly"
  fi
}
delete "$PACKIT_CLUSTER_NAME" "$PACKIT_CLUSTER_DIR/kubeconfig"
delete "$PACKIT_CLUSTER_NAME-remote" "$PACKIT_CLUSTER_DIR/remote-kubeconfig"

if [[ -f "$REG_DIR/pid" ]]; then
  pid="$(cat "$REG_DIR/pid")"
  if grep -qF docker-registry "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
  fi
fi

"$HACK_DIR/prometheus/ctl.sh" down 9>&-

rm -rf "$KWOK_WORKDIR" "$REG_DIR" "$PACKIT_CLUSTER_DIR/kubeconfig" "$PACKIT_CLUSTER_DIR/env.sh" \
  "$PACKIT_CLUSTER_DIR/config-hash" \
  "$PACKIT_CLUSTER_DIR/remote-kubeconfig" "$PACKIT_CLUSTER_DIR/remote-config-hash"
log "cluster $PACKIT_CLUSTER_NAME is down"
