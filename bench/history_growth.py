#!/usr/bin/env python3
"""Benchmark of a long history of large files (see BENCHMARKS.md).

Pushes N different service files of about 1 MiB each (the largest accepted) to a fresh
`coding-job dev`, then measures what a long history costs: the server's resident memory (now
and at its peak) and the data directory's size as versions pile up, and how long the reads
that list history take (`GET /v1/versions`, `/v1/services`, `/v1/history`).

With `--baseline-bin PATH` the same run measures another build first (for instance the previous
commit's, built with `git worktree add /tmp/cj-base HEAD~1 && cargo build --release` there), so
both are measured on the same machine in the same conditions.

usage: bench/history_growth.py [--pushes 150] [--size-kib 1000] [--baseline-bin PATH]
       (builds the release binary first)
"""

import argparse
import os
import statistics
import subprocess
import time
import urllib.request

from common import BIN, Dev, build, rss_mib


def service_file(version, size_kib):
    """A valid service file of about `size_kib` KiB that differs in every version: a large
    comment block (as a team's notes would be) and a job whose environment is 1/10 of it."""
    env_values = size_kib * 1024 // 10
    lines = [f"# release notes of version {version}"]
    lines += [f"# {version:06d} " + "x" * 100 for _ in range((size_kib * 1024 - env_values) // 110)]
    lines += [
        "service: big",
        "jobs:",
        "  - name: app",
        f"    image: app:{version}",
        "    env:",
    ]
    for index in range(env_values // 1100):
        lines.append(f"      VAR_{index}: \"{version}-{'y' * 1080}\"")
    return "\n".join(lines) + "\n"


def dir_mib(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total / (1 << 20)


def get_ms(url, rounds=20):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as answer:
            answer.read()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(binary, args):
    rows = []
    with Dev(binary) as dev:
        pid = dev.process.pid
        push_times = []
        checkpoints = {max(1, args.pushes // 10), args.pushes // 2, args.pushes}
        for version in range(1, args.pushes + 1):
            path = os.path.join(dev.data, "big.yaml")
            with open(path, "w") as f:
                f.write(service_file(version, args.size_kib))
            start = time.perf_counter()
            dev.cli("push", path)
            push_times.append((time.perf_counter() - start) * 1000)
            if version in checkpoints:
                rows.append((version, rss_mib(pid), dir_mib(dev.data)))
        reads = {
            "GET /v1/versions": get_ms(f"{dev.url}/v1/versions?target=big"),
            "GET /v1/services": get_ms(f"{dev.url}/v1/services"),
            "GET /v1/history": get_ms(f"{dev.url}/v1/history?target=big/app"),
        }
        peak = rss_mib(pid, "VmHWM")
        return {
            "rows": rows,
            "push_ms": statistics.median(push_times),
            "reads": reads,
            "peak_rss": peak,
            "final_rss": rss_mib(pid),
        }


def report(name, result):
    print(f"\n{name}")
    print("  after push   server RSS MiB   data dir MiB")
    for version, rss, disk in result["rows"]:
        print(f"  {version:>10}   {rss:>14.1f}   {disk:>12.1f}")
    print(f"  peak RSS {result['peak_rss']:.1f} MiB; push median {result['push_ms']:.1f} ms")
    for read, ms in result["reads"].items():
        print(f"  {read:<18} median {ms:8.1f} ms")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=150)
    parser.add_argument("--size-kib", type=int, default=1000)
    parser.add_argument("--baseline-bin")
    args = parser.parse_args()
    build()
    print(f"{args.pushes} pushes of different {args.size_kib} KiB service files")
    if args.baseline_bin:
        report(f"baseline: {args.baseline_bin}", measure(args.baseline_bin, args))
    report("this build", measure(BIN, args))


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"{error.cmd} failed: {error.stderr}")
