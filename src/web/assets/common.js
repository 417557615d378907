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
      unreachable: "phone not answering",
      registered: "phone registered, not yet ready",
      "ring-no-answer": "missed a call",
    }[reason] || reason || "";
  },

  // A trunk's registration in words, and how it is coloured.
  trunkLabel(t) {
    switch (t.state) {
      case "registered": return "registered (" + t.expires_s + " s)";
      case "failed": return "failed" + (t.code ? " (" + t.code + ")" : " (no answer)") + ", again in " + t.retry_in_s + " s";
      case "off": return "not registering";
      default: return t.state;
    }
  },

  trunkClass(t) {
    return t.state === "failed" ? "alert" : t.state === "registered" || t.state === "off" ? "calm" : "busy";
  },

  seconds(s) {
    s = Math.max(0, Math.round(s));
    return s >= 60 ? Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0") : s + " s";
  },

  // A change sent with the page's token; resolves to the JSON answer, or throws its error
  // message.
  async post(path, body) {
    const res = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": hotline.csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const json = await res.json().catch(() => ({ error: "the server answered " + res.status }));
    if (!res.ok) throw new Error(json.error || "refused (" + res.status + ")");
    return json;
  },

  // Sets an agent's state: the agent's new row.
  setState(body) {
    return hotline.post("/desk/state", body);
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

// The follow-ups table (desk and wall): every voicemail and callback request this login may
// see, overdue first, with the message to play and what can be done with each. Read again
// whenever the stream says one came or changed.
hotline.followUps = function (opts) {
  const body = document.querySelector("#followup-list tbody");
  const message = document.getElementById("followup-message");
  const me = document.body.dataset.agent;

  function ago(s) {
    if (s < 60) return Math.round(s) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    const h = Math.floor(s / 3600);
    return h + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function stateText(f) {
    if (f.state === "taken") return "taken by " + f.owner;
    if (f.state === "failed") return "failed: " + (f.reason || "");
    if (f.state === "done") return "done" + (f.owner ? " by " + f.owner : "") + (f.reason ? " (" + f.reason + ")" : "");
    return "new" + (f.reason ? " (" + f.reason + ")" : "");
  }

  async function act(f, action, reason) {
    message.textContent = "";
    try {
      const res = await fetch("/api/followups/" + f.id, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": hotline.csrf },
        body: JSON.stringify({ action, reason }),
        credentials: "same-origin",
      });
      const json = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(json.error || "refused (" + res.status + ")");
      load();
    } catch (e) {
      message.textContent = e.message;
    }
  }

  function button(label, onclick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.addEventListener("click", onclick);
    return b;
  }

  function render(list) {
    // A row whose message is playing is kept as it is, so the audio goes on.
    const playing = new Set(
      [...body.querySelectorAll("audio")].filter((a) => !a.paused).map((a) => a.closest("tr").dataset.id),
    );
    for (const row of [...body.rows]) if (!playing.has(row.dataset.id)) row.remove();
    for (const f of list) {
      if (playing.has(String(f.id))) continue;
      const row = body.insertRow();
      row.dataset.id = f.id;
      row.className = f.state + (f.overdue ? " overdue" : "");
      const cells = [
        f.kind === "voicemail" ? "Voicemail" : "Callback",
        f.caller,
        f.queue,
        ago(f.age_s),
        f.overdue ? "overdue" : f.state === "new" || f.state === "taken" ? "due " + new Date(f.due_at).toLocaleString() : "",
        stateText(f),
      ];
      for (const [i, text] of cells.entries()) {
        const td = row.insertCell();
        td.className = ["kind", "caller", "queue", "age", "due", "state"][i];
        td.textContent = text;
      }
      const media = row.insertCell();
      media.className = "message";
      if (f.audio) {
        const audio = document.createElement("audio");
        audio.controls = true;
        audio.preload = "metadata";
        audio.src = f.audio;
        media.appendChild(audio);
      }
      const actions = row.insertCell();
      actions.className = "actions";
      const open = f.state === "new" || f.state === "taken";
      const mine = f.owner === me || opts.supervisor;
      if (open && opts.callBack && (f.state === "new" || f.owner === me)) {
        actions.appendChild(button("Call back now", () => act(f, "call")));
      }
      if (open && f.state === "new") actions.appendChild(button("Take", () => act(f, "take")));
      if (open && f.state === "taken" && mine) actions.appendChild(button("Release", () => act(f, "release")));
      if (open && (f.state === "new" || mine)) {
        actions.appendChild(button("Done", () => act(f, "done")));
        const why = document.createElement("input");
        why.placeholder = "why it failed";
        why.className = "reason";
        actions.appendChild(why);
        actions.appendChild(button("Failed", () => {
          if (!why.value.trim()) { message.textContent = "Say why it failed."; return; }
          act(f, "fail", why.value);
        }));
      }
    }
    const none = document.getElementById("followup-none");
    if (none) none.hidden = list.length > 0;
  }

  async function load() {
    try {
      const res = await fetch("/api/followups", { credentials: "same-origin" });
      const json = await res.json();
      if (!res.ok) throw new Error(json.error || "refused (" + res.status + ")");
      render(json);
    } catch (e) {
      message.textContent = "Follow-ups: " + e.message;
    }
  }

  load();
  return load;
};
