//! The engine on a fake clock: every timer is jumped, not waited for.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Action, Call, END_RECORDING, Event, Outcome, announce};
use crate::flow::load;
use crate::flow::model::FlowSet;

const FLOW: &str = r##"
[flow]
entry = "welcome"
escape_digit = "0"
escape_to = "agents"
max_steps_to_human = 4

[nodes.welcome]
type = "play"
prompt = "welcome"
next = "menu"

[nodes.menu]
type = "menu"
prompt = "main_menu"
options = { "1" = "agents", "2" = "account", "3" = "info", "4" = "desk", "5" = "vm", "6" = "cb", "9" = "bye" }
timeout_s = 5
max_retries = 1
invalid_prompt = "invalid"
on_exhausted = "agents"

[nodes.info]
type = "play"
prompt = "hours"
next = "menu"

[nodes.account]
type = "collect"
prompt = "enter_account"
min_digits = 3
max_digits = 5
terminator = "#"
timeout_s = 4
max_retries = 1
variable = "account"
next = "agents"
on_exhausted = "agents"

[nodes.agents]
type = "queue"
queue = "support"
max_wait_s = 60
record = "on-demand"
on_timeout = "vm"

[nodes.desk]
type = "transfer"
to = "sip:desk@pbx.example.com"
on_failure = "agents"

[nodes.vm]
type = "voicemail"
mailbox = "support"
prompt = "leave_message"

[nodes.cb]
type = "callback"
queue = "support"
prompt = "callback_confirm"

[nodes.bye]
type = "hangup"
prompt = "goodbye"
"##;

/// A line's own recording rule is one of the three; anything else is named where it is.
#[test]
fn a_queue_nodes_record_is_one_of_three() {
    let mut set = FlowSet::default();
    let mut diags = Vec::new();
    let bad = FLOW.replace("record = \"on-demand\"", "record = \"always\"");
    load::load_text(&mut set, Path::new("flows/main.toml"), &bad, &mut diags);
    let line = bad
        .lines()
        .position(|l| l.starts_with("record = "))
        .map(|i| i as u32 + 1);
    assert!(
        diags.iter().any(
            |d| d.message == "record = \"always\": one of off, on, on-demand"
                && Some(d.pos.line) == line
        ),
        "{:?}",
        diags
            .iter()
            .map(|d| (&d.message, d.pos.line))
            .collect::<Vec<_>>()
    );
}

fn set() -> FlowSet {
    valid_set("flows/main.toml", FLOW)
}

/// A flow that loads without a diagnostic, with the repository's prompts.
fn valid_set(file: &str, text: &str) -> FlowSet {
    let mut set = FlowSet::default();
    let mut diags = Vec::new();
    load::load_text(&mut set, Path::new(file), text, &mut diags);
    let prompts = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    load::finish(&mut set, Some(&prompts), &mut diags);
    assert!(diags.is_empty(), "{diags:?}");
    set
}

struct Clock(Instant);

impl Clock {
    fn at(&self, secs: f64) -> Instant {
        self.0 + Duration::from_secs_f64(secs)
    }
}

fn start<'a>(
    set: &'a FlowSet,
    cals: &'a HashMap<String, crate::flow::calendar::Calendar>,
) -> (Call<'a>, Clock, Vec<Action>) {
    #[allow(clippy::disallowed_methods)] // any instant will do: the clock is the test's
    let clock = Clock(Instant::now());
    let mut call = Call::new(set, cals, 0);
    let out = call.handle(
        Event::Start {
            wall: jiff::Timestamp::UNIX_EPOCH,
        },
        clock.at(0.0),
    );
    (call, clock, out)
}

fn play(names: &[&str]) -> Action {
    Action::Play(names.iter().map(|s| s.to_string()).collect())
}

fn node(call: &Call, set: &FlowSet) -> String {
    set.nodes[call.node().unwrap()].full_name.clone()
}

#[test]
fn a_menu_waits_for_its_timeout_after_the_prompt_then_retries_then_leaves() {
    let (set, cals) = (set(), HashMap::new());
    let (mut call, c, out) = start(&set, &cals);
    assert_eq!(out, vec![play(&["welcome"])]);
    assert_eq!(
        call.handle(Event::PromptFinished, c.at(3.0)),
        vec![play(&["main_menu"])]
    );
    assert_eq!(
        call.poll_timeout(),
        None,
        "no timeout while the prompt plays"
    );
    call.handle(Event::PromptFinished, c.at(10.0));
    assert_eq!(call.poll_timeout(), Some(c.at(15.0)));
    assert!(
        call.handle(Event::Timeout, c.at(14.9)).is_empty(),
        "an early timer does nothing"
    );
    assert_eq!(
        call.handle(Event::Timeout, c.at(15.0)),
        vec![play(&["main_menu"])]
    );
    call.handle(Event::PromptFinished, c.at(22.0));
    let out = call.handle(Event::Timeout, c.at(27.0));
    assert!(
        matches!(
            &out[..],
            [Action::EnterQueue { queue, max_wait_s: 60, record: Some(crate::config::RecordMode::OnDemand), .. }]
                if queue == "support"
        ),
        "{out:?}"
    );
    assert_eq!(call.steps(), 3);
    assert_eq!(call.outcome().map(|o| o.0), Some(Outcome::Queue));
    assert_eq!(
        call.path(),
        [
            "main.welcome",
            "done",
            "main.menu",
            "_",
            "main.menu",
            "_",
            "main.agents"
        ]
    );
}

