#!/usr/bin/env bash
# The main job: builds coding-job and the example image, makes two more hosts on this machine
# (network namespaces, each with its own Docker engine: scripts/testbed.sh), starts
# `coding-job dev` (server + this machine's agent + embedded store + the router) where those
# hosts reach it, joins an agent on each as host-1 and host-2, pushes and brings up the bundled
# examples/ in production, copies production into a `staging` environment (its own variables,
# ports and routes; core-nginx moved from host-1 to host-2), imports examples/compose (a Compose
# file) as the service `shop` and brings it up, prints the status, the hosts and the routed
# addresses, and keeps running until Ctrl-C. On Ctrl-C it destroys staging, brings the
# examples down, stops the agents and the server, and removes the two hosts.
#
#   environment: CODING_JOB_DEMO_HOSTS (default 2; 0: this machine only, API on loopback, no
#                staging), CODING_JOB_PORT (default 7400), CODING_JOB_ROUTER_PORT (default 8080),
#                CODING_JOB_DATA (default ./cj-data)
set -euo pipefail
cd "$(dirname "$0")/.."

hosts="${CODING_JOB_DEMO_HOSTS:-2}"
port="${CODING_JOB_PORT:-7400}"
router_port="${CODING_JOB_ROUTER_PORT:-8080}"
domain=cj.localhost
data="${CODING_JOB_DATA:-./cj-data}"
image=cj-example/busybox:1

. scripts/packages.sh
want_build
[ "$hosts" -gt 0 ] && want_testbed
install_wanted
docker info >/dev/null 2>&1 || { echo "error: the Docker engine is not reachable" >&2; exit 1; }
scripts/build-example-image.sh "$image"
# The first build takes minutes (about 7 on 2 cores, for the optimised single binary): say so,
# and let cargo show its progress rather than sit silent.
if [ ! -x target/release/coding-job ]; then
  echo "building coding-job (release; the first build takes several minutes) ..."
fi
cargo build --release
bin="$PWD/target/release/coding-job"
mkdir -p "$data"
data=$(cd "$data" && pwd)

# The `service:` a file declares.
service_of() {
  sed -n 's/^service: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$1" | head -n1
}

