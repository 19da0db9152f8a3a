#!/usr/bin/env bash
# A test bed of several real hosts on this one machine, for end-to-end tests of many hosts (and
# for humans and the demo). A host is a Linux network namespace with its own address on a private
# bridge and its own dockerd (own data-root, exec-root, pidfile and socket); an agent run inside
# the namespace against that engine is a host of its own. Recipe: shared/STACK.md, "Several hosts
# on one machine". Needs root, iproute2, iptables, util-linux (nsenter, flock), procps, runc.
#
#   scripts/testbed.sh up --name NAME --hosts N [--image IMAGE]... [--owner PID]
#       Creates the bridge and N hosts (engines start concurrently), waits until every dockerd
#       answers (30 s), loads each IMAGE from the main engine into every host engine, and prints,
#       on stdout, one line for the bed and one per host, fields separated by one space:
#         gateway GATEWAY_ADDRESS SUBNET BRIDGE
#         host HOST ADDRESS DOCKER_HOST NETNS VETH
#       e.g.
#         gateway 10.231.7.1 10.231.7.0/24 cjtb-7
#         host host-1 10.231.7.11 unix:///run/cj-testbed/NAME/host-1/docker.sock /run/netns/cjtb-NAME-1 cjtb-7-h1
#       GATEWAY_ADDRESS is the root namespace's address on the bridge (a server listening there
#       is reachable from every host); VETH is the host's root-side link (what `cut` takes
#       down). Progress goes to stderr. The bed belongs to --owner (default: the caller, $PPID):
#       once that process is gone, `sweep` removes the bed (--owner 0: never, only `down`). On
#       failure `up` removes what it made.
#   scripts/testbed.sh show --name NAME       prints the same lines again
#   scripts/testbed.sh down --name NAME       removes everything of the bed; idempotent, also on
#                                             a half-made or already removed bed
#   scripts/testbed.sh cut --name NAME --host host-2    partition: the host's veth link down
#   scripts/testbed.sh heal --name NAME --host host-2   and up again
#   scripts/testbed.sh exec --name NAME --host host-2 -- CMD...
#       runs CMD in the host's network namespace (nsenter --net; `ip netns exec` would remount
#       /sys, which breaks dockerd), with DOCKER_HOST set to the host's engine
#   scripts/testbed.sh sweep                  removes every bed whose owner process is gone
#                                             (`up` also leaves a watcher that removes its bed
#                                             within a second or two of the owner's end)
#   scripts/testbed.sh list                   NAME SUBNET OWNER_PID alive|dead, one bed a line
#
# Names: NAME is 1-24 of [a-z0-9-]; hosts are host-1 .. host-N (N <= 50). Every bed gets its own
# /24 under 10.231.0.0/16 (allocated under a lock, round robin, so parallel test processes never
# share one and a freed one is not reused at once); link names derive from that number, so they
# stay within the kernel's 15 characters: bridge cjtb-X, host veth cjtb-X-hN.
# State: /run/cj-testbed/NAME (sockets, exec-roots, pidfiles, logs, owner, subnet);
# engines' data-roots on the real disk: /var/lib/cj-testbed/NAME/host-N.
set -euo pipefail

RUN_ROOT=/run/cj-testbed
DATA_ROOT=/var/lib/cj-testbed
LOCK="$RUN_ROOT/.lock"
NEXT="$RUN_ROOT/.next-subnet"
READY_TIMEOUT=${CJ_TESTBED_READY_TIMEOUT:-30}
LOCK_TIMEOUT=120
MAX_HOSTS=50

