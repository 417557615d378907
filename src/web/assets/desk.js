// The agent desk: the agent's state, live, the buttons that change it, the caller card while
// a call rings and lasts, and the wrap-up after it.
"use strict";

(() => {
  const card = document.getElementById("agent");
  const me = document.body.dataset.agent;
  const el = (id) => document.getElementById(id);
  const message = el("message");
  // The call on the caller card, and whether this agent answered it.
  let shown = null;
  let answered = false;

  function clear(node) {
    while (node.firstChild) node.firstChild.remove();
  }

  function item(list, text) {
    const li = document.createElement("li");
    li.textContent = text;
    list.appendChild(li);
    return li;
  }

  async function showHistory(call) {
    const list = el("caller-history");
    clear(list);
    item(list, "Looking…");
    try {
      const res = await fetch("/desk/history?call=" + encodeURIComponent(call), { credentials: "same-origin" });
      const json = await res.json();
      if (shown !== call) return; // another call by now
      clear(list);
      if (!res.ok) return item(list, json.error || "not available");
      if (json.calls.length === 0) return item(list, "No earlier call.");
      for (const c of json.calls) {
        const when = new Date(c.started).toLocaleString();
        let text = when + " — " + c.outcome + (c.agent ? " with " + c.agent : "");
        if (c.wrap_up_code) text += " — " + c.wrap_up_code;
        const li = item(list, text);
        if (c.note) {
          const note = document.createElement("blockquote");
          note.textContent = c.note;
          li.appendChild(note);
        }
        if (c.recording) {
          // The conversation, for those who may hear it (the server checks again).
          const audio = document.createElement("audio");
          audio.controls = true;
          audio.preload = "none";
          audio.src = "/api/calls/" + encodeURIComponent(c.id) + "/recording";
          li.appendChild(audio);
        }
      }
    } catch (e) {
      clear(list);
      item(list, "not available: " + e.message);
    }
  }

  function showCaller(c) {
    el("caller").hidden = false;
    el("caller-name").textContent = c.name;
    el("caller-number").textContent = c.number !== c.name ? c.number : "";
    el("caller-queue").textContent = c.queue;
    el("caller-waited").textContent = hotline.seconds(c.waited_s);
    el("caller-callback").textContent = c.callback ? "(you are calling them back)" : "";
    // Who passed them on, and what she wrote: never asked again.
    const passed = el("caller-passed");
    passed.hidden = !c.transferred_by;
    passed.textContent = c.transferred_by
      ? "Passed on by " + c.transferred_by + (c.note ? ": " + c.note : ".")
      : "";
    // A returning caller: their open voicemail or callback request, and who has it.
    const returning = el("caller-returning");
    returning.hidden = !c.returning;
    returning.textContent = c.returning || "";
    const steps = el("caller-steps");
    clear(steps);
    for (const s of c.steps) item(steps, s);
    const vars = el("caller-variables");
    clear(vars);
    if (c.variables.length === 0) {
      const dd = document.createElement("dd");
      dd.textContent = "nothing";
      vars.appendChild(dd);
    }
    for (const v of c.variables) {
      const dt = document.createElement("dt");
      dt.textContent = v.name;
      const dd = document.createElement("dd");
      dd.textContent = v.value;
      vars.append(dt, dd);
    }
    if (shown !== c.call) {
      shown = c.call;
      showHistory(c.call);
    }
  }

  function askWrapUp(call, caller) {
    const form = el("wrap-up-card");
    form.dataset.call = call;
    el("wrap-up-for").textContent = "Your call with " + caller + ".";
    el("wrap-up-note").value = "";
    el("wrap-up-message").textContent = "";
    form.hidden = false;
  }

  function show(row) {
    const state = el("state");
    state.textContent = hotline.stateLabel(row.state);
    state.className = "state " + row.state;
    el("reason").textContent = row.reason ? "(" + hotline.reasonLabel(row.reason) + ")" : "";
    const since = el("since");
    since.dataset.since = row.since_s;
    since.dataset.base = Date.now();
    since.textContent = hotline.seconds(row.since_s);
    const next = row.next_state;
    el("next").textContent = next
      ? "After this call: " + hotline.stateLabel(next.state) + (next.reason ? " (" + next.reason + ")" : "")
      : "";
    const wrap = el("wrap-up");
    wrap.dataset.left = row.wrap_up_left_s ?? "";
    wrap.dataset.base = Date.now();
    wrap.textContent = row.wrap_up_left_s != null ? "Wrap-up: " + row.wrap_up_left_s + " s left" : "";
    el("phone").textContent = row.registered
      ? "Your phone is registered."
      : "No phone is registered for you: register your SIP phone to take calls.";
    el("in-call").hidden = !(row.caller && row.state === "busy");
    showConsulting(row.consulting);
    if (row.caller) {
      if (row.caller.call !== shown) {
        answered = false;
        el("recording").textContent = "Record / pause recording";
        el("recording-message").textContent = "";
        el("transfer-number").value = "";
        el("transfer-note").value = "";
      }
      showCaller(row.caller);
      if (row.state === "busy") answered = true;
    } else if (shown) {
      // The call is over: ask for its wrap-up if she talked to the caller.
      if (answered) askWrapUp(shown, el("caller-name").textContent);
      else el("caller").hidden = true;
      shown = null;
      answered = false;
    }
  }

  async function set(state) {
    message.textContent = "";
    try {
      const body = { state };
      if (state !== "available") body.reason = el("reason-choice").value;
      show(await hotline.setState(body));
    } catch (e) {
      message.textContent = e.message;
    }
  }

  async function saveWrapUp() {
    const form = el("wrap-up-card");
    const out = el("wrap-up-message");
    out.textContent = "";
    try {
      const res = await fetch("/desk/wrap-up", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": hotline.csrf },
        body: JSON.stringify({
          call: form.dataset.call,
          code: el("wrap-up-code").value,
          note: el("wrap-up-note").value,
        }),
        credentials: "same-origin",
      });
      const json = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(json.error || "refused (" + res.status + ")");
      out.textContent = "Saved.";
      if (!shown) el("caller").hidden = true;
      const saved = json.id;
      setTimeout(() => { if (form.dataset.call === saved) form.hidden = true; }, 1500);
    } catch (e) {
      out.textContent = e.message;
    }
  }

  // Passes the caller on, as the phone's transfer would.
  async function transfer() {
    const out = el("transfer-message");
    // A number typed in wins over the list (the line's dial policy says whether it may be
    // dialled).
    const number = el("transfer-number").value.trim();
    const to = number || el("transfer-to").value;
    out.textContent = "";
    try {
      const res = await fetch("/desk/transfer", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": hotline.csrf },
        body: JSON.stringify({ to, note: el("transfer-note").value }),
        credentials: "same-origin",
      });
      const json = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(json.error || "refused (" + res.status + ")");
      out.textContent = json.ringing
        ? "Ringing " + to + ": the caller is yours again if they do not answer."
        : "Passed on to " + to + ".";
    } catch (e) {
      out.textContent = e.message;
    }
  }

  // `agent:bob` or `tel:+34…`, as a person reads it.
  function whom(to) {
    return to.replace(/^(agent|tel|queue):/, "");
  }

  // Whom she calls about her caller, while she does: ringing, then talking (the caller
  // holds), with the buttons to hand the caller over or have them back.
  function showConsulting(c) {
    el("consulting").hidden = !c;
    el("transfer").disabled = !!c;
    el("consult").disabled = !!c;
    if (!c) return;
    el("consulting-who").textContent = c.answered
      ? "Talking to " + whom(c.to) + "; the caller is on hold."
      : "Calling " + whom(c.to) + "…";
    el("consult-complete").disabled = !c.answered;
  }

  // Calls a colleague, a queue or a number about the caller, who holds meanwhile.
  async function consult() {
    const out = el("transfer-message");
    const number = el("transfer-number").value.trim();
    const to = number || el("transfer-to").value;
    out.textContent = "";
    try {
      const res = await fetch("/desk/consult", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": hotline.csrf },
        body: JSON.stringify({ to }),
        credentials: "same-origin",
      });
      const json = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(json.error || "refused (" + res.status + ")");
      out.textContent = "Calling " + whom(json.consulting) + " on your phone; the caller is on hold.";
    } catch (e) {
      out.textContent = e.message;
    }
  }

  // Hands the caller over to whom she talks to, or has them back.
  async function consultEnd(complete) {
    const out = el("transfer-message");
    out.textContent = "";
    try {
      const res = await fetch(complete ? "/desk/consult/complete" : "/desk/consult/cancel", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": hotline.csrf },
        body: JSON.stringify({}),
        credentials: "same-origin",
      });
      const json = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(json.error || "refused (" + res.status + ")");
      out.textContent = complete
        ? "Handed over to " + whom(json.transferred) + "."
        : "The caller is yours again.";
    } catch (e) {
      out.textContent = e.message;
    }
  }

  // Pauses the recording while the caller reads a card number, and resumes it (or starts
  // an on-demand one).
  async function recording() {
    const out = el("recording-message");
    out.textContent = "";
    try {
      const res = await fetch("/desk/recording", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": hotline.csrf },
        body: JSON.stringify({}),
        credentials: "same-origin",
      });
      const json = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(json.error || "refused (" + res.status + ")");
      out.textContent = json.recording ? "Recording." : "Recording paused.";
      el("recording").textContent = json.recording ? "Pause recording" : "Resume recording";
    } catch (e) {
      out.textContent = e.message;
    }
  }

  el("transfer").addEventListener("click", transfer);
  el("consult").addEventListener("click", consult);
  el("consult-complete").addEventListener("click", () => consultEnd(true));
  el("consult-cancel").addEventListener("click", () => consultEnd(false));
  el("recording").addEventListener("click", recording);
  el("ready").addEventListener("click", () => set("available"));
  el("not-ready").addEventListener("click", () => set("not-ready"));
  el("wrap-up-save").addEventListener("click", saveWrapUp);
  const pending = el("wrap-up-card").dataset;
  if (pending.call) askWrapUp(pending.call, pending.caller);
  if (card.dataset.row) show(JSON.parse(card.dataset.row));
  const followUps = hotline.followUps({
    supervisor: !!document.body.dataset.supervisor,
    callBack: true, // rings this agent's phone, then the caller
  });
  hotline.follow(card.dataset.after, {
    agent: (e) => { if (e.agent.id === me) show(e.agent); },
    "follow-ups": () => followUps(),
  });
  hotline.tick(() => [el("since")]);
  setInterval(() => {
    const wrap = el("wrap-up");
    if (wrap.dataset.left === "" || wrap.dataset.left === undefined) return;
    const left = Number(wrap.dataset.left) - (Date.now() - Number(wrap.dataset.base)) / 1000;
    wrap.textContent = "Wrap-up: " + Math.max(0, Math.ceil(left)) + " s left";
  }, 1000);
})();
