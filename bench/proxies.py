#!/usr/bin/env python3
"""The router against Caddy and nginx as reverse proxies to one backend, in the same run (see
BENCHMARKS.md), over HTTP and HTTPS, then a CPU profile of the router under HTTP load.

The backend: an nginx (`worker_processes 1`, access log off) answering every request with the
same 100-byte body on 127.0.0.1:BACKEND. In front of it, each on its own free ports for HTTP and
HTTPS, all with one self-signed certificate for `*.cj.localhost` (made here with `openssl req
-x509`):

- `coding-job dev --router-listen ... --domain cj.localhost --tls-listen ... --tls-cert C
  --tls-key K`, as it ships: no RUST_LOG, so the `info` filter and the access log are on (its
  log goes to a file). Its one routed job (`route: www`, `port: BACKEND`) runs busybox `sleep`
  on the host's network, so the route's backend is 127.0.0.1:BACKEND: the same nginx the others
  proxy. Its process is the server too, so its CPU includes the server's (idle but for the
  route table it streams).
- `coding-job router`, a process of its own following that `dev` (`--server`), once as it ships
  (access log on, into a file) and once with `--no-access-log`: the router's CPU alone.
- nginx as reverse proxy (`proxy_pass` to an upstream with `keepalive 32`,
  `proxy_http_version 1.1`, `worker_processes auto`, access log off).
- Caddy (`reverse_proxy`, `admin off`, `auto_https off`, `tls C K` on the HTTPS site, its
  logging as by default: no access log).

Each is measured with `wrk -t2 -c32 -dDURATION --latency -H 'Host: www.cj.localhost'`, over
HTTP and HTTPS, in rounds that alternate the order (the direct backend is a baseline row, HTTP
only). wrk takes the TLS name (SNI) from the URL's host, and `www.cj.localhost` does not resolve
here, so the URL is `http(s)://www.cj.localhost:PORT/` and a small wrk script resolves that
name to 127.0.0.1 (no hosts file involved). Printed: medians of requests/s and p99, and the
proxy's CPU time per 1,000 requests (utime + stime of the process and its children, from
/proc/PID/stat, before and after each run).

Then, unless --no-profile, `perf record -g` of the router under the same HTTP load (the
`coding-job router --no-access-log` process, then `dev` as it ships), summarized by self time:
hyper, tokio, the router's own code, TLS, logging, allocation, the kernel.

usage: bench/proxies.py [--rounds 3] [--duration 10] [--profile-seconds 10] [--no-profile] [--binary PATH]
Cleans up every process, its container and temporary files even on failure, Ctrl-C or SIGTERM.
"""

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

from common import IMAGE, MEASURED, add_binary_argument, free_port, prepare, run, wait_for

DOMAIN = "cj.localhost"
ROUTE_HOST = f"www.{DOMAIN}"
BODY = ("0123456789" * 10).encode()  # 100 bytes
START_DEADLINE = 30
SERVE_DEADLINE = 60
CLK_TCK = os.sysconf("SC_CLK_TCK")

# wrk takes SNI from the URL's host; this resolves that host to loopback without /etc/hosts.
WRK_SCRIPT = """
function wrk.resolve(host, service)
   wrk.addrs = wrk.lookup("127.0.0.1", service)
end
"""


# --- processes -------------------------------------------------------------------------------

class Processes:
    """Every process this benchmark starts, ended (TERM, then KILL) in reverse order."""

    def __init__(self):
        self.started = []

    def start(self, name, args, log, **kwargs):
        out = open(log, "ab")
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs)
        out.close()
        process.name = name
        process.log = log
        self.started.append(process)
        return process

    def stop(self, process):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)

    def stop_all(self):
        for process in reversed(self.started):
            try:
                self.stop(process)
            except Exception as error:
                print(f"cleanup: stopping {process.name} failed: {error}", file=sys.stderr)


def check_alive(process):
    if process.poll() is not None:
        with open(process.log, errors="replace") as f:
            tail = f.read()[-2000:]
        raise RuntimeError(f"{process.name} exited with {process.returncode}:\n{tail}")


def tree(pid):
    """`pid` and its descendants (nginx's workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def cpu_seconds(pid):
    """utime + stime of `pid` and its live descendants, in seconds."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def get(port, tls=False, host=ROUTE_HOST):
    """One GET /: (status, body), or None when it failed."""
    try:
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            sock = context.wrap_socket(sock, server_hostname=host)
            connection = http.client.HTTPSConnection(host, port, timeout=2, context=context)
            connection.sock = sock
        else:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/", headers={"Host": host})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()
    except (OSError, http.client.HTTPException):
        return None


