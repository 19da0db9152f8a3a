#!/usr/bin/env python3
"""Benchmark of code artifacts (see BENCHMARKS.md): how long `coding-job up` takes, until the task
passes its check, for a task whose code comes as an artifact into a fixed image, against the same
task from an image with the code baked in, in the same run.

The code: about 20 MB of files of mixed sizes (half random bytes, half text) in nested
directories, as a gzip tarball served over HTTP by a server in this script. Three ways, each
round in an alternating order, each `up` after a `down` of the one before:

- artifact, cold: the host's artifact cache emptied first, so `up` downloads, checks and unpacks;
- artifact, warm: the artifact already in the cache, so `up` only unpacks it;
- baked: an image built from the fixed image with the same files `COPY`ed in (the usual way).

The job serves the code's index with busybox httpd and has an http check; `up` returns when it
passes. Each run checks the served page, and the files' count inside the container.

usage: bench/artifacts.py [--rounds 5] [--mib 20] [--binary PATH]
Cleans up its `dev`, containers, the baked image and files even on failure or SIGTERM.
"""

import argparse
import hashlib
import http.server
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request

from common import IMAGE, MEASURED, ROOT, Dev, add_binary_argument, free_port, prepare, run, wait_for

BAKED = f"cj-bench/baked-code:{os.getpid()}"
COMMAND_DEADLINE = 180


class ArtifactServer:
    """Serves the files of `directory` over HTTP on loopback, in a thread."""

    def __init__(self, directory):
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args):
                super().__init__(*args, directory=directory)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def make_code(root, total_bytes):
    """Files of 1 KiB to 1 MiB (log-uniform), half random bytes and half hex text, in nested
    directories under `root`, about `total_bytes` in all; returns how many."""
    rng = random.Random(2)
    written, count = 0, 0
    while written < total_bytes:
        size = int(2 ** rng.uniform(10, 20))
        directory = os.path.join(root, "lib", f"m{count % 17}", f"p{count % 5}")
        os.makedirs(directory, exist_ok=True)
        content = os.urandom(size) if count % 2 else os.urandom(size // 2).hex().encode()
        with open(os.path.join(directory, f"f{count}.bin"), "wb") as f:
            f.write(content)
        written += len(content)
        count += 1
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("the code\n")
    return count + 1


def job(port, artifact=None, image=IMAGE):
    """The service file: one task on `port` serving /app, its code from `artifact` (url, sha256)
    or baked into `image`."""
    code = ""
    if artifact:
        code = f'    artifact: {{ url: "{artifact[0]}", sha256: "{artifact[1]}", path: /app }}\n'
    return (f"service: code\njobs:\n  - name: api\n    image: {image}\n    port: {port}\n{code}"
            f"    command: [httpd, -f, -p, \"{port}\", -h, /app]\n"
            f"    check: {{ http: /index.html, interval: 1s, timeout: 1s }}\n")


def served(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as answer:
        return answer.read().decode().strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mib", type=int, default=20, help="the code's size, uncompressed")
    add_binary_argument(parser)
    args = parser.parse_args()
    # A SIGTERM unwinds like an exception, so that everything is cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    prepare(args)
    commit = run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT).stdout.strip()
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"build {commit}, binary {MEASURED[0]}, {os.cpu_count()} cores, load {load}", flush=True)

    work = tempfile.mkdtemp(prefix="cj-bench-artifacts-")
    server = None
    try:
        code = os.path.join(work, "code")
        files = make_code(code, args.mib << 20)
        served_dir = os.path.join(work, "served")
        os.makedirs(served_dir)
        tarball = os.path.join(served_dir, "api-1.tar.gz")
        with tarfile.open(tarball, "w:gz") as archive:
            for name in sorted(os.listdir(code)):
                archive.add(os.path.join(code, name), arcname=name)
        with open(tarball, "rb") as f:
            sha256 = hashlib.sha256(f.read()).hexdigest()
        size = os.path.getsize(tarball)
        print(f"code: {files} files, {args.mib} MiB; tarball {size / 1e6:.1f} MB", flush=True)
        server = ArtifactServer(served_dir)

        with open(os.path.join(work, "Dockerfile"), "w") as f:
            f.write(f"FROM {IMAGE}\nCOPY code /app\n")
        start = time.perf_counter()
        run(["docker", "build", "-q", "-t", BAKED, work], timeout=COMMAND_DEADLINE)
        print(f"baked image built in {time.perf_counter() - start:.1f} s (not counted)", flush=True)

        port = free_port()
        artifact = (f"{server.url}/api-1.tar.gz", sha256)
        files_ = {"cold": job(port, artifact), "warm": job(port, artifact), "baked": job(port, image=BAKED)}
        times = {way: [] for way in files_}
        with Dev() as dev:
            cache = os.path.join(dev.data, "artifacts")
            for round_ in range(args.rounds):
                order = ["cold", "warm", "baked"] if round_ % 2 == 0 else ["baked", "cold", "warm"]
                for way in order:
                    dev.push("code.yaml", files_[way])
                    if way == "cold":
                        shutil.rmtree(cache, ignore_errors=True)
                    run(["sync"])
                    start = time.perf_counter()
                    dev.cli("up", "code")
                    took = time.perf_counter() - start
                    page = wait_for("the page", 10, lambda: served(port))
                    assert page == "the code", page
                    task = dev.status("code/api")[0]
                    counted = run(["docker", "exec", task["container_id"], "sh", "-c",
                                   "find /app -type f | wc -l"]).stdout.strip()
                    assert int(counted) == files, (counted, files)
                    times[way].append(took)
                    print(f"round {round_ + 1} {way}: {took:.2f} s", flush=True)
                    dev.cli("down", "code")
        for way, values in times.items():
            print(f"{way}: median {statistics.median(values):.2f} s "
                  f"({min(values):.2f}-{max(values):.2f}) of {len(values)}", flush=True)
        baked = statistics.median(times["baked"])
        for way in ("cold", "warm"):
            print(f"{way} / baked: {statistics.median(times[way]) / baked:.2f}x", flush=True)
    except subprocess.CalledProcessError as error:
        sys.exit(f"{' '.join(error.cmd)} failed ({error.returncode}): {error.stderr}")
    finally:
        if server:
            server.close()
        subprocess.run(["docker", "rmi", "-f", BAKED], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
