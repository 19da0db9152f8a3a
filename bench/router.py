#!/usr/bin/env python3
"""Benchmarks of `dev`'s router (see BENCHMARKS.md), each against its named baseline in the same run.

1. Throughput and added latency: `wrk --latency` against the router (`Host: www.cj.localhost`,
   a 3-task busybox httpd job behind it) and against one of those tasks directly at
   127.0.0.1:PORT (the baseline), in rounds alternating which goes first: 2 threads and 32
   connections for the throughput, 1 thread and 1 connection for the latency a request gets
   with nothing queued. wrk's socket errors and non-2xx answers are reported, and so are the
   kernel's listen-queue overflows and SYN retransmissions during each run, since busybox httpd
   listens with a backlog of 9 and closes every connection after one answer.
2. A rolling update under load: a paced load generator sends 1,000 GET/s through the router
   (asyncio, raw sockets, open loop: a late answer does not delay the next request) on
   kept-alive connections (with --new-connections, then again with a new connection per
   request); each request is ok (200) or failed (anything else, connection errors and 5 s
   timeouts included). One second into the load a changed RELEASE is pushed and `coding-job
   rolling-update site` runs; when the route has served only the new release for 200 answers
   in a row, the load goes on 2 s more. Printed by second: latency, failures, the route's
   backends as the server's table changed, container events, checks found unhealthy, and the
   longest accept queues of the router's and the tasks' sockets.

usage: bench/router.py [--rounds 3] [--duration 10] [--rate 1000] [--only wrk|rollout] [--new-connections]
Cleans up its `dev` (after `coding-job down`), containers and files even on failure or SIGTERM.
"""

import argparse
import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

from common import IMAGE, Dev, add_binary_argument, docker_time, free_port, prepare, run, wait_for

DOMAIN = "cj.localhost"
ROUTE_HOST = f"www.{DOMAIN}"
# Deadlines, in seconds.
START_DEADLINE = 30
COMMAND_DEADLINE = 120
SERVE_DEADLINE = 60
REQUEST_TIMEOUT = 5


def web_yaml(release):
    return f"""service: site
jobs:
  - name: web
    image: {IMAGE}
    instances: 3
    port: auto
    route: www
    drain_timeout: 1s
    env: {{ RELEASE: "{release}" }}
    command: [sh, -c, 'mkdir -p /tmp/www && echo "release $RELEASE" > /tmp/www/index.html && exec httpd -f -p "$PORT" -h /tmp/www']
    check: {{ http: /, interval: 1s, timeout: 1s, retries: 2 }}
    update: {{ batch_size: 1, min_healthy_time: 1s }}
"""


class RouterDev(Dev):
    """`common.Dev` with the router on, a deadline on every wait, and `down` of its services
    before it stops."""

    def __init__(self):
        self.router = ("127.0.0.1", free_port())
        super().__init__(args=["--router-listen", "%s:%d" % self.router, "--domain", DOMAIN])
        self.services = []

    def __enter__(self):
        self.process = self.cluster = None
        killer = threading.Timer(START_DEADLINE, lambda: self.process and self.process.kill())
        killer.start()
        try:
            super().__enter__()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        finally:
            killer.cancel()
        return self

    def cli(self, *args, timeout=COMMAND_DEADLINE):
        return run([self.binary, *args], env=self.env, timeout=timeout).stdout

    def __exit__(self, *exc):
        for service in self.services:
            try:
                self.cli("down", service, timeout=60)
            except Exception as error:
                print(f"cleanup: `down {service}` failed ({error}); removing its containers", file=sys.stderr)
        if self.process:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        if self.cluster:
            label = f"label=coding-job.cluster={self.cluster}"
            ids = run(["docker", "ps", "-aq", "--filter", label], timeout=60).stdout.split()
            if ids:
                run(["docker", "rm", "-f", *ids], timeout=120)
        shutil.rmtree(getattr(self, "data", ""), ignore_errors=True)

    def route(self):
        """The route as the router's status page shows it: backends, counters."""
        connection = http.client.HTTPConnection(*self.router, timeout=5)
        try:
            connection.request("GET", "/", headers={"Host": DOMAIN, "Accept": "application/json"})
            page = json.loads(connection.getresponse().read())
        finally:
            connection.close()
        return next(route for route in page["routes"] if route["name"] == "www")

    def route_counts(self):
        return self.route()["counts"]

    def wait_for_all_backends(self):
        wait_for("the 3 tasks to be the route's backends", SERVE_DEADLINE, lambda: self.route()["backends"] == 3)

    def unhealthy_since(self, since):
        """When (wall clock) and which task the job's checks found unhealthy since `since`."""
        history = json.loads(self.cli("history", "site/web", "--json", "--limit", "1000"))
        return sorted((docker_time(event["at"]), event["task"]) for event in history["events"]
                      if event["kind"] == "unhealthy" and docker_time(event["at"]) >= since)


