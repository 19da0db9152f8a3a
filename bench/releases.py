#!/usr/bin/env python3
"""Benchmarks of releases (see BENCHMARKS.md), each against its named baseline in the same run.

1. Self-healing: `docker kill` of a task to its replacement running, for 20 tasks (each killed
   once, so no backoff has accumulated), from Docker's own timestamps (FinishedAt of the death,
   StartedAt of the new run).
2. Rolling update of a 10-task httpd job with an http check, batch size 2: total time against
   the sum of the configured waits (batches x min_healthy_time).
3. A whole environment: 50 httpd jobs in 5 waves, each job depending on two of the wave before,
   gated on an http check with a 1 s interval; coding-job `up` against `docker-compose up -d`
   with the same containers (`depends_on: condition: service_healthy`, a healthcheck with the
   same interval).

usage: bench/releases.py [--only heal|rollout|environment] [--binary PATH]
"""

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from common import IMAGE, Dev, add_binary_argument, free_port, prepare, run

def docker_time(text):
    """Docker's RFC 3339 with nanoseconds, as seconds since the epoch."""
    main, _, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()
    return seconds + float("0." + (fraction or "0"))


def inspect(container):
    return json.loads(run(["docker", "inspect", container]).stdout)[0]


def httpd(name, port, extra=""):
    return (f"  - name: {name}\n    image: {IMAGE}\n    port: {port}\n"
            f"    command: [httpd, -f, -p, \"{port}\", -h, /srv/www]\n{extra}")


def bench_heal():
    with Dev() as dev:
        jobs = "".join(httpd(f"heal-{i}", free_port()) for i in range(20))
        dev.push("heal.yaml", f"service: heal\njobs:\n{jobs}")
        dev.cli("up", "heal")
        latencies = []
        for task in dev.status("heal"):
            container = task["container_id"]
            run(["docker", "kill", container])
            deadline = time.time() + 10
            while time.time() < deadline:
                state = inspect(container)["State"]
                if state["Running"] and docker_time(state["StartedAt"]) > docker_time(state["FinishedAt"]):
                    latencies.append(docker_time(state["StartedAt"]) - docker_time(state["FinishedAt"]))
                    break
                time.sleep(0.02)
            else:
                raise SystemExit(f"{task['task']} was not restarted within 10 s")
        latencies.sort()
        print(f"self-healing, docker kill -> running again, 20 tasks: median {statistics.median(latencies) * 1000:.0f} ms, "
              f"max {latencies[-1] * 1000:.0f} ms (target: median under 1 s)")


def bench_rollout():
    tasks, batch, min_healthy = 10, 2, 3.0
    with Dev() as dev:
        def service(release):
            lines = [f"service: roll\njobs:\n  - name: api\n    image: {IMAGE}\n    env: {{ RELEASE: \"{release}\" }}\n",
                     "    check: { http: /health, interval: 1s, timeout: 1s }\n",
                     f"    update: {{ batch_size: {batch}, min_healthy_time: {min_healthy:g}s, healthy_deadline: 30s }}\n",
                     "    tasks:\n"]
            for i, port in enumerate(ports):
                lines.append(f"      - {{ name: api-{i}, port: {port}, command: [httpd, -f, -p, \"{port}\", -h, /srv/www] }}\n")
            return "".join(lines)
        ports = [free_port() for _ in range(tasks)]
        dev.push("roll.yaml", service(1))
        dev.cli("up", "roll")
        dev.push("roll.yaml", service(2))
        start = time.perf_counter()
        dev.cli("rolling-update", "roll")
        total = time.perf_counter() - start
        waits = (tasks // batch) * min_healthy
        print(f"rolling update, {tasks} tasks, batch {batch}, min_healthy_time {min_healthy:g}s: {total:.2f} s "
              f"against {waits:.1f} s of configured waits: overhead {(total / waits - 1) * 100:.1f}% (target under 20%)")


def environment_ports(waves, per_wave):
    return [[free_port() for _ in range(per_wave)] for _ in range(waves)]


def compose_environment(ports, name, deps):
    """The Compose file (as a dict) of the environment's httpd jobs on fixed ports: the
    containers coding-job makes (host network, init, the same log rotation), each gated on its
    dependencies' healthchecks (a `wget` of /health with a 1 s interval)."""
    services = {}
    for w, wave in enumerate(ports):
        for i, port in enumerate(wave):
            service = {
                "image": IMAGE, "network_mode": "host", "init": True,
                "command": ["httpd", "-f", "-p", str(port), "-h", "/srv/www"],
                "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}},
                "healthcheck": {"test": ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{port}/health"],
                                "interval": "1s", "timeout": "1s", "retries": 3},
            }
            if deps(w, i):
                service["depends_on"] = {d: {"condition": "service_healthy"} for d in deps(w, i)}
            services[name(w, i)] = service
    return {"version": "2.4", "services": services}


def bench_environment():
    waves, per_wave = 5, 10
    ports = environment_ports(waves, per_wave)
    name = lambda w, i: f"w{w}-j{i}"
    deps = lambda w, i: [] if w == 0 else [name(w - 1, i), name(w - 1, (i + 1) % per_wave)]

    # coding-job
    with Dev() as dev:
        jobs = ""
        for w in range(waves):
            for i in range(per_wave):
                extra = "    check: { http: /health, interval: 1s, timeout: 1s, retries: 3 }\n"
                if deps(w, i):
                    extra += f"    depends_on: [{', '.join(deps(w, i))}]\n"
                jobs += httpd(name(w, i), ports[w][i], extra)
        dev.push("env.yaml", f"service: env\njobs:\n{jobs}")
        start = time.perf_counter()
        dev.cli("up", "env")
        ours = time.perf_counter() - start
        assert all(t["health"] == "healthy" for t in dev.status("env"))

    # docker-compose, the same containers
    project = f"cjbench{os.getpid()}"
    compose_dir = tempfile.mkdtemp(prefix="cj-compose-")
    compose_file = os.path.join(compose_dir, "docker-compose.yml")
    with open(compose_file, "w") as f:
        json.dump(compose_environment(ports, name, deps), f)
    try:
        start = time.perf_counter()
        run(["docker-compose", "-p", project, "-f", compose_file, "up", "-d"])
        compose = time.perf_counter() - start
    finally:
        subprocess.run(["docker-compose", "-p", project, "-f", compose_file, "down", "-t", "1"], capture_output=True)
        shutil.rmtree(compose_dir, ignore_errors=True)
    print(f"environment of {waves * per_wave} jobs in {waves} waves with http checks (1 s interval): "
          f"coding-job up {ours:.2f} s, docker-compose up -d {compose:.2f} s: ratio {ours / compose:.2f}x (target at most 0.4x)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["heal", "rollout", "environment"])
    add_binary_argument(parser)
    args = parser.parse_args()
    prepare(args)
    for name, bench in [("heal", bench_heal), ("rollout", bench_rollout), ("environment", bench_environment)]:
        if args.only in (None, name):
            bench()


if __name__ == "__main__":
    main()
