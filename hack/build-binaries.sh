#!/usr/bin/env bash
# Builds the local control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd, kwok, kwokctl, helm) from Go modules into a versioned
# cache directory. Binaries that are already there with the pinned version are
# kept, so a warm run takes a second or two.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || die "go is not installed"

# Go settings for reproducible, toolchain-local, static builds. The build cache
# lives beside the binaries so a rebuild after a version bump is incremental.
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -trimpath"
export GOCACHE="$PACKIT_CACHE/go/build-cache"
SRC_DIR="$PACKIT_CACHE/go/src"
mkdir -p "$PACKIT_BIN_DIR" "$GOCACHE" "$SRC_DIR"

# Two builds at once would only fight over two cores and the same output.
exec 9>"$PACKIT_CACHE/build.lock"
flock 9

# has_version BINARY EXPECTED ARGS...: the binary exists and its version
# output (from ARGS) contains EXPECTED.
has_version() {
  local bin="$PACKIT_BIN_DIR/$1" want="$2" out
  shift 2
  [[ -x "$bin" ]] || return 1
  # Not piped into grep -q: an early exit of grep would fail the pipeline.
  out="$("$bin" "$@" 2>&1)" || return 1
  [[ "$out" == *"$want"* ]]
}

# quietly LOG CMD...: run CMD with its output in LOG, shown only on failure.
quietly() {
  local log="$1"
  shift
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    die "failed: $*"
  fi
}

# install_from DIR NAMES...: move freshly built binaries into the cache.
install_from() {
  local dir="$1" name
  shift
  for name in "$@"; do
    mv -f "$dir/$name" "$PACKIT_BIN_DIR/$name"
  done
}

build_kube() {
  local v="$K8S_VERSION" staging="v0.${K8S_VERSION#v1.}"
  local major minor dir out gomod
  major="$(cut -d. -f1 <<<"${v#v}")"
  minor="$(cut -d. -f2 <<<"${v#v}")"
  dir="$SRC_DIR/kubernetes-$v"
  out="$dir/out"
  mkdir -p "$dir" "$out"
  cd "$dir"
  # k8s.io/kubernetes cannot be `go install`ed: its go.mod points the staging
  # modules at ./staging. A wrapper module replaces each of them with its
  # published v0.x release instead.
  printf 'module packit.local/kube-build\n\ngo 1.24.0\n' >go.mod
  gomod="$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/^\s*"GoMod": "\(.*\)",*$/\1/p')"
  [[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@$v"
  {
    echo
    echo 'replace ('
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*$#\t\1 => \1 '"$staging"'#p' "$gomod"
    echo ')'
  } >>go.mod
  quietly "$dir/go-get.log" go get "k8s.io/kubernetes@$v" \
    "k8s.io/kubernetes/cmd/kube-apiserver@$v" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@$v" \
    "k8s.io/kubernetes/cmd/kube-scheduler@$v"
  # kwokctl reads `--version` to choose flags, so stamp what the Kubernetes
  # release build would.
  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  go build -ldflags "$ldflags" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler
  install_from "$out" kube-apiserver kube-controller-manager kube-scheduler
}

build_etcd() {
  local v="$ETCD_VERSION" dir
  dir="$SRC_DIR/etcd-$v"
  mkdir -p "$dir/out"
  cd "$dir"
  # Same reason as Kubernetes: the etcd server module has local replaces.
  printf 'module packit.local/etcd-build\n\ngo 1.24.0\n' >go.mod
  quietly "$dir/go-get.log" go get "go.etcd.io/etcd/server/v3@$v"
  go build -ldflags "-s -w" -o "$dir/out/etcd" go.etcd.io/etcd/server/v3
  install_from "$dir/out" etcd
}

build_kwok() {
  local v="$KWOK_VERSION" out="$SRC_DIR/kwok-$KWOK_VERSION/out" c=sigs.k8s.io/kwok/pkg/consts
  mkdir -p "$out"
  GOBIN="$out" go install \
    -ldflags "-s -w -X $c.Version=$v -X $c.KubeVersion=$K8S_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@$v" "sigs.k8s.io/kwok/cmd/kwokctl@$v"
  install_from "$out" kwok kwokctl
}

build_helm() {
  local v="$HELM_VERSION" out="$SRC_DIR/helm-$HELM_VERSION/out"
  mkdir -p "$out"
  GOBIN="$out" go install \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$v" \
    "helm.sh/helm/v3/cmd/helm@$v"
  install_from "$out" helm
}

started=$SECONDS
built=()
if ! { has_version kube-apiserver "Kubernetes $K8S_VERSION" --version &&
  has_version kube-controller-manager "Kubernetes $K8S_VERSION" --version &&
  has_version kube-scheduler "Kubernetes $K8S_VERSION" --version; }; then
  log "building Kubernetes $K8S_VERSION (a cold build takes a while)"
  build_kube
  built+=(kubernetes)
fi
if ! has_version etcd "etcd Version: ${ETCD_VERSION#v}" --version; then
  log "building etcd $ETCD_VERSION"
  build_etcd
  built+=(etcd)
fi
if ! { has_version kwok "$KWOK_VERSION" --version && has_version kwokctl "$KWOK_VERSION" --version; }; then
  log "building kwok $KWOK_VERSION"
  build_kwok
  built+=(kwok)
fi
if ! has_version helm "$HELM_VERSION" version --short; then
  log "building helm $HELM_VERSION"
  build_helm
  built+=(helm)
fi

# Whatever was built or reused, it must report the pinned version.
has_version kube-apiserver "Kubernetes $K8S_VERSION" --version || die "kube-apiserver is not $K8S_VERSION"
has_version kube-controller-manager "Kubernetes $K8S_VERSION" --version || die "kube-controller-manager is not $K8S_VERSION"
has_version kube-scheduler "Kubernetes $K8S_VERSION" --version || die "kube-scheduler is not $K8S_VERSION"
has_version etcd "etcd Version: ${ETCD_VERSION#v}" --version || die "etcd is not $ETCD_VERSION"
has_version kwok "$KWOK_VERSION" --version || die "kwok is not $KWOK_VERSION"
has_version kwokctl "$KWOK_VERSION" --version || die "kwokctl is not $KWOK_VERSION"
has_version helm "$HELM_VERSION" version --short || die "helm is not $HELM_VERSION"

if ((${#built[@]})); then
  log "built ${built[*]} in $((SECONDS - started))s into $PACKIT_BIN_DIR"
else
  log "reusing binaries in $PACKIT_BIN_DIR"
fi
