// coding-job web UI: the pages work without this script; it adds live updates (one event
// stream shared by every open page; on an event the page is fetched again and <main> swapped), relative
// times kept fresh, following logs, and the exec terminal.
"use strict";
(function () {
  const main = document.getElementById("main");

  // "3 min ago" from a <time datetime>, as the server writes it.
  function relative(seconds, ago) {
    const span = Math.abs(Math.round(seconds));
    const words = span < 60 ? span + " s" : span < 3600 ? Math.floor(span / 60) + " min"
      : span < 86400 ? Math.floor(span / 3600) + " h" : Math.floor(span / 86400) + " d";
    if (!ago) return words;
    if (seconds < 0) return "in " + words;
    return span < 5 ? "just now" : words + " ago";
  }
  function refreshTimes(root) {
    const now = Date.now();
    root.querySelectorAll("time[data-relative]").forEach((el) => {
      const at = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(at)) el.textContent = relative((now - at) / 1000, el.dataset.relative === "ago");
    });
  }
  setInterval(() => refreshTimes(document), 15000);

  // Live updates: re-read this page and swap <main>'s content, keeping what the reader was
  // doing: scroll position, open <details>, typed form values, focus, and [data-keep] parts
  // (logs, terminal) as they are.
  let pending = null;
  let swapping = false;
  function schedule() {
    if (pending) return;
    pending = setTimeout(() => { pending = null; swap(); }, 150);
  }
  async function swap() {
    if (swapping) { schedule(); return; }
    swapping = true;
    try {
      const answer = await fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (!answer.ok) return;
      const fresh = new DOMParser().parseFromString(await answer.text(), "text/html").getElementById("main");
      if (!fresh) return;
      const openDetails = new Set([...main.querySelectorAll("details[open]")].map((d) => d.id || d.querySelector("summary")?.textContent));
      const typed = new Map();
      main.querySelectorAll("input[id], select[id], textarea[id]").forEach((el) => {
        if (el.type !== "hidden") typed.set(el.id, el.value);
      });
      const focused = document.activeElement && document.activeElement.id;
      fresh.querySelectorAll("[data-keep][id]").forEach((el) => {
        const kept = document.getElementById(el.id);
        if (kept) el.replaceWith(kept);
      });
      const x = window.scrollX, y = window.scrollY;
      main.replaceChildren(...fresh.childNodes);
      main.querySelectorAll("details").forEach((d) => {
        if (openDetails.has(d.id || d.querySelector("summary")?.textContent)) d.open = true;
      });
      typed.forEach((value, id) => { const el = document.getElementById(id); if (el && el.type !== "hidden") el.value = value; });
      if (focused) document.getElementById(focused)?.focus({ preventScroll: true });
      window.scrollTo(x, y);
      refreshTimes(main);
      main.dispatchEvent(new CustomEvent("cj:swapped"));
    } finally {
      swapping = false;
    }
  }
  // A page's open streams (the event stream, a log being followed) end when the page is left:
  // a browser opens few connections to one server at a time, and a page kept for "back" would
  // otherwise hold its streams open and leave the next page waiting for a connection. They
  // start again if the page is shown again from that cache.
  const streams = new Map();
  function keepStream(name, open) {
    streams.set(name, { open, close: open() });
  }
  window.addEventListener("pagehide", () => streams.forEach((stream) => stream.close()));
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    streams.forEach((stream) => { stream.close = stream.open(); });
    schedule();
  });

  // Live updates: the shared worker (static/events.js) holds one event stream for every open
  // page of this server and says when something changed; where shared workers are missing,
  // the page holds a stream of its own (`followEvents`, from the same file).
  if (main && main.dataset.live === "1" && window.EventSource) {
    keepStream("events", () => {
      if (window.SharedWorker) {
        const worker = new SharedWorker("/ui/static/events.js", { name: "coding-job events" });
        worker.port.onmessage = schedule;
        worker.port.start();
        return () => worker.port.postMessage("leave");
      }
      const events = followEvents(schedule);
      return () => events.close();
    });
  }

  // Logs: follow the streamed /v1/logs body; pause holds new lines back, the filter hides
  // lines that do not match, the stream choice starts over with only stdout or stderr (and
  // makes the Download link give the same).
  function followLogs() {
    const pane = document.getElementById("logs");
    if (!pane || pane.dataset.started) return;
    pane.dataset.started = "1";
    const pause = document.getElementById("log-pause");
    const filter = document.getElementById("log-filter");
    const choice = document.getElementById("log-stream");
    const download = document.getElementById("log-download");
    const status = document.getElementById("log-state");
    let paused = false;
    let held = [];
    let reading = null;
    const matches = (line) => !filter.value || line.toLowerCase().includes(filter.value.toLowerCase());
    const streamWords = () => (choice.value ? choice.value + " only" : "stdout and stderr together");
    function show(lines) {
      const atBottom = pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 4;
      for (const text of lines) {
        const line = document.createElement("div");
        line.textContent = text;
        if (!matches(text)) line.className = "hidden";
        pane.appendChild(line);
      }
      while (pane.childNodes.length > 5000) pane.removeChild(pane.firstChild);
      if (atBottom) pane.scrollTop = pane.scrollHeight;
    }
    pause.addEventListener("click", () => {
      paused = !paused;
      pause.textContent = paused ? "Resume" : "Pause";
      pause.setAttribute("aria-pressed", String(paused));
      status.textContent = paused ? "paused: new lines are held back" : "following (" + streamWords() + ")";
      if (!paused) { show(held); held = []; }
    });
    filter.addEventListener("input", () => {
      pane.childNodes.forEach((line) => { line.className = matches(line.textContent) ? "" : "hidden"; });
    });
    async function read(src, signal) {
      const answer = await fetch(src + "&follow=true&tail=200", { credentials: "same-origin", signal });
      if (!answer.ok || !answer.body) { status.textContent = "logs unavailable: " + (await answer.text()); return; }
      status.textContent = "following (" + streamWords() + ")";
      const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
      let rest = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (signal.aborted) return;
        if (done) break;
        const parts = (rest + value).split("\n");
        rest = parts.pop();
        if (paused) held.push(...parts); else show(parts);
      }
      if (rest) show([rest]);
      status.textContent = "the log stream ended";
    }
    function start() {
      if (reading) reading.abort();
      reading = new AbortController();
      const src = pane.dataset.src + (choice.value ? "&stream=" + choice.value : "");
      download.href = src;
      pane.textContent = "";
      held = [];
      const signal = reading.signal;
      read(src, signal).catch((error) => {
        if (!signal.aborted) status.textContent = "log stream failed: " + error;
      });
    }
    choice.addEventListener("change", start);
    keepStream("logs", () => {
      start();
      return () => reading.abort();
    });
    // A tab out of sight lets its log stream go (each holds a connection, and a browser opens
    // few to one server) and follows again, from the last lines, when it is looked at.
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) {
        reading.abort();
        status.textContent = "not following while the page is hidden";
      } else {
        start();
      }
    });
  }

  // The terminal: one `sh` per page over the /v1/exec WebSocket; each line is its stdin.
  function terminal() {
    const box = document.getElementById("terminal");
    if (!box || box.dataset.started) return;
    box.dataset.started = "1";
    const out = document.getElementById("terminal-out");
    const form = document.getElementById("terminal-form");
    const input = document.getElementById("terminal-line");
    const encoder = new TextEncoder();
    const decoder = new TextDecoder();
    let socket = null;
    const print = (text) => { out.textContent += text; out.scrollTop = out.scrollHeight; };
    function open() {
      const url = new URL(box.dataset.src, location.href);
      url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
      socket = new WebSocket(url);
      socket.binaryType = "arraybuffer";
      socket.onmessage = (message) => {
        if (typeof message.data === "string") {
          const control = JSON.parse(message.data);
          if (control.message === "exit") print("[exited " + (control.exit_code ?? "?") + (control.error ? ": " + control.error : "") + "]\n");
          return;
        }
        print(decoder.decode(new Uint8Array(message.data).subarray(1), { stream: true }));
      };
      socket.onclose = () => { socket = null; };
      return new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = () => reject(new Error("the terminal could not connect")); });
    }
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const line = input.value;
      input.value = "";
      print("$ " + line + "\n");
      try {
        if (!socket) await open();
        const bytes = encoder.encode(line + "\n");
        const message = new Uint8Array(bytes.length + 1);
        message[0] = 0;
        message.set(bytes, 1);
        socket.send(message);
      } catch (error) {
        print("[" + error.message + "]\n");
      }
    });
  }

  followLogs();
  terminal();
})();