server=""
agents=()
bed_lines=""
stop() {
  # A second Ctrl-C must not cut the cleanup short and leave containers and hosts behind.
  trap '' INT TERM
  trap - EXIT
  echo
  echo "stopping: bringing everything down (a second Ctrl-C waits for it)"
  if [ -n "$server" ]; then
    [ "$hosts" -gt 0 ] && { "$bin" env destroy staging >/dev/null 2>&1 || true; }
    "$bin" down shop >/dev/null 2>&1 || true
    for file in examples/*.yaml; do
      "$bin" down "$(service_of "$file")" || true
    done
  fi
  for agent in "${agents[@]}"; do kill "$agent" 2>/dev/null || true; done
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if [ -n "$bed_lines" ]; then
    scripts/testbed.sh down --name cjdemo >/dev/null || true
  fi
}
trap stop INT TERM EXIT

# The hosts, and the address where they reach this machine's server.
listen="127.0.0.1:$port"
if [ "$hosts" -gt 0 ]; then
  echo "making $hosts hosts (network namespaces with their own Docker engines) ..."
  scripts/testbed.sh down --name cjdemo >/dev/null 2>&1 || true
  bed_lines=$(scripts/testbed.sh up --name cjdemo --hosts "$hosts" --image "$image" --owner $$)
  gateway=$(awk '$1 == "gateway" {print $2}' <<<"$bed_lines")
  listen="$gateway:$port"
fi
export CODING_JOB_SERVER="http://$listen"

# Its own session, so Ctrl-C reaches this script first and the examples can be brought down.
log="$data/dev.log"
RUST_LOG="${RUST_LOG:-warn}" setsid "$bin" dev --data-dir "$data" --listen "$listen" \
  --router-listen "127.0.0.1:$router_port" --domain "$domain" --public-read >"$log" 2>&1 &
server=$!
# Ready when this process (not some other server on the port) says where it listens.
until grep -q "  try:" "$log" 2>/dev/null; do
  if ! kill -0 "$server" 2>/dev/null; then
    cat "$log" >&2
    echo "error: coding-job dev exited (is $listen already in use? set CODING_JOB_PORT)" >&2
    exit 1
  fi
  sleep 0.1
done
grep -v "^  try:" "$log" | head -n 6

if [ "$hosts" -gt 0 ]; then
  # Off loopback the API wants tokens: the admin's for this script, an agent token for agents.
  export CODING_JOB_TOKEN="$(cat "$data/admin.token")"
  "$bin" token revoke demo-agents >/dev/null 2>&1 || true
  (umask 077; "$bin" token create demo-agents --role agent --json |
    sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p' >"$data/agent.token")
  while read -r kind name address docker_host netns _; do
    [ "$kind" = host ] || continue
    # Their own sessions too: a Ctrl-C must not stop them before the examples are down.
    setsid nsenter --net="$netns" env DOCKER_HOST="$docker_host" RUST_LOG=warn \
      "$bin" agent --server "$CODING_JOB_SERVER" --name "$name" \
      --token-file "$data/agent.token" >>"$data/agent-$name.log" 2>&1 &
    agents+=($!)
    echo "  $name: $address, agent joining (log: $data/agent-$name.log)"
  done <<<"$bed_lines"
  deadline=$((SECONDS + 30))
  until [ "$("$bin" hosts | grep -c ' ready ')" -gt "$hosts" ]; do
    [ $SECONDS -lt $deadline ] || { echo "error: the agents did not join" >&2; exit 1; }
    sleep 0.2
  done
fi

echo
# examples/hello.yaml greets with this environment variable.
"$bin" env vars production --set greeting="hello" >/dev/null
"$bin" push examples/*.yaml
for file in examples/*.yaml; do
  "$bin" up "$(service_of "$file")"
done
if [ "$hosts" -gt 0 ]; then
  echo
  echo "copying production into staging (core-nginx moves from host-1 to host-2) ..."
  "$bin" env create staging --from production --map-hosts host-1=host-2 --set greeting="hi"
  "$bin" env up staging
fi
echo
echo "importing a Compose file (examples/compose/docker-compose.yml) into the service shop ..."
"$bin" import compose examples/compose/docker-compose.yml -o "$data/shop"
"$bin" env vars production --set GREETING="welcome to the shop" >/dev/null
"$bin" push "$data/shop/shop.yaml"
"$bin" up shop
echo
"$bin" status
echo
"$bin" env list
echo
"$bin" hosts
nginx_address=127.0.0.1
if [ "$hosts" -gt 0 ]; then
  nginx_address=$(awk '$1 == "host" && $2 == "host-1" {print $3}' <<<"$bed_lines")
fi
token_hint=""
login_hint=""
if [ -n "${CODING_JOB_TOKEN:-}" ]; then
  token_hint=" CODING_JOB_TOKEN=\$(cat $data/admin.token)"
  login_hint=": $data/admin.token"
fi
router="http://127.0.0.1:$router_port"
staging_line=""
[ "$hosts" -gt 0 ] && staging_line="
           curl -H 'Host: hello.staging.$domain' $router/   (staging's copy, its own variables)"
cat <<INFO

coding-job is running: a server with this machine's agent, and $hosts more hosts.
  web UI:  $CODING_JOB_SERVER/   (every environment, task, log, history, deployment and host,
           live; anyone may look (--public-read); log in with a token to promote or abort$login_hint)
  events:  $bin events -f   (every change of state as it happens)
  API:     $CODING_JOB_SERVER/v1/status   (JSON; every CLI command uses it)
  CLI:     CODING_JOB_SERVER=$CODING_JOB_SERVER$token_hint $bin status | hosts | env list | logs coding-email
  router:  curl -H 'Host: hello.$domain' $router/   (production's hello, balanced over its 2 tasks)$staging_line
           curl -H 'Host: web.$domain' $router/   (the shop, imported from a Compose file)
           curl -H 'Host: $domain' $router/   (every route, with its counters)
  example: curl http://$nginx_address:18080/   (core-nginx serves there, on host-1's engine)
  data:    $data
Press Ctrl-C to bring the examples down and stop.
INFO
wait "$server"
