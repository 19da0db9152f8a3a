#!/usr/bin/env python3
"""Benchmark of several real hosts (see BENCHMARKS.md): a `coding-job server` and one agent in each
host of a 3-host test bed (scripts/testbed.sh: network namespaces, each with its own dockerd).

1. `coding-job up` of 30 tasks, 10 pinned to each host (`run_on_host`), against 30 parallel
   `docker -H HOST run -d` of the same containers to the same 3 engines; rounds alternate which
   goes first. Docker's own Created/StartedAt timestamps split each run into: before the first
   create, creating and starting, after the last start.
2. Assignment-to-agent latency: every `assignments received ... latency_us=N` an agent logs (time
   from the server publishing assignments to the agent receiving them, one machine's clock), over
   `--publishes` publishes made by `up`/`down` of a small service with one job on each host,
   while the 30 tasks run.
3. Resident memory (VmRSS, and the peak VmHWM) of each agent running 10 tasks and of the server
   with 3 agents and 30 tasks.
4. Host loss, with the server's `--host-down-after 5s`: 3 unpinned tasks (one per host); the
   agent of a host running one is killed (SIGKILL, as a host that dies), and the time is taken
   from that host's last heartbeat (as the server recorded it) to the moment, by the engine's own
   StartedAt, the task's replacement started on another host. The agent is then started again,
   the stale container must stop (nothing runs twice), and the next round kills another host.

usage: bench/many_hosts.py [--rounds 3] [--publishes 120] [--loss-rounds 3] [--keep-logs] [--binary PATH]
(builds the release binary, unless --binary, and the example image first; needs root for the
test bed)
"""

import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from common import BIN, IMAGE, ROOT, CliUser, build, docker_time, free_port, rss_mib, run, wait_for

BED = "cjbench"
TESTBED = os.path.join(ROOT, "scripts/testbed.sh")
HOSTS = 3
PER_HOST = 10
BASELINE_LABEL = "coding-job-bench=baseline"
HOST_DOWN_AFTER = 5      # seconds, the server's --host-down-after
FIRST_PORT = 20100       # bench tasks: FIRST_PORT .. FIRST_PORT + 29, distinct over all hosts
PING_PORT = 20090        # the small service that makes publishes: 20090 .. 20092
CLI_TIMEOUT = 120        # seconds, for any one CLI or docker command
AGENT_LOG = "warn,coding_job_agent=debug"
RECEIVED = re.compile(r"assignments received.*?generation=(\d+).*?latency_us=(-?\d+)(?:.*?tasks=(\d+))?")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def no_proxy_env(**extra):
    """This environment without proxies: the CLI talks to a test bed address, never through one."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(extra)
    return env


def median(values):
    return statistics.median(values) if values else float("nan")


def percentile(sorted_values, p):
    """Nearest rank."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


class Host:
    def __init__(self, name, address, docker_host, netns):
        self.name, self.address, self.docker_host, self.netns = name, address, docker_host, netns
        self.agent = None
        self.log = None

    def docker(self, *args, timeout=CLI_TIMEOUT):
        return run(["docker", "-H", self.docker_host, *args], timeout=timeout).stdout

    def container_ids(self, label):
        return self.docker("ps", "-aq", "--no-trunc", "--filter", f"label={label}").split()


