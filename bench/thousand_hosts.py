#!/usr/bin/env python3
"""A thousand simulated hosts (see BENCHMARKS.md): one `coding-job server` and `coding-job sim`
processes (the real agent code and link, each host on an engine in memory), on the embedded
store and on etcd.

1. `up` of JOBS jobs of INSTANCES instances each (100 services of JOBS/100 jobs; a tenth of the
   jobs reserve memory and CPU, a tenth must run in one zone of four), all services at once,
   until every task is reported running (each `up` returns only then). Placements per second:
   tasks over the time from the first `up` to the last task's assignment, as the `up`s' progress
   shows it; and tasks over the time the server spent publishing (its
   `coding_job_publish_duration_seconds`). The p99 of assignment delivery (publish to agent),
   from the simulated agents' `coding_job_agent_assignment_delivery_seconds` histogram. The
   server's resident memory (VmRSS, and its peak VmHWM).
2. `GET /v1/status?target=SERVICE` (1 of the 100 services) and the web UI's overview (the
   first page), over HTTP, the median and p95 of `--requests` each.
3. A host lost among them: one more simulated host runs in its own `sim` process, which is
   killed (SIGKILL); the time from its last report (as the server recorded it) to every one of
   its tasks running elsewhere, against the server's `--host-down-after`.

usage: bench/thousand_hosts.py [--hosts 1000] [--jobs 1000] [--instances 100]
                               [--store embedded|etcd|both] [--requests 20] [--binary PATH]
(builds the release binary unless --binary; etcd is Debian's `etcd-server`)
"""

import argparse
import datetime
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
import threading
import time
import urllib.request

from common import BIN, build, free_port, rss_mib, run, wait_for

HOST_DOWN_AFTER = 10      # seconds, the server's --host-down-after
ZONES = 4
SERVICES = 100
CLI_TIMEOUT = 3600


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def quiet_env(**extra):
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(extra)
    return env


def percentile(values, p):
    """Nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def histogram_quantile(text, name, q):
    """Prometheus' histogram_quantile over a text exposition: linear within the bucket."""
    buckets = []
    for line in text.splitlines():
        match = re.match(rf'{name}_bucket\{{le="([^"]+)"\}} (\S+)', line)
        if match:
            buckets.append((math.inf if match.group(1) == "+Inf" else float(match.group(1)), float(match.group(2))))
    if not buckets or buckets[-1][1] == 0:
        return float("nan"), 0
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == math.inf:
                return lower, int(total)
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9), int(total)
        lower, below = bound, count
    return lower, int(total)


def metric_value(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


class Etcd:
    def __init__(self, work):
        self.dir = os.path.join(work, "etcd")
        os.makedirs(self.dir)
        client, peer = free_port(), free_port()
        self.endpoint = f"127.0.0.1:{client}"
        self.process = subprocess.Popen(
            ["etcd", "--name=bench", f"--data-dir={self.dir}/data",
             f"--listen-client-urls=http://{self.endpoint}", f"--advertise-client-urls=http://{self.endpoint}",
             f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
             f"--initial-cluster=bench=http://127.0.0.1:{peer}", "--quota-backend-bytes=8589934592",
             "--logger=zap", "--log-outputs=stderr"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "etcd.log"), "w"))
        wait_for("etcd to answer", 30, lambda: self.healthy())

    def healthy(self):
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/health", timeout=1) as answer:
                return b'"true"' in answer.read()
        except OSError:
            return False

    def stop(self):
        self.process.kill()
        self.process.wait()