def serves_body(port, tls=False):
    return get(port, tls) == (200, BODY)


# --- the backend and the proxies -------------------------------------------------------------

def nginx_config(tmp, name, http_block, workers):
    prefix = os.path.join(tmp, name)
    os.makedirs(prefix, exist_ok=True)
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(f"""daemon off;
master_process on;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
{http_block}
}}
""")
    return prefix, path


def start_backend(processes, tmp, port):
    block = f"""    server {{
        listen 127.0.0.1:{port};
        default_type text/plain;
        location / {{ return 200 "{BODY.decode()}"; }}
    }}"""
    prefix, conf = nginx_config(tmp, "backend", block, 1)
    process = processes.start("backend nginx", ["nginx", "-p", prefix, "-c", conf, "-e", f"{prefix}/error.log"],
                              os.path.join(prefix, "out.log"))
    wait_for("the backend nginx", START_DEADLINE, lambda: check_alive(process) or serves_body(port))
    return process


def start_nginx_proxy(processes, tmp, backend, http_port, tls_port, cert, key):
    block = f"""    upstream backend {{
        server 127.0.0.1:{backend};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{tls_port} ssl;
        server_name {ROUTE_HOST} *.{DOMAIN};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}"""
    prefix, conf = nginx_config(tmp, "proxy-nginx", block, "auto")
    process = processes.start("nginx proxy", ["nginx", "-p", prefix, "-c", conf, "-e", f"{prefix}/error.log"],
                              os.path.join(prefix, "out.log"))
    wait_for("the nginx proxy", START_DEADLINE,
             lambda: check_alive(process) or (serves_body(http_port) and serves_body(tls_port, True)))
    return process


def start_caddy(processes, tmp, backend, http_port, tls_port, cert, key):
    prefix = os.path.join(tmp, "caddy")
    os.makedirs(prefix, exist_ok=True)
    caddyfile = os.path.join(prefix, "Caddyfile")
    with open(caddyfile, "w") as f:
        f.write(f"""{{
    admin off
    auto_https off
}}

http://:{http_port} {{
    bind 127.0.0.1
    reverse_proxy 127.0.0.1:{backend}
}}

https://:{tls_port} {{
    bind 127.0.0.1
    tls {cert} {key}
    reverse_proxy 127.0.0.1:{backend}
}}
""")
    env = dict(os.environ, XDG_DATA_HOME=os.path.join(prefix, "data"), XDG_CONFIG_HOME=os.path.join(prefix, "config"),
               HOME=prefix)
    process = processes.start("caddy", ["caddy", "run", "--config", caddyfile, "--adapter", "caddyfile"],
                              os.path.join(prefix, "out.log"), env=env)
    wait_for("caddy", START_DEADLINE,
             lambda: check_alive(process) or (serves_body(http_port) and serves_body(tls_port, True)))
    return process