#[test]
fn a_wrong_key_plays_the_invalid_prompt_before_the_retry() {
    let (set, cals) = (set(), HashMap::new());
    let (mut call, c, _) = start(&set, &cals);
    call.handle(Event::PromptFinished, c.at(3.0));
    let out = call.handle(Event::Digit('7'), c.at(4.0));
    assert_eq!(out, vec![play(&["invalid", "main_menu"])]);
    assert_eq!(call.steps(), 3);
}

#[test]
fn keys_pressed_during_a_play_act_at_the_next_menu() {
    let (set, cals) = (set(), HashMap::new());
    let (mut call, c, _) = start(&set, &cals);
    assert!(
        call.handle(Event::Digit('1'), c.at(1.0)).is_empty(),
        "kept, not acted on"
    );
    let out = call.handle(Event::PromptFinished, c.at(3.0));
    assert!(matches!(&out[..], [Action::EnterQueue { .. }]), "{out:?}");
    assert_eq!(node(&call, &set), "main.agents");
}

#[test]
fn the_escape_digit_acts_at_once_during_a_play_and_a_goodbye() {
    let (set, cals) = (set(), HashMap::new());
    let (mut call, c, _) = start(&set, &cals);
    let out = call.handle(Event::Digit('0'), c.at(1.0));
    assert_eq!(out[0], Action::StopPlayback);
    assert!(matches!(out[1], Action::EnterQueue { .. }));
    assert!(call.escape_used());
    assert_eq!(call.path(), ["main.welcome", "0", "main.agents"]);

    let (mut call, c, _) = start(&set, &cals);
    call.handle(Event::PromptFinished, c.at(3.0));
    assert_eq!(
        call.handle(Event::Digit('9'), c.at(4.0)),
        vec![Action::StopPlayback, play(&["goodbye"])]
    );
    let out = call.handle(Event::Digit('0'), c.at(5.0));
    assert!(
        matches!(out[..], [Action::StopPlayback, Action::EnterQueue { .. }]),
        "{out:?}"
    );
}

#[test]
fn a_collect_ends_at_the_terminator_at_max_digits_or_after_a_pause() {
    let (set, cals) = (set(), HashMap::new());
    let enter = |keys: &str| {
        let (mut call, c, _) = start(&set, &cals);
        call.handle(Event::PromptFinished, c.at(3.0));
        call.handle(Event::Digit('2'), c.at(4.0));
        let mut t = 5.0;
        for k in keys.chars() {
            call.handle(Event::Digit(k), c.at(t));
            t += 0.5;
        }
        (call, c, t)
    };
    let (call, ..) = enter("123#");
    assert_eq!(
        call.variables().get("account").map(String::as_str),
        Some("123")
    );
    let (call, ..) = enter("123456");
    assert_eq!(
        call.variables().get("account").map(String::as_str),
        Some("12345"),
        "max_digits ends it"
    );
    let (mut call, c, t) = enter("1234");
    assert_eq!(
        call.poll_timeout(),
        Some(c.at(t - 0.5 + 4.0)),
        "each key restarts the wait"
    );
    call.handle(Event::Timeout, c.at(t + 4.0));
    assert_eq!(
        call.variables().get("account").map(String::as_str),
        Some("1234")
    );
    // Too short: the collect plays again.
    let (mut call, c, t) = enter("12");
    let out = call.handle(Event::Timeout, c.at(t + 4.0));
    assert_eq!(out, vec![play(&["enter_account"])]);
    assert!(call.variables().is_empty());
}

