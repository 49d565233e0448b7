#!/usr/bin/env bash
# Starts (or reuses) the local test cluster: a kwokctl cluster on the binary
# runtime with the cached control plane, two fake nodes, the Stages of
# hack/kwok/stages.yaml, an OCI registry and a Prometheus (scraping the
# samples tests set) on 127.0.0.1; and beside it a second control plane
# (its own etcd, kube-apiserver, controller manager, scheduler and kwok on
# other ports) that plays a remote cluster, unless PACKIT_REMOTE_CLUSTER=0.
# Prints the environment to use them and how long the start took.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_ns=$(date +%s%N)
"$HACK_DIR/build-binaries.sh"
command -v kubectl >/dev/null || die "kubectl is not installed"
command -v docker-registry >/dev/null ||
  die "docker-registry is not installed (run hack/install-deps.sh as root)"

mkdir -p "$PACKIT_CLUSTER_DIR"
# The lock is fd 9; processes meant to outlive this script get it closed
# (9>&-), or they would hold it for as long as they run.
exec 9>"$PACKIT_CLUSTER_DIR/lock"
flock 9

KUBECONFIG_PATH="$PACKIT_CLUSTER_DIR/kubeconfig"
ENV_FILE="$PACKIT_CLUSTER_DIR/env.sh"
REG_DIR="$PACKIT_CLUSTER_DIR/registry"
export KWOK_WORKDIR="$PACKIT_CLUSTER_DIR/kwok"
KWOKCTL="$PACKIT_BIN_DIR/kwokctl"

KWOK_CONFIG="$PACKIT_CLUSTER_DIR/kwok-config.yaml"
POD_LOG="$PACKIT_CLUSTER_DIR/pod.log"
# The Stages, and the log every simulated container has: hack/kwok/pod.log
# in the CRI log format, which kwok serves through the API server's
# pods/log (so `kubectl logs` works). kwok wants an absolute path; a copy
# beside the cluster keeps it independent of where the checkout is.
kwok_config() {
  cat "$HACK_DIR/kwok/stages.yaml"
  cat <<YAML
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: simulated-output
spec:
  logs:
  - logsFile: $POD_LOG
---
# One controller manager and one scheduler: no leader election. With it, an
# API server slowed down by a busy test run (or restarted by a test) makes
# them miss a renewal and exit for good, and every later test waits for
# ServiceAccounts and ReplicaSets that never come.
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
componentsPatches:
- name: kube-controller-manager
  extraArgs:
  - key: leader-elect
    value: "false"
- name: kube-scheduler
  extraArgs:
  - key: leader-elect
    value: "false"
YAML
}

# The remote cluster: same binaries and configuration, its own state.
REMOTE_NAME="$PACKIT_CLUSTER_NAME-remote"
REMOTE_KUBECONFIG="$PACKIT_CLUSTER_DIR/remote-kubeconfig"

# components_running NAME: whether every component kwokctl started is still running.
components_running() {
  local pids="$KWOK_WORKDIR/clusters/$1/pids" pid
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler kwok-controller; do
    pid="$(cat "$pids/$c.pid" 2>/dev/null)" || return 1
    kill -0 "$pid" 2>/dev/null || return 1
  done
}

# What the cluster was made from; a change means it must be made anew.
config_hash() {
  { cat "$HACK_DIR/versions.env" "$HACK_DIR/kwok/nodes.yaml"; kwok_config; } | sha256sum | cut -d' ' -f1
}

# cluster_healthy NAME KUBECONFIG
cluster_healthy() {
  local kc=(kubectl --kubeconfig "$2")
  [[ -f "$2" ]] &&
    [[ "$(cat "${2%kubeconfig}config-hash" 2>/dev/null)" == "$(config_hash)" ]] &&
    components_running "$1" &&
    "${kc[@]}" get --raw /readyz >/dev/null 2>&1 &&
    [[ "$("${kc[@]}" get --raw /version 2>/dev/null)" == *"\"gitVersion\": \"$K8S_VERSION\""* ]] &&
    [[ "$("${kc[@]}" get nodes -l type=kwok -o name 2>/dev/null | wc -l)" -ge 2 ]]
}

registry_healthy() {
  [[ -f "$REG_DIR/addr" ]] && curl -fs -o /dev/null "http://$(cat "$REG_DIR/addr")/v2/"
}