class Cluster(CliUser):
    """The test bed, the server and the agents; `close` removes all of it, whatever state it is in."""

    def __init__(self, keep_logs):
        self.keep_logs = keep_logs
        self.work = tempfile.mkdtemp(prefix="cj-bench-hosts-")
        self.data = os.path.join(self.work, "data")
        self.bed_requested = False
        self.server = None
        self.hosts = []

    # --- start -------------------------------------------------------------------------------

    def start(self):
        listed = run([TESTBED, "list"], timeout=60).stdout.split("\n")
        if any(line.split()[:1] == [BED] and line.endswith(" alive") for line in listed if line):
            raise SystemExit(f"a test bed named {BED} exists and its owner is alive (another run?); not touching it")
        self.bed_requested = True
        started = time.perf_counter()
        lines = run([TESTBED, "up", "--name", BED, "--hosts", str(HOSTS), "--image", IMAGE,
                     "--owner", str(os.getpid())], timeout=300).stdout.splitlines()
        for line in lines:
            fields = line.split()
            if fields[0] == "gateway":
                self.gateway = fields[1]
            elif fields[0] == "host":
                self.hosts.append(Host(fields[1], fields[2], fields[3], fields[4]))
        assert len(self.hosts) == HOSTS, lines
        print(f"test bed {BED}: {HOSTS} hosts behind {self.gateway}, up in {time.perf_counter() - started:.1f} s", flush=True)

        listen = f"{self.gateway}:{free_port(self.gateway)}"
        self.url = f"http://{listen}"
        os.makedirs(self.data)
        self.server = subprocess.Popen(
            [BIN, "server", "--listen", listen, "--data-dir", self.data,
             "--host-down-after", f"{HOST_DOWN_AFTER}s"],
            stdin=subprocess.DEVNULL, stdout=open(os.path.join(self.work, "server.out"), "w"),
            stderr=open(os.path.join(self.work, "server.log"), "w"),
            env=no_proxy_env(RUST_LOG="info"))
        token_file = os.path.join(self.data, "admin.token")
        wait_for("the server's admin token", 30, lambda: self.alive(self.server, "server") and os.path.exists(token_file))
        self.env = no_proxy_env(CODING_JOB_SERVER=self.url, CODING_JOB_TOKEN=open(token_file).read().strip())
        wait_for("the server to answer", 30, lambda: self.alive(self.server, "server") and self.try_cli("hosts", "--json"))
        self.cluster_id = re.search(r"cluster id:\s+(\S+)", open(os.path.join(self.work, "server.out")).read()).group(1)

        secret = json.loads(self.cli("token", "create", "agents", "--role", "agent", "--json"))["secret"]
        self.agent_token = os.path.join(self.work, "agent.token")
        with open(os.open(self.agent_token, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(secret)
        for host in self.hosts:
            host.log = os.path.join(self.work, f"agent-{host.name}.log")
            self.start_agent(host)
        started = time.perf_counter()
        wait_for("every host ready", 60, self.all_ready, interval=0.2)
        print(f"server {self.url}, agents ready after {time.perf_counter() - started:.2f} s", flush=True)
        for host in self.hosts:
            with open(f"/proc/{host.agent.pid}/comm") as f:
                assert f.read().strip() == "coding-job", "the agent's pid is not the agent"

    def start_agent(self, host):
        agent_env = no_proxy_env(RUST_LOG=AGENT_LOG)
        for key in ("CODING_JOB_TOKEN", "CODING_JOB_SERVER", "CODING_JOB_TOKEN_FILE"):
            agent_env.pop(key, None)
        # nsenter --net execs the agent (no fork), so the pid is the agent's own.
        host.agent = subprocess.Popen(
            ["nsenter", f"--net={host.netns}", "--", BIN, "agent", "--server", self.url,
             "--name", host.name, "--token-file", self.agent_token, "--docker-host", host.docker_host],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(host.log, "a"),
            env=dict(agent_env, DOCKER_HOST=host.docker_host))

    def alive(self, process, what):
        if process.poll() is not None:
            raise RuntimeError(f"the {what} exited with {process.returncode} (logs in {self.work})")
        return True

    def all_ready(self):
        for host in self.hosts:
            self.alive(host.agent, f"agent of {host.name}")
        hosts = json.loads(self.cli("hosts", "--json"))
        states = {h["name"]: h["state"] for h in hosts}
        return all(states.get(h.name) == "ready" for h in self.hosts)

    def cli(self, *args, timeout=CLI_TIMEOUT):
        try:
            return run([BIN, *args], env=self.env, timeout=timeout).stdout
        except subprocess.CalledProcessError as error:
            raise RuntimeError(f"coding-job {' '.join(args)} failed ({error.returncode}):\n{error.stdout}{error.stderr}") from None

    def try_cli(self, *args):
        try:
            run([BIN, *args], env=self.env, timeout=10)
            return True
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            return False

    def check_processes(self):
        self.alive(self.server, "server")
        for host in self.hosts:
            self.alive(host.agent, f"agent of {host.name}")

    # --- stop --------------------------------------------------------------------------------

    def close(self):
        """Agents, server, baseline containers, test bed (every container of its engines), temp dir;
        each step runs even if one before it failed."""
        steps = [("stop the agents", self.stop_agents), ("stop the server", self.stop_server),
                 ("remove baseline containers", self.remove_baseline), ("remove the test bed", self.bed_down)]
        for what, step in steps:
            try:
                step()
            except BaseException as error:  # noqa: BLE001 - cleanup goes on whatever happened
                print(f"cleanup: could not {what}: {error}", file=sys.stderr)
        if self.keep_logs:
            print(f"logs kept in {self.work}", file=sys.stderr)
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    @staticmethod
    def stop(process):
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def stop_agents(self):
        for host in self.hosts:
            self.stop(host.agent)

    def stop_server(self):
        self.stop(self.server)

    def remove_baseline(self):
        for host in self.hosts:
            remove_baseline(host)

    def bed_down(self):
        if self.bed_requested:
            result = subprocess.run([TESTBED, "down", "--name", BED], capture_output=True, text=True, timeout=300)
            if result.returncode != 0:
                print(f"testbed down failed:\n{result.stderr}", file=sys.stderr)


def remove_baseline(host):
    ids = host.container_ids(BASELINE_LABEL)
    if ids:
        host.docker("rm", "-f", *ids)


def bench_service(hosts):
    jobs = []
    for h, host in enumerate(hosts):
        for i in range(PER_HOST):
            port = FIRST_PORT + h * PER_HOST + i
            jobs.append(f"  - name: web-{h + 1}-{i}\n    image: {IMAGE}\n    run_on_host: {host.name}\n"
                        f"    port: {port}\n    command: [httpd, -f, -p, \"{port}\", -h, /]\n")
    return "service: bench\njobs:\n" + "".join(jobs)


def ping_service(hosts):
    jobs = [f"  - name: ping-{h + 1}\n    image: {IMAGE}\n    run_on_host: {host.name}\n"
            f"    port: {PING_PORT + h}\n    command: [httpd, -f, -p, \"{PING_PORT + h}\", -h, /]\n"
            for h, host in enumerate(hosts)]
    return "service: ping\njobs:\n" + "".join(jobs)


def timeline(cluster, label, start, end):
    """Seconds from `start` to the first create, from the first create to the last start, and from
    the last start to `end`, by the engines' own timestamps."""
    created, started = [], []
    for host in cluster.hosts:
        ids = host.container_ids(label)
        if not ids:
            continue
        for line in host.docker("inspect", "-f", "{{.Created}} {{.State.StartedAt}}", *ids).split("\n"):
            if line.strip():
                c, s = line.split()
                created.append(docker_time(c))
                started.append(docker_time(s))
    if not created:
        return None
    return (min(created) - start, max(started) - min(created), end - max(started))


def docker_run_all(cluster):
    """30 parallel `docker -H HOST run -d`, with the options coding-job gives its containers."""
    def one(item):
        h, host, i = item
        port = FIRST_PORT + h * PER_HOST + i
        host.docker("run", "-d", "--init", "--network", "host",
                    "--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=3",
                    "--label", BASELINE_LABEL, "--name", f"bench-baseline-{h + 1}-{i}",
                    IMAGE, "httpd", "-f", "-p", str(port), "-h", "/")
    items = [(h, host, i) for h, host in enumerate(cluster.hosts) for i in range(PER_HOST)]
    wall, start = time.time(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        list(pool.map(one, items))
    elapsed = time.perf_counter() - start
    phases = timeline(cluster, BASELINE_LABEL, wall, wall + elapsed)
    for host in cluster.hosts:
        running = host.docker("ps", "-q", "--filter", f"label={BASELINE_LABEL}").split()
        assert len(running) == PER_HOST, f"{host.name}: {len(running)} baseline containers running"
    return elapsed, phases


def coding_job_up(cluster):
    wall, start = time.time(), time.perf_counter()
    cluster.cli("up", "bench")
    elapsed = time.perf_counter() - start
    phases = timeline(cluster, "coding-job.service=bench", wall, wall + elapsed)
    rows = cluster.status("bench")
    wrong = [(r["task"], r["host"], r.get("actual_host"), r["state"]) for r in rows
             if r["state"] != "running" or r.get("actual_host") != r["host"]]
    assert len(rows) == HOSTS * PER_HOST and not wrong, f"{len(rows)} rows, not running where declared: {wrong}"
    for host in cluster.hosts:
        running = host.docker("ps", "-q", "--filter", "label=coding-job.service=bench").split()
        assert len(running) == PER_HOST, f"{host.name}: {len(running)} bench containers running"
    return elapsed, phases


def coding_job_down(cluster, service):
    cluster.cli("down", service)
    wait_for(f"{service}'s containers removed", 30, lambda: all(
        not host.container_ids(f"coding-job.service={service}") for host in cluster.hosts))


def log_offsets(cluster):
    return {host.name: os.path.getsize(host.log) for host in cluster.hosts}


def received(cluster, since=None, until=None):
    """(host, generation, latency_us, tasks) of every `assignments received` between two offsets."""
    samples = []
    for host in cluster.hosts:
        with open(host.log, "rb") as f:
            start = since[host.name] if since else 0
            f.seek(start)
            text = f.read((until[host.name] - start) if until else -1).decode(errors="replace")
        for line in ANSI.sub("", text).splitlines():
            match = RECEIVED.search(line)
            if match:
                samples.append((host.name, int(match.group(1)), int(match.group(2)),
                                int(match.group(3)) if match.group(3) else None))
    return samples


def summarize_latency(samples):
    """Delivery latencies in ms, without each link's first message (generation 1), which carries
    the time of a publish made before the agent linked."""
    values = sorted(s[2] / 1000 for s in samples if s[1] > 1)
    return values, [s for s in samples if s[1] == 1]


def roam_service():
    return ("service: roam\njobs:\n"
            f"  - name: roam\n    image: {IMAGE}\n    instances: {HOSTS}\n    command: [sleep, \"86400\"]\n")


def roam_containers(host):
    """(id, StartedAt) of the roam containers running on `host`."""
    ids = host.docker("ps", "-q", "--no-trunc", "--filter", "label=coding-job.service=roam").split()
    if not ids:
        return []
    lines = host.docker("inspect", "-f", "{{.Id}} {{.State.StartedAt}}", *ids).split("\n")
    return [tuple(line.split()) for line in lines if line.strip()]


def host_loss(cluster, rounds):
    """Seconds from a killed host's last heartbeat to its unpinned task running elsewhere."""
    cluster.push("roam.yaml", roam_service())
    cluster.cli("up", "roam")
    samples = []
    for round_index in range(rounds):
        victim = next(h for h in cluster.hosts if roam_containers(h))
        others = [h for h in cluster.hosts if h is not victim]
        before = {c[0] for h in others for c in roam_containers(h)}
        victim.agent.kill()
        victim.agent.wait(timeout=10)
        wait_for("the server to see the host down", 30, lambda: next(
            h for h in json.loads(cluster.cli("hosts", "--json")) if h["name"] == victim.name)["state"] == "down")
        heartbeat = next(h for h in json.loads(cluster.cli("hosts", "--json"))
                         if h["name"] == victim.name)["last_heartbeat"]
        moved = wait_for("the task to run elsewhere", 60, lambda: [
            c for h in others for c in roam_containers(h) if c[0] not in before], interval=0.05)
        seconds = docker_time(moved[0][1]) - docker_time(heartbeat)
        samples.append(seconds)
        print(f"loss round {round_index + 1}: {victim.name} lost; its task ran on another host "
              f"{seconds:.2f} s after the host's last heartbeat", flush=True)
        cluster.start_agent(victim)
        wait_for("the host back", 60, cluster.all_ready, interval=0.2)
        wait_for("the stale container stopped", 60, lambda: not roam_containers(victim), interval=0.2)
        running = sum(len(roam_containers(h)) for h in cluster.hosts)
        assert running == HOSTS, f"{running} roam containers run after the heal, expected {HOSTS}"
    coding_job_down(cluster, "roam")
    return samples


def memory(pid):
    return rss_mib(pid), rss_mib(pid, "VmHWM")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--publishes", type=int, default=120,
                        help="publishes in the latency phase (an up or a down of the ping service each)")
    parser.add_argument("--loss-rounds", type=int, default=3, help="host losses in the host loss phase")
    parser.add_argument("--keep-logs", action="store_true", help="keep the server's and agents' logs")
    parser.add_argument("--binary", help="measure this coding-job binary instead of building target/release's")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    global BIN
    if args.binary:
        BIN = os.path.abspath(args.binary)
        run(["bash", os.path.join(ROOT, "scripts/build-example-image.sh"), IMAGE])
    else:
        build()
    cluster = Cluster(args.keep_logs)
    try:
        cluster.start()
        measure(args, cluster)
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        # A second Ctrl-C must not stop the cleanup half way.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cluster.close()


def measure(args, cluster):
    time.sleep(2)
    idle_agents = [memory(h.agent.pid)[0] for h in cluster.hosts]
    cluster.push("bench.yaml", bench_service(cluster.hosts))
    cluster.push("ping.yaml", ping_service(cluster.hosts))

    # 1. up of 30 tasks on 3 hosts against 30 docker runs to the same engines.
    docker_times, up_times, docker_phases, up_phases = [], [], [], []
    bench_start = log_offsets(cluster)
    for round_index in range(args.rounds):
        order = ["docker", "coding-job"] if round_index % 2 == 0 else ["coding-job", "docker"]
        for which in order:
            if which == "docker":
                elapsed, phases = docker_run_all(cluster)
                docker_times.append(elapsed)
                docker_phases.append(phases)
                cluster.remove_baseline()
            else:
                elapsed, phases = coding_job_up(cluster)
                up_times.append(elapsed)
                up_phases.append(phases)
                coding_job_down(cluster, "bench")
            print(f"round {round_index + 1}: {which:<10} {elapsed:.3f} s  (before first create "
                  f"{phases[0]:.3f}, creating+starting {phases[1]:.3f}, after last start {phases[2]:.3f})", flush=True)
        cluster.check_processes()
    bench_end = log_offsets(cluster)

    # 2. Assignment latency: publishes by up/down of one small job per host, with 30 tasks running.
    cluster.cli("up", "bench")
    ping_start = log_offsets(cluster)
    started = time.perf_counter()
    for i in range(args.publishes):
        if i % 2 == 0:
            cluster.cli("up", "ping")
        else:
            coding_job_down(cluster, "ping")
    if args.publishes % 2:
        coding_job_down(cluster, "ping")
    ping_seconds = time.perf_counter() - started
    time.sleep(0.5)
    ping_end = log_offsets(cluster)
    cluster.check_processes()

    # 3. Memory with the 30 tasks running, after a host stats interval (10 s) has passed.
    time.sleep(12)
    cluster.check_processes()
    agents = {h.name: memory(h.agent.pid) for h in cluster.hosts}
    agent_tasks = {h.name: len(h.docker("ps", "-q", "--filter", f"label=coding-job.cluster={cluster.cluster_id}").split())
                   for h in cluster.hosts}
    server = memory(cluster.server.pid)
    coding_job_down(cluster, "bench")

    # 4. Host loss.
    loss = host_loss(cluster, args.loss_rounds)

    # Report.
    ratio = median(up_times) / median(docker_times)
    ping_values, ping_first = summarize_latency(received(cluster, ping_start, ping_end))
    bench_values, _ = summarize_latency(received(cluster, bench_start, bench_end))
    all_values, all_first = summarize_latency(received(cluster))
    links = sum(open(h.log, errors="replace").read().count("linked to the server") for h in cluster.hosts)

    def phase_medians(phases):
        return " / ".join(f"{median([p[k] for p in phases]):.3f}" for k in range(3))

    print()
    print(f"== coding-job on {HOSTS} hosts (test bed {BED}), {args.rounds} rounds ==")
    print(f"1. 30 tasks, {PER_HOST} pinned to each host")
    print(f"   30 parallel docker -H run -d:  median {median(docker_times):.3f} s  all {[round(t, 3) for t in docker_times]}")
    print(f"   coding-job up bench:          median {median(up_times):.3f} s  all {[round(t, 3) for t in up_times]}")
    print(f"   ratio up / docker run: {ratio:.2f}x (target at most 1.2x){'' if ratio <= 1.2 else '  MISSED'}")
    print(f"   medians, before first create / creating+starting / after last start (s):")
    print(f"     docker:     {phase_medians(docker_phases)}")
    print(f"     coding-job: {phase_medians(up_phases)}")
    print(f"2. assignments to agents, {args.publishes} publishes in {ping_seconds:.1f} s: {len(ping_values)} deliveries")
    p99 = percentile(ping_values, 99)
    print(f"   latency p50 {percentile(ping_values, 50):.2f} ms, p99 {p99:.2f} ms, max {ping_values[-1]:.2f} ms "
          f"(target p99 under 100 ms){'' if p99 < 100 else '  MISSED'}")
    if bench_values:
        print(f"   during the up/down rounds of 30 tasks ({len(bench_values)} deliveries): "
              f"p50 {percentile(bench_values, 50):.2f} ms, p99 {percentile(bench_values, 99):.2f} ms, max {bench_values[-1]:.2f} ms")
    print(f"   whole run: {len(all_values)} deliveries, p99 {percentile(all_values, 99):.2f} ms, max {all_values[-1]:.2f} ms; "
          f"{links} links made; first message of each link (not counted; its time is of an earlier publish): "
          f"{', '.join(f'{s[0]} {s[2] / 1000:.0f} ms' for s in all_first)}")
    print("3. memory (MiB)")
    print(f"   agents idle, no tasks: {', '.join(f'{m:.1f}' for m in idle_agents)}")
    for name, (rss, hwm) in agents.items():
        print(f"   agent {name} with {agent_tasks[name]} tasks: VmRSS {rss:.1f}, peak VmHWM {hwm:.1f}"
              f" (target under 30 MB){'' if rss * 1.048576 < 30 else '  MISSED'}")
    print(f"   server with {HOSTS} agents and 30 tasks: VmRSS {server[0]:.1f}, peak VmHWM {server[1]:.1f}")
    worst = max(loss)
    print(f"4. host loss with --host-down-after {HOST_DOWN_AFTER}s, {len(loss)} rounds: last heartbeat to the task "
          f"running elsewhere: median {median(loss):.2f} s, max {worst:.2f} s, all {[round(s, 2) for s in loss]}"
          f" (target under 7 s){'' if worst < 7 else '  MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
