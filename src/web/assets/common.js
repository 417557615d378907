// What the desk and the wall share: the live stream, changes sent with the page's token,
// and the words for states. Text that came from a caller or a config is only ever set with
// textContent.
"use strict";

const hotline = {
  csrf: document.body.dataset.csrf || "",

  stateLabel(state) {
    return {
      available: "Ready",
      ringing: "Ringing",
      busy: "On a call",
      "wrap-up": "Wrap-up",
      "not-ready": "Not ready",
      offline: "Offline",
    }[state] || "Unknown";
  },

  // The router's own reasons in words; an agent's reason ("lunch") as given.
  reasonLabel(reason) {
    return {
      "no-phone": "no phone registered",
      registered: "phone registered, not yet ready",
      "ring-no-answer": "missed a call",
    }[reason] || reason || "";
  },

  seconds(s) {
    s = Math.max(0, Math.round(s));
    return s >= 60 ? Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0") : s + " s";
  },

  // Sets an agent's state; resolves to the JSON answer, or throws its error message.
  async setState(body) {
    const res = await fetch("/desk/state", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": hotline.csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const json = await res.json().catch(() => ({ error: "the server answered " + res.status }));
    if (!res.ok) throw new Error(json.error || "refused (" + res.status + ")");
    return json;
  },

  // Follows /api/events from the event the page was rendered after; `handlers` by event name.
  // The browser reconnects by itself with Last-Event-ID; a "reload" means events were lost.
  follow(after, handlers) {
    const source = new EventSource("/api/events?after=" + encodeURIComponent(after));
    for (const [name, handle] of Object.entries(handlers)) {
      source.addEventListener(name, (e) => handle(JSON.parse(e.data)));
    }
    source.addEventListener("reload", () => location.reload());
    source.addEventListener("open", () => document.body.classList.remove("offline"));
    source.addEventListener("error", () => document.body.classList.add("offline"));
    return source;
  },

  // Counts a "for N s" cell up every second from when its row last changed.
  tick(cells) {
    const started = Date.now();
    setInterval(() => {
      for (const cell of cells()) {
        const since = Number(cell.dataset.since || 0);
        const base = Number(cell.dataset.base || started);
        cell.textContent = hotline.seconds(since + (Date.now() - base) / 1000);
      }
    }, 1000);
  },
};