#[test]
fn the_escape_digit_escapes_a_collect_only_as_its_first_key() {
    let (set, cals) = (set(), HashMap::new());
    let (mut call, c, _) = start(&set, &cals);
    call.handle(Event::PromptFinished, c.at(3.0));
    call.handle(Event::Digit('2'), c.at(4.0));
    for k in "100#".chars() {
        call.handle(Event::Digit(k), c.at(5.0));
    }
    assert_eq!(
        call.variables().get("account").map(String::as_str),
        Some("100")
    );
    assert!(!call.escape_used());
    let (mut call, c, _) = start(&set, &cals);
    call.handle(Event::PromptFinished, c.at(3.0));
    call.handle(Event::Digit('2'), c.at(4.0));
    call.handle(Event::Digit('0'), c.at(5.0));
    assert!(call.escape_used());
    assert!(call.variables().is_empty());
}

#[test]
fn the_watchdog_replaces_the_step_after_the_bound() {
    let (set, cals) = (set(), HashMap::new());
    let (mut call, c, _) = start(&set, &cals);
    let mut t = 0.0;
    // welcome, menu, info, menu: 4 steps; the next (info) is the watchdog's.
    for _ in 0..2 {
        t += 1.0;
        call.handle(Event::PromptFinished, c.at(t));
        call.handle(Event::Digit('3'), c.at(t));
    }
    assert_eq!(call.steps(), 4);
    assert!(call.watchdog_used());
    assert_eq!(node(&call, &set), "main.agents");
    assert_eq!(
        call.path().iter().rev().nth(1).map(String::as_str),
        Some("watchdog")
    );
}

#[test]
fn queue_timeout_transfer_failure_and_follow_ups() {
    let (set, cals) = (set(), HashMap::new());
    let (mut call, c, _) = start(&set, &cals);
    call.handle(Event::PromptFinished, c.at(1.0));
    call.handle(Event::Digit('4'), c.at(2.0));
    assert_eq!(call.outcome().map(|o| o.0), Some(Outcome::Transfer));
    call.handle(Event::TransferFailed, c.at(30.0));
    assert_eq!(node(&call, &set), "main.agents");
    let out = call.handle(Event::QueueTimedOut, c.at(90.0));
    assert!(
        matches!(&out[..], [Action::RecordVoicemail { mailbox, .. }] if mailbox == "support"),
        "{out:?}"
    );
    assert_eq!(
        call.human_offered().map(|h| h.0),
        Some(2),
        "first offered at the transfer"
    );
    assert_eq!(
        call.handle(Event::Finished, c.at(120.0)),
        vec![Action::Play(vec![announce::MESSAGE_SAVED.to_string()])],
        "told the message is saved once it is"
    );
    assert_eq!(
        call.handle(Event::PromptFinished, c.at(124.0)),
        vec![Action::Hangup]
    );
    assert!(call.is_ended());

    let (mut call, c, _) = start(&set, &cals);
    call.handle(Event::PromptFinished, c.at(1.0));
    let out = call.handle(Event::Digit('6'), c.at(2.0));
    assert!(
        matches!(&out[1], Action::RegisterCallback { queue } if queue == "support"),
        "{out:?}"
    );
    // Told only once the request is stored, and the call ends after the confirmation.
    assert_eq!(call.handle(Event::Digit('0'), c.at(2.5)), vec![]);
    assert_eq!(
        call.handle(Event::Finished, c.at(3.0)),
        vec![play(&["callback_confirm"])]
    );
    assert!(!call.is_ended());
    assert_eq!(
        call.handle(Event::PromptFinished, c.at(6.0)),
        vec![Action::Hangup]
    );
    assert_eq!(call.outcome().map(|o| o.0), Some(Outcome::Callback));
}

#[test]
fn a_waiting_caller_who_takes_the_callback_offer_ends_as_a_callback() {
    let (set, cals) = (set(), HashMap::new());
    let (mut call, c, _) = start(&set, &cals);
    call.handle(Event::PromptFinished, c.at(1.0));
    call.handle(Event::Digit('0'), c.at(2.0));
    assert_eq!(call.outcome().map(|o| o.0), Some(Outcome::Queue));
    // Stored before this event: the caller is told their place is kept.
    assert_eq!(
        call.handle(Event::CallbackChosen, c.at(130.0)),
        vec![play(&[announce::CALLBACK_KEPT])]
    );
    assert_eq!(call.outcome().map(|o| o.0), Some(Outcome::Callback));
    assert_eq!(call.path().last().map(String::as_str), Some("callback"));
    assert!(
        call.handle(Event::QueueTimedOut, c.at(131.0)).is_empty(),
        "no longer waiting"
    );
    assert_eq!(
        call.handle(Event::PromptFinished, c.at(135.0)),
        vec![Action::Hangup]
    );
    assert!(call.is_ended());
}

