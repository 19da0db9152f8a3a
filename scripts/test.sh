#!/usr/bin/env bash
# Runs every test on a fresh Debian 12 machine: installs what the tests need, checks formatting,
# builds the test image and runs the whole suite against the local Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
[ -x /bin/busybox ] || need_packages+=(busybox-static)
command -v docker-registry >/dev/null 2>&1 || need_packages+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need_packages+=(apache2-utils)
# The test bed of several hosts (scripts/testbed.sh): namespaces and links, the FORWARD rule,
# nsenter and flock, pgrep.
command -v ip >/dev/null 2>&1 || need_packages+=(iproute2)
command -v iptables >/dev/null 2>&1 || need_packages+=(iptables)
{ command -v nsenter && command -v flock; } >/dev/null 2>&1 || need_packages+=(util-linux)
command -v pgrep >/dev/null 2>&1 || need_packages+=(procps)
if [ ${#need_packages[@]} -gt 0 ]; then
  echo "installing ${need_packages[*]} ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi
if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
docker info >/dev/null 2>&1 || { echo "error: the Docker engine is not reachable" >&2; exit 1; }

cargo fmt --all -- --check
scripts/build-example-image.sh
profile=default
[ "${CI:-}" = "true" ] && profile=ci
cargo nextest run --workspace --profile "$profile"
