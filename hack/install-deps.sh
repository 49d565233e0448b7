#!/usr/bin/env bash
# Installs the Debian packages the tests need, only those that are missing.
# Go, Rust and kubectl come with the machine; their absence is an error.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v go >/dev/null || [[ -x /usr/local/go/bin/go ]] || die "Go is required (see README)"
command -v cargo >/dev/null || die "Rust (cargo) is required (see README)"
command -v kubectl >/dev/null || die "kubectl is required (see README)"

# command -> Debian package
declare -A wanted=([docker-registry]=docker-registry [git]=git [make]=make [curl]=curl [flock]=util-linux
  [prometheus]=prometheus [python3]=python3
  # The dashboard's browser tests drive a headless Chromium over WebDriver.
  [chromium]=chromium [chromedriver]=chromium-driver)
missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null || missing+=("${wanted[$cmd]}")
done
# The benchmark reads time and peak memory from GNU time (`time` alone is
# the shell's keyword).
[[ -x /usr/bin/time ]] || missing+=(time)
((${#missing[@]})) || exit 0

if [[ "$(id -u)" != 0 ]]; then
  die "missing packages: ${missing[*]} (install them with apt-get as root)"
fi
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
