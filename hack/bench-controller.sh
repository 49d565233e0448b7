#!/usr/bin/env bash
# `make bench-controller`: the controller at BENCH_TRAINS trains (default 100,
# 300 and 1,000) on the local cluster, then Argo Rollouts on the same cluster
# with as many Rollouts. Prints a table per size; asserts no timing.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

"$HACK_DIR/install-deps.sh"
"$HACK_DIR/build-binaries.sh"
# Argo Rollouts is the peer; without it the benchmark still prints its own
# figures, and says why the peer is missing.
if built="$("$HACK_DIR/build-argo-rollouts.sh" 2>&1)"; then
  export PACKIT_ARGO_ROLLOUTS="$PACKIT_CACHE/bin/argo-rollouts-$ARGO_ROLLOUTS_VERSION"
else
  export PACKIT_ARGO_ROLLOUTS_MISSING="${built##*$'\n'}"
  log "Argo Rollouts could not be built here: $PACKIT_ARGO_ROLLOUTS_MISSING"
fi
trap '"$HACK_DIR/cluster-down.sh"' EXIT
"$HACK_DIR/cluster-up.sh"
# shellcheck source=/dev/null
. "$PACKIT_CLUSTER_DIR/env.sh"
export BENCH_TRAINS="${BENCH_TRAINS:-100,300,1000}"
log "controller benchmark at $BENCH_TRAINS trains"
cargo test --release --test controller_scale -- --ignored --nocapture --test-threads 1 bench_controller
