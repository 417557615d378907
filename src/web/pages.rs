//! The pages, as maud templates: HTML checked when the crate compiles, and every value put in
//! it escaped unless it is marked as markup, so nothing a caller or a config wrote can become a
//! tag. The pages' scripts are files of their own (no inline script: the Content-Security-Policy
//! forbids it), and they set caller-supplied text with `textContent` only.

use maud::{DOCTYPE, Markup, html};

use crate::api::caller::LiveCall;
use crate::api::{AgentRow, QueueRow};
use crate::status::TrunkRow;

/// Who is looking at a page.
pub struct Viewer<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub supervisor: bool,
    pub csrf: &'a str,
}

fn page(title: &str, viewer: Option<&Viewer>, script: Option<&str>, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · hotline" }
                link rel="stylesheet" href="/assets/style.css";
            }
            body data-csrf=[viewer.map(|v| v.csrf)] data-agent=[viewer.map(|v| v.id)]
                data-supervisor=[viewer.filter(|v| v.supervisor).map(|_| "yes")] {
                header {
                    span.brand { "hotline" }
                    @if let Some(v) = viewer {
                        nav {
                            a href="/desk" { "Desk" }
                            @if v.supervisor {
                                a href="/wall" { "Wall" }
                            }
                        }
                        span.who { (v.name) }
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(v.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (main) }
                @if let Some(s) = script {
                    script src="/assets/common.js" {}
                    script src=(s) {}
                }
            }
        }
    }
}