class DevWithRouter:
    """`coding-job dev` with its router on HTTP and HTTPS, as it ships (no RUST_LOG: access log
    on, into a file), and one routed job whose backend is the nginx on 127.0.0.1:BACKEND."""

    def __init__(self, processes, tmp, backend, cert, key):
        self.processes, self.tmp, self.backend, self.cert, self.key = processes, tmp, backend, cert, key
        self.binary = MEASURED[0]
        self.cluster = None

    def start(self):
        self.data = os.path.join(self.tmp, "dev-data")
        os.makedirs(self.data)
        api = f"127.0.0.1:{free_port()}"
        self.http, self.tls = free_port(), free_port()
        self.env = dict(os.environ, CODING_JOB_SERVER=f"http://{api}")
        self.env.pop("RUST_LOG", None)
        self.out = os.path.join(self.tmp, "dev.out")
        self.log = os.path.join(self.tmp, "dev.log")
        open(self.out, "w").close()
        err = open(self.log, "ab")
        try:
            self.process = subprocess.Popen(
                [self.binary, "dev", "--data-dir", self.data, "--listen", api,
                 "--router-listen", f"127.0.0.1:{self.http}", "--domain", DOMAIN,
                 "--tls-listen", f"127.0.0.1:{self.tls}", "--tls-cert", self.cert, "--tls-key", self.key],
                stdout=open(self.out, "w"), stderr=err, stdin=subprocess.DEVNULL, env=self.env)
        finally:
            err.close()
        self.process.name, self.process.log = "coding-job dev", self.log
        self.processes.started.append(self.process)

        def cluster():
            check_alive(self.process)
            with open(self.out) as f:
                found = re.search(r"cluster id:\s+(\S+)", f.read())
            return found and found.group(1)
        self.cluster = wait_for("`coding-job dev` to start", START_DEADLINE, cluster)
        path = os.path.join(self.tmp, "bench.yaml")
        with open(path, "w") as f:
            f.write(f"""service: bench
jobs:
  - name: web
    image: {IMAGE}
    port: {self.backend}
    route: www
    drain_timeout: 0s
    command: [sleep, "1000000"]
""")
        self.cli("push", path)
        self.cli("up", "bench")
        wait_for("the route to reach the backend", SERVE_DEADLINE,
                 lambda: check_alive(self.process) or (serves_body(self.http) and serves_body(self.tls, True)))
        return self

    def cli(self, *args):
        return run([self.binary, *args], env=self.env, timeout=120).stdout

    def start_router(self, name, access_log):
        """`coding-job router` following this dev's table, on its own ports."""
        http_port, tls_port = free_port(), free_port()
        args = [self.binary, "router", "--listen", f"127.0.0.1:{http_port}", "--domain", DOMAIN,
                "--tls-listen", f"127.0.0.1:{tls_port}", "--tls-cert", self.cert, "--tls-key", self.key,
                "--name", name]
        if not access_log:
            args.append("--no-access-log")
        env = dict(self.env)
        process = self.processes.start(name, args, os.path.join(self.tmp, f"{name}.log"), env=env)
        wait_for(name, START_DEADLINE,
                 lambda: check_alive(process) or (serves_body(http_port) and serves_body(tls_port, True)))
        return process, http_port, tls_port

    def cleanup(self):
        if self.cluster is None:
            return
        try:
            if self.process.poll() is None:
                self.cli("down", "bench")
        except Exception as error:
            print(f"cleanup: `down bench` failed ({error}); removing its containers", file=sys.stderr)
        self.processes.stop(self.process)
        label = f"label=coding-job.cluster={self.cluster}"
        ids = run(["docker", "ps", "-aq", "--filter", label], timeout=60).stdout.split()
        if ids:
            run(["docker", "rm", "-f", *ids], timeout=120)


# --- wrk -------------------------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def milliseconds(text):
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()
    return float(number) * UNITS[unit]


def wrk(url, duration, script):
    args = ["wrk", "-t2", "-c32", f"-d{duration}s", "--latency", "-H", f"Host: {ROUTE_HOST}", "-s", script, url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60)
    out = done.stdout
    if done.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk {url} exited with {done.returncode}: {(done.stderr + out).strip()[-300:]}")
    percentiles = {int(p): milliseconds(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.M)}
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": percentiles[50], "p99": percentiles[99],
        "errors": sum(map(int, errors.groups())) if errors else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


class Target:
    def __init__(self, name, process, http_port, tls_port, log=None):
        self.name, self.process, self.ports, self.log = name, process, {"http": http_port, "https": tls_port}, log

    def url(self, scheme):
        return f"{scheme}://{ROUTE_HOST}:{self.ports[scheme]}/"


def measure(target, scheme, duration, script, backend_process):
    check_alive(target.process)
    if target.log:
        os.truncate(target.log, 0)  # the access log of the last run: only the disk it takes
    before, backend_before = cpu_seconds(target.process.pid), cpu_seconds(backend_process.pid)
    result = wrk(target.url(scheme), duration, script)
    after, backend_after = cpu_seconds(target.process.pid), cpu_seconds(backend_process.pid)
    if target.log:
        result["log_bytes"] = os.path.getsize(target.log)
    result["cpu_ms_per_1000"] = (after - before) * 1e6 / result["requests"]
    result["backend_cpu_ms_per_1000"] = (backend_after - backend_before) * 1e6 / result["requests"]
    return result


def describe(result):
    text = (f"{result['rps']:9.0f} req/s  p50 {result['p50']:6.2f} ms  p99 {result['p99']:6.2f} ms  "
            f"CPU {result['cpu_ms_per_1000']:5.1f} ms/1000 (backend {result['backend_cpu_ms_per_1000']:4.1f})  "
            f"errors {result['errors']}, non-2xx {result['non2xx']}")
    if "log_bytes" in result:
        text += f", log {result['log_bytes'] / 1e6:.1f} MB"
    return text