log() { echo "testbed: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

check_name() {
  [[ "$1" =~ ^[a-z0-9][a-z0-9-]{0,23}$ ]] || die "bad test bed name '$1' (1-24 of a-z 0-9 -)"
}

# The host's number from "host-N" or "N".
host_number() {
  local n=${1#host-}
  [[ "$n" =~ ^[1-9][0-9]*$ ]] && [ "$n" -le "$MAX_HOSTS" ] || die "bad host '$1' (host-1 .. host-$MAX_HOSTS)"
  echo "$n"
}

# Paths and names of bed $name (set by bed_vars) and of its host $n.
bed_vars() {
  name=$1
  state="$RUN_ROOT/$name"
  data="$DATA_ROOT/$name"
  subnet=""
  [ -f "$state/subnet" ] && subnet=$(cat "$state/subnet")
  bridge=""
  [ -n "$subnet" ] && bridge="cjtb-$subnet"
  return 0
}
host_dir() { echo "$state/host-$1"; }
host_data() { echo "$data/host-$1"; }
host_netns() { echo "cjtb-$name-$1"; }
host_veth() { echo "cjtb-$subnet-h$1"; }
host_peer() { echo "cjtb-$subnet-p$1"; }
host_address() { echo "10.231.$subnet.$((10 + $1))"; }
host_sock() { echo "$(host_dir "$1")/docker.sock"; }

# A process's start time (clock ticks since boot): with the pid it names one process for good.
# Fails for a process that is gone, zombies included (this machine's init may never reap them).
start_time() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat:0:1}" != Z ] || return 1
  echo "$stat" | cut -d' ' -f20
}

owner_alive() {
  local pid started
  [ -f "$1/owner" ] || return 1
  read -r pid started <"$1/owner" || return 1
  [ "$pid" = 0 ] && return 0
  [ "$(start_time "$pid" 2>/dev/null)" = "$started" ]
}

# The host numbers a bed has or may have left things of: from its state, its data and its
# namespaces.
bed_hosts() {
  {
    local dir
    for dir in "$state"/host-* "$data"/host-*; do
      [ -e "$dir" ] && echo "${dir##*/host-}"
    done
    ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^cjtb-$name-\([0-9]\+\)$/\1/p"
    [ -f "$state/hosts" ] && seq 1 "$(cat "$state/hosts")"
  } | grep -E '^[0-9]+$' | sort -un || true
}

# Pids of the bed's engine processes: dockerd, its containerd, shims and fuse-overlayfs mounts,
# known by their command lines naming the bed's directories.
engine_pids() {
  local pid
  for pid in $(pgrep -f -- "($RUN_ROOT|$DATA_ROOT)/$name/" || true); do
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
      dockerd | containerd | containerd-shim* | fuse-overlayfs | runc | docker-init | docker-proxy) echo "$pid" ;;
    esac
  done
}