/// The login form; `error` says why the last attempt failed.
pub fn login(error: Option<&str>, next: &str, agent: &str) -> Markup {
    page(
        "Log in",
        None,
        None,
        html! {
            section.card.login {
                h1 { "Log in" }
                p.hint { "Your agent id and password, as your phone uses them." }
                @if let Some(e) = error {
                    p.error role="alert" { (e) }
                }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label { "Agent id" input name="agent" autocomplete="username" required value=(agent); }
                    label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

/// A page in place of one the viewer may not open.
pub fn refused(viewer: &Viewer, message: &str) -> Markup {
    page(
        "Not allowed",
        Some(viewer),
        None,
        html! { section.card { h1 { "Not allowed" } p.error { (message) } } },
    )
}

pub fn not_found(viewer: Option<&Viewer>) -> Markup {
    page(
        "Not found",
        viewer,
        None,
        html! { section.card { h1 { "Not found" } p { "There is no such page. " a href="/desk" { "The desk" } " is where agents start." } } },
    )
}

/// A trunk's registration in words (as `trunkLabel` in common.js).
fn trunk_label(t: &TrunkRow) -> String {
    match t.state {
        "registered" => format!("registered ({} s)", t.expires_s.unwrap_or(0)),
        "failed" => format!(
            "failed ({}), again in {} s",
            t.code.map_or("no answer".to_string(), |c| c.to_string()),
            t.retry_in_s.unwrap_or(0)
        ),
        "off" => "not registering".to_string(),
        other => other.to_string(),
    }
}

fn trunk_class(t: &TrunkRow) -> &'static str {
    match t.state {
        "failed" => "alert",
        "registered" | "off" => "calm",
        _ => "busy",
    }
}

/// The router's own reasons in words (an agent's reason, "lunch", is shown as given).
pub fn reason_label(reason: &str) -> &str {
    match reason {
        "no-phone" => "no phone registered",
        "unreachable" => "phone not answering",
        "registered" => "phone registered, not yet ready",
        "ring-no-answer" => "missed a call",
        other => other,
    }
}

/// Words for a state, as the pages show it.
pub fn state_label(state: &str) -> &'static str {
    match state {
        "available" => "Ready",
        "ringing" => "Ringing",
        "busy" => "On a call",
        "wrap-up" => "Wrap-up",
        "not-ready" => "Not ready",
        "offline" => "Offline",
        _ => "Unknown",
    }
}

/// The agent desk: their state, the buttons that change it, and what comes next.
/// What the desk is rendered with.
pub struct Desk<'a> {
    pub me: Option<&'a AgentRow>,
    pub reasons: &'a [String],
    pub codes: &'a [String],
    /// The agent's last answered call still without a wrap-up: its Call-ID and caller.
    pub pending: Option<(String, String)>,
    /// Where a caller can be passed on: the queues, then the other agents.
    pub targets: Vec<String>,
    /// The number of the last event before the render: the stream resumes after it.
    pub after: u64,
}

pub fn desk(viewer: &Viewer, d: &Desk) -> Markup {
    let (me, reasons, after) = (d.me, d.reasons, d.after);
    // The page's script draws the row (the caller card too) from the same JSON the stream sends.
    let row = me
        .and_then(|r| serde_json::to_string(r).ok())
        .unwrap_or_default();
    let state = me.map_or("offline", |r| r.state);
    page(
        "Desk",
        Some(viewer),
        Some("/assets/desk.js"),
        html! {
            section.card id="agent" data-after=(after) data-row=(row) {
                h1 { (viewer.name) }
                p.state-line {
                    "You are "
                    strong id="state" class=(format!("state {state}")) { (state_label(state)) }
                    " "
                    span id="reason" { (me.and_then(|r| r.reason.as_deref()).map(|r| format!("({})", reason_label(r))).unwrap_or_default()) }
                    " for "
                    span id="since" data-since=[me.map(|r| r.since_s)] { (me.map(|r| r.since_s).unwrap_or(0)) " s" }
                }
                p id="next" { (me.and_then(|r| r.next_state.as_ref()).map(|n| format!("After this call: {}{}", state_label(n.state), n.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())).unwrap_or_default()) }
                p id="wrap-up" { (me.and_then(|r| r.wrap_up_left_s).map(|s| format!("Wrap-up: {s} s left")).unwrap_or_default()) }
                p id="phone" {
                    @if me.is_some_and(|r| r.registered) { "Your phone is registered." }
                    @else { "No phone is registered for you: register your SIP phone to take calls." }
                }
                div.buttons {
                    button id="ready" type="button" { "Ready" }
                    label { "Reason "
                        select id="reason-choice" {
                            @for r in reasons { option value=(r) { (r) } }
                        }
                    }
                    button id="not-ready" type="button" { "Not ready" }
                }
                p id="message" role="status" {}
            }
            section.card id="caller" hidden {
                h1 { "Caller" }
                p.caller-who {
                    strong id="caller-name" {} " " span id="caller-number" {}
                }
                p {
                    "Queue " strong id="caller-queue" {} ", waited " span id="caller-waited" {}
                    " " span id="caller-callback" {}
                }
                p id="caller-passed" hidden {}
                p id="caller-returning" hidden {}
                h2 { "Their way through the line" }
                ol id="caller-steps" {}
                h2 { "What they typed" }
                dl id="caller-variables" {}
                div id="in-call" hidden {
                    label { "Pass on to "
                        select id="transfer-to" {
                            @for t in &d.targets { option value=(t) { (t) } }
                        }
                    }
                    label { " or a number "
                        input id="transfer-number" type="tel" maxlength="32" autocomplete="off" placeholder="+34 600 111 222";
                    }
                    label { " with a note for them "
                        textarea id="transfer-note" maxlength="500" rows="2" {}
                    }
                    button id="transfer" type="button" { "Transfer" }
                    " "
                    button id="consult" type="button" { "Talk to them first" }
                    p id="transfer-message" role="status" {}
                    div id="consulting" hidden {
                        p id="consulting-who" role="status" {}
                        button id="consult-complete" type="button" { "Hand the caller over" }
                        " "
                        button id="consult-cancel" type="button" { "Back to the caller" }
                    }
                    button id="recording" type="button" { "Record / pause recording" }
                    p id="recording-message" role="status" {}
                }
                h2 { "Their calls of the last 30 days" }
                ul id="caller-history" {}
            }
            section.card id="wrap-up-card" hidden
                data-call=[d.pending.as_ref().map(|p| &p.0)]
                data-caller=[d.pending.as_ref().map(|p| &p.1)] {
                h1 { "Wrap-up" }
                p id="wrap-up-for" {}
                label { "Code "
                    select id="wrap-up-code" {
                        @for c in d.codes { option value=(c) { (c) } }
                    }
                }
                label.note { "Note" textarea id="wrap-up-note" maxlength="2000" rows="3" {} }
                button id="wrap-up-save" type="button" { "Save" }
                p id="wrap-up-message" role="status" {}
            }
            (followups("Your queues' voicemails and callbacks"))
        },
    )
}

fn seconds(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 60 {
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

/// The supervisor wall: every queue's live figures and every agent's state.
/// `on until 2026-12-07T11:00:00Z (sam)`, `off`.
fn switch_label(s: &crate::status::switches::SwitchRow) -> String {
    let mut text = if s.on { "on" } else { "off" }.to_string();
    if let Some(f) = &s.flip {
        match &f.until {
            Some(u) => text.push_str(&format!(" until {u}")),
            None => text.push_str(" until flipped back"),
        }
        text.push_str(&format!(" ({})", f.by));
    }
    text
}

pub fn wall(
    viewer: &Viewer,
    queues: &[QueueRow],
    agents: &[AgentRow],
    calls: &[LiveCall],
    trunks: &[TrunkRow],
    switches: &[crate::status::switches::SwitchRow],
    after: u64,
) -> Markup {
    page(
        "Wall",
        Some(viewer),
        Some("/assets/wall.js"),
        html! {
            section.card id="wall" data-after=(after) {
                h1 { "Queues" }
                table id="queues" {
                    thead { tr {
                        th { "Queue" } th { "Waiting" } th { "Longest wait" } th { "Expected wait" }
                        th { "Ready" } th { "Ringing" } th { "On a call" } th { "Wrap-up" } th { "Not ready" }
                        th { "Answered in time (last hour)" }
                    } }
                    tbody {
                        @for q in queues {
                            tr data-queue=(q.name) class=(queue_class(q)) {
                                td { (q.name) }
                                td.waiting { (q.waiting) }
                                td.longest data-since=[(q.waiting > 0).then_some(q.longest_wait_s)] { (seconds(q.longest_wait_s)) }
                                td.ewt { (q.ewt_s.map(seconds).unwrap_or_else(|| "–".into())) }
                                td.available { (q.agents.available) }
                                td.ringing { (q.agents.ringing) }
                                td.busy { (q.agents.busy) }
                                td.wrap-up { (q.agents.wrap_up) }
                                td.not-ready { (q.agents.not_ready) }
                                td.sl { (service_level(q)) }
                            }
                        }
                    }
                }
            }
            @if !switches.is_empty() {
                section.card {
                    h1 { "Switches" }
                    table id="switches" {
                        thead { tr { th { "Switch" } th { "What for" } th { "Now" } th { "Flip" } } }
                        tbody {
                            @for s in switches {
                                tr data-switch=(s.name) class=(if s.on { "alert" } else { "calm" }) {
                                    td.name { (s.name) }
                                    td.description { (s.description) }
                                    td.position { (switch_label(s)) }
                                    td.flip {
                                        select.for aria-label="for how long" {
                                            option value="" { "until flipped back" }
                                            option value="3600" { "for 1 hour" }
                                            option value="14400" { "for 4 hours" }
                                            option value="86400" { "for 24 hours" }
                                        }
                                        " "
                                        button.flip type="button" { (if s.on { "Turn off" } else { "Turn on" }) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !trunks.is_empty() {
                section.card {
                    h1 { "Carrier trunks" }
                    table id="trunks" {
                        thead { tr { th { "Trunk" } th { "Proxy" } th { "Registration" } } }
                        tbody {
                            @for t in trunks {
                                tr data-trunk=(t.name) class=(trunk_class(t)) {
                                    td.name { (t.name) }
                                    td.proxy { (t.proxy) }
                                    td.state { (trunk_label(t)) }
                                }
                            }
                        }
                    }
                }
            }
            section.card id="compliance" {
                h1 { "Today (since 00:00 UTC)" }
                dl.figures {
                    dt { "Calls" } dd.calls { "–" }
                    dt { "Offered a human within 3 minutes" } dd.offered { "–" }
                    dt { "Answered by a human" } dd.answered { "–" }
                    dt { "Average speed of answer" } dd.asa { "–" }
                    dt { "Abandoned waiting" } dd.abandoned { "–" }
                    dt { "Follow-ups overdue" } dd.overdue { "–" }
                }
                p.hint { "Spain's customer-service law asks 95% of callers to be offered a human within 3 minutes." }
            }
            section.card {
                h1 { "Callers with a human, or waiting for one" }
                table id="calls" {
                    thead { tr {
                        th { "Caller" } th { "Queue" } th { "State" } th { "Agent" } th { "Waited" } th { "Their way" }
                    } }
                    tbody {
                        @for c in calls {
                            tr data-call=(c.call) class=(c.state) {
                                td.caller {
                                    (c.name) @if c.number != c.name { " " (c.number) }
                                    @if let Some(r) = &c.returning { " (" (r) ")" }
                                }
                                td.queue { (c.queue) }
                                td.state { (c.state) }
                                td.agent { (c.agent.as_deref().unwrap_or("")) }
                                td.waited { (seconds(c.waited_s as f64)) }
                                td.steps { (c.steps.join(" → ")) }
                            }
                        }
                    }
                }
            }
            section.card {
                h1 { "Agents" }
                table id="agents" {
                    thead { tr {
                        th { "Agent" } th { "State" } th { "Reason" } th { "For" } th { "Phone" } th { "Set state" }
                    } }
                    tbody {
                        @for a in agents {
                            tr data-agent=(a.id) {
                                td.name { (a.name) " (" (a.id) ")" }
                                td { span class=(format!("state {}", a.state)) { (state_label(a.state)) } }
                                td.reason { (a.reason.as_deref().map(reason_label).unwrap_or("")) }
                                td.since data-since=(a.since_s) { (seconds(a.since_s as f64)) }
                                td.phone { @if !a.registered { "none" } @else if a.unreachable { "not answering" } @else { "registered" } }
                                td.set {
                                    select {
                                        option value="available" { "Ready" }
                                        option value="not-ready" { "Not ready" }
                                        option value="offline" { "Offline" }
                                    }
                                    button type="button" { "Set" }
                                }
                            }
                        }
                    }
                }
                p id="message" role="status" {}
            }
            (followups("Follow-ups"))
        },
    )
}

/// The follow-ups table; the page's script fills it from `/api/followups`.
fn followups(title: &str) -> Markup {
    html! {
        section.card id="followups" {
            h1 { (title) }
            p id="followup-none" { "Nothing to follow up." }
            table id="followup-list" {
                thead { tr {
                    th { "What" } th { "Caller" } th { "Queue" } th { "Age" } th { "Due" }
                    th { "State" } th { "Message" } th { "" }
                } }
                tbody {}
            }
            p id="followup-message" role="status" {}
        }
    }
}

/// "95% within 20 s", or a dash before anyone has left the queue this hour.
fn service_level(q: &QueueRow) -> String {
    let share = q
        .service_level
        .map_or_else(|| "–".to_string(), |s| format!("{:.0}%", s * 100.0));
    format!("{share} within {} s", q.service_level_s)
}

/// A queue row's colour: calm, callers waiting, or callers waiting too long / too few
/// answered in time.
pub fn queue_class(q: &QueueRow) -> &'static str {
    if q.longest_wait_s >= 60.0 || q.service_level.is_some_and(|s| s < 0.8) {
        "alert"
    } else if q.waiting > 0 {
        "busy"
    } else {
        "calm"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_caller_or_a_config_wrote_is_shown_as_text() {
        let v = Viewer {
            id: "alice",
            name: "<img src=x onerror=alert(1)>",
            supervisor: false,
            csrf: "\"><script>",
        };
        let reasons = ["<b>lunch</b>".to_string()];
        let d = Desk {
            me: None,
            reasons: &reasons,
            codes: &[],
            pending: Some(("c1".into(), "\"><img src=x>".into())),
            targets: vec!["<i>billing</i>".into()],
            after: 0,
        };
        let out = desk(&v, &d).into_string();
        assert!(!out.contains("<img"), "{out}");
        assert!(!out.contains("<b>"), "{out}");
        assert!(!out.contains("<i>"), "{out}");
        assert!(!out.contains("\"><script>"), "{out}");
        assert!(out.contains("&lt;img src=x onerror=alert(1)&gt;"), "{out}");
        assert!(out.contains("<script src=\"/assets/desk.js\">"), "{out}");
    }
}
