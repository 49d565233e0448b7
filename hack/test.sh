#!/usr/bin/env bash
# Everything `make test` does: lint, build or reuse the control plane, bring
# the cluster up, run all tests, and bring the cluster down again whatever
# the tests did. Exits with the tests' status.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

log "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

"$HACK_DIR/build-binaries.sh"
trap '"$HACK_DIR/cluster-down.sh"' EXIT
"$HACK_DIR/cluster-up.sh"
# shellcheck source=/dev/null
. "$PACKIT_CLUSTER_DIR/env.sh"

log "running unit and cluster tests"
cargo test --all-targets