# Sends $1 to the pids that follow and waits up to $2 seconds until they are gone; returns 1 if
# some are still there.
signal_and_wait() {
  local signal=$1 timeout=$2 pid deadline
  shift 2
  [ $# -gt 0 ] || return 0
  kill "-$signal" "$@" 2>/dev/null || true
  deadline=$((SECONDS + timeout))
  while :; do
    local alive=()
    for pid in "$@"; do
      # A zombie is gone for our purposes (its parent will reap it).
      if [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
        alive+=("$pid")
      fi
    done
    [ ${#alive[@]} -eq 0 ] && return 0
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.1
  done
}

ppid_of() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 1; return; }
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  echo "$2"
}

# Processes in host $1's namespace that are not the engine or its containers (agents started by
# tests, `exec` commands left over).
foreign_pids_in_netns() {
  local netns engine pid p i below_engine
  netns=$(host_netns "$1")
  [ -e "/run/netns/$netns" ] || return 0
  engine=" $(engine_pids | tr '\n' ' ') "
  for pid in $(ip netns pids "$netns" 2>/dev/null || true); do
    # Walk up the parents: below an engine process it is the engine's or a container's.
    p=$pid
    below_engine=0
    for ((i = 0; i < 64 && p > 1; i++)); do
      if [[ "$engine" == *" $p "* ]]; then
        below_engine=1
        break
      fi
      p=$(ppid_of "$p")
    done
    [ $below_engine = 1 ] || echo "$pid"
  done
}

mounts_under() {
  # Deepest first, so nested mounts go before what holds them.
  awk -v a="$1/" '{ if (index($2 "/", a) == 1) print $2 }' /proc/mounts | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-
}

unmount_under() {
  local dir=$1 mountpoint
  for mountpoint in $(mounts_under "$dir"); do
    umount "$mountpoint" 2>/dev/null || umount -l "$mountpoint" 2>/dev/null || log "warning: cannot unmount $mountpoint"
  done
}

forward_rule() { echo "FORWARD -i $bridge -o $bridge -m comment --comment cj-testbed:$name -j ACCEPT"; }
# The bed's FORWARD rules as `iptables -S` prints them (found by their comment).
# iptables quotes the comment, as in --comment "cj-testbed:NAME"; the quotes are dropped here.
forward_rules_present() { iptables -S FORWARD 2>/dev/null | tr -d '"' | grep -- "--comment cj-testbed:$name " || true; }

# Removes everything of bed $1 that exists. Returns 1 (keeping the state directory, so a later
# down or sweep can finish) if something could not be removed.
teardown() {
  set +e # best effort: every step runs, the check at the end decides
  bed_vars "$1"
  local hosts n pids=() pid
  hosts=$(bed_hosts)

  # 1. Processes that are not the engine's, e.g. agents: they would recreate containers.
  for n in $hosts; do
    pids=($(foreign_pids_in_netns "$n"))
    signal_and_wait TERM 3 "${pids[@]}" || signal_and_wait KILL 3 "${pids[@]}" || true
  done

  # 2. Containers, while each engine still answers; then the engines, all at once.
  for n in $hosts; do
    local sock
    sock=$(host_sock "$n")
    [ -S "$sock" ] || continue
    (
      ids=$(timeout 10 docker -H "unix://$sock" ps -aq 2>/dev/null) || exit 0
      [ -z "$ids" ] || timeout 20 docker -H "unix://$sock" rm -f -v $ids >/dev/null 2>&1 || true
    ) &
  done
  wait
  pids=()
  for n in $hosts; do
    local pidfile
    pidfile="$(host_dir "$n")/docker.pid"
    [ -f "$pidfile" ] && pid=$(cat "$pidfile") && [ -n "$pid" ] &&
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] && pids+=("$pid")
  done
  for pid in $(engine_pids); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] && pids+=("$pid")
  done
  if [ ${#pids[@]} -gt 0 ]; then
    signal_and_wait TERM 20 $(printf '%s\n' "${pids[@]}" | sort -u) ||
      { log "dockerd of $name did not stop in 20 s; killing it"; signal_and_wait KILL 5 "${pids[@]}" || true; }
  fi

  # 3. What a killed engine leaves: containers (runc state), containerd, shims, mounts' helpers.
  for n in $hosts; do
    local runc_root
    runc_root="$(host_dir "$n")/exec/runtime-runc/moby"
    [ -d "$runc_root" ] || continue
    for id in $(runc --root "$runc_root" list -q 2>/dev/null || true); do
      timeout 10 runc --root "$runc_root" delete --force "$id" >/dev/null 2>&1 || true
    done
  done
  pids=($(engine_pids))
  signal_and_wait TERM 5 "${pids[@]}" || signal_and_wait KILL 5 "${pids[@]}" || true
  for n in $hosts; do
    pids=($(ip netns pids "$(host_netns "$n")" 2>/dev/null || true))
    signal_and_wait KILL 5 "${pids[@]}" || true
  done

  # 4. Mounts (the exec-root's netns/default, container layers), links, namespaces, the rule.
  unmount_under "$state"
  unmount_under "$data"
  for n in $hosts; do
    if [ -n "$subnet" ]; then
      ip link del "$(host_veth "$n")" 2>/dev/null || true
      ip link del "$(host_peer "$n")" 2>/dev/null || true
    fi
    [ -e "/run/netns/$(host_netns "$n")" ] && { ip netns del "$(host_netns "$n")" 2>/dev/null || true; }
  done
  [ -n "$bridge" ] && ip link del "$bridge" 2>/dev/null
  local rule
  forward_rules_present | while read -r rule; do
    # shellcheck disable=SC2086
    iptables -D ${rule#-A } 2>/dev/null
  done

  # 5. Check, then forget the bed.
  local left=()
  [ -n "$(engine_pids)" ] && left+=("processes: $(engine_pids | tr '\n' ' ')")
  [ -n "$(mounts_under "$state")$(mounts_under "$data")" ] && left+=("mounts: $(mounts_under "$state") $(mounts_under "$data")")
  ip netns list 2>/dev/null | grep -q "^cjtb-$name-[0-9]" && left+=("namespaces")
  if [ -n "$bridge" ]; then
    ip -o link show 2>/dev/null | grep -qE "^[0-9]+: $bridge(-[hp][0-9]+)?[@:]" && left+=("links of $bridge")
  fi
  [ -n "$(forward_rules_present)" ] && left+=("iptables rule")
  if [ ${#left[@]} -gt 0 ]; then
    log "warning: test bed $name not fully removed (${left[*]}); run down again"
    return 1
  fi
  rm -rf --one-file-system "$data"
  rm -rf --one-file-system "$state"
  return 0
}

# Takes the global lock on fd 9 (allocation, sweep).
global_lock() {
  mkdir -p "$RUN_ROOT"
  exec 9>>"$LOCK"
  flock -w "$LOCK_TIMEOUT" 9 || die "timed out waiting for $LOCK"
}
global_unlock() { exec 9>&-; }

# Takes bed $1's lock on fd 8 (its state directory), so two downs, or up and sweep, never work
# on one bed at once. Returns 1 if the bed has no state directory.
bed_lock() {
  [ -d "$RUN_ROOT/$1" ] || return 1
  exec 8<"$RUN_ROOT/$1" || return 1
  flock -w "$LOCK_TIMEOUT" 8 || die "timed out waiting for the lock of test bed $1"
}
bed_unlock() { exec 8<&-; }

cmd_sweep() {
  global_lock
  sweep_locked
  global_unlock
}

sweep_locked() {
  local dir bed
  for dir in "$RUN_ROOT"/*/; do
    [ -d "$dir" ] || continue
    bed=$(basename "$dir")
    owner_alive "$dir" && continue
    # Busy (up or down in progress, which holds the bed lock): leave it to them.
    exec 8<"$dir" 2>/dev/null || continue
    if flock -n 8; then
      owner_alive "$dir" || {
        log "sweeping test bed $bed (owner $(cat "$dir/owner" 2>/dev/null | cut -d' ' -f1 || echo '?') is gone)"
        (teardown "$bed") || true
      }
    fi
    exec 8<&-
  done
  # Data of beds whose state is gone (e.g. /run was cleared by a reboot).
  for dir in "$DATA_ROOT"/*/; do
    [ -d "$dir" ] || continue
    bed=$(basename "$dir")
    [ -d "$RUN_ROOT/$bed" ] && continue
    if [ -z "$(mounts_under "${dir%/}")" ]; then
      log "removing leftover data of test bed $bed"
      rm -rf --one-file-system "${dir%/}"
    fi
  done
}

# Reserves a /24 for bed $name and creates its state directory, under the global lock.
allocate() {
  local owner=$1 owner_started used start x candidate=""
  owner_started=0
  [ "$owner" = 0 ] || owner_started=$(start_time "$owner") || die "owner process $owner does not exist"
  global_lock
  sweep_locked
  [ -e "$state" ] && die "test bed $name exists (owner $(cut -d' ' -f1 "$state/owner" 2>/dev/null || echo '?'))"
  used=" "
  for x in "$RUN_ROOT"/*/subnet; do
    [ -f "$x" ] && used+="$(cat "$x") "
  done
  start=$(cat "$NEXT" 2>/dev/null || echo 1)
  [[ "$start" =~ ^[0-9]+$ ]] && [ "$start" -ge 1 ] && [ "$start" -le 254 ] || start=1
  for ((i = 0; i < 254; i++)); do
    x=$(((start - 1 + i) % 254 + 1))
    [[ "$used" == *" $x "* ]] && continue
    # Not used by anything else on the machine either.
    ip -4 -o addr show 2>/dev/null | grep -q " 10\.231\.$x\." && continue
    ip -4 route show 2>/dev/null | grep -q "^10\.231\.$x\." && continue
    ip link show "cjtb-$x" >/dev/null 2>&1 && continue
    candidate=$x
    break
  done
  [ -n "$candidate" ] || die "no free /24 left under 10.231.0.0/16"
  mkdir -p "$state"
  echo "$owner $owner_started" >"$state/owner"
  echo "$candidate" >"$state/subnet"
  echo $((candidate % 254 + 1)) >"$NEXT"
  bed_lock "$name"
  global_unlock
  subnet=$candidate
  bridge="cjtb-$subnet"
}

print_lines() {
  echo "gateway 10.231.$subnet.1 10.231.$subnet.0/24 $bridge"
  local n
  for ((n = 1; n <= $(cat "$state/hosts"); n++)); do
    echo "host host-$n $(host_address "$n") unix://$(host_sock "$n") /run/netns/$(host_netns "$n") $(host_veth "$n")"
  done
}

cmd_up() {
  local hosts="" owner=$PPID images=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --name) name=$2; shift 2 ;;
      --hosts) hosts=$2; shift 2 ;;
      --image) images+=("$2"); shift 2 ;;
      --owner) owner=$2; shift 2 ;;
      *) usage ;;
    esac
  done
  [ -n "${name:-}" ] && [ -n "$hosts" ] || usage
  check_name "$name"
  [[ "$hosts" =~ ^[1-9][0-9]*$ ]] && [ "$hosts" -le $MAX_HOSTS ] || die "--hosts must be 1..$MAX_HOSTS"
  [[ "$owner" =~ ^[0-9]+$ ]] || die "bad --owner '$owner'"
  bed_vars "$name"
  local image
  for image in "${images[@]}"; do
    docker image inspect "$image" >/dev/null 2>&1 || die "image $image is not in the main engine"
  done
  local driver
  driver=$(docker info -f '{{.Driver}}') || die "the main Docker engine is not reachable"

  allocate "$owner"
  trap 'status=$?; trap - EXIT INT TERM; if [ $status -ne 0 ]; then log "up of $name failed; removing it"; (teardown "$name") || true; fi; exit $status' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  echo "$hosts" >"$state/hosts"
  local started=$SECONDS
  log "creating test bed $name: $hosts hosts on 10.231.$subnet.0/24 (bridge $bridge)"

  # Network: the bridge with the gateway address, a veth pair and a namespace per host.
  ip link add "$bridge" type bridge
  ip addr add "10.231.$subnet.1/24" dev "$bridge"
  ip link set "$bridge" up
  iptables -I $(forward_rule)
  local n netns
  for ((n = 1; n <= hosts; n++)); do
    netns=$(host_netns "$n")
    ip netns add "$netns"
    ip link add "$(host_veth "$n")" type veth peer name "$(host_peer "$n")"
    ip link set "$(host_veth "$n")" master "$bridge" up
    ip link set "$(host_peer "$n")" netns "$netns"
    ip -n "$netns" link set "$(host_peer "$n")" name eth0
    ip -n "$netns" addr add "$(host_address "$n")/24" dev eth0
    ip -n "$netns" link set lo up
    ip -n "$netns" link set eth0 up
    ip -n "$netns" route add default via "10.231.$subnet.1"
  done

  # Engines, all started at once. fds 8 and 9 (locks) are closed for them, and their output goes
  # to a log, so no caller waits on a pipe they hold. A registry a test runs in the root namespace
  # is reached at the gateway, off loopback, so plain HTTP is allowed to the bed's own /24 only.
  local dir
  for ((n = 1; n <= hosts; n++)); do
    dir=$(host_dir "$n")
    mkdir -p "$dir/exec" "$(host_data "$n")"
    echo '{}' >"$dir/daemon.json"
    nsenter --net="/run/netns/$(host_netns "$n")" setsid dockerd \
      --config-file "$dir/daemon.json" \
      --data-root "$(host_data "$n")" \
      --exec-root "$dir/exec" \
      --pidfile "$dir/docker.pid" \
      -H "unix://$(host_sock "$n")" \
      --bridge=none --iptables=false --ip6tables=false \
      --insecure-registry "10.231.$subnet.0/24" \
      --storage-driver "$driver" \
      </dev/null >"$dir/dockerd.log" 2>&1 8<&- 9<&- &
    echo $! >"$dir/launcher.pid"
  done
  local deadline=$((SECONDS + READY_TIMEOUT)) pending
  while :; do
    pending=()
    for ((n = 1; n <= hosts; n++)); do
      dir=$(host_dir "$n")
      [ -f "$dir/ready" ] && continue
      if timeout 5 docker -H "unix://$(host_sock "$n")" version -f '{{.Server.Version}}' >/dev/null 2>&1; then
        touch "$dir/ready"
        continue
      fi
      if ! kill -0 "$(cat "$dir/launcher.pid")" 2>/dev/null &&
        ! kill -0 "$(cat "$dir/docker.pid" 2>/dev/null || echo none)" 2>/dev/null; then
        tail -n 20 "$dir/dockerd.log" >&2 || true
        die "dockerd of host-$n exited (log: $dir/dockerd.log)"
      fi
      pending+=("host-$n")
    done
    [ ${#pending[@]} -eq 0 ] && break
    if [ $SECONDS -ge $deadline ]; then
      for host in "${pending[@]}"; do tail -n 20 "$state/$host/dockerd.log" >&2 || true; done
      die "dockerd of ${pending[*]} did not answer within ${READY_TIMEOUT} s"
    fi
    sleep 0.1
  done
  log "engines answer after $((SECONDS - started)) s"

  # Images: saved once, loaded into every engine at once.
  if [ ${#images[@]} -gt 0 ]; then
    local archive="$data/images.tar" loads=()
    docker save "${images[@]}" >"$archive"
    for ((n = 1; n <= hosts; n++)); do
      timeout 60 docker -H "unix://$(host_sock "$n")" load -q -i "$archive" >/dev/null 8<&- 9<&- &
      loads+=($!)
    done
    for pid in "${loads[@]}"; do wait "$pid" || die "loading ${images[*]} into a host engine failed"; done
    rm -f "$archive"
  fi

  # A watcher removes the bed as soon as its owner is gone (a crashed or killed test run);
  # `sweep` is the fallback for when the watcher is gone too.
  if [ "$owner" != 0 ]; then
    setsid bash "$(readlink -f "$0")" watch --name "$name" </dev/null >>"$state/watch.log" 2>&1 8<&- 9<&- &
  fi
  log "test bed $name is up after $((SECONDS - started)) s"
  print_lines
  bed_unlock
  trap - EXIT INT TERM
}

# Reads --name and, if asked, --host; sets name, n.
parse_bed_args() {
  local need_host=$1 host=""
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --name) name=$2; shift 2 ;;
      --host) host=$2; shift 2 ;;
      --) shift; rest=("$@"); break ;;
      *) usage ;;
    esac
  done
  [ -n "${name:-}" ] || usage
  check_name "$name"
  bed_vars "$name"
  if [ "$need_host" = 1 ]; then
    [ -n "$host" ] || usage
    n=$(host_number "$host")
    [ -n "$subnet" ] && [ -e "/run/netns/$(host_netns "$n")" ] || die "test bed $name has no host-$n"
  fi
}

cmd_down() {
  parse_bed_args 0 "$@"
  # Without a state directory there is no lock to take; whatever is left under the name goes.
  bed_lock "$name" || true
  teardown "$name"
}

# Internal (started by up): waits until the bed's owner is gone, then removes the bed.
cmd_watch() {
  parse_bed_args 0 "$@"
  while [ -d "$state" ] && owner_alive "$state"; do
    sleep 1
  done
  exec 8<"$state" 2>/dev/null || exit 0
  flock -w "$LOCK_TIMEOUT" 8 || die "timed out waiting for the lock of test bed $name"
  # A down or sweep may have been first.
  if [ -d "$state" ] && ! owner_alive "$state"; then
    log "owner of test bed $name is gone; removing it"
    teardown "$name"
  fi
}

rest=()
command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  show)
    parse_bed_args 0 "$@"
    [ -f "$state/hosts" ] && [ -n "$subnet" ] || die "no test bed $name"
    print_lines
    ;;
  cut | heal)
    parse_bed_args 1 "$@"
    ip link set "$(host_veth "$n")" "$([ "$command" = cut ] && echo down || echo up)"
    ;;
  exec)
    parse_bed_args 1 "$@"
    [ ${#rest[@]} -gt 0 ] || usage
    DOCKER_HOST="unix://$(host_sock "$n")" exec nsenter --net="/run/netns/$(host_netns "$n")" -- "${rest[@]}"
    ;;
  sweep) cmd_sweep ;;
  watch) cmd_watch "$@" ;;
  list)
    for dir in "$RUN_ROOT"/*/; do
      [ -d "$dir" ] || continue
      echo "$(basename "$dir") 10.231.$(cat "$dir/subnet" 2>/dev/null || echo '?').0/24 $(cut -d' ' -f1 "$dir/owner" 2>/dev/null || echo '?') $(owner_alive "$dir" && echo alive || echo dead)"
    done
    ;;
  *) usage ;;
esac