def get(address, host):
    """One GET / with a Host header: (status, body), or None when it failed."""
    connection = http.client.HTTPConnection(*address, timeout=2)
    try:
        connection.request("GET", "/", headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace").strip()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def task_port(container):
    env = json.loads(run(["docker", "inspect", container], timeout=30).stdout)[0]["Config"]["Env"]
    return int(next(item.split("=", 1)[1] for item in env if item.startswith("PORT=")))


def tcp_counters():
    """The kernel's TcpExt counters (all of this machine's loopback traffic is in them)."""
    counters = {}
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        prefix, names = names.split(":", 1)
        counters.update({f"{prefix}{name}": int(value)
                         for name, value in zip(names.split(), values.split(":", 1)[1].split())})
    return counters


def uptime():
    with open("/proc/loadavg") as f:
        return "load average " + ", ".join(f.read().split()[:3])


# --- 1. wrk ---------------------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def milliseconds(text):
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()
    return float(number) * UNITS[unit]


def wrk(url, threads, connections, duration, host=None):
    """One wrk run: its requests/s, latency percentiles (ms), errors, and the kernel's listen
    overflows and SYN retransmissions while it ran."""
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if host:
        args += ["-H", f"Host: {host}"]
    before = tcp_counters()
    done = subprocess.run(args + [url], capture_output=True, text=True, timeout=duration + 60)
    after = tcp_counters()
    out = done.stdout
    if done.returncode != 0 or "Requests/sec" not in out:
        return {"error": f"wrk exited with {done.returncode}: {(done.stderr + out).strip()[-200:]}"}
    percentiles = {int(p): milliseconds(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.M)}
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": percentiles[50], "p99": percentiles[99],
        "max": milliseconds(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out).group(1)),
        "socket_errors": dict(zip(["connect", "read", "write", "timeout"], map(int, errors.groups()))) if errors
        else {"connect": 0, "read": 0, "write": 0, "timeout": 0},
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "overflows": after["TcpExtListenOverflows"] - before["TcpExtListenOverflows"],
        "syn_retrans": after["TcpExtTCPSynRetrans"] - before["TcpExtTCPSynRetrans"],
    }


def describe(result):
    errors = sum(result["socket_errors"].values())
    error_text = "none" if not errors else ", ".join(f"{k} {v}" for k, v in result["socket_errors"].items() if v)
    router = "".join(f", router {k} {v}" for k, v in result.get("router", {}).items())
    return (f"{result['rps']:8.0f} req/s  p50 {result['p50']:7.2f} ms  p99 {result['p99']:8.2f} ms  "
            f"max {result['max']:8.2f} ms  socket errors: {error_text}; non-2xx {result['non2xx']}; "
            f"listen overflows {result['overflows']}, SYN retransmits {result['syn_retrans']}{router}; "
            f"found unhealthy: {', '.join(result['unhealthy']) or 'none'}")


