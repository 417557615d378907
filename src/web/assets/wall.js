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
        for (const cls of ["name", "waiting", "longest", "ewt", "available", "staffed", "sl"]) {
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
      cell(row, "available", String(q.agents_available));
      cell(row, "staffed", String(q.agents_logged_in));
      cell(row, "sl", q.service_level == null ? "–" : Math.round(q.service_level * 100) + "%");
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
    cell(row, "phone", a.registered ? "registered" : "none");
  }

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

  const followUps = hotline.followUps({ supervisor: true });
  hotline.follow(wall.dataset.after, {
    queues: (e) => showQueues(e.queues),
    agent: (e) => showAgent(e.agent),
    "follow-ups": () => followUps(),
  });
  hotline.tick(() => document.querySelectorAll("#agents td.since, #queues td.longest[data-since]:not([data-since=''])"));
})();