#[test]
fn a_caller_hanging_up_ends_the_call_where_it_is() {
    let (set, cals) = (set(), HashMap::new());
    let (mut call, c, _) = start(&set, &cals);
    call.handle(Event::PromptFinished, c.at(1.0));
    call.handle(Event::CallerHangup, c.at(2.0));
    assert!(call.is_ended());
    assert_eq!(call.poll_timeout(), None);
    let o = call.outcome().unwrap();
    assert_eq!(
        (o.0, set.nodes[o.1].full_name.as_str()),
        (Outcome::CallerHangup, "main.menu")
    );
    assert!(
        call.handle(Event::Digit('1'), c.at(3.0)).is_empty(),
        "an ended call does nothing"
    );
}

#[test]
fn a_message_that_cannot_be_saved_is_owned_up_to_and_the_caller_goes_to_a_human() {
    let (set, cals) = (set(), HashMap::new());
    let (mut call, c, _) = start(&set, &cals);
    call.handle(Event::PromptFinished, c.at(1.0));
    call.handle(Event::Digit('4'), c.at(2.0));
    call.handle(Event::TransferFailed, c.at(30.0));
    call.handle(Event::QueueTimedOut, c.at(90.0));
    assert_eq!(call.outcome().map(|o| o.0), Some(Outcome::Voicemail));
    // The disk refused the message: never "saved", an apology, then the flow's escape.
    assert_eq!(
        call.handle(Event::SaveFailed, c.at(120.0)),
        vec![Action::Play(vec![announce::NOT_SAVED.to_string()])]
    );
    assert!(!call.is_ended());
    let out = call.handle(Event::PromptFinished, c.at(125.0));
    assert!(
        matches!(&out[..], [Action::EnterQueue { queue, .. }] if queue == "support"),
        "{out:?}"
    );
    assert_eq!(call.outcome().map(|o| o.0), Some(Outcome::Queue));
    let tail: Vec<&str> = call
        .path()
        .iter()
        .rev()
        .take(3)
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["main.agents", "failure", "main.vm"]);
    // The queue times out into voicemail again, which fails again: no loop of promises.
    call.handle(Event::QueueTimedOut, c.at(200.0));
    assert_eq!(
        call.handle(Event::SaveFailed, c.at(230.0)),
        vec![Action::Play(vec![announce::CALL_LATER.to_string()])]
    );
    assert_eq!(
        call.outcome().map(|o| o.0),
        Some(Outcome::Hangup),
        "the record must not claim a voicemail"
    );
    assert_eq!(
        call.handle(Event::PromptFinished, c.at(235.0)),
        vec![Action::Hangup]
    );
}

#[test]
fn a_callback_that_cannot_be_stored_sends_the_caller_to_a_human() {
    let (set, cals) = (set(), HashMap::new());
    let (mut call, c, _) = start(&set, &cals);
    call.handle(Event::PromptFinished, c.at(1.0));
    call.handle(Event::Digit('6'), c.at(2.0));
    assert_eq!(
        call.handle(Event::SaveFailed, c.at(3.0)),
        vec![Action::Play(vec![announce::NOT_SAVED.to_string()])]
    );
    // The escape digit during the apology acts at once.
    let out = call.handle(Event::Digit('0'), c.at(4.0));
    assert!(
        matches!(&out[..], [Action::StopPlayback, Action::EnterQueue { .. }]),
        "{out:?}"
    );
}

/// With `escape = "alone"`, an entry may begin with the escape digit (account 012); the digit
/// on its own, then silence (or the terminator), is still the escape.
#[test]
fn a_collect_whose_escape_is_alone_reads_entries_beginning_with_the_escape_digit() {
    let flow = FLOW.replacen(
        "variable = \"account\"",
        "variable = \"account\"\nescape = \"alone\"",
        1,
    );
    let set = valid_set("flows/main.toml", &flow);
    let cals = HashMap::new();
    // 0, 1, 2, then the terminator: the account is 012.
    let (mut call, c, _) = start(&set, &cals);
    call.handle(Event::PromptFinished, c.at(3.0));
    call.handle(Event::Digit('2'), c.at(4.0));
    for k in "012#".chars() {
        call.handle(Event::Digit(k), c.at(5.0));
    }
    assert_eq!(
        call.variables().get("account").map(String::as_str),
        Some("012")
    );
    assert!(!call.escape_used());
    // 0, then the pause: the escape, to the agents, after the collect's 4 s wait.
    let (mut call, c, _) = start(&set, &cals);
    call.handle(Event::PromptFinished, c.at(3.0));
    call.handle(Event::Digit('2'), c.at(4.0));
    let out = call.handle(Event::Digit('0'), c.at(5.0));
    assert!(!call.escape_used(), "not yet: {out:?}");
    assert_eq!(call.poll_timeout(), Some(c.at(9.0)));
    call.handle(Event::Timeout, c.at(9.0));
    assert!(call.escape_used());
    assert_eq!(node(&call, &set), "main.agents");
    assert!(call.variables().is_empty());
    // 0 then the terminator: the escape at once.
    let (mut call, c, _) = start(&set, &cals);
    call.handle(Event::PromptFinished, c.at(3.0));
    call.handle(Event::Digit('2'), c.at(4.0));
    call.handle(Event::Digit('0'), c.at(5.0));
    call.handle(Event::Digit('#'), c.at(5.5));
    assert!(call.escape_used());
    // Anything else is refused with its place.
    let bad = FLOW.replacen(
        "variable = \"account\"",
        "variable = \"account\"\nescape = \"never\"",
        1,
    );
    let mut set = FlowSet::default();
    let mut diags = Vec::new();
    load::load_text(&mut set, Path::new("flows/main.toml"), &bad, &mut diags);
    assert!(
        diags
            .iter()
            .any(|d| d.message.contains("`escape` is \"first\"")),
        "{diags:?}"
    );
}