# start_cluster NAME KUBECONFIG
start_cluster() {
  local name="$1" kubeconfig="$2"
  local kc=(kubectl --kubeconfig "$kubeconfig")
  log "starting kwok cluster $name (Kubernetes $K8S_VERSION)"
  # Leftovers of a cluster that is no longer healthy (say, after a reboot).
  "$KWOKCTL" delete cluster --name "$name" --kubeconfig "$kubeconfig" >/dev/null 2>&1 || true
  rm -f "$kubeconfig"
  kwok_config >"$KWOK_CONFIG"
  if ! "$KWOKCTL" create cluster \
    --name "$name" \
    --runtime binary \
    --config "$KWOK_CONFIG" \
    --kubeconfig "$kubeconfig" \
    --kube-apiserver-binary "$PACKIT_BIN_DIR/kube-apiserver" \
    --kube-controller-manager-binary "$PACKIT_BIN_DIR/kube-controller-manager" \
    --kube-scheduler-binary "$PACKIT_BIN_DIR/kube-scheduler" \
    --kwok-controller-binary "$PACKIT_BIN_DIR/kwok" \
    --etcd-binary "$PACKIT_BIN_DIR/etcd" \
    --disable-qps-limits \
    --wait 2m 9>&- >"$PACKIT_CLUSTER_DIR/kwokctl-create-$name.log" 2>&1; then
    cat "$PACKIT_CLUSTER_DIR/kwokctl-create-$name.log" >&2
    die "kwokctl could not create the cluster $name"
  fi
  config_hash >"${kubeconfig%kubeconfig}config-hash"
  "${kc[@]}" apply -f "$HACK_DIR/kwok/nodes.yaml" >/dev/null
  "${kc[@]}" wait --for=condition=Ready node -l type=kwok --timeout=2m >/dev/null
  # Pods need the default ServiceAccount of their namespace; wait until the
  # controller manager creates them, starting with "default".
  local deadline=$((SECONDS + 120))
  until "${kc[@]}" get serviceaccount default -n default >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "default ServiceAccount never appeared in $name"
    sleep 0.2
  done
}

start_registry() {
  local port deadline
  stop_pidfile "$REG_DIR/pid" docker-registry
  rm -rf "$REG_DIR"
  mkdir -p "$REG_DIR/data"
  cp "$HACK_DIR/registry/config.yml" "$REG_DIR/config.yml"
  port="$(free_port)"
  log "starting registry on 127.0.0.1:$port"
  REGISTRY_HTTP_ADDR="127.0.0.1:$port" \
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$REG_DIR/data" \
    setsid docker-registry serve "$REG_DIR/config.yml" \
    </dev/null >"$REG_DIR/log" 2>&1 9>&- &
  echo $! >"$REG_DIR/pid"
  echo "127.0.0.1:$port" >"$REG_DIR/addr"
  deadline=$((SECONDS + 30))
  until registry_healthy; do
    if ((SECONDS >= deadline)) || ! kill -0 "$(cat "$REG_DIR/pid")" 2>/dev/null; then
      cat "$REG_DIR/log" >&2
      die "registry did not start"
    fi
    sleep 0.1
  done
}

cp "$HACK_DIR/kwok/pod.log" "$POD_LOG"
reused=()
wanted=3
if cluster_healthy "$PACKIT_CLUSTER_NAME" "$KUBECONFIG_PATH"; then reused+=(cluster); else start_cluster "$PACKIT_CLUSTER_NAME" "$KUBECONFIG_PATH"; fi
if [[ "${PACKIT_REMOTE_CLUSTER:-1}" != 0 ]]; then
  if cluster_healthy "$REMOTE_NAME" "$REMOTE_KUBECONFIG"; then reused+=(remote); else start_cluster "$REMOTE_NAME" "$REMOTE_KUBECONFIG"; fi
else
  wanted=2
fi
if registry_healthy; then reused+=(registry); else start_registry; fi
# Prometheus and the exporter whose samples the tests set (9>&-: they
# outlive this script).
"$HACK_DIR/prometheus/ctl.sh" up 9>&-
PROM_DIR="$PACKIT_CLUSTER_DIR/prometheus"

cat >"$ENV_FILE" <<ENV
export KUBECONFIG=$KUBECONFIG_PATH
export PACKIT_REGISTRY=$(cat "$REG_DIR/addr")
export PACKIT_PROMETHEUS=http://$(cat "$PROM_DIR/addr")
export PACKIT_METRICS_DIR=$PROM_DIR/samples
ENV
if ((wanted == 3)); then
  cat >>"$ENV_FILE" <<ENV
export PACKIT_REMOTE_KUBECONFIG=$REMOTE_KUBECONFIG
export PACKIT_REMOTE_CLUSTER_NAME=$REMOTE_NAME
ENV
fi
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
cat "$ENV_FILE"
if ((${#reused[@]} == wanted)); then
  how="reused the running cluster"
else
  how="started"
fi
printf 'cluster %s is up (%s) in %d.%01ds; stop it with: make cluster-down\n' \
  "$PACKIT_CLUSTER_NAME" "$how" $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100))