class Bench:
    def __init__(self, binary, store, hosts, work):
        self.binary, self.store, self.hosts, self.work = binary, store, hosts, work
        self.processes = []
        self.etcd = None

    def start(self):
        data = os.path.join(self.work, "data")
        os.makedirs(data)
        store_args = []
        if self.store == "etcd":
            self.etcd = Etcd(self.work)
            store_args = ["--store", f"etcd://{self.etcd.endpoint}"]
        listen = f"127.0.0.1:{free_port()}"
        self.url = f"http://{listen}"
        self.server = self.spawn("server", [self.binary, "server", "--listen", listen, "--data-dir", data,
                                            "--host-down-after", f"{HOST_DOWN_AFTER}s", *store_args])
        token_file = os.path.join(data, "admin.token")
        wait_for("the server's admin token", 60, lambda: self.alive(self.server) and os.path.exists(token_file))
        self.token = open(token_file).read().strip()
        self.env = quiet_env(CODING_JOB_SERVER=self.url, CODING_JOB_TOKEN=self.token)
        wait_for("the server to answer", 60, lambda: self.alive(self.server) and self.try_cli("hosts", "--json"))
        secret = json.loads(self.cli("token", "create", "sim", "--role", "agent", "--json"))["secret"]
        self.agent_token = os.path.join(self.work, "agent.token")
        with open(os.open(self.agent_token, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(secret)
        self.sim_metrics = f"127.0.0.1:{free_port()}"
        started = time.perf_counter()
        self.sim = self.spawn("sim", [self.binary, "sim", "--hosts", str(self.hosts - 1), "--zones", str(ZONES),
                                      "--token-file", self.agent_token, "--metrics-listen", self.sim_metrics])
        self.victim = self.spawn("victim", [self.binary, "sim", "--hosts", "1", "--prefix", "victim-",
                                            "--label", f"zone=zone-{ZONES}", "--token-file", self.agent_token])
        wait_for(f"{self.hosts} hosts ready", 600, lambda: self.ready_hosts() >= self.hosts, interval=1)
        print(f"  {self.hosts} simulated hosts ready in {time.perf_counter() - started:.1f} s", flush=True)

    def spawn(self, name, args):
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                   stdout=open(os.path.join(self.work, f"{name}.out"), "w"),
                                   stderr=open(os.path.join(self.work, f"{name}.log"), "w"),
                                   env=quiet_env(CODING_JOB_SERVER=self.url, RUST_LOG="warn"))
        self.processes.append(process)
        return process

    def alive(self, process):
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[1]} exited with {process.returncode}; see {self.work}")
        return True

    def cli(self, *args):
        return run([self.binary, *args], env=self.env, timeout=CLI_TIMEOUT).stdout

    def try_cli(self, *args):
        try:
            return self.cli(*args)
        except subprocess.CalledProcessError:
            return None

    def ready_hosts(self):
        self.alive(self.server)
        hosts = json.loads(self.cli("hosts", "--json"))
        return sum(1 for host in hosts if host.get("state") == "ready")

    def get(self, path):
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.read()

    def close(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        if self.etcd:
            self.etcd.stop()


def service_files(work, jobs, instances):
    per_service = max(1, jobs // SERVICES)
    paths = []
    job_number = 0
    for service in range(1, SERVICES + 1):
        lines = [f"service: svc-{service:03}", "jobs:"]
        for _ in range(per_service):
            job_number += 1
            lines += [f"  - name: job-{job_number:04}", "    image: app:1", f"    instances: {instances}"]
            if job_number % 10 == 3:
                lines.append("    resources: { memory: 256m, cpu: 0.25 }")
            if job_number % 10 == 7:
                lines.append(f"    constraints: {{ zone: zone-{1 + job_number % ZONES} }}")
        path = os.path.join(work, f"svc-{service:03}.yaml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        paths.append(path)
    return paths


def up_all(bench, services):
    """`up` of every service at once; each task's first progress line and when `up` returned."""
    first_seen, failures = {}, []
    lock = threading.Lock()
    start = time.perf_counter()

    def one(service):
        process = subprocess.Popen([bench.binary, "up", service, "--json", "--timeout", "3600"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=bench.env)
        for line in process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            task = event.get("task")
            if task:
                with lock:
                    first_seen.setdefault(task, time.perf_counter() - start)
        if process.wait() != 0:
            failures.append(f"up {service}: {process.stderr.read().strip()[-500:]}")

    threads = [threading.Thread(target=one, args=(service,)) for service in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError("; ".join(failures[:3]))
    return time.perf_counter() - start, first_seen


def timed_gets(bench, path, requests):
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        body = bench.get(path)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), percentile(times, 95), len(body)


def sim_running(bench):
    """What the simulated engines of the main `sim` run now (its own count, not the server's)."""
    with urllib.request.urlopen(f"http://{bench.sim_metrics}/metrics", timeout=30) as answer:
        return int(metric_value(answer.read().decode(), "coding_job_sim_containers_running"))


def host_loss(bench, tasks):
    """Kills the victim's `sim`; seconds from the kill, and from its last report, to every task
    running again, as the other engines count them (the victim's vanished with it)."""
    victim = "victim-01"
    on_victim = tasks - sim_running(bench)
    assert on_victim > 0, "the victim host runs nothing"
    bench.victim.kill()
    bench.victim.wait()
    killed = time.time()
    heard = {h["name"]: h for h in json.loads(bench.cli("hosts", "--json"))}[victim].get("last_heartbeat")
    wait_for("the lost host's tasks running elsewhere", HOST_DOWN_AFTER + 120,
             lambda: sim_running(bench) == tasks, interval=0.1)
    done = time.time()
    since_heard = done - datetime.datetime.fromisoformat(heard).timestamp() if heard else None
    return on_victim, done - killed, since_heard


def measure(args, store):
    work = tempfile.mkdtemp(prefix=f"cj-bench-sim-{store}-")
    bench = Bench(args.binary, store, args.hosts, work)
    print(f"{store}: {args.hosts} hosts, {args.jobs} jobs x {args.instances} instances (work: {work})", flush=True)
    try:
        bench.start()
        files = service_files(work, args.jobs, args.instances)
        bench.cli("push", *files)
        services = [os.path.basename(path)[:-5] for path in files]
        tasks = args.jobs * args.instances
        elapsed, first_seen = up_all(bench, services)
        rss, hwm = rss_mib(bench.server.pid), rss_mib(bench.server.pid, "VmHWM")
        last_assigned = max(first_seen.values()) if first_seen else float("nan")
        server_metrics = bench.get("/metrics").decode()
        publishing = metric_value(server_metrics, "coding_job_publish_duration_seconds_sum")
        with urllib.request.urlopen(f"http://{bench.sim_metrics}/metrics", timeout=30) as answer:
            sim_metrics = answer.read().decode()
        p99, deliveries = histogram_quantile(sim_metrics, "coding_job_agent_assignment_delivery_seconds", 0.99)
        p50, _ = histogram_quantile(sim_metrics, "coding_job_agent_assignment_delivery_seconds", 0.50)
        print(f"  up: {tasks} tasks running in {elapsed:.1f} s; the last assigned at {last_assigned:.1f} s: "
              f"{tasks / last_assigned:,.0f} placements/s end to end, "
              f"{tasks / publishing if publishing else float('nan'):,.0f}/s of publishing ({publishing:.1f} s)", flush=True)
        print(f"  assignment delivery: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms over {deliveries} deliveries", flush=True)
        print(f"  server memory after up: {rss:.0f} MiB (peak {hwm:.0f} MiB)", flush=True)
        median, p95, size = timed_gets(bench, f"/v1/status?target={services[0]}", args.requests)
        print(f"  status of one service ({args.jobs // SERVICES * args.instances} tasks, {size / 1024:.0f} KiB): "
              f"median {median:.1f} ms, p95 {p95:.1f} ms", flush=True)
        median, p95, size = timed_gets(bench, "/", args.requests)
        print(f"  web UI overview, first page ({size / 1024:.0f} KiB): median {median:.1f} ms, p95 {p95:.1f} ms", flush=True)
        count, after_kill, since_heard = host_loss(bench, tasks)
        heard = f", {since_heard:.1f} s after its last report" if since_heard is not None else ""
        print(f"  host lost: its {count} tasks running elsewhere {after_kill:.1f} s after the kill{heard} "
              f"(--host-down-after {HOST_DOWN_AFTER}s)", flush=True)
        print(f"  server memory at the end: {rss_mib(bench.server.pid):.0f} MiB "
              f"(peak {rss_mib(bench.server.pid, 'VmHWM'):.0f} MiB)", flush=True)
    finally:
        bench.close()
        if args.keep:
            print(f"  kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--store", choices=["embedded", "etcd", "both"], default="both")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, data)")
    parser.add_argument("--binary", help="measure this coding-job binary instead of building target/release's")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    if args.binary:
        args.binary = os.path.abspath(args.binary)
    else:
        build()
        args.binary = BIN
    stores = ["embedded", "etcd"] if args.store == "both" else [args.store]
    for store in stores:
        measure(args, store)


if __name__ == "__main__":
    sys.exit(main())