/// A line that sorts callers by who they are, when they call and what they typed.
const SORTING: &str = r##"
[flow]
entry = "by_number"
escape_digit = "0"
escape_to = "agents"

[nodes.by_number]
type = "branch"
variable = "caller_number"
cases = { "+34600111222" = "vip", "prefix:+34" = "by_time", "" = "agents" }
default = "abroad"

[nodes.vip]
type = "queue"
queue = "support"
priority = 10
set = { segment = "vip", known = true }
on_timeout = "agents"

[nodes.abroad]
type = "queue"
queue = "support"
set = { segment = "abroad" }
on_timeout = "agents"

[nodes.by_time]
type = "branch"
variable = "time"
cases = { "range:09:00..14:00" = "morning" }
default = "amount"

[nodes.morning]
type = "queue"
queue = "support"
on_timeout = "agents"

[nodes.amount]
type = "collect"
prompt = "enter_account"
variable = "amount"
next = "by_amount"
on_exhausted = "agents"

[nodes.by_amount]
type = "branch"
variable = "amount"
cases = { "range:..100" = "small", "range:100..1000" = "medium", "one_of:1000,2000" = "round" }
default = "agents"

[nodes.small]
type = "queue"
queue = "support"
on_timeout = "agents"

[nodes.medium]
type = "queue"
queue = "support"
on_timeout = "agents"

[nodes.round]
type = "queue"
queue = "support"
on_timeout = "agents"

[nodes.agents]
type = "queue"
queue = "support"
on_timeout = "vm"

[nodes.vm]
type = "voicemail"
mailbox = "support"
"##;

#[test]
fn branches_read_built_ins_sets_and_typed_cases() {
    let set = valid_set("flows/sorting.toml", SORTING);
    let cals = HashMap::new();
    #[allow(clippy::disallowed_methods)] // any instant will do: the clock is the test's
    let t0 = Instant::now();
    let madrid = jiff::tz::TimeZone::get("Europe/Madrid").unwrap();
    // 2026-12-07 is a Monday; 09:30 in Madrid is 08:30 UTC.
    let at =
        |hhmm: &str| -> jiff::Timestamp { format!("2026-12-07T{hhmm}:00+01:00").parse().unwrap() };
    let run = |caller: &str, wall: jiff::Timestamp, keys: &str| {
        let mut call = Call::new(&set, &cals, 0)
            .with_caller(caller, "900100200")
            .with_timezone(madrid.clone());
        call.handle(Event::Start { wall }, t0);
        call.handle(Event::PromptFinished, t0);
        for k in keys.chars() {
            call.handle(Event::Digit(k), t0);
        }
        if !keys.is_empty() {
            // The caller pauses: the entry ends.
            call.handle(Event::Timeout, t0 + Duration::from_secs(10));
        }
        let name = set.nodes[call.node().unwrap()].full_name.clone();
        let vars = call.variables().clone();
        (
            name,
            vars,
            call.value("weekday", t0),
            call.value("line", t0),
        )
    };
    let (n, vars, weekday, line) = run("+34600111222", at("09:30"), "");
    assert_eq!(n, "sorting.vip");
    assert_eq!(vars.get("segment").map(String::as_str), Some("vip"));
    assert_eq!(vars.get("known").map(String::as_str), Some("true"));
    assert_eq!(weekday.as_deref(), Some("mon"));
    assert_eq!(line.as_deref(), Some("900100200"));
    assert_eq!(run("+44207000000", at("09:30"), "").0, "sorting.abroad");
    assert_eq!(run("", at("09:30"), "").0, "sorting.agents");
    // Spanish callers: in the morning (Madrid time) to the morning queue, else by amount.
    assert_eq!(run("+34911000000", at("09:30"), "").0, "sorting.morning");
    assert_eq!(run("+34911000000", at("14:00"), "99").0, "sorting.small");
    assert_eq!(run("+34911000000", at("14:00"), "100").0, "sorting.medium");
    assert_eq!(run("+34911000000", at("14:00"), "2000").0, "sorting.round");
    assert_eq!(run("+34911000000", at("14:00"), "5000").0, "sorting.agents");
}

