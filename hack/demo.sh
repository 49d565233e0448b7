#!/usr/bin/env bash
# `make demo`: a whole release train of the Packit service on the local
# cluster. Builds or reuses the control plane, installs the CRDs, starts the
# operator, creates local git repositories standing in for packit,
# packit-service and packit-service-fedmsg, applies examples/packit-service.yaml
# (with local URLs, a fast schedule and an error-rate metric check on
# production against the cluster's local Prometheus) and runs two releases:
# the first goes through staging and production; the second reaches
# production with healthy pods, but its error rate is bad, so the metric
# check fails it and the operator rolls production back. Whatever plays the
# builder, CI or the application's metrics says SIMULATED. The cluster and the
# operator keep running afterwards; `make demo-down` stops them.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

DEMO_DIR="$PACKIT_CACHE/demo"
NS=packit-system
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
sim() { printf '    \033[33m[SIMULATED %s]\033[0m %s\n' "$1" "$2"; }

"$HACK_DIR/install-deps.sh"
"$HACK_DIR/build-binaries.sh"
"$HACK_DIR/cluster-up.sh"
# shellcheck source=/dev/null
. "$PACKIT_CLUSTER_DIR/env.sh"
REG="$PACKIT_REGISTRY"
[[ -n "${PACKIT_PROMETHEUS:-}" && -d "${PACKIT_METRICS_DIR:-}" ]] ||
  die "the local Prometheus is not set up: restart the cluster (make cluster-down cluster-up)"
k() { kubectl "$@"; }

say "building the operator and the kubectl plugin"
cargo build --quiet --bin packit-operator --bin kubectl-packit
OPERATOR="$CARGO_TARGET_DIR/debug/packit-operator"
# `kubectl packit` runs kubectl-packit from PATH.
PATH="$CARGO_TARGET_DIR/debug:$PATH"

say "installing the CRDs"
k apply --server-side -f crds/ >/dev/null
k wait --for condition=Established crd/packitdeployments.packit.dev crd/packitreleases.packit.dev >/dev/null

# A fresh start: stop an operator of an earlier demo and forget its objects.
if [[ -f "$DEMO_DIR/operator.pid" ]]; then
  kill "$(cat "$DEMO_DIR/operator.pid")" 2>/dev/null || true
fi
k delete namespace packit-system packit-stg packit-prod --ignore-not-found --wait >/dev/null
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR/repos"
# The application metrics the demo plays, served to the local Prometheus.
SAMPLES="$PACKIT_METRICS_DIR/packit-demo.prom"
rm -f "$SAMPLES"

