"""The web UI's overview page (`GET /`) with 1,000 tasks: how long the server takes to render
it, against a target of 100 ms.

Starts `coding-job dev` on a fresh data directory, pushes 10 services of 10 jobs of 10 tasks
(1,000 tasks), optionally brings some of the services up (`--up-services N`: N x 100 busybox
`sleep` containers), then
times `GET /` over loopback (so the times are an upper bound on the render time: they include
the HTTP round trip) and, for comparison, `GET /v1/status` of one service.

    python3 bench/ui.py [--binary target/release/coding-job] [--rounds 30] [--up-services N]
"""

import argparse
import os
import statistics
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BIN, IMAGE, Dev, build, wait_for  # noqa: E402

SERVICES, JOBS, TASKS = 10, 10, 10
TARGET_MS = 100


def service_file(number):
    lines = [f"service: s{number}", "jobs:"]
    for job in range(JOBS):
        lines += [f"  - name: s{number}-j{job}", f"    image: {IMAGE}", "    command: [sleep, \"3600\"]", "    tasks:"]
        lines += [f"      - {{ name: j{job}-t{task} }}" for task in range(TASKS)]
    return "\n".join(lines) + "\n"


def times_ms(url, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as answer:
            body = answer.read()
        times.append((time.perf_counter() - start) * 1000)
    return times, body


def summary(times):
    ordered = sorted(times)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=BIN)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--up-services", type=int, default=0,
                        help="run this many of the 10 services (100 containers each)")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not args.no_build and args.binary == BIN:
        build()
    with Dev(binary=args.binary) as dev:
        for number in range(SERVICES):
            dev.push(f"s{number}.yaml", service_file(number))
            if number < args.up_services:
                dev.cli("up", f"s{number}")
        rows = wait_for("1,000 task rows", 60, lambda: len(dev.status(f"s{SERVICES - 1}")) == JOBS * TASKS)
        assert rows
        # Warm up (the first read fills caches), then measure.
        times_ms(dev.url + "/", 3)
        page, body = times_ms(dev.url + "/", args.rounds)
        shown = body.count(b"<tr data-task=")
        assert shown == SERVICES * JOBS * TASKS, f"the page lists {shown} tasks"
        status, _ = times_ms(dev.url + "/v1/status?target=s0", args.rounds)
        page_median, page_p95 = summary(page)
        status_median, status_p95 = summary(status)
        state = f"{args.up_services * JOBS * TASKS} running, the rest pushed and not up"
        print(f"GET / with {shown} tasks ({state}): median {page_median:.1f} ms, p95 {page_p95:.1f} ms "
              f"(target {TARGET_MS} ms), page {len(body) / 1024:.0f} KiB")
        print(f"GET /v1/status of one service (100 tasks): median {status_median:.1f} ms, p95 {status_p95:.1f} ms")
        if page_median > TARGET_MS:
            print(f"over the target: median {page_median:.1f} ms > {TARGET_MS} ms")


if __name__ == "__main__":
    main()