#[test]
fn overlapping_or_unreadable_cases_and_built_in_names_are_refused_where_written() {
    let bad = SORTING
        .replace("\"one_of:1000,2000\"", "\"range:500..2000\"")
        .replace(
            "set = { segment = \"abroad\" }",
            "set = { caller_number = \"x\" }",
        )
        .replace("\"range:09:00..14:00\"", "\"range:14:00..09:00\"");
    let mut set = FlowSet::default();
    let mut diags = Vec::new();
    load::load_text(&mut set, Path::new("flows/sorting.toml"), &bad, &mut diags);
    let msgs: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert!(msgs.iter().any(|m| m.contains("overlaps")), "{msgs:?}");
    assert!(
        msgs.iter()
            .any(|m| m.contains("may not change \"caller_number\"")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("`range:LOW..HIGH`")),
        "{msgs:?}"
    );
    assert!(diags.iter().all(|d| d.pos.line > 0));
}

const LOOKING_UP: &str = r##"
[flow]
entry = "account"
escape_digit = "0"
escape_to = "agents"

[nodes.account]
type = "collect"
prompt = "enter_account"
min_digits = 3
max_digits = 3
variable = "account"
escape = "first"
next = "identify"
on_exhausted = "agents"

[nodes.identify]
type = "lookup"
endpoint = "crm"
send = ["account"]
next = "tier"
on_error = "agents"

[nodes.tier]
type = "branch"
variable = "crm.tier"
cases = { "vip" = "priority" }
default = "agents"

[nodes.priority]
type = "queue"
queue = "support"
on_timeout = "agents"

[nodes.agents]
type = "queue"
queue = "support"
on_timeout = "vm"

[nodes.vm]
type = "voicemail"
mailbox = "support"
"##;

/// A lookup asks with the caller's number, the line and what it sends; its answer's fields
/// become `crm.*`; a failure, or no answer by the endpoint's timeout, goes `on_error`; the
/// escape digit works while the caller waits for it.
#[test]
fn a_lookup_asks_then_takes_its_answer_its_failure_or_its_timeout() {
    let mut set = valid_set("flows/id.toml", LOOKING_UP);
    set.lookups.insert(
        "crm".into(),
        toml::from_str(
            "url = \"http://127.0.0.1:9/c\"\ntimeout_ms = 1500\nfields = { tier = \"string\" }",
        )
        .unwrap(),
    );
    let cals = HashMap::new();
    let begin = |set| {
        let (call, c, _) = start(set, &cals);
        let mut call = call.with_caller("+34600111222", "900100200");
        call.handle(Event::PromptFinished, c.at(1.0));
        let mut out = Vec::new();
        for k in "123".chars() {
            out = call.handle(Event::Digit(k), c.at(2.0));
        }
        (call, c, out)
    };
    let (mut call, c, out) = begin(&set);
    assert_eq!(
        out,
        vec![Action::Lookup {
            endpoint: "crm".into(),
            params: vec![
                ("caller_number".into(), "+34600111222".into()),
                ("line".into(), "900100200".into()),
                ("account".into(), "123".into()),
            ],
            timeout_ms: 1500,
        }]
    );
    assert_eq!(call.looking_up(), Some("crm"));
    assert_eq!(call.poll_timeout(), Some(c.at(3.5)));
    call.handle(
        Event::LookupAnswered(vec![("tier".into(), "vip".into())]),
        c.at(2.2),
    );
    assert_eq!(node(&call, &set), "id.priority");
    assert_eq!(call.variables()["crm.tier"], "vip");
    assert_eq!(
        call.path()[2..6],
        ["id.identify", "answer", "id.tier", "case:vip"]
    );
    // It fails: on_error at once.
    let (mut call, c, _) = begin(&set);
    call.handle(Event::LookupFailed, c.at(2.1));
    assert_eq!(node(&call, &set), "id.agents");
    assert!(call.path().contains(&"error".to_string()));
    // No answer: on_error at the timeout, not before; a late answer changes nothing.
    let (mut call, c, _) = begin(&set);
    call.handle(Event::Timeout, c.at(3.0));
    assert_eq!(call.looking_up(), Some("crm"), "not yet");
    call.handle(Event::Timeout, c.at(3.5));
    assert_eq!(node(&call, &set), "id.agents");
    call.handle(
        Event::LookupAnswered(vec![("tier".into(), "vip".into())]),
        c.at(4.0),
    );
    assert_eq!(node(&call, &set), "id.agents");
    assert!(!call.variables().contains_key("crm.tier"));
    // The escape digit while it waits.
    let (mut call, c, _) = begin(&set);
    call.handle(Event::Digit('0'), c.at(2.5));
    assert!(call.escape_used());
    assert_eq!(node(&call, &set), "id.agents");
}