def bench_wrk(dev, direct_port, rounds, duration):
    router_url = "http://%s:%d/" % dev.router
    direct_url = f"http://127.0.0.1:{direct_port}/"
    targets = {"router": (router_url, ROUTE_HOST), "direct": (direct_url, None)}
    loads = [("throughput, -t2 -c32", 2, 32, duration), ("one connection, -t1 -c1", 1, 1, max(duration // 2, 3))]
    # Warm-up, not counted: the first connections, the router's first table lookups.
    for url, host in targets.values():
        wrk(url, 2, 32, 2, host)
    results = {(load[0], target): [] for load in loads for target in targets}
    for r in range(rounds):
        order = ["router", "direct"] if r % 2 == 0 else ["direct", "router"]
        for label, threads, connections, seconds in loads:
            for target in order:
                url, host = targets[target]
                dev.wait_for_all_backends()
                counts_before, since = dev.route_counts(), time.time()
                result = wrk(url, threads, connections, seconds, host)
                result["unhealthy"] = [task for _, task in dev.unhealthy_since(since)]
                if target == "router":
                    counts = dev.route_counts()
                    result["router"] = {k: counts[k] - counts_before[k] for k in ("retries", "failures", "status_5xx")}
                if "error" in result:
                    print(f"round {r + 1}, {label:24} {target:6}: {result['error']}; found unhealthy: "
                          f"{', '.join(result['unhealthy']) or 'none'} (not counted)", flush=True)
                    continue
                result["round"] = r
                results[(label, target)].append(result)
                print(f"round {r + 1}, {label:24} {target:6}: {describe(result)}  ({uptime()})", flush=True)
    print(f"\nwrk: router = {ROUTE_HOST} through the router (3 tasks behind it); direct = one task, 127.0.0.1:{direct_port}")
    for label, *_ in loads:
        router, direct = results[(label, "router")], results[(label, "direct")]
        if not (router and direct):
            print(f"{label}: no complete run on one side")
            continue
        pairs = [(a, b) for a in router for b in direct if a["round"] == b["round"]]
        med = lambda rs, key: statistics.median(r[key] for r in rs)
        added = lambda key: statistics.median(a[key] - b[key] for a, b in pairs) if pairs else float("nan")
        total = lambda rs, f: sum(f(r) for r in rs)
        print(f"{label}, median of {len(router)} / {len(direct)} complete runs (router / direct):")
        for name, rs in [("router", router), ("direct", direct)]:
            errors = {k: total(rs, lambda r: r["socket_errors"][k]) for k in ("connect", "read", "write", "timeout")}
            error_text = ", ".join(f"{k} {v}" for k, v in errors.items() if v) or "none"
            routed = ""
            if name == "router":
                routed = "; the router's " + ", ".join(f"{k} {total(rs, lambda r: r['router'][k])}"
                                                       for k in ("retries", "failures", "status_5xx"))
            print(f"  {name:6}: {med(rs, 'rps'):.0f} req/s, p50 {med(rs, 'p50'):.2f} ms, p99 {med(rs, 'p99'):.2f} ms; "
                  f"over all rounds: {total(rs, lambda r: r['requests'])} requests, socket errors: {error_text}, "
                  f"non-2xx {total(rs, lambda r: r['non2xx'])}, "
                  f"listen overflows {total(rs, lambda r: r['overflows'])}, "
                  f"SYN retransmits {total(rs, lambda r: r['syn_retrans'])}, "
                  f"tasks found unhealthy {total(rs, lambda r: len(r['unhealthy']))}{routed}")
        print(f"  added by the router (median of per-round differences): p50 {added('p50'):+.2f} ms, "
              f"p99 {added('p99'):+.2f} ms; throughput {med(router, 'rps') / med(direct, 'rps'):.2f}x of direct")


# --- 2. a rolling update under load ---------------------------------------------------------

class Load:
    """GET / through the router at a steady `rate` per second, from one asyncio loop in its own
    thread. Open loop: request i is due at start + i / rate whatever happened to the earlier
    ones, and its latency counts from when it was due. With `keep_alive`, connections are kept
    and reused (one more is opened when none is free); otherwise every request has its own.
    At most `MAX_OPEN` connections are open at once: a request due when they are all busy fails
    at once ("client: ... busy"), so a stalled server cannot exhaust the file descriptors."""

    MAX_OPEN = 2000

    def __init__(self, address, host, rate, keep_alive):
        self.address, self.rate, self.keep_alive = address, rate, keep_alive
        self.request = (f"GET / HTTP/1.1\r\nHost: {host}\r\n"
                        + ("" if keep_alive else "Connection: close\r\n") + "\r\n").encode()
        self.stopping = threading.Event()
        self.idle = []
        self.ok = []            # (due, latency from due), s
        self.failures = []      # (due, done, what, on a reused connection)
        self.lateness = []      # when the request started (before any connect) - due, s
        self.connecting = []    # (due, how long opening a connection took), s
        self.bodies = {}
        self.streak = (None, 0)  # the body answered last, and how many times in a row
        self.connections = 0    # opened in all
        self.open = 0           # open now
        self.max_in_flight = 0
        self.error = None
        self.thread = threading.Thread(target=self._thread, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=REQUEST_TIMEOUT + 10)
        if self.thread.is_alive():
            raise RuntimeError("the load generator did not stop")
        if self.error:
            raise self.error

    def serving_only(self, body, count):
        last, streak = self.streak
        return last == body and streak >= count

    def _thread(self):
        try:
            started = time.thread_time()
            asyncio.run(self._main())
            self.cpu_seconds = time.thread_time() - started
        except BaseException as error:
            self.error = error

    async def _main(self):
        tasks = set()
        self.started = time.monotonic()
        sent = 0
        while not self.stopping.is_set():
            due_now = int((time.monotonic() - self.started) * self.rate) + 1
            while sent < due_now:
                task = asyncio.create_task(self._one(self.started + sent / self.rate))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            self.max_in_flight = max(self.max_in_flight, len(tasks))
            await asyncio.sleep(max(0.0, self.started + sent / self.rate - time.monotonic()))
        self.sent = sent
        self.sending_seconds = time.monotonic() - self.started
        if tasks:
            await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT + 2)
        self.finished = time.monotonic()
        self.unfinished = len(tasks)
        for task in list(tasks):
            task.cancel()
        for _, writer in self.idle:
            writer.close()

    async def _one(self, due):
        self.lateness.append(time.monotonic() - due)
        reused = bool(self.keep_alive and self.idle)
        connection = self.idle.pop() if reused else None
        if connection is None:
            if self.open >= self.MAX_OPEN:
                self.failures.append((due, time.monotonic(), f"client: {self.MAX_OPEN} connections open, none free", False))
                self.streak = (None, 0)
                return
            self.open += 1
        try:
            status, body = await asyncio.wait_for(self._exchange(connection, due), REQUEST_TIMEOUT)
        except Exception as error:
            what = type(error).__name__ + (f": {error}" if str(error) else "")
            self.failures.append((due, time.monotonic(), what, reused))
            self.streak = (None, 0)
            return
        done = time.monotonic()
        self.bodies[body] = self.bodies.get(body, 0) + 1
        if status == 200:
            self.ok.append((due, done - due))
            last, streak = self.streak
            self.streak = (body, streak + 1 if body == last else 1)
        else:
            self.failures.append((due, done, f"HTTP {status}: {body[:120]}", reused))
            self.streak = (None, 0)

    async def _exchange(self, connection, due):
        if connection is None:
            try:
                began = time.monotonic()
                connection = await asyncio.open_connection(*self.address)
                self.connecting.append((due, time.monotonic() - began))
            except BaseException:
                self.open -= 1
                raise
            self.connections += 1
        reader, writer = connection
        keep = False
        try:
            writer.write(self.request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                body = b""
                while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    body += (await reader.readexactly(size + 2))[:-2]
                await reader.readuntil(b"\r\n")
            else:
                body = await reader.read()
            keep = self.keep_alive and headers.get("connection", "").lower() != "close"
            return status, body.decode(errors="replace").strip()
        finally:
            if keep:
                self.idle.append(connection)
            else:
                writer.close()
                self.open -= 1


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] if values else float("nan")


class Timeline:
    """What happened while the load ran, on this process's monotonic clock: the route's backends
    in each table the server sent (`GET /v1/routes?watch=true`, the table `dev`'s router follows),
    Docker's events for the cluster's containers, and the accept queues of the router's and the
    tasks' listening sockets (`ss -ltn` every 200 ms: connections the kernel has completed and
    the server has not accepted yet)."""

    def __init__(self, dev):
        self.dev = dev
        self.tables = []   # (time, generation, the route's backend ports)
        self.events = []   # (time, action, container name)
        self.unhealthy = []  # (time, task): the job's check found the task unhealthy
        self.queues = []   # (time, {port: accept queue length})
        self.stopping = threading.Event()
        self.wall = time.time() - time.monotonic()

    def start(self):
        self.started = time.monotonic()
        self.docker = subprocess.Popen(
            ["docker", "events", "--filter", f"label=coding-job.cluster={self.dev.cluster}",
             "--filter", "type=container", "--format", "{{json .}}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.routes = http.client.HTTPConnection(self.dev.url.removeprefix("http://"), timeout=10)
        self.routes.request("GET", "/v1/routes?watch=true")
        self.routes_response = self.routes.getresponse()
        self.routes.sock.settimeout(None)
        self.threads = [threading.Thread(target=target, daemon=True)
                        for target in (self._docker, self._routes, self._queues)]
        for thread in self.threads:
            thread.start()
        return self

    def _docker(self):
        for line in self.docker.stdout:
            event = json.loads(line)
            if event.get("Action") in ("start", "kill", "die"):
                name = event["Actor"]["Attributes"].get("name", "?").split("_")[0]
                self.events.append((event["timeNano"] / 1e9 - self.wall, event["Action"], name))

    def _queues(self):
        while not self.stopping.wait(0.2):
            out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, timeout=5).stdout
            queues = {}
            for line in out.splitlines():
                fields = line.split()
                if len(fields) >= 4 and fields[0] == "LISTEN":
                    queues[int(fields[3].rsplit(":", 1)[1])] = int(fields[1])
            self.queues.append((time.monotonic(), queues))

    def queue_max(self, port, start, end):
        return max((queues.get(port, 0) for at, queues in self.queues if start <= at < end), default=0)

    def _routes(self):
        try:
            while line := self.routes_response.readline():
                table = json.loads(line)
                ports = sorted(int(b["address"].rsplit(":", 1)[1]) for route in table["routes"]
                               if route["name"] == "www" for b in route["backends"])
                self.tables.append((time.monotonic(), table["generation"], ports))
        except Exception:
            pass  # the connection closed by `stop`

    def stop(self):
        try:
            self.unhealthy = [(at - self.wall, task) for at, task in self.dev.unhealthy_since(self.wall + self.started)]
        except Exception as error:
            print(f"cannot read the job's history: {error}", file=sys.stderr)
            self.unhealthy = []
        self.stopping.set()
        self.docker.terminate()
        try:
            self.docker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.docker.kill()
            self.docker.wait(timeout=10)
        try:
            self.routes.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.routes.close()
        for thread in self.threads:
            thread.join(timeout=10)

    def between(self, start, end):
        """What happened in [start, end): table changes (only when the route's backends change)
        and container events, in order."""
        happened = []
        previous = None
        for at, _, ports in self.tables:
            if ports != previous and start <= at < end:
                happened.append((at, "backends " + (",".join(map(str, ports)) or "none")))
            previous = ports
        happened += [(at, f"{action} {name}") for at, action, name in self.events if start <= at < end]
        happened += [(at, f"unhealthy {task}") for at, task in self.unhealthy if start <= at < end]
        return sorted(happened)


def bench_rollout(dev, release, keep_alive, rate):
    mode = "kept-alive connections" if keep_alive else "a new connection per request"
    dev.wait_for_all_backends()
    counts_before, tcp_before = dev.route_counts(), tcp_counters()
    timeline = Timeline(dev).start()
    load = Load(dev.router, ROUTE_HOST, rate, keep_alive).start()
    new_body = f"release {release}"
    served = problem = None
    try:
        time.sleep(1)
        dev.push("site.yaml", web_yaml(release))
        update_started = time.monotonic()
        dev.cli("rolling-update", "site")
        update_ended = time.monotonic()
        try:
            wait_for(f"the route to serve only {new_body}", SERVE_DEADLINE,
                     lambda: load.error or load.serving_only(new_body, 200), interval=0.05)
            served = time.monotonic()
            time.sleep(2)
        except RuntimeError as error:
            # Report what the load saw before failing.
            problem = error
            print(f"\n{error}; the tasks now:\n{dev.cli('status', 'site')}", flush=True)
    finally:
        try:
            load.stop()
        finally:
            timeline.stop()
    counts_after, tcp_after = dev.route_counts(), tcp_counters()
    router_delta = {k: counts_after[k] - counts_before[k] for k in counts_after}

    failed = len(load.failures) + load.unfinished
    total = len(load.ok) + failed
    achieved = total / load.sending_seconds
    at = lambda t: t - update_started
    latencies = [latency for _, latency in load.ok]
    print(f"\nrolling update under load, {mode}: target {rate} req/s")
    print(f"  {total} requests in {load.sending_seconds:.1f} s: achieved {achieved:.0f} req/s "
          f"(started late by p99 {percentile(load.lateness, 99) * 1000:.1f} ms, max {max(load.lateness) * 1000:.0f} ms; "
          f"at most {load.max_in_flight} in flight; {load.connections} connections opened; "
          f"load generator CPU {load.cpu_seconds / (load.finished - load.started) * 100:.0f}% of a core)")
    print(f"  ok {len(load.ok)}, failed {failed} (target 0)"
          + (f", of which {load.unfinished} unanswered when the load stopped" if load.unfinished else ""))
    print(f"  latency of the ok ones (from when due): p50 {percentile(latencies, 50) * 1000:.2f} ms, "
          f"p99 {percentile(latencies, 99) * 1000:.2f} ms, max {max(latencies, default=float('nan')) * 1000:.0f} ms")
    print(f"  `coding-job rolling-update site` took {update_ended - update_started:.2f} s; "
          + (f"only {new_body} served {at(served):.2f} s after it began" if served
             else f"the route never served only {new_body}"))
    print(f"  answers by body: {dict(sorted(load.bodies.items()))}")
    print(f"  the router's counters for the route over this run: {router_delta}")
    print(f"  tasks the check found unhealthy (and restarted): {', '.join(task for _, task in timeline.unhealthy) or 'none'}")
    print(f"  kernel: listen overflows {tcp_after['TcpExtListenOverflows'] - tcp_before['TcpExtListenOverflows']}, "
          f"SYN retransmits {tcp_after['TcpExtTCPSynRetrans'] - tcp_before['TcpExtTCPSynRetrans']}")
    # Each second of the run by when requests were due: how many, failed, latency.
    connects = [seconds for _, seconds in load.connecting]
    print(f"  opening a connection to the router: p50 {percentile(connects, 50) * 1000:.2f} ms, "
          f"p99 {percentile(connects, 99) * 1000:.2f} ms, max {max(connects, default=float('nan')) * 1000:.0f} ms")
    ports = sorted({port for _, _, table in timeline.tables for port in table})
    print("  by second (from the start of `rolling-update`): due / failed / p50 / p99 / max latency (ms) / "
          "p99 of opening a connection (ms) / the longest accept queue seen: router, tasks "
          f"({', '.join(map(str, ports))}); the route's backends (ports) as the server's table changed, "
          "container events")
    first = int((load.started - update_started) // 1)
    last = int((load.started + load.sending_seconds - update_started) // 1)
    for second in range(first, last + 1):
        in_second = lambda due: second <= at(due) < second + 1
        lat = [latency * 1000 for due, latency in load.ok if in_second(due)]
        bad = sum(1 for due, *_ in load.failures if in_second(due))
        start, end = update_started + second, update_started + second + 1
        happened = [f"{what} {at(t):+.2f}" for t, what in timeline.between(start, end)]
        connect = percentile([seconds * 1000 for due, seconds in load.connecting if in_second(due)], 99)
        queues = "/".join(str(timeline.queue_max(port, start, end)) for port in ports)
        print(f"    {second:+3d} s: {len(lat) + bad:5} / {bad:4} / {percentile(lat, 50):7.1f} / "
              f"{percentile(lat, 99):7.1f} / {max(lat, default=float('nan')):7.1f} / {connect:7.1f} / "
              f"{timeline.queue_max(dev.router[1], start, end):4} {queues:11}  {'; '.join(happened)}")
    if load.failures:
        kinds = {}
        for _, _, what, reused in load.failures:
            kinds[(what, reused)] = kinds.get((what, reused), 0) + 1
        print("  failures by kind:")
        for (what, reused), count in sorted(kinds.items(), key=lambda kv: -kv[1]):
            print(f"    {count:5} x {what} ({'a reused' if reused else 'a new'} connection)")
        print("  first failures (due, ended; from the start of `rolling-update`):")
        for due, done, what, reused in load.failures[:10]:
            print(f"    due {at(due):+7.3f} s, ended {at(done):+7.3f} s: {what}")
    if problem:
        raise problem
    return {"total": total, "achieved": achieved, "failed": failed,
            "update_seconds": update_ended - update_started}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds of each -c32 wrk run")
    parser.add_argument("--rate", type=int, default=1000, help="requests/s during the rolling update")
    parser.add_argument("--only", choices=["wrk", "rollout"])
    parser.add_argument("--new-connections", action="store_true",
                        help="a second rolling update with a new connection per request")
    add_binary_argument(parser)
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the cleanup below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    prepare(args)
    print(f"machine: {os.cpu_count()} cores, {uptime()} at the start", flush=True)
    with RouterDev() as dev:
        dev.services.append("site")
        dev.push("site.yaml", web_yaml(1))
        dev.cli("up", "site")
        wait_for("the route to serve release 1", SERVE_DEADLINE,
                 lambda: get(dev.router, ROUTE_HOST) == (200, "release 1"))
        if args.only in (None, "wrk"):
            tasks = sorted(dev.status("site"), key=lambda task: task["task"])
            direct = task_port(tasks[0]["container_id"])
            print(f"direct baseline: task {tasks[0]['task']} at 127.0.0.1:{direct}", flush=True)
            bench_wrk(dev, direct, args.rounds, args.duration)
        if args.only in (None, "rollout"):
            bench_rollout(dev, 2, True, args.rate)
            if args.new_connections:
                bench_rollout(dev, 3, False, args.rate)
    print(f"\nmachine: {uptime()} at the end")


if __name__ == "__main__":
    main()
