#!/usr/bin/env bash
# Everything `make test` does: install missing Debian packages, lint, build
# or reuse the control plane, bring the cluster up, run all tests, and bring
# the cluster down again whatever the tests did. Exits with the tests' status.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

"$HACK_DIR/install-deps.sh"
prune_target
log "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

"$HACK_DIR/build-binaries.sh"
# An operator left running by `make demo` would act on the tests' objects too.
if [[ -f "$PACKIT_CACHE/demo/operator.pid" ]]; then
  kill "$(cat "$PACKIT_CACHE/demo/operator.pid")" 2>/dev/null || true
  rm -f "$PACKIT_CACHE/demo/operator.pid"
fi
trap '"$HACK_DIR/cluster-down.sh"' EXIT
"$HACK_DIR/cluster-up.sh"
# shellcheck source=/dev/null
. "$PACKIT_CLUSTER_DIR/env.sh"

log "building the tests"
cargo test --all-targets --no-run
# A hung test must fail the run with its name in the log, not outlast CI.
log "running unit and cluster tests"
timeout --signal=INT --kill-after=30s "${PACKIT_TEST_TIMEOUT:-40m}" cargo test --all-targets

# The changelog benchmark at a reduced size, for its figures in the log: it
# asserts no timing (the machine is shared), only that every tool ran.
log "changelog benchmark (20,000 commits, range of 2,000)"
make bench BENCH_COMMITS=20000 BENCH_RANGE=2000 BENCH_RUNS=3
