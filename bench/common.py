"""What the benchmarks share: paths, small process helpers, and a `coding-job dev` to measure."""

import datetime
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/coding-job")
IMAGE = "cj-example/busybox:1"


def free_port(address="127.0.0.1"):
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def wait_for(what, timeout, check, interval=0.1):
    """Calls `check` until it returns something truthy (which is returned); fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def docker_time(text):
    """Docker's RFC 3339 time with nanoseconds, as seconds since the epoch."""
    main, _, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()
    return seconds + float("0." + (fraction or "0"))


def run(args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


class CliUser:
    """Pushing and reading status through the CLI; a subclass gives `cli` and `work`, the
    directory the pushed files are written to."""

    def push(self, name, text):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        self.cli("push", path)

    def status(self, target):
        return json.loads(self.cli("status", target, "--json"))


class Dev(CliUser):
    """A release `coding-job dev` on a fresh data directory and port; cleans up after itself.
    `args` are more `dev` options (say `--router-listen ADDRESS --domain DOMAIN`)."""

    def __init__(self, binary=None, args=()):
        self.binary = binary or MEASURED[0]
        self.args = list(args)

    def __enter__(self):
        self.data = tempfile.mkdtemp(prefix="cj-bench-")
        listen = f"127.0.0.1:{free_port()}"
        self.url = f"http://{listen}"
        self.env = dict(os.environ, CODING_JOB_SERVER=self.url, RUST_LOG="warn")
        self.process = subprocess.Popen([self.binary, "dev", "--data-dir", self.data, "--listen", listen, *self.args],
                                        stdout=subprocess.PIPE, text=True, env=self.env)
        lines = [self.process.stdout.readline() for _ in range(3)]
        self.cluster = lines[2].split(":", 1)[1].strip()
        return self

    def cli(self, *args):
        return run([self.binary, *args], env=self.env).stdout

    @property
    def work(self):
        return self.data

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait()
        ids = run(["docker", "ps", "-aq", "--filter", f"label=coding-job.cluster={self.cluster}"]).stdout.split()
        if ids:
            run(["docker", "rm", "-f", *ids])
        shutil.rmtree(self.data, ignore_errors=True)


def rss_mib(pid, field="VmRSS"):
    """Resident memory of a process now (VmRSS) or at its peak (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


def build():
    """The release binary and the example image, as the benchmarks measure them."""
    run(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    run(["bash", os.path.join(ROOT, "scripts/build-example-image.sh"), IMAGE])


# The binary `Dev` runs: target/release's, unless `--binary` names another.
MEASURED = [BIN]


def add_binary_argument(parser):
    parser.add_argument("--binary", help="measure this coding-job binary (another build, e.g. of a "
                        "`git worktree` at an older commit) instead of building target/release's")


def prepare(args):
    """Builds what the benchmark measures: the example image, and the release binary unless
    `--binary` names one."""
    if args.binary:
        MEASURED[0] = os.path.abspath(args.binary)
        run(["bash", os.path.join(ROOT, "scripts/build-example-image.sh"), IMAGE])
    else:
        build()
