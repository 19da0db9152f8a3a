// coding-job web UI: one event stream for all of this server's open pages. A browser opens
// only a few connections to one server at a time; with a stream per page, a few open tabs
// would leave the next page waiting for a connection. Run as a shared worker, this file holds
// the one stream and tells each page (by its port) that something changed, and of what kind;
// the page then reads itself again with its own credentials, so nothing of an event's content
// passes from one page to another. Loaded in a page (where shared workers are missing), it
// only gives the page `followEvents` to hold a stream of its own.
"use strict";

// Calls `tell(kind)` for every event of the stream (and "reconnected" after a reconnect, when
// something may have been missed); the stream, to close.
function followEvents(tell) {
  const source = new EventSource("/v1/events?follow=true");
  for (const kind of ["push", "desired", "container", "health", "deployment", "host", "env", "placement", "token", "alert", "audit"]) {
    source.addEventListener(kind, () => tell(kind));
  }
  source.onmessage = () => tell("message");
  let opened = false;
  source.onopen = () => { if (opened) tell("reconnected"); opened = true; };
  return source;
}

if (typeof SharedWorkerGlobalScope !== "undefined" && self instanceof SharedWorkerGlobalScope) {
  const pages = new Set();
  let source = null;
  self.onconnect = (event) => {
    const port = event.ports[0];
    pages.add(port);
    port.onmessage = (message) => {
      if (message.data !== "leave") return;
      pages.delete(port);
      if (pages.size === 0 && source) { source.close(); source = null; }
    };
    port.start();
    if (!source) source = followEvents((kind) => pages.forEach((page) => page.postMessage(kind)));
  };
}