# Pushes a one-layer image labelled with its revision; prints the digest.
push_image() { # repository tag revision
  local repo=$1 tag=$2 rev=$3 dir layer_digest config_digest
  dir=$(mktemp -d)
  printf '%s\n' "$rev" >"$dir/revision"
  tar -C "$dir" -cf "$dir/layer.tar" revision
  layer_digest="sha256:$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)"
  printf '{"architecture":"amd64","os":"linux","config":{"Labels":{"org.opencontainers.image.revision":"%s"}},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$rev" "$layer_digest" >"$dir/config.json"
  config_digest="sha256:$(sha256sum "$dir/config.json" | cut -d' ' -f1)"
  upload() { # file digest
    local location
    location=$(curl -sfS -D - -o /dev/null -X POST "http://$REG/v2/$repo/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    [[ "$location" == http* ]] || location="http://$REG$location"
    [[ "$location" == *\?* ]] && location="$location&" || location="$location?"
    curl -sfS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
      --data-binary "@$1" "${location}digest=$2"
  }
  upload "$dir/layer.tar" "$layer_digest"
  upload "$dir/config.json" "$config_digest"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
    "$config_digest" "$(stat -c %s "$dir/config.json")" "$layer_digest" "$(stat -c %s "$dir/layer.tar")" >"$dir/manifest.json"
  curl -sfS -D - -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$dir/manifest.json" "http://$REG/v2/$repo/manifests/$tag" |
    tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p'
  rm -rf "$dir"
}

git_in() { git -C "$DEMO_DIR/repos/$1" -c user.name=Demo -c user.email=demo@packit.invalid "${@:2}"; }
commit() { # repo message
  date +%s%N >"$DEMO_DIR/repos/$1/CHANGES"
  git_in "$1" add CHANGES
  git_in "$1" commit --quiet -m "$2"
}

say "creating git repositories (stable branches)"
for repo in packit packit-service packit-service-fedmsg; do
  git init --quiet --initial-branch stable "$DEMO_DIR/repos/$repo"
  commit "$repo" "Initial commit"
done

say "creating the staging and production workloads"
sim CI "pushing the base image the workloads start from"
BASE="$REG/packit/base@$(push_image packit/base v0 base)"
sed "s|IMAGE|$BASE|" examples/demo/workloads.yaml | k apply -f - >/dev/null

say "starting the operator (log: $DEMO_DIR/operator.log)"
METRICS=127.0.0.1:18080
# The demo's repositories are file:// and its Prometheus listens on
# 127.0.0.1: both are refused to tenants unless opened.
nohup "$OPERATOR" run --cache-dir "$DEMO_DIR/git-cache" --metrics-addr "$METRICS" \
  --allow-local-sources --allow-cidrs 127.0.0.0/8 >"$DEMO_DIR/operator.log" 2>&1 &
echo $! >"$DEMO_DIR/operator.pid"

say "applying examples/packit-service.yaml with local repositories and a fast schedule"
# Drops a YAML block (the key's line and everything indented deeper).
drop_block() { awk -v key="$1" '
  $0 ~ "^ *" key ":" { ind = match($0, /[^ ]/); skip = 1; next }
  skip { if (match($0, /[^ ]/) > ind) next; skip = 0 }
  { print }'; }
# Production's health gets an error-rate check on the application's own
# metrics, after its soak line.
cat >"$DEMO_DIR/metric-check.yaml" <<EOF
        metrics:
          - name: error-rate
            prometheus: { address: "$PACKIT_PROMETHEUS" }
            query: 'app_error_ratio{namespace="{{ namespace }}",release="{{ release }}"}'
            thresholdRange: { max: 0.05 }
            interval: 2s
            failureThreshold: 3
EOF
add_metric_check() { awk -v check="$DEMO_DIR/metric-check.yaml" '
  { print }
  /^ *soak: 30s$/ { while ((getline line < check) > 0) print line }'; }
sed -e "s|https://github.com/packit/\([a-z-]*\)\.git|file://$DEMO_DIR/repos/\1|" \
  -e "s|quay.io/packit/|$REG/packit/|" \
  -e 's|^          template:$|          template:\n            metadata: { labels: { sim.packit.dev/mode: builder } }|' \
  -e 's|start: "0 23 \* \* SUN"|start: "*/30 * * * * *"|' -e 's|duration: 4h|duration: 20s|' \
  -e 's|soak: 1h|soak: 10s|' -e 's|soak: 2h|soak: 30s|' \
  examples/packit-service.yaml | drop_block freezes | drop_block httpChecks |
  add_metric_check >"$DEMO_DIR/packit-service.yaml"
k apply -f "$DEMO_DIR/packit-service.yaml" >/dev/null
echo "    production window: every 30 seconds for 20 seconds; soak: 10s staging, 30s production"
echo "    production also checks the error rate of the release it runs, in $PACKIT_PROMETHEUS:"
sed 's/^      /   /' "$DEMO_DIR/metric-check.yaml"

jsonpath() { k -n "$NS" get "$1" -o "jsonpath=$2" 2>/dev/null || true; }

# Plays the builder of the service image and the CI of the other two.
build() { # release
  local rel=$1 pod="" image commit digest component repo
  for _ in $(seq 300); do
    pod=$(k -n "$NS" get pods -l "packit.dev/release=$rel" -o name 2>/dev/null | head -n1)
    [[ -n "$pod" ]] && break
    sleep 0.2
  done
  [[ -n "$pod" ]] || die "no builder pod for $rel"
  image=$(jsonpath "$pod" '{.spec.containers[0].env[?(@.name=="PACKIT_IMAGE")].value}')
  commit=$(jsonpath "$pod" '{.spec.containers[0].env[?(@.name=="PACKIT_COMMIT")].value}')
  sim BUILDER "builder Job ${pod#pod/}: building $image from ${commit:0:7}"
  repo=${image#*/}
  digest=$(push_image "${repo%:*}" "${repo##*:}" "$commit")
  k -n "$NS" annotate "$pod" "sim.packit.dev/termination-message=$digest" >/dev/null
  sim BUILDER "pushed and reported $digest"
  for component in worker fedmsg; do
    commit=$(jsonpath "packitrelease/$rel" "{.spec.components[?(@.name==\"$component\")].source.commit}")
    repo=$(jsonpath packitdeployment/packit-service "{.spec.components[?(@.name==\"$component\")].image}")
    sim CI "pushing ${repo#*/}:$commit"
    push_image "${repo#*/}" "$commit" "$commit" >/dev/null
  done
}

# Plays the application: the error ratio production reports per release,
# given as release=ratio pairs, written where the local Prometheus scrapes.
error_rates() { # release=ratio...
  local pair text=""
  for pair in "$@"; do
    text+="app_error_ratio{namespace=\"packit-prod\",release=\"${pair%%=*}\"} ${pair#*=}"$'\n'
  done
  printf '%s' "$text" >"$PACKIT_METRICS_DIR/.packit-demo.tmp"
  mv "$PACKIT_METRICS_DIR/.packit-demo.tmp" "$SAMPLES"
  for pair in "$@"; do
    sim METRICS "production reports an error ratio of ${pair#*=} for ${pair%%=*}"
  done
}

# Prints each phase the release goes through until it reaches $2.
follow() { # release phase
  local rel=$1 want=$2 phase="" last=""
  for _ in $(seq 900); do
    phase=$(jsonpath "packitrelease/$rel" '{.status.phase}')
    if [[ "$phase" != "$last" ]]; then
      printf '    %s: %s  %s\n' "$rel" "${phase:-Pending}" "$(jsonpath "packitrelease/$rel" '{.status.message}')"
      last=$phase
    fi
    [[ "$phase" == "$want" ]] && return 0
    case "$phase" in BuildFailed | StagingFailed | RolledBack | Failed | Superseded | Cancelled)
      die "$rel ended $phase, expected $want" ;;
    esac
    sleep 0.2
  done
  die "$rel did not reach $want"
}

release() { # description -> prints the release name
  commit packit "$1"
  commit packit-service "$1"
  commit packit-service-fedmsg "$1"
  k -n "$NS" annotate packitdeployment packit-service --overwrite \
    "packit.dev/release-requested-at=$(date -u +%Y-%m-%dT%H:%M:%SZ)" >/dev/null
  local rel=""
  for _ in $(seq 300); do
    rel=$(jsonpath packitdeployment/packit-service '{.status.inFlight.release}')
    [[ -n "$rel" ]] && break
    sleep 0.2
  done
  [[ -n "$rel" ]] || die "no release started"
  echo "$rel"
}

say "release 1: build -> staging -> production window -> released"
R1=$(release "Add the first feature")
error_rates "$R1=0.01"
build "$R1"
follow "$R1" Released

say "release 2: goes to production, then its error rate goes up"
R2=$(release "Add a feature that breaks production")
build "$R2"
follow "$R2" Production
for _ in $(seq 300); do
  ready=$(k -n packit-prod get deployment packit-service -o 'jsonpath={.status.updatedReplicas}/{.status.readyReplicas}')
  [[ "$ready" == "2/2" ]] && break
  sleep 0.2
done
sim FAILURE "$R2 fails a third of its requests in production; its pods stay Running and Ready"
error_rates "$R1=0.01" "$R2=0.31"
k -n packit-prod get pods -o custom-columns='POD:.metadata.name,PHASE:.status.phase,READY:.status.containerStatuses[0].ready,RESTARTS:.status.containerStatuses[0].restartCount' | sed 's/^/    /'
follow "$R2" RolledBack

say "what the metric check measured"
message=$(jsonpath "packitrelease/$R2" '{.status.message}')
echo "    $R2: $message"
[[ "$message" == *"metric error-rate = 0.31 > max 0.05"* ]] ||
  die "$R2 was rolled back, but not by the error-rate check"
jsonpath "packitrelease/$R2" '{range .status.environments[?(@.name=="production")].checks[*]}    {.name}: {.result}, value {.value}, bounds {.bounds}, {.consecutiveFailures} failures in a row of {.measurements} measurements{"\n"}{end}'

say "events of the train"
k -n "$NS" get events --field-selector involvedObject.name=packit-service \
  --sort-by=.metadata.creationTimestamp -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message | tail -n 25

say "releases and what runs where"
k get packitdeployments,packitreleases -A
echo
kubectl packit status -n "$NS"
echo
k -n packit-prod get deployments,statefulsets -o custom-columns=NAME:.metadata.name,IMAGE:.spec.template.spec.containers[0].image

cat <<EOF

$R2 kept its pods Running and Ready, yet the error-rate
metric check failed it in production and the operator rolled production back
to $R1.

The cluster and the operator keep running. Look around:
  export KUBECONFIG=$KUBECONFIG PATH=$CARGO_TARGET_DIR/debug:\$PATH
  kubectl packit history -n $NS packit-service
  kubectl packit dashboard -n $NS        (then open http://127.0.0.1:8765/)
  kubectl get pkd,pkr -A
  kubectl -n $NS describe packitdeployment packit-service
  kubectl -n $NS get events --sort-by=.metadata.creationTimestamp
  less $DEMO_DIR/operator.log
  curl -s http://$METRICS/metrics | grep ^packit_
Stop everything with: make demo-down
EOF
