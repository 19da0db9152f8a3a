#!/usr/bin/env python3
"""Benchmark of the core loop (see BENCHMARKS.md), against plain Docker in the same run.

1. `coding-job up` of N independent busybox httpd jobs, against N parallel `docker run -d` of
   the same containers (same image, command, host network, init, log rotation, labels).
2. Resident memory of the `coding-job dev` process with those N tasks running.
3. `status --json` latency: the HTTP API alone, and the whole CLI command.

usage: bench/core_loop.py [--jobs 20] [--rounds 5] [--binary PATH]   (builds the release binary first, unless --binary)
"""

import argparse
import json
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from common import IMAGE, Dev, add_binary_argument, free_port, prepare, rss_mib, run
BASELINE_LABEL = "coding-job-bench=baseline"


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
    add_binary_argument(parser)
    args = parser.parse_args()

    prepare(args)
    with Dev() as dev:
        try:
            measure(args, dev)
        finally:
            remove_baseline()


def measure(args, dev):
    ports = [free_port() for _ in range(args.jobs)]
    jobs = "".join(
        f"  - name: web-{i}\n    image: {IMAGE}\n    port: {port}\n"
        f"    command: [httpd, -f, -p, \"{port}\", -h, /srv/www]\n"
        for i, port in enumerate(ports))
    dev.push("bench.yaml", f"service: bench\njobs:\n{jobs}")

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
                dev.cli("up", "bench")
                up_times.append(time.perf_counter() - start)
                time.sleep(1)
                rss.append(rss_mib(dev.process.pid))
                for _ in range(20):
                    start = time.perf_counter()
                    with urllib.request.urlopen(f"{dev.url}/v1/status?env=production") as response:
                        tasks = json.load(response)
                    api_ms.append((time.perf_counter() - start) * 1000)
                    assert len(tasks) == args.jobs and all(t["state"] == "running" for t in tasks)
                    start = time.perf_counter()
                    dev.cli("status", "--json")
                    cli_ms.append((time.perf_counter() - start) * 1000)
                dev.cli("down", "bench")

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


if __name__ == "__main__":
    sys.exit(main())
