// The supervisor wall: every queue's figures and every agent's state, live.
"use strict";

(() => {
  const wall = document.getElementById("wall");
  const message = document.getElementById("message");
  const seconds = (s) => (s == null ? "–" : hotline.seconds(s));

  function queueClass(q) {
    if (q.longest_wait_s >= 60 || (q.service_level != null && q.service_level < 0.8)) return "alert";
    return q.waiting > 0 ? "busy" : "calm";
  }

  function cell(row, cls, text) {
    const td = row.querySelector("td." + cls);
    if (td) td.textContent = text;
  }

  function showQueues(queues) {
    const body = document.querySelector("#queues tbody");
    for (const q of queues) {
      let row = [...body.rows].find((r) => r.dataset.queue === q.name);
      if (!row) {
        row = body.insertRow();
        row.dataset.queue = q.name;
        for (const cls of ["name", "waiting", "longest", "ewt", "available", "ringing", "busy", "wrap-up", "not-ready", "sl"]) {
          row.insertCell().className = cls;
        }
        row.cells[0].textContent = q.name;
      }
      row.className = queueClass(q);
      cell(row, "waiting", String(q.waiting));
      const longest = row.querySelector("td.longest");
      longest.dataset.since = q.waiting > 0 ? q.longest_wait_s : "";
      longest.dataset.base = Date.now();
      longest.textContent = seconds(q.longest_wait_s);
      cell(row, "ewt", seconds(q.ewt_s));
      cell(row, "available", String(q.agents.available));
      cell(row, "ringing", String(q.agents.ringing));
      cell(row, "busy", String(q.agents.busy));
      cell(row, "wrap-up", String(q.agents.wrap_up));
      cell(row, "not-ready", String(q.agents.not_ready));
      cell(row, "sl", (q.service_level == null ? "–" : Math.round(q.service_level * 100) + "%") + " within " + q.service_level_s + " s");
    }
  }

  function showAgent(a) {
    const row = [...document.querySelectorAll("#agents tbody tr")].find((r) => r.dataset.agent === a.id);
    if (!row) return location.reload(); // an agent added by a reload
    const state = row.cells[1].firstElementChild;
    state.textContent = hotline.stateLabel(a.state);
    state.className = "state " + a.state;
    cell(row, "reason", hotline.reasonLabel(a.reason));
    const since = row.querySelector("td.since");
    since.dataset.since = a.since_s;
    since.dataset.base = Date.now();
    since.textContent = hotline.seconds(a.since_s);
    cell(row, "phone", phoneLabel(a));
  }

  function phoneLabel(a) {
    if (!a.registered) return "none";
    return a.unreachable ? "not answering" : "registered";
  }

  // The carrier trunks' registrations, read every 10 s (they change rarely, and no event
  // carries them).
  async function showTrunks() {
    const body = document.querySelector("#trunks tbody");
    if (!body) return;
    try {
      const res = await fetch("/api/trunks", { credentials: "same-origin" });
      const trunks = await res.json();
      if (!res.ok) throw new Error(trunks.error);
      for (const t of trunks) {
        const row = [...body.rows].find((r) => r.dataset.trunk === t.name);
        if (!row) continue;
        row.className = hotline.trunkClass(t);
        cell(row, "state", hotline.trunkLabel(t));
      }
    } catch (e) {
      message.textContent = "Trunks: " + e.message;
    }
  }
  setInterval(showTrunks, 10000);

  function showCalls(calls) {
    const body = document.querySelector("#calls tbody");
    while (body.firstChild) body.firstChild.remove();
    for (const c of calls) {
      const row = body.insertRow();
      row.dataset.call = c.call;
      row.className = c.state;
      const cells = {
        caller: (c.number !== c.name ? c.name + " " + c.number : c.name) + (c.returning ? " (" + c.returning + ")" : ""),
        queue: c.queue,
        state: c.state,
        agent: c.agent || "",
        waited: hotline.seconds(c.waited_s),
        steps: c.steps.join(" → "),
      };
      for (const [cls, text] of Object.entries(cells)) {
        const td = row.insertCell();
        td.className = cls;
        td.textContent = text;
      }
    }
  }

  // Today's figures, read at load and again (at most every 10 s) as calls move.
  let reportAt = 0;
  async function showReport() {
    if (Date.now() - reportAt < 10000) return;
    reportAt = Date.now();
    const panel = document.getElementById("compliance");
    const pct = (x) => (x == null ? "–" : (x * 100).toFixed(1) + "%");
    const set = (cls, text, bad) => {
      const dd = panel.querySelector("dd." + cls);
      dd.textContent = text;
      dd.classList.toggle("bad", !!bad);
    };
    try {
      const res = await fetch("/api/report", { credentials: "same-origin" });
      const r = await res.json();
      if (!res.ok) throw new Error(r.error);
      set("calls", String(r.calls));
      set("offered", pct(r.offered_within_3_min_share) + " (" + r.offered_within_3_min + ")",
        r.offered_within_3_min_share != null && r.offered_within_3_min_share < r.offered_within_3_min_target);
      set("answered", pct(r.answered_share) + " (" + r.answered_by_human + ")");
      set("asa", r.average_speed_of_answer_s == null ? "–" : hotline.seconds(r.average_speed_of_answer_s));
      set("abandoned", String(r.abandoned) + (r.abandonment_rate == null ? "" : " (" + pct(r.abandonment_rate) + ")"));
      set("overdue", String(r.follow_ups.overdue) + " of " + r.follow_ups.open + " open", r.follow_ups.overdue > 0);
    } catch (e) {
      message.textContent = "Today's figures: " + e.message;
    }
  }
  showReport();

  for (const row of document.querySelectorAll("#agents tbody tr")) {
    row.querySelector("td.set button").addEventListener("click", async () => {
      message.textContent = "";
      try {
        const state = row.querySelector("td.set select").value;
        showAgent(await hotline.setState({ agent: row.dataset.agent, state }));
      } catch (e) {
        message.textContent = e.message;
      }
    });
  }

  // The switches: where each stands, and a button to flip it (for a while, or until flipped
  // back).
  function switchLabel(s) {
    let text = s.on ? "on" : "off";
    if (s.flip) text += (s.flip.until ? " until " + s.flip.until : " until flipped back") + " (" + s.flip.by + ")";
    return text;
  }

  function showSwitches(switches) {
    for (const s of switches) {
      const row = [...document.querySelectorAll("#switches tbody tr")].find((r) => r.dataset.switch === s.name);
      if (!row) continue;
      row.className = s.on ? "alert" : "calm";
      cell(row, "position", switchLabel(s));
      row.querySelector("button.flip").textContent = s.on ? "Turn off" : "Turn on";
    }
  }

  for (const row of document.querySelectorAll("#switches tbody tr")) {
    row.querySelector("button.flip").addEventListener("click", async () => {
      message.textContent = "";
      const on = row.className !== "alert";
      const forS = row.querySelector("select.for").value;
      const body = forS ? { on, for_s: Number(forS) } : { on };
      try {
        showSwitches([await hotline.post("/api/switches/" + encodeURIComponent(row.dataset.switch), body)]);
      } catch (e) {
        message.textContent = e.message;
      }
    });
  }

  const followUps = hotline.followUps({ supervisor: true });
  hotline.follow(wall.dataset.after, {
    switches: (e) => showSwitches(e.switches),
    queues: (e) => showQueues(e.queues),
    calls: (e) => { showCalls(e.calls); showReport(); },
    agent: (e) => showAgent(e.agent),
    "follow-ups": () => followUps(),
  });
  hotline.tick(() => document.querySelectorAll("#agents td.since, #queues td.longest[data-since]:not([data-since=''])"));
})();