def bench(targets, rounds, duration, script, backend_process):
    runs = [(target, scheme) for scheme in ("http", "https") for target in targets if target.ports[scheme]]
    print(f"\nwarm-up (2 s each, not counted)", flush=True)
    for target, scheme in runs:
        wrk(target.url(scheme), 2, script)
    results = {(target.name, scheme): [] for target, scheme in runs}
    for r in range(rounds):
        for scheme in ("http", "https"):
            order = [target for target in targets if target.ports[scheme]]
            if r % 2:
                order.reverse()
            print(f"\nround {r + 1}, {scheme.upper()}", flush=True)
            for target in order:
                result = measure(target, scheme, duration, script, backend_process)
                results[(target.name, scheme)].append(result)
                print(f"  {target.name:42} {describe(result)}", flush=True)
    print(f"\nmedians of {rounds} rounds (wrk -t2 -c32 -d{duration}s; CPU: the proxy's process tree)")
    print(f"  {'':42} {'':5} {'req/s':>9} {'p99 ms':>8} {'CPU ms/1000':>12}  errors")
    best = {}
    for target, scheme in runs:
        rs = results[(target.name, scheme)]
        row = {key: statistics.median(r[key] for r in rs) for key in ("rps", "p99", "cpu_ms_per_1000")}
        errors = sum(r["errors"] + r["non2xx"] for r in rs)
        print(f"  {target.name:42} {scheme:5} {row['rps']:9.0f} {row['p99']:8.2f} {row['cpu_ms_per_1000']:12.1f}  {errors}")
        if target.name.startswith(("nginx", "Caddy")):
            best[scheme] = max(best.get(scheme, 0), row["rps"])
        results[(target.name, scheme)] = row
    for scheme in ("http", "https"):
        if scheme not in best:
            continue
        for target in targets:
            if target.name.startswith(("router", "dev")) and (target.name, scheme) in results:
                ratio = results[(target.name, scheme)]["rps"] / best[scheme]
                print(f"  {scheme.upper():5} {target.name}: {ratio:.2f} of the best of nginx and Caddy "
                      f"({'within' if ratio >= 0.9 else 'not within'} 10%)")
    return results


# --- perf ------------------------------------------------------------------------------------

GROUPS = [
    ("kernel (syscalls, TCP, scheduling)", lambda obj, sym: obj.startswith("[kernel") or sym.startswith("[k]")),
    ("allocation (malloc/free, Vec/String growth)",
     lambda obj, sym: re.search(r"malloc|free\b|_int_free|cfree|realloc|calloc|alloc::raw_vec|__rust_alloc|"
                                r"__rust_dealloc|_int_realloc|tcache|unlink_chunk|consolidate", sym)),
    ("copies (memcpy/memmove/memset)", lambda obj, sym: re.search(r"mem(cpy|move|set)|__memcmp|bcmp", sym)),
    ("TLS (rustls, ring/aws-lc crypto)", lambda obj, sym: re.search(r"rustls|\bring\b|ring::|aws_lc|aes|gcm|chacha|poly1305|sha", sym, re.I)),
    ("logging (tracing, tracing_subscriber, fmt)",
     lambda obj, sym: re.search(r"tracing|core::fmt|fmt::write|Formatter|nu_ansi|time::format|chrono|Display", sym)),
    ("hyper / http / httparse", lambda obj, sym: re.search(r"hyper|httparse|\bhttp::|http_body|h2::", sym)),
    ("tokio / mio", lambda obj, sym: re.search(r"tokio|mio::", sym)),
    ("the router's own code (cj_router)", lambda obj, sym: re.search(r"cj_router|coding_job|cj_", sym)),
    ("libc other (locks, clock, syscall wrappers)", lambda obj, sym: obj.startswith("libc") or "vdso" in obj),
]


