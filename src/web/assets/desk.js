// The agent desk: the agent's state, live, and the buttons that change it.
"use strict";

(() => {
  const card = document.getElementById("agent");
  const me = document.body.dataset.agent;
  const el = (id) => document.getElementById(id);
  const message = el("message");

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
  }

  async function set(state) {
    message.textContent = "";
    try {
      const body = { state };
      if (state !== "available") body.reason = el("reason-choice").value;
      const row = await hotline.setState(body);
      show(row);
    } catch (e) {
      message.textContent = e.message;
    }
  }

  el("ready").addEventListener("click", () => set("available"));
  el("not-ready").addEventListener("click", () => set("not-ready"));
  hotline.follow(card.dataset.after, {
    agent: (e) => { if (e.agent.id === me) show(e.agent); },
  });
  hotline.tick(() => [el("since")]);
  setInterval(() => {
    const wrap = el("wrap-up");
    if (wrap.dataset.left === "" || wrap.dataset.left === undefined) return;
    const left = Number(wrap.dataset.left) - (Date.now() - Number(wrap.dataset.base)) / 1000;
    wrap.textContent = "Wrap-up: " + Math.max(0, Math.ceil(left)) + " s left";
  }, 1000);
})();
