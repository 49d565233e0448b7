# Developer entry points. Everything heavy lives in hack/; see the README's
# "Local test cluster" section.
SHELL := bash

# Built binaries, Go build cache, cargo target dir and cluster state all live
# outside the checkout so fresh clones reuse them.
PACKIT_CACHE ?= $(HOME)/.cache/packit-operator
CARGO_TARGET_DIR ?= $(PACKIT_CACHE)/target
export PACKIT_CACHE CARGO_TARGET_DIR

.PHONY: test lint unit bench bench-controller deps binaries cluster-up cluster-down demo demo-down

## test: lint, build or reuse the control plane, start the cluster, run every test, stop the cluster
test:
	hack/test.sh

## lint: cargo fmt --check and clippy with warnings denied
lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

## unit: the tests that need no cluster (library and binary unit tests)
unit:
	cargo test --lib --bins

## bench: changelog benchmark against git log and git-cliff (BENCH_COMMITS, BENCH_RANGE, BENCH_RUNS)
BENCH_COMMITS ?= 100000
BENCH_RANGE ?= 5000
BENCH_RUNS ?= 3
# git-cliff comes from npm (a platform binary package); without npm, or if
# the install fails, the benchmark runs without it.
bench:
	@command -v git-cliff >/dev/null || test -x $(PACKIT_CACHE)/git-cliff/node_modules/git-cliff-linux-x64/bin/git-cliff || \
		npm install --silent --no-audit --no-fund --prefix $(PACKIT_CACHE)/git-cliff git-cliff@2.14.2 || \
		echo "bench: git-cliff could not be installed from npm; comparing with git log only"
	cargo run --release --example changelog_bench -- --commits $(BENCH_COMMITS) --range $(BENCH_RANGE) --runs $(BENCH_RUNS)

## bench-controller: the operator at 100, 300 and 1,000 trains on the local cluster, beside Argo Rollouts (BENCH_TRAINS)
BENCH_TRAINS ?= 100,300,1000
bench-controller:
	BENCH_TRAINS=$(BENCH_TRAINS) hack/bench-controller.sh

## deps: install missing Debian packages (docker-registry, git, make, curl)
deps:
	hack/install-deps.sh

## binaries: build the pinned kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok, kwokctl and helm once
binaries:
	hack/build-binaries.sh

## cluster-up: start or reuse the local cluster and registry; prints the environment to use them
cluster-up:
	hack/cluster-up.sh

## cluster-down: stop the local cluster and registry
cluster-down:
	hack/cluster-down.sh

## demo: a whole release train on the local cluster (left running afterwards)
demo:
	hack/demo.sh

## demo-down: stop the demo's operator and the local cluster
demo-down:
	-[ -f $(PACKIT_CACHE)/demo/operator.pid ] && kill $$(cat $(PACKIT_CACHE)/demo/operator.pid)
	-rm -f $(PACKIT_CACHE)/demo/operator.pid
	hack/cluster-down.sh