def profile(name, pid, url, seconds, script, tmp):
    """`perf record -g` of `pid` while wrk loads `url`; the top symbols by self time and groups."""
    data = os.path.join(tmp, f"perf-{pid}.data")
    load = subprocess.Popen(["wrk", "-t2", "-c32", f"-d{seconds + 3}s", "-H", f"Host: {ROUTE_HOST}", "-s", script, url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1)
        record = subprocess.run(["perf", "record", "-F", "999", "-g", "-p", str(pid), "-o", data, "--", "sleep", str(seconds)],
                                capture_output=True, text=True, timeout=seconds + 60)
    finally:
        out = load.communicate(timeout=seconds + 60)[0]
    if record.returncode != 0:
        print(f"\nperf record failed for {name}: {record.stderr.strip()[-500:]}")
        return
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,sym", "--stdio", "-g", "none",
                             "--percent-limit", "0"], capture_output=True, text=True, timeout=300).stdout
    rows = []
    for line in report.splitlines():
        found = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if found:
            percent, obj, kind, sym = found.groups()
            if kind == "k":
                obj = "[kernel]"
            rows.append((float(percent), obj, sym.strip()))
    samples = re.search(r"# Samples: (\S+)", report)
    print(f"\nprofile of {name} (pid {pid}), {seconds} s under wrk -t2 -c32 HTTP "
          f"({rps.group(1) if rps else '?'} req/s while perf ran; {samples.group(1) if samples else '?'} samples):")
    print("  top symbols by self time:")
    for percent, obj, sym in rows[:30]:
        print(f"    {percent:6.2f}%  {obj[:18]:18} {sym[:150]}")
    totals = {}
    for percent, obj, sym in rows:
        group = next((label for label, test in GROUPS if test(obj, sym)), "other")
        totals[group] = totals.get(group, 0) + percent
    print("  by group (self time):")
    for group, percent in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"    {percent:6.2f}%  {group}")
    counting = sum(p for p, _, s in rows if re.search(r"stats|Counters|counters|Instant|clock_gettime|__vdso", s))
    print(f"  counting and clocks (stats::*, Instant, clock_gettime): {counting:.2f}%")
    os.remove(data)


# --- main ------------------------------------------------------------------------------------

def certificate(tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN=*.{DOMAIN}",
         "-addext", f"subjectAltName=DNS:*.{DOMAIN},DNS:{DOMAIN}"])
    return cert, key


def uptime():
    with open("/proc/loadavg") as f:
        return "load average " + ", ".join(f.read().split()[:3])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--profile-seconds", type=int, default=10)
    parser.add_argument("--no-profile", action="store_true")
    add_binary_argument(parser)
    args = parser.parse_args()
    # SIGTERM (and SIGHUP) unwind like Ctrl-C, so the cleanup below runs.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(143))
    for tool in ("wrk", "nginx", "caddy", "openssl") + (() if args.no_profile else ("perf",)):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (Debian: apt-get install -y "
                             f"{'linux-perf' if tool == 'perf' else tool})")
    prepare(args)
    print(f"machine: {os.cpu_count()} cores, {uptime()} at the start; "
          f"{subprocess.run(['nginx', '-v'], capture_output=True, text=True).stderr.strip()}, "
          f"caddy {run(['caddy', 'version']).stdout.split()[0]}", flush=True)
    tmp = tempfile.mkdtemp(prefix="cj-bench-proxies-")
    processes = Processes()
    dev = None
    try:
        script = os.path.join(tmp, "resolve.lua")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT)
        cert, key = certificate(tmp)
        backend_port = free_port()
        backend = start_backend(processes, tmp, backend_port)
        dev = DevWithRouter(processes, tmp, backend_port, cert, key).start()
        router_log, router_log_http, router_log_tls = dev.start_router("router-log", access_log=True)
        router, router_http, router_tls = dev.start_router("router-nolog", access_log=False)
        nginx_http, nginx_tls = free_port(), free_port()
        nginx = start_nginx_proxy(processes, tmp, backend_port, nginx_http, nginx_tls, cert, key)
        caddy_http, caddy_tls = free_port(), free_port()
        caddy = start_caddy(processes, tmp, backend_port, caddy_http, caddy_tls, cert, key)
        print(f"backend: nginx at 127.0.0.1:{backend_port}, a {len(BODY)}-byte body; every proxy reaches it "
              f"(dev's route: the task's address 127.0.0.1:{backend_port})", flush=True)
        targets = [
            Target("backend direct (nginx, no proxy)", backend, backend_port, None),
            Target("dev's router, access log on (as shipped)", dev.process, dev.http, dev.tls, dev.log),
            Target("router process, access log on", router_log, router_log_http, router_log_tls, router_log.log),
            Target("router process, --no-access-log", router, router_http, router_tls),
            Target("nginx (proxy_pass, keepalive 32)", nginx, nginx_http, nginx_tls),
            Target("Caddy (reverse_proxy)", caddy, caddy_http, caddy_tls),
        ]
        bench(targets, args.rounds, args.duration, script, backend)
        if not args.no_profile:
            profile("`coding-job router --no-access-log`", router.pid, targets[3].url("http"),
                    args.profile_seconds, script, tmp)
            os.truncate(dev.log, 0)
            profile("`coding-job dev` as shipped (access log on)", dev.process.pid, targets[1].url("http"),
                    args.profile_seconds, script, tmp)
    finally:
        if dev:
            dev.cleanup()
        processes.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmachine: {uptime()} at the end")


if __name__ == "__main__":
    main()