const RETURNING: &str = r##"
[flow]
entry = "returning"
escape_digit = "0"
escape_to = "agents"

[nodes.returning]
type = "returning"
open = "taken"
none = "agents"

[nodes.taken]
type = "branch"
variable = "follow_up.state"
cases = { "taken" = "menu" }
default = "menu"

[nodes.menu]
type = "menu"
prompt = "main_menu"
options = { "1" = "owner", "2" = "withdraw" }
on_exhausted = "owner"

[nodes.owner]
type = "owner"
queue = "support"
priority = 3
on_timeout = "vm"

[nodes.withdraw]
type = "withdraw"
next = "bye"

[nodes.bye]
type = "hangup"
prompt = "goodbye"

[nodes.agents]
type = "queue"
queue = "support"
on_timeout = "vm"

[nodes.vm]
type = "voicemail"
mailbox = "support"
"##;

/// A returning caller: the `open` way knows the item; `owner` asks for its owner first in
/// its queue; `withdraw` closes it once and the caller is a stranger after. Without an item
/// `returning` goes `none` and `owner` is a plain queue.
#[test]
fn a_returning_caller_is_known_put_through_to_the_owner_or_withdraws() {
    let set = valid_set("flows/r.toml", RETURNING);
    let cals = HashMap::new();
    let item = super::OpenItem {
        id: 42,
        kind: "voicemail".into(),
        state: "taken".into(),
        owner: Some("alice".into()),
        queue: "billing".into(),
        created_at: "2026-12-07T08:14:00Z".into(),
    };
    #[allow(clippy::disallowed_methods)] // any instant will do: the clock is the test's
    let t0 = Instant::now();
    let begin = |item: Option<super::OpenItem>| {
        let mut call = Call::new(&set, &cals, 0)
            .with_follow_up(item)
            .with_timezone(jiff::tz::TimeZone::get("Europe/Madrid").unwrap());
        call.handle(
            Event::Start {
                wall: jiff::Timestamp::UNIX_EPOCH,
            },
            t0,
        );
        call.handle(Event::PromptFinished, t0);
        call
    };
    let mut call = begin(Some(item.clone()));
    assert_eq!(
        call.path()[..4],
        ["r.returning", "open", "r.taken", "case:taken"]
    );
    assert_eq!(call.variables()["follow_up.owner"], "alice");
    assert_eq!(call.variables()["follow_up.at"], "09:14");
    assert_eq!(call.variables()["follow_up.kind"], "voicemail");
    let out = call.handle(Event::Digit('1'), t0);
    let first = out.iter().find_map(|a| match a {
        Action::EnterQueue {
            queue,
            priority,
            first,
            ..
        } => Some((queue.clone(), *priority, first.clone())),
        _ => None,
    });
    assert_eq!(
        first,
        Some((
            "support".to_string(),
            3,
            Some(super::First {
                follow_up: 42,
                owner: Some("alice".into()),
                queue: "billing".into()
            })
        ))
    );
    // "No longer needed": closed once, then the goodbye the caller chose.
    let mut call = begin(Some(item));
    let out = call.handle(Event::Digit('2'), t0);
    assert!(out.contains(&Action::Withdraw { follow_up: 42 }), "{out:?}");
    assert!(call.follow_up().is_none());
    assert_eq!(node(&call, &set), "r.bye");
    // A stranger.
    let call = begin(None);
    assert_eq!(call.path()[..3], ["r.returning", "none", "r.agents"]);
    assert!(call.variables().is_empty());
}

const BILINGUAL: &str = r##"
[flow]
entry = "offer"
escape_digit = "0"
escape_to = "agents"

[nodes.offer]
type = "menu"
prompt = [{ say = "Hello." }, { say = "Para español, pulse dos.", language = "es" }]
options = { "2" = "spanish" }
timeout_s = 2
max_retries = 0
on_exhausted = "menu"

[nodes.spanish]
type = "play"
set = { language = "es" }
prompt = { say = { es = "Hola." } }
next = "menu"

[nodes.menu]
type = "menu"
prompt = { say = { en = "Press 1.", es = "Pulse uno." } }
options = { "1" = "vm" }
on_exhausted = "agents"

[nodes.agents]
type = "queue"
queue = "support"
on_timeout = "vm"

[nodes.vm]
type = "voicemail"
mailbox = "support"
prompt = { say = { en = "Speak after the tone.", es = "Hable después del tono." } }
"##;

