#!/usr/bin/env python3
"""Benchmark of the core loop (see BENCHMARKS.md), against plain Docker in the same run.

1. `coding-job up` of N independent busybox httpd jobs, against N parallel `docker run -d` of
   the same containers (same image, command, host network, init, log rotation, labels).
2. Resident memory of the `coding-job dev` process with those N tasks running.
3. `status --json` latency: the HTTP API alone, and the whole CLI command.

usage: bench/core_loop.py [--jobs 20] [--rounds 5]   (builds the release binary first)
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/coding-job")
IMAGE = "cj-example/busybox:1"
BASELINE_LABEL = "coding-job-bench=baseline"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def docker_run_all(ports):
    """N parallel `docker run -d` with the options coding-job gives its containers."""
    def one(port):
        run(["docker", "run", "-d", "--init", "--network", "host",
             "--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=3",
             "--label", BASELINE_LABEL, "--name", f"bench-baseline-{port}",
             IMAGE, "httpd", "-f", "-p", str(port), "-h", "/srv/www"])
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(ports)) as pool:
        list(pool.map(one, ports))
    return time.perf_counter() - start


def remove_baseline():
    ids = run(["docker", "ps", "-aq", "--filter", f"label={BASELINE_LABEL}"]).stdout.split()
    if ids:
        run(["docker", "rm", "-f", *ids])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    run(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    run(["bash", os.path.join(ROOT, "scripts/build-example-image.sh"), IMAGE])
    data = tempfile.mkdtemp(prefix="cj-bench-")
    listen = f"127.0.0.1:{free_port()}"
    url = f"http://{listen}"
    env = dict(os.environ, CODING_JOB_SERVER=url, RUST_LOG="warn")
    dev = subprocess.Popen([BIN, "dev", "--data-dir", data, "--listen", listen],
                           stdout=subprocess.PIPE, text=True, env=env)
    lines = [dev.stdout.readline() for _ in range(3)]
    cluster = lines[2].split(":", 1)[1].strip()
    try:
        ports = [free_port() for _ in range(args.jobs)]
        jobs = "".join(
            f"  - name: web-{i}\n    image: {IMAGE}\n    port: {port}\n"
            f"    command: [httpd, -f, -p, \"{port}\", -h, /srv/www]\n"
            for i, port in enumerate(ports))
        spec = os.path.join(data, "bench.yaml")
        with open(spec, "w") as f:
            f.write(f"service: bench\njobs:\n{jobs}")
        run([BIN, "push", spec], env=env)

        docker_times, up_times, rss, api_ms, cli_ms = [], [], [], [], []
        for round_index in range(args.rounds):
            # Alternate which goes first so neither always meets a warmer engine.
            order = ["docker", "coding-job"] if round_index % 2 == 0 else ["coding-job", "docker"]
            for which in order:
                if which == "docker":
                    docker_times.append(docker_run_all(ports))
                    remove_baseline()
                else:
                    start = time.perf_counter()
                    run([BIN, "up", "bench"], env=env)
                    up_times.append(time.perf_counter() - start)
                    time.sleep(1)
                    rss.append(rss_mib(dev.pid))
                    for _ in range(20):
                        start = time.perf_counter()
                        with urllib.request.urlopen(f"{url}/v1/status?env=production") as response:
                            tasks = json.load(response)
                        api_ms.append((time.perf_counter() - start) * 1000)
                        assert len(tasks) == args.jobs and all(t["state"] == "running" for t in tasks)
                        start = time.perf_counter()
                        run([BIN, "status", "--json"], env=env)
                        cli_ms.append((time.perf_counter() - start) * 1000)
                    run([BIN, "down", "bench"], env=env)

        def med(values):
            return statistics.median(values)

        ratio = med(up_times) / med(docker_times)
        print(f"jobs: {args.jobs}, rounds: {args.rounds}")
        print(f"docker run -d x{args.jobs} in parallel: median {med(docker_times):.3f}s  all {[round(t, 3) for t in docker_times]}")
        print(f"coding-job up ({args.jobs} jobs):        median {med(up_times):.3f}s  all {[round(t, 3) for t in up_times]}")
        print(f"ratio up / docker run: {ratio:.2f}x (target <= 1.3x)")
        print(f"dev RSS with {args.jobs} tasks running: max {max(rss):.1f} MiB (target < 40 MB)")
        api_sorted, cli_sorted = sorted(api_ms), sorted(cli_ms)
        p95 = lambda v: v[int(len(v) * 0.95) - 1]
        print(f"GET /v1/status: median {med(api_ms):.1f} ms, p95 {p95(api_sorted):.1f} ms")
        print(f"coding-job status --json (whole command): median {med(cli_ms):.1f} ms, p95 {p95(cli_sorted):.1f} ms (target < 50 ms)")
    finally:
        remove_baseline()
        dev.terminate()
        dev.wait()
        ids = run(["docker", "ps", "-aq", "--filter", f"label=coding-job.cluster={cluster}"]).stdout.split()
        if ids:
            run(["docker", "rm", "-f", *ids])
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
