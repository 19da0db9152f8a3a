#!/usr/bin/env bash
# The main job on one machine: builds coding-job and the example image, starts `coding-job dev`
# (server + agent + embedded store), pushes and brings up the bundled examples/, prints status
# and where the API listens, and keeps running until Ctrl-C. On Ctrl-C it brings the examples
# down and stops the server.
#   environment: CODING_JOB_LISTEN (default 127.0.0.1:7400), CODING_JOB_DATA (default ./cj-data)
set -euo pipefail
cd "$(dirname "$0")/.."

docker info >/dev/null 2>&1 || { echo "error: the Docker engine is not reachable" >&2; exit 1; }
scripts/build-example-image.sh
cargo build --release --quiet
bin="$PWD/target/release/coding-job"
listen="${CODING_JOB_LISTEN:-127.0.0.1:7400}"
data="${CODING_JOB_DATA:-./cj-data}"
export CODING_JOB_SERVER="http://$listen"

# The `service:` a file declares.
service_of() {
  sed -n 's/^service: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$1" | head -n1
}

# Its own session, so Ctrl-C reaches this script first and the examples can be brought down.
log=$(mktemp)
RUST_LOG="${RUST_LOG:-warn}" setsid "$bin" dev --data-dir "$data" --listen "$listen" >"$log" &
server=$!
stop() {
  trap - INT TERM
  echo
  for file in examples/*.yaml; do
    service=$(service_of "$file")
    "$bin" down "$service" || true
  done
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -f "$log"
}
trap stop INT TERM

# Ready when this process (not some other server on the port) says where it listens.
until grep -q "API listening on" "$log" 2>/dev/null; do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "error: coding-job dev exited (is $listen already in use? set CODING_JOB_LISTEN)" >&2
    exit 1
  fi
  sleep 0.1
done
cat "$log"

"$bin" push examples/*.yaml
for file in examples/*.yaml; do
  service=$(service_of "$file")
  "$bin" up "$service"
done
echo
"$bin" status
cat <<INFO

coding-job is running on this machine.
  API:     $CODING_JOB_SERVER/v1/status   (JSON; every CLI command uses it)
  CLI:     CODING_JOB_SERVER=$CODING_JOB_SERVER $bin status | logs coding-email | history core-nginx
  example: curl http://127.0.0.1:18080/   (core-nginx serves there)
  data:    $data
Press Ctrl-C to bring the examples down and stop.
INFO
wait "$server"
