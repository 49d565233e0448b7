#!/usr/bin/env bash
# Builds the Argo Rollouts controller (rollouts-controller) from the Go module
# proxy into $PACKIT_CACHE/bin/argo-rollouts-$ARGO_ROLLOUTS_VERSION, with the
# CRDs of the same release beside it in crds/. A warm run takes a second.
# On failure it exits non-zero and its last line says why.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

V="${ARGO_ROLLOUTS_VERSION:?ARGO_ROLLOUTS_VERSION is not set in hack/versions.env}"
MOD=github.com/argoproj/argo-rollouts
OUT_DIR="$PACKIT_CACHE/bin/argo-rollouts-$V"

command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || die "argo-rollouts $V: go is not installed"

# Same Go settings as build-binaries.sh: static, toolchain-local builds that
# share its build cache (client-go and friends are already compiled there).
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -trimpath"
export GOCACHE="$PACKIT_CACHE/go/build-cache"
SRC_DIR="$PACKIT_CACHE/go/src"

# The binary is installed last, so its presence means the CRDs are there too.
is_built() {
  local out
  [[ -x "$OUT_DIR/rollouts-controller" ]] && compgen -G "$OUT_DIR/crds/*.yaml" >/dev/null || return 1
  out="$("$OUT_DIR/rollouts-controller" --version 2>&1)" || return 1
  [[ "$out" == "$V" || "$out" == "$V+"* ]]
}

# Checked before taking the lock so a warm run never waits for another build.
if is_built; then
  log "reusing $OUT_DIR"
  exit 0
fi
mkdir -p "$GOCACHE" "$SRC_DIR"
exec 9>"$PACKIT_CACHE/build.lock"
flock 9
is_built && { log "reusing $OUT_DIR"; exit 0; }

started=$SECONDS
log "building argo-rollouts $V (a cold build takes 10-20 minutes)"
# `go install $MOD/cmd/rollouts-controller@$V` refuses: its go.mod has replace
# directives. Build inside a copy of the module source instead, where they
# apply. The download also reports a too-old Go ("requires go >= ...").
info="$(go mod download -json "$MOD@$V" 2>&1)" || true
err="$(sed -n 's/^\s*"Error": "\(.*\)",*$/\1/p' <<<"$info")"
[[ -z "$err" ]] || die "argo-rollouts $V: $(sed 's/\\u003e/>/g; s/\\u003c/</g; s/\\n\\t*/ /g' <<<"$err")"
mod_dir="$(sed -n 's/^\s*"Dir": "\(.*\)",*$/\1/p' <<<"$info")"
[[ -d "$mod_dir" ]] || die "argo-rollouts $V: go mod download failed: $(head -n1 <<<"$info")"

# The module cache is read-only; go build wants to write nothing there, but a
# writable copy keeps later fixes (or a go.sum update) possible.
dir="$SRC_DIR/argo-rollouts-$V"
rm -rf "$dir"
cp -r "$mod_dir" "$dir"
chmod -R u+w "$dir"
mkdir -p "$dir/out"

# gitTag alone does not make GetVersion print the tag (it wants a commit too),
# so --version shows "$V+unknown", which is_built accepts.
pkg="$MOD/utils/version"
ldflags="-s -w -X $pkg.version=${V#v} -X $pkg.gitTag=$V -X $pkg.gitTreeState=clean"
if ! (cd "$dir" && go build -ldflags "$ldflags" -o out/rollouts-controller ./cmd/rollouts-controller) \
  >"$dir/build.log" 2>&1; then
  # The first error line: not a "go: downloading" progress line, not the
  # "# package" header of compile errors.
  why="$(sed -n '/^go: downloading /d; /^# /d; p; q' "$dir/build.log")"
  die "argo-rollouts $V did not build: $why (full log: $dir/build.log)"
fi

# Only the CRDs: manifests/crds also holds a kustomization.yaml, which
# `kubectl apply -f crds/` would reject.
rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR/crds"
cp "$dir"/manifests/crds/*-crd.yaml "$OUT_DIR/crds/"
mv -f "$dir/out/rollouts-controller" "$OUT_DIR/rollouts-controller"
is_built || die "argo-rollouts $V: the built rollouts-controller does not report $V"
log "built argo-rollouts $V in $((SECONDS - started))s into $OUT_DIR"