/// A caller who presses 2 hears Spanish from there on: the flow's text in Spanish, and the
/// server's words (the voicemail's confirmation) from `prompts/es/`; one who does not stays
/// in English. The offer itself is said in Spanish to both.
#[test]
fn a_caller_who_chooses_spanish_hears_spanish_from_then_on() {
    let set = valid_set("flows/main.toml", BILINGUAL);
    let cals = HashMap::new();
    let tts = crate::tts::Tts::default();
    let said = |language: &str, text: &str| tts.name(language, text);
    for (keys, language) in [("2", "es"), ("", "en")] {
        let (mut call, c, out) = start(&set, &cals);
        assert_eq!(
            out,
            vec![Action::Play(vec![
                said("en", "Hello."),
                said("es", "Para español, pulse dos.")
            ])]
        );
        assert_eq!(call.language(), "en");
        let mut t = 1.0;
        call.handle(Event::PromptFinished, c.at(t));
        let out = if keys.is_empty() {
            t += 2.0;
            call.handle(Event::Timeout, c.at(t))
        } else {
            let out = call.handle(Event::Digit('2'), c.at(t));
            assert_eq!(out, vec![Action::Play(vec![said("es", "Hola.")])]);
            t += 1.0;
            call.handle(Event::PromptFinished, c.at(t))
        };
        let menu = if language == "es" {
            "Pulse uno."
        } else {
            "Press 1."
        };
        assert!(
            out.contains(&Action::Play(vec![said(language, menu)])),
            "{out:?}"
        );
        assert_eq!(call.language(), language);
        assert_eq!(call.value("language", c.at(t)).as_deref(), Some(language));
        let out = call.handle(Event::Digit('1'), c.at(t + 1.0));
        assert!(
            matches!(&out[..], [.., Action::RecordVoicemail { prompts, .. }]
                if *prompts == vec![said(language, if language == "es" { "Hable después del tono." } else { "Speak after the tone." })]),
            "{out:?}"
        );
        let out = call.handle(Event::Finished, c.at(t + 30.0));
        let saved = announce::in_language(language, announce::MESSAGE_SAVED);
        assert!(
            out.contains(&Action::Play(vec![saved.clone()])),
            "{language}: {out:?}"
        );
        assert_eq!(saved.starts_with("es/"), language == "es");
    }
}

/// A voicemail on the caller's clock: the greeting and beep, then the message is recorded
/// until the caller presses # or its time or room runs out, then stored; told "saved" only
/// once it is. Other keys while speaking are part of the message.
#[test]
fn a_message_is_recorded_after_the_greeting_until_hash_its_limit_or_a_full_recorder() {
    let (set, cals) = (set(), HashMap::new());
    for end in ["#", "limit", "full"] {
        let (mut call, c, _) = start(&set, &cals);
        call.handle(Event::PromptFinished, c.at(1.0));
        let out = call.handle(Event::Digit('5'), c.at(2.0));
        assert!(
            matches!(&out[..], [.., Action::RecordVoicemail { mailbox, max_length_s: 120, .. }] if mailbox == "support"),
            "{out:?}"
        );
        assert!(!call.is_recording(), "the greeting plays first");
        assert_eq!(call.handle(Event::Digit(END_RECORDING), c.at(3.0)), vec![]);
        let out = call.handle(Event::PromptFinished, c.at(6.0));
        assert_eq!(
            out,
            vec![Action::StartRecording {
                mailbox: "support".into(),
                max_length_s: 120
            }]
        );
        assert!(call.is_recording());
        assert_eq!(call.poll_timeout(), Some(c.at(126.0)));
        assert_eq!(call.handle(Event::Digit('7'), c.at(10.0)), vec![]);
        assert_eq!(
            call.handle(Event::Timeout, c.at(20.0)),
            vec![],
            "not yet due"
        );
        let stop = match end {
            "#" => call.handle(Event::Digit(END_RECORDING), c.at(30.0)),
            "limit" => call.handle(Event::Timeout, c.at(126.0)),
            _ => call.handle(Event::RecordingFull, c.at(50.0)),
        };
        assert_eq!(stop, vec![Action::StopRecording], "{end}");
        assert!(!call.is_recording());
        assert_eq!(call.poll_timeout(), None);
        // Nothing is said until the message is stored.
        assert_eq!(
            call.handle(Event::Digit(END_RECORDING), c.at(130.0)),
            vec![]
        );
        assert_eq!(
            call.handle(Event::Finished, c.at(131.0)),
            vec![Action::Play(vec![announce::MESSAGE_SAVED.to_string()])]
        );
        assert_eq!(call.outcome().map(|o| o.0), Some(Outcome::Voicemail));
    }
}
