#!/usr/bin/env python3
"""Benchmark of live updates in a real browser (see BENCHMARKS.md, "Web UI: a container's death
on an open page"), on a release `coding-job dev` with a real container on the real Docker engine
and Debian's headless Chromium driven through chromedriver's WebDriver API.

Opens the overview in N tabs (one in front, the others behind it, as a user keeps them), then
`docker kill`s the task's container and times, from the kill, Docker's own `die` event (the
baseline: a `docker events` subscriber) and the moment each tab's page shows the change (a
MutationObserver in the page notes the time its task row changes). Every tab gets its updates
through the one event stream the pages share; the engine restarts the container at once, and
the next round waits for it to run again.

usage: bench/ui_live.py [--tabs 8] [--rounds 5] [--binary PATH]
"""

import argparse
import json
import statistics
import subprocess
import time
import urllib.request

from common import IMAGE, Dev, build, free_port, wait_for

SERVICE = f"""service: live
jobs:
  - name: worker
    image: {IMAGE}
    command: [sleep, "100000"]
"""
ROW = "tr[data-task='live/worker/worker']"

# Notes (in window.__changed, ms since the epoch) when the task row stops looking as it does now.
WATCH = """
const row = () => document.querySelector(arguments[0]);
// The task's state and when its container started: not its uptime or stats, which change anyway.
const look = () => { const r = row(); return r ? r.querySelector('.state').textContent + ' ' + (r.querySelector('time')?.getAttribute('datetime') || '') : ''; };
const before = look();
window.__changed = null;
if (window.__watch) window.__watch.disconnect();
window.__watch = new MutationObserver(() => {
  if (window.__changed === null && look() !== before) window.__changed = Date.now();
});
window.__watch.observe(document.getElementById('main'), { subtree: true, childList: true, characterData: true, attributes: true });
return before;
"""


class Browser:
    """A chromedriver process and one headless Chromium session, spoken to over HTTP."""

    def __init__(self):
        self.port = free_port()
        self.driver = subprocess.Popen(["chromedriver", f"--port={self.port}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("chromedriver", 10, lambda: self._ready())
        options = {"args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                            "--no-first-run", "--disable-background-networking", "--window-size=1280,900"]}
        answer = self._call("POST", "/session",
                            {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}})
        self.session = answer["sessionId"]

    def _ready(self):
        try:
            return self._call("GET", "/status")["ready"]
        except OSError:
            return False

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read())["value"]

    def command(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def new_tab(self):
        return self.command("POST", "/window/new", {"type": "tab"})["handle"]

    def switch(self, handle):
        self.command("POST", "/window", {"handle": handle})

    def run(self, script, *args):
        return self.command("POST", "/execute/sync", {"script": script, "args": list(args)})

    def close(self):
        try:
            self.command("DELETE", "")
        finally:
            self.driver.kill()
            self.driver.wait()


def container_of(dev):
    return dev.status("live/worker")[0]["container_id"]


def started(container):
    return subprocess.run(["docker", "inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", container],
                          check=True, capture_output=True, text=True).stdout.strip()


def one_round(dev, browser, tabs):
    container = container_of(dev)
    started_before = started(container)
    task = dev.status("live/worker")[0]
    # Each page must show the running container first (the last round's restart included).
    running = f"running {task['started_at']}"
    for handle in tabs:
        browser.switch(handle)
        wait_for(f"the page to show {running}", 10, lambda: browser.run(WATCH, ROW) == running)
    browser.switch(tabs[0])
    events = subprocess.Popen(["docker", "events", "--filter", f"container={container}", "--filter", "event=die",
                               "--format", "{{.TimeNano}}"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)  # the subscription is open
    killed_ms = time.time() * 1000
    subprocess.run(["docker", "kill", container], check=True, capture_output=True)
    died_ms = int(events.stdout.readline()) / 1e6
    events.kill()
    events.wait()
    shown = []
    for handle in tabs:
        browser.switch(handle)
        changed = wait_for("the page to show the kill", 30, lambda: browser.run("return window.__changed;"))
        shown.append(changed - killed_ms)
    # The next round starts from a running container again (the engine restarts the same one).
    wait_for("the container to run again", 30, lambda: started(container) != started_before and
             dev.status("live/worker")[0]["state"] == "running")
    return died_ms - killed_ms, shown


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tabs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--binary", help="measure this coding-job binary instead of building one")
    args = parser.parse_args()
    if not args.binary:
        build()
    with Dev(**({"binary": args.binary} if args.binary else {})) as dev:
        dev.push("live.yaml", SERVICE)
        dev.cli("up", "live")
        browser = Browser()
        try:
            tabs = [browser.command("GET", "/window")]
            tabs += [browser.new_tab() for _ in range(args.tabs - 1)]
            for handle in tabs:
                browser.switch(handle)
                browser.command("POST", "/url", {"url": dev.url + "/"})
            front, behind, docker = [], [], []
            for number in range(1, args.rounds + 1):
                died, shown = one_round(dev, browser, tabs)
                docker.append(died)
                front.append(shown[0])
                behind.extend(shown[1:])
                print(f"round {number}: docker's die event {died:.0f} ms; the page in front {shown[0]:.0f} ms; "
                      f"{len(shown) - 1} tabs behind it: slowest {max(shown[1:], default=0):.0f} ms")
            print(f"\n{args.tabs} tabs, {args.rounds} kills (ms from `docker kill`):")
            print(f"  docker's own die event: median {statistics.median(docker):.0f}, max {max(docker):.0f}")
            print(f"  the page in front shows it: median {statistics.median(front):.0f}, max {max(front):.0f}")
            if behind:
                print(f"  the tabs behind it show it: median {statistics.median(behind):.0f}, max {max(behind):.0f}")
        finally:
            browser.close()


if __name__ == "__main__":
    main()
