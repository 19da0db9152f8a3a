#!/usr/bin/env python3
"""Benchmark of the event stream (see BENCHMARKS.md, "Events"), on a release `coding-job dev`
with a real container on the real Docker engine.

1. A container's death to an open page: with N subscribers on `GET /v1/events?follow=true`
   (server-sent events, as the web UI's pages subscribe), `docker kill` a task's container
   and time until each subscriber has the `died` event, then until the page's new content
   (`GET /`, what a page fetches on an event) is read. Baseline in the same run: a
   `docker events` subscriber seeing Docker's own `die` event.
2. Memory with N subscribers: the server's RSS idle, with N subscribers, after M changes were
   sent to all of them, and after M more changes while N subscribers read nothing at all
   (their sockets fill; the server must not buffer without bound).

usage: bench/events.py [--subscribers 100] [--changes 500] [--rounds 3] [--binary PATH]
"""

import argparse
import json
import socket
import statistics
import subprocess
import threading
import time

from common import IMAGE, Dev, build, rss_mib, wait_for

SERVICE = f"""service: bench
jobs:
  - name: worker
    image: {IMAGE}
    command: [sleep, "100000"]
"""


class Subscriber:
    """One SSE connection to /v1/events; records when each line arrived."""

    def __init__(self, url, read=True):
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.sock.sendall(
            f"GET /v1/events?follow=true HTTP/1.1\r\nHost: {host}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode())
        self.lines = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        if read:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buffer = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            self.connected.set()
            now = time.perf_counter()
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            with self.lock:
                self.lines.extend((now, line.decode(errors="replace")) for line in complete)

    def first(self, text, after):
        with self.lock:
            for at, line in self.lines:
                if at >= after and line.startswith("data:") and text in line:
                    return at
        return None

    def close(self):
        self.sock.close()


def get(url, path):
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        while sock.recv(65536):
            pass


def docker_die_watcher(cluster):
    """`docker events` for this installation's containers' deaths: Docker's own stream."""
    process = subprocess.Popen(
        ["docker", "events", "--format", "{{json .}}", "--filter", "event=die",
         "--filter", f"label=coding-job.cluster={cluster}"],
        stdout=subprocess.PIPE, text=True)
    seen = []

    def read():
        for line in process.stdout:
            seen.append((time.perf_counter(), json.loads(line)))
    threading.Thread(target=read, daemon=True).start()
    return process, seen


def death_round(dev, subscribers, cluster):
    task = dev.status("bench/worker")[0]
    container, started = task["container_id"], task["started_at"]
    watcher, docker_seen = docker_die_watcher(cluster)
    time.sleep(0.5)  # `docker events` has subscribed once its process is up and idle
    start = time.perf_counter()
    subprocess.run(["docker", "kill", container], check=True, capture_output=True)
    arrivals = wait_for("every subscriber to see the death", 10, lambda: (
        all(s.first("died", start) for s in subscribers)
        and [s.first("died", start) for s in subscribers]))
    get(dev.url, "/")
    page_read = time.perf_counter()
    docker_at = wait_for("docker events to see the death", 10,
                         lambda: docker_seen and docker_seen[0][0])
    watcher.terminate()
    watcher.wait()
    def running_again():
        task = dev.status("bench/worker")[0]
        return task["state"] == "running" and task["started_at"] != started
    wait_for("the worker to run again", 30, running_again)
    last = max(arrivals)
    return {
        "docker_die_s": docker_at - start,
        "sse_p50_s": statistics.median(arrivals) - start,
        "sse_max_s": last - start,
        "page_s": page_read - start,
    }


def push_changes(dev, count):
    """`count` store changes that are events: pushes of a new version each."""
    for i in range(count):
        dev.push("bench.yaml", SERVICE + f"    env: {{ ROUND: \"{i}\" }}\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--binary", help="a release binary built already (no build)")
    args = parser.parse_args()
    if not args.binary:
        build()
    with Dev(**({"binary": args.binary} if args.binary else {})) as dev:
        dev.push("bench.yaml", SERVICE)
        dev.cli("up", "bench")
        pid = dev.process.pid
        idle = rss_mib(pid)
        # The baseline for memory: the same number of changes with nobody subscribed (the
        # store's own caches grow with new versions, subscribers or not).
        push_changes(dev, args.changes)
        unsubscribed = rss_mib(pid)
        print(f"server RSS: idle {idle:.1f} MiB; after {args.changes} changes with no subscriber "
              f"{unsubscribed:.1f} MiB (+{unsubscribed - idle:.1f})")
        idle = unsubscribed
        subscribers = [Subscriber(dev.url) for _ in range(args.subscribers)]
        for s in subscribers:
            s.connected.wait(10)
        with_subscribers = rss_mib(pid)
        print(f"with {args.subscribers} subscribers connected: {with_subscribers:.1f} MiB "
              f"(+{with_subscribers - idle:.1f})")

        for round_number in range(1, args.rounds + 1):
            result = death_round(dev, subscribers, dev.cluster)
            print(f"round {round_number}: docker events die {result['docker_die_s'] * 1000:.0f} ms; "
                  f"{args.subscribers} subscribers have it: p50 {result['sse_p50_s'] * 1000:.0f} ms, "
                  f"last {result['sse_max_s'] * 1000:.0f} ms; page re-read by "
                  f"{result['page_s'] * 1000:.0f} ms")

        start = time.perf_counter()
        push_changes(dev, args.changes)
        wait_for("every subscriber to see the last push", 60, lambda: all(
            s.first(f"version {2 * args.changes + 1} pushed", start) for s in subscribers))
        after_changes = rss_mib(pid)
        print(f"after {args.changes} changes sent to {args.subscribers} subscribers: "
              f"{after_changes:.1f} MiB (+{after_changes - with_subscribers:.1f}; "
              f"peak {rss_mib(pid, 'VmHWM'):.1f} MiB)")
        for s in subscribers:
            s.close()

        stalled = [Subscriber(dev.url, read=False) for _ in range(args.subscribers)]
        time.sleep(0.5)
        push_changes(dev, args.changes)
        after_stalled = rss_mib(pid)
        print(f"after {args.changes} more changes with {args.subscribers} subscribers that read "
              f"nothing: {after_stalled:.1f} MiB (+{after_stalled - after_changes:.1f}; "
              f"peak {rss_mib(pid, 'VmHWM'):.1f} MiB)")
        for s in stalled:
            s.close()


if __name__ == "__main__":
    main()
