#!/usr/bin/env bash
# Runs every test on a fresh Debian 12 machine: installs what the tests need, checks formatting,
# builds the test image and runs the whole suite against the local Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/packages.sh
want_build
[ -x /bin/busybox ] || wanted_packages+=(busybox-static)
want docker-registry docker-registry
want htpasswd apache2-utils
# The browser tests (tests/ui_browser.rs): headless Chromium through chromedriver.
want chromium chromium
want chromedriver chromium-driver
want prometheus prometheus
# The etcd store's tests (crates/store/tests/conformance_etcd.rs, etcd_store.rs) run a real etcd.
want etcd etcd-server
# The router's HTTPS (tests/router_tls.rs) gets certificates from a real ACME server: pebble,
# with pebble-challtestsrv (the same package) as its DNS.
want pebble pebble
# Volume snapshots (tests/volume_snapshots.rs) are unpacked with tar --zstd.
want zstd zstd
want_testbed
install_wanted
if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
# The S3 snapshot target (crates/server/src/snapshots/target.rs) is tested against moto_server,
# an S3-compatible server from PyPI.
if ! command -v moto_server >/dev/null 2>&1; then
  python3 -m pip install --quiet "moto[server]==5.2.1"
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
# tests/openapi_contract.rs checks the OpenAPI document against a live server with schemathesis.
if ! command -v schemathesis >/dev/null 2>&1; then
  python3 -m pip install --quiet "schemathesis==4.32.5"
  # A pyenv Python puts the new command on the PATH through its shims.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
docker info >/dev/null 2>&1 || { echo "error: the Docker engine is not reachable" >&2; exit 1; }

cargo fmt --all -- --check
scripts/build-example-image.sh
profile=default
[ "${CI:-}" = "true" ] && profile=ci
cargo nextest run --workspace --profile "$profile"
