#!/usr/bin/env python3
"""Benchmarks of environments (see BENCHMARKS.md), each against its named baseline in the same run.

1. env50: the 50-job system of bench/releases.py (5 waves of 10 httpd jobs, each depending on
   two of the wave before, gated on an http check with a 1 s interval), here with `port: auto`,
   pushed to production (which stays down). Timed end to end: `coding-job env create dev-1
   --from production` and `coding-job env up dev-1`, against `docker-compose up -d` of the same
   50 containers on fixed ports (`depends_on: condition: service_healthy`, a healthcheck with the
   same interval). Rounds alternate which goes first; `env destroy` / `down` in between. Each
   coding-job round also times a plain `up` of the same jobs in production, for comparison.
2. seed: a gzip tarball of about 200 MiB of a few thousand files of mixed sizes (content that
   gzip cannot shrink much), unpacked into a job's volume by `coding-job up` before the container
   first starts, against `docker volume create` + `docker create` with the volume mounted +
   `docker cp` of the unpacked directory + `docker start`. Also: coding-job seeding from the
   same files as a plain tar, the docker commands with `docker cp -` of the gzip tarball (the
   same input as the seed), and both without the data (an `up` of the same job with an unseeded
   volume; the docker commands without `cp`), so the cost of the data itself shows. The files
   are counted (and the largest one's MD5 compared) in the volume each time.

usage: bench/environments.py [--only env50|seed] [--rounds N] [--seed-mib 200]
Cleans up its `dev`, containers, volumes and files even on failure or SIGTERM.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from common import BIN, IMAGE, ROOT, Dev, build, free_port, run, wait_for
from releases import compose_environment, environment_ports

BASELINE_LABEL = f"coding-job-bench=environments-{os.getpid()}"
MOUNT = "/var/lib/data"
# Where `port: auto` ports come from: the top of the default range (30000-32767), which another
# `dev` on this machine, allocating from the bottom, does not reach. An allocated port that
# something else already listens on makes the task fail to start again and again.
PORT_RANGE = "32100-32767"
# Deadlines, in seconds.
START_DEADLINE = 30
COMMAND_DEADLINE = 120
UP_DEADLINE = 300
# Compose's healthchecks run `wget` in the container (an exec) every second; 50 of them keep this
# 2-core machine busy, a check then often takes over 1 s, and with bench/releases.py's `timeout: 1s,
# retries: 3` Compose gave up on 6 of 8 attempts (a dependency "is unhealthy"). A longer timeout and
# more retries change nothing while checks pass (a container is healthy at its first passing check,
# every 1 s as before); they only keep a slow check from failing the whole `up`.
COMPOSE_TOLERANCE = {"timeout": "10s", "retries": 10}
# Should Compose still give up, a round is tried this many times (each failure is reported).
COMPOSE_ATTEMPTS = 3


class BoundedDev(Dev):
    """`common.Dev` with a deadline on every wait, and the volumes of its cluster removed too."""

    def __enter__(self):
        self.data = tempfile.mkdtemp(prefix="cj-bench-")
        listen = f"127.0.0.1:{free_port()}"
        self.url = f"http://{listen}"
        self.env = dict(os.environ, CODING_JOB_SERVER=self.url, RUST_LOG="warn")
        self.cluster = None
        self.process = subprocess.Popen([self.binary, "dev", "--data-dir", self.data, "--listen", listen,
                                         "--port-range", PORT_RANGE, *getattr(self, "args", ())],
                                        stdout=subprocess.PIPE, text=True, env=self.env)
        killer = threading.Timer(START_DEADLINE, self.process.kill)
        killer.start()
        try:
            lines = [self.process.stdout.readline() for _ in range(3)]
            if not lines[2].strip().startswith("cluster id:"):
                raise RuntimeError(f"`coding-job dev` did not start within {START_DEADLINE} s: {lines!r}")
            self.cluster = lines[2].split(":", 1)[1].strip()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        finally:
            killer.cancel()
        return self

    def cli(self, *args, timeout=COMMAND_DEADLINE):
        return run([self.binary, *args], env=self.env, timeout=timeout).stdout

    def __exit__(self, *exc):
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
                run(["docker", "rm", "-f", "-v", *ids], timeout=120)
            volumes = run(["docker", "volume", "ls", "-q", "--filter", label], timeout=60).stdout.split()
            if volumes:
                run(["docker", "volume", "rm", "-f", *volumes], timeout=120)
        shutil.rmtree(self.data, ignore_errors=True)


def remove_baseline():
    label = f"label={BASELINE_LABEL}"
    ids = run(["docker", "ps", "-aq", "--filter", label], timeout=60).stdout.split()
    if ids:
        run(["docker", "rm", "-f", *ids], timeout=120)
    volumes = run(["docker", "volume", "ls", "-q", "--filter", label], timeout=60).stdout.split()
    if volumes:
        run(["docker", "volume", "rm", "-f", *volumes], timeout=120)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def median(values):
    return statistics.median(values)


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# 1. env50 ----------------------------------------------------------------------------------

WAVES, PER_WAVE = 5, 10


def job_name(w, i):
    return f"w{w}-j{i}"


def job_deps(w, i):
    return [] if w == 0 else [job_name(w - 1, i), job_name(w - 1, (i + 1) % PER_WAVE)]


def env50_service():
    jobs = []
    for w in range(WAVES):
        for i in range(PER_WAVE):
            job = (f"  - name: {job_name(w, i)}\n    image: {IMAGE}\n    port: auto\n"
                   "    command: [sh, -c, 'exec httpd -f -p \"$PORT\" -h /srv/www']\n"
                   "    check: { http: /health, interval: 1s, timeout: 1s, retries: 3 }\n")
            if job_deps(w, i):
                job += f"    depends_on: [{', '.join(job_deps(w, i))}]\n"
            jobs.append(job)
    return "service: env\njobs:\n" + "".join(jobs)


def http_ok(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def task_ports(container_ids):
    """The `PORT` each container was given."""
    ports = []
    for container in json.loads(run(["docker", "inspect", *container_ids], timeout=60).stdout):
        port = next((line.split("=", 1)[1] for line in container["Config"]["Env"] if line.startswith("PORT=")), None)
        if port is None:
            raise RuntimeError(f"{container['Name']} has no PORT")
        ports.append(int(port))
    return ports


def env_containers(dev, env):
    return run(["docker", "ps", "-aq", "--filter", f"label=coding-job.cluster={dev.cluster}",
                "--filter", f"label=coding-job.env={env}"], timeout=60).stdout.split()


def round_coding_job(dev, env):
    create, _ = timed(dev.cli, "env", "create", env, "--from", "production")
    up, _ = timed(dev.cli, "env", "up", env, "--timeout", "120s", timeout=UP_DEADLINE)
    tasks = json.loads(dev.cli("status", "env", "--env", env, "--json"))
    unhealthy = [t["task"] for t in tasks if t["state"] != "running" or t["health"] != "healthy"]
    if len(tasks) != WAVES * PER_WAVE or unhealthy:
        raise RuntimeError(f"{env}: {len(tasks)} tasks, not healthy: {unhealthy}")
    ports = task_ports([t["container_id"] for t in tasks])
    if len(set(ports)) != len(ports) or not all(http_ok(port) for port in ports):
        raise RuntimeError(f"{env}: not every task answers on its own port: {sorted(ports)}")
    destroy, _ = timed(dev.cli, "env", "destroy", env)
    left = env_containers(dev, env)
    if left:
        raise RuntimeError(f"{env}: {len(left)} containers left after destroy")
    # For comparison: a plain `up` of the same jobs in production, then `down`.
    production, _ = timed(dev.cli, "up", "env", timeout=UP_DEADLINE)
    dev.cli("down", "env", timeout=UP_DEADLINE)
    return {"create": create, "up": up, "total": create + up, "destroy": destroy, "production": production,
            "ports": f"{min(ports)}-{max(ports)}"}


class ComposeFailed(Exception):
    pass


def round_compose(project, compose_file):
    """One `docker-compose up -d` timed, then `down`; raises `ComposeFailed` (after the `down`)
    when Compose gives up, which it does when a healthcheck fails `retries` times in a row."""
    compose = ["docker-compose", "-p", project, "-f", compose_file]
    project_label = f"label=com.docker.compose.project={project}"
    start = time.perf_counter()
    up = subprocess.run([*compose, "up", "-d"], capture_output=True, text=True, timeout=UP_DEADLINE)
    if up.returncode != 0:
        elapsed = time.perf_counter() - start
        unhealthy = sorted({line.split()[2] for line in up.stderr.splitlines()
                            if line.startswith("ERROR: for ") and "is unhealthy" in line})
        run([*compose, "down", "-t", "1"], timeout=UP_DEADLINE)
        if not unhealthy:
            raise RuntimeError(f"docker-compose up -d failed: {up.stderr[-2000:]}")
        raise ComposeFailed(f"gave up after {elapsed:.1f} s: a dependency of {', '.join(unhealthy)} "
                            "was declared unhealthy")
    up = time.perf_counter() - start

    def all_healthy():
        healthy = run(["docker", "ps", "-q", "--filter", project_label, "--filter", "health=healthy"], timeout=60)
        return len(healthy.stdout.split()) == WAVES * PER_WAVE
    # Under the load of 50 healthchecks a second a check may time out and a container show
    # unhealthy for a while; then this is not measured (None).
    try:
        wait_for("every Compose container to be healthy", 30, all_healthy, interval=0.25)
        healthy = time.perf_counter() - start
    except RuntimeError:
        healthy = None
    down, _ = timed(run, [*compose, "down", "-t", "1"], timeout=UP_DEADLINE)
    left = run(["docker", "ps", "-aq", "--filter", project_label], timeout=60).stdout.split()
    if left:
        raise RuntimeError(f"{len(left)} Compose containers left after down")
    return {"up": up, "healthy": healthy, "down": down}


def bench_env50(rounds):
    ports = environment_ports(WAVES, PER_WAVE)
    project = f"cjbenchenv{os.getpid()}"
    compose_dir = tempfile.mkdtemp(prefix="cj-compose-")
    compose_file = os.path.join(compose_dir, "docker-compose.yml")
    environment = compose_environment(ports, job_name, job_deps)
    for service in environment["services"].values():
        service["healthcheck"].update(COMPOSE_TOLERANCE)
    with open(compose_file, "w") as f:
        json.dump(environment, f)
    ours, theirs, compose_failures = [], [], []
    try:
        with BoundedDev() as dev:
            dev.push("env.yaml", env50_service())
            for r in range(rounds):
                order = ["coding-job", "compose"] if r % 2 == 0 else ["compose", "coding-job"]
                for side in order:
                    if side == "coding-job":
                        result = round_coding_job(dev, "dev-1")
                        ours.append(result)
                        print(f"  round {r + 1}: coding-job env create {result['create']:.3f} s + env up "
                              f"{result['up']:.2f} s = {result['total']:.2f} s (ports {result['ports']}); "
                              f"env destroy {result['destroy']:.2f} s; production up {result['production']:.2f} s  "
                              f"[load {load()}]", flush=True)
                    else:
                        for _ in range(COMPOSE_ATTEMPTS):
                            try:
                                result = round_compose(project, compose_file)
                                break
                            except ComposeFailed as failure:
                                compose_failures.append(str(failure))
                                print(f"  round {r + 1}: docker-compose up -d failed, {failure}  [load {load()}]",
                                      flush=True)
                        else:
                            raise RuntimeError(f"docker-compose up -d failed {COMPOSE_ATTEMPTS} times in a row")
                        theirs.append(result)
                        healthy = (f"every container healthy at {result['healthy']:.2f} s" if result["healthy"]
                                   else "not every container healthy at once within 30 s after")
                        print(f"  round {r + 1}: docker-compose up -d {result['up']:.2f} s ({healthy}); "
                              f"down {result['down']:.2f} s  [load {load()}]", flush=True)
    finally:
        subprocess.run(["docker-compose", "-p", project, "-f", compose_file, "down", "-t", "1"],
                       capture_output=True, timeout=UP_DEADLINE)
        shutil.rmtree(compose_dir, ignore_errors=True)
    total = median([r["total"] for r in ours])
    compose_up = median([r["up"] for r in theirs])
    healthy = [r["healthy"] for r in theirs if r["healthy"]]
    compose_healthy = median(healthy) if healthy else float("nan")
    print(f"env50, medians of {rounds}:\n"
          f"  coding-job env create {median([r['create'] for r in ours]) * 1000:.0f} ms + env up "
          f"{median([r['up'] for r in ours]):.2f} s = {total:.2f} s\n"
          f"  docker-compose up -d {compose_up:.2f} s (every container healthy {compose_healthy:.2f} s, "
          f"measured in {len(healthy)} of {len(theirs)} rounds; up -d gave up {len(compose_failures)} times)\n"
          f"  ratio {total / compose_up:.2f}x (target at most 0.4x), {total / compose_healthy:.2f}x against every "
          f"container healthy\n"
          f"  plain up of the same jobs in production {median([r['production'] for r in ours]):.2f} s; "
          f"env destroy {median([r['destroy'] for r in ours]):.2f} s, compose down {median([r['down'] for r in theirs]):.2f} s")


# 2. seed -----------------------------------------------------------------------------------

def make_tree(root, target_mib):
    """A few thousand files of mixed sizes (log-uniform, 512 B to 512 KiB) in nested directories:
    half of each file random bytes, half hex text of random bytes, so that gzip shrinks the
    whole to about 0.8 of its size. Stops once the compressed size should reach `target_mib`."""
    rng = random.Random(20261122)
    expected, files, total = 0, 0, 0
    while expected < target_mib * 2**20:
        size = int(2 ** rng.uniform(9, 19))
        raw = rng.randbytes(size // 2)
        text = rng.randbytes(size // 4).hex().encode()
        directory = os.path.join(root, f"d{files % 32:02d}", f"s{files % 7}")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"f{files:05d}.bin"), "wb") as f:
            f.write(raw + text)
        files += 1
        total += len(raw) + len(text)
        expected += len(raw) + len(text) * 0.56
    return files, total


def largest_file(root):
    best = max(((os.path.getsize(os.path.join(d, n)), os.path.join(d, n)) for d, _, names in os.walk(root) for n in names))
    with open(best[1], "rb") as f:
        return os.path.relpath(best[1], root), hashlib.md5(f.read()).hexdigest()


def volume_contents(exec_prefix, check_file, env=None):
    """`files bytes md5-of-check_file` of the volume, from inside the container."""
    script = (f"find {MOUNT} -type f | wc -l; du -sk {MOUNT} | cut -f1; "
              f"md5sum {MOUNT}/{check_file} 2>/dev/null | cut -d' ' -f1")
    out = run([*exec_prefix, "sh", "-c", script], env=env, timeout=COMMAND_DEADLINE).stdout.split()
    return int(out[0]), int(out[1]), (out[2] if len(out) > 2 else None)


def seeded_service(name, seed):
    seed_line = f"        seed: {seed}\n" if seed else ""
    return (f"service: {name}\njobs:\n  - name: data\n    image: {IMAGE}\n    command: [sleep, '100000']\n"
            f"    volumes:\n      - name: data\n        mount: {MOUNT}\n{seed_line}")


def up_with_phases(dev, service):
    """`coding-job up SERVICE --json`, timed, with the moment each phase was first seen."""
    start = time.perf_counter()
    process = subprocess.Popen([dev.binary, "up", service, "--json", "--timeout", str(UP_DEADLINE)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dev.env)
    killer = threading.Timer(UP_DEADLINE + 30, process.kill)
    killer.start()
    phases = {}
    try:
        for line in process.stdout:
            event = json.loads(line)
            if event.get("event") == "task":
                phases.setdefault(event["phase"], time.perf_counter() - start)
        process.wait()
    finally:
        killer.cancel()
    total = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"up {service} failed: {process.stderr.read()}")
    return total, phases


def round_seed_coding_job(dev, service, check):
    total, phases = up_with_phases(dev, service)
    found = volume_contents([dev.binary, "exec", f"{service}/data", "--"], check[0], env=dev.env)
    dev.cli("down", service)
    label = ["--filter", f"label=coding-job.cluster={dev.cluster}", "--filter", f"label=coding-job.service={service}"]
    volumes = run(["docker", "volume", "ls", "-q", *label], timeout=60).stdout.split()
    if len(volumes) != 1:
        raise RuntimeError(f"{service}: expected one volume, found {volumes}")
    run(["docker", "volume", "rm", *volumes], timeout=COMMAND_DEADLINE)
    seeding = phases["starting"] - phases["seeding"] if "seeding" in phases else None
    return {"total": total, "seeding": seeding, "found": found}


def round_seed_docker(index, check, copy=None, tarball=None):
    """`docker volume create`, `docker create` with it mounted, `docker cp` of the directory
    `copy` (the CLI sends it as a tar) or of the archive `tarball` (`docker cp -`, which the
    engine unpacks, gzip included, as it does a seed) or of nothing, and `docker start`."""
    volume = container = f"cjbench-seed-{os.getpid()}-{index}"
    start = time.perf_counter()
    run(["docker", "volume", "create", "--label", BASELINE_LABEL, volume], timeout=COMMAND_DEADLINE)
    run(["docker", "create", "--name", container, "--label", BASELINE_LABEL, "--init", "--network", "host",
         "--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=3",
         "-v", f"{volume}:{MOUNT}", IMAGE, "sleep", "100000"], timeout=COMMAND_DEADLINE)
    if copy:
        run(["docker", "cp", f"{copy}/.", f"{container}:{MOUNT}"], timeout=UP_DEADLINE)
    if tarball:
        with open(tarball, "rb") as archive:
            subprocess.run(["docker", "cp", "-", f"{container}:{MOUNT}"], stdin=archive, check=True,
                           capture_output=True, timeout=UP_DEADLINE)
    run(["docker", "start", container], timeout=COMMAND_DEADLINE)
    total = time.perf_counter() - start
    found = volume_contents(["docker", "exec", container], check[0])
    run(["docker", "rm", "-f", container], timeout=COMMAND_DEADLINE)
    run(["docker", "volume", "rm", volume], timeout=COMMAND_DEADLINE)
    return {"total": total, "found": found}


def verify(side, found, files, check):
    count, kib, md5 = found
    if count != files or md5 != check[1]:
        raise RuntimeError(f"{side}: the volume holds {count} files ({kib} KiB, {check[0]}: {md5}), "
                           f"expected {files} ({check[0]}: {check[1]})")


def bench_seed(rounds, target_mib):
    work = tempfile.mkdtemp(prefix="cj-bench-seed-")
    try:
        tree = os.path.join(work, "tree")
        tarball = os.path.join(work, "seed.tar.gz")
        plain = os.path.join(work, "seed.tar")
        made, (files, size) = timed(make_tree, tree, target_mib)
        packed, _ = timed(run, ["tar", "czf", tarball, "-C", tree, "."], timeout=600)
        run(["tar", "cf", plain, "-C", tree, "."], timeout=600)
        check = largest_file(tree)
        compressed = os.path.getsize(tarball)
        print(f"  seed: {files} files, {size / 2**20:.1f} MiB, gzip tarball {compressed / 2**20:.1f} MiB "
              f"(made in {made:.1f} s, packed in {packed:.1f} s); plain tar {os.path.getsize(plain) / 2**20:.1f} MiB",
              flush=True)

        # What each variant does, the empty variant it is compared with, and how to run it once.
        variants = {
            "cj": ("coding-job up, seed: the gzip tarball", "cj-empty",
                   lambda r: round_seed_coding_job(dev, "seeded", check)),
            "cj-tar": ("coding-job up, seed: the plain tar", "cj-empty",
                       lambda r: round_seed_coding_job(dev, "seededtar", check)),
            "cj-empty": ("coding-job up, an unseeded volume", None,
                         lambda r: round_seed_coding_job(dev, "unseeded", check)),
            "docker": ("docker volume create + create + cp DIR + start", "docker-empty",
                       lambda r: round_seed_docker(r, check, copy=tree)),
            "docker-tarball": ("docker volume create + create + cp - < the gzip tarball + start", "docker-empty",
                               lambda r: round_seed_docker(f"{r}-tarball", check, tarball=tarball)),
            "docker-empty": ("docker volume create + create + start", None,
                             lambda r: round_seed_docker(f"{r}-empty", check)),
        }
        sides = {"cj": ["cj", "cj-tar", "cj-empty"], "docker": ["docker", "docker-tarball", "docker-empty"]}
        results = {variant: [] for variant in variants}
        with BoundedDev() as dev:
            dev.push("seeded.yaml", seeded_service("seeded", tarball))
            dev.push("seededtar.yaml", seeded_service("seededtar", plain))
            dev.push("unseeded.yaml", seeded_service("unseeded", None))
            for r in range(rounds):
                for side in (["cj", "docker"] if r % 2 == 0 else ["docker", "cj"]):
                    for variant in sides[side]:
                        # Each starts with nothing of the previous one's 250 MiB left to write back.
                        os.sync()
                        result = variants[variant][2](r)
                        if variants[variant][1]:
                            verify(variants[variant][0], result["found"], files, check)
                        elif result["found"][0] != 0:
                            raise RuntimeError(f"{variants[variant][0]}: the volume holds {result['found'][0]} files")
                        results[variant].append(result)
                        seeding = f", seeding phase {result['seeding']:.2f} s" if result.get("seeding") else ""
                        print(f"  round {r + 1}: {variants[variant][0]}: {result['total']:.2f} s ({result['found'][0]} "
                              f"files, {result['found'][1] / 1024:.0f} MiB{seeding})  [load {load()}]", flush=True)
        m = {variant: median([x["total"] for x in values]) for variant, values in results.items()}
        print(f"seed, medians of {rounds} ({files} files, {size / 2**20:.0f} MiB, gzip {compressed / 2**20:.0f} MiB):")
        for variant, (what, empty, _) in variants.items():
            data = f"; the data {m[variant] - m[empty]:.2f} s" if empty else ""
            seeding = (f" (seeding phase {median([x['seeding'] for x in results[variant]]):.2f} s)"
                       if variant.startswith("cj") and empty else "")
            print(f"  {what}: {m[variant]:.2f} s{data}{seeding}")
        data = {variant: m[variant] - m[variants[variant][1]] for variant in ("cj", "cj-tar", "docker", "docker-tarball")}
        print(f"  ratio, the gzip tarball against docker cp of the directory: {m['cj'] / m['docker']:.2f}x end to end, "
              f"{data['cj'] / data['docker']:.2f}x for the data (the plain tar: {m['cj-tar'] / m['docker']:.2f}x, "
              f"{data['cj-tar'] / data['docker']:.2f}x); against docker cp - of the same gzip tarball: "
              f"{m['cj'] / m['docker-tarball']:.2f}x, {data['cj'] / data['docker-tarball']:.2f}x")
    finally:
        remove_baseline()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["env50", "seed"])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed-mib", type=int, default=200, help="the compressed seed's size")
    args = parser.parse_args()
    # A SIGTERM unwinds like an exception, so that everything is cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    print(f"load before the build: {load()}", flush=True)
    build()
    commit = run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT).stdout.strip()
    dirty = " (with uncommitted changes)" if run(["git", "status", "--porcelain"], cwd=ROOT).stdout.strip() else ""
    built = os.path.getmtime(BIN)
    print(f"build {commit}{dirty}, binary of {time.strftime('%H:%M:%S', time.localtime(built))}; "
          f"load {load()} on {os.cpu_count()} cores", flush=True)
    try:
        for name, bench in [("env50", lambda: bench_env50(args.rounds)),
                            ("seed", lambda: bench_seed(args.rounds, args.seed_mib))]:
            if args.only in (None, name):
                print(f"{name}:", flush=True)
                bench()
    except subprocess.CalledProcessError as error:
        sys.exit(f"{' '.join(error.cmd)} failed ({error.returncode}): {error.stderr}")
    if os.path.getmtime(BIN) != built:
        print("note: the binary was rebuilt during the run", flush=True)
    print(f"load after: {load()}", flush=True)


if __name__ == "__main__":
    main()
