//! Every validator rule, through the real binary: one flow that fires it and a near miss that
//! must not. Each case is a small edit of `VALID`, a line where every caller reaches a person.

mod common;

use common::Fixture;

const VALID: &str = r#"
[flow]
entry = "welcome"
escape_digit = "0"
escape_to = "agents"

[nodes.welcome]
type = "play"
prompt = "hello"
next = "menu"

[nodes.menu]
type = "menu"
prompt = "menu"
options = { "1" = "agents", "2" = "vm", "9" = "goodbye" }
on_exhausted = "agents"

[nodes.goodbye]
type = "play"
prompt = "bye"
next = "bye"

[nodes.bye]
type = "hangup"

[nodes.agents]
type = "queue"
queue = "support"
on_timeout = "vm"

[nodes.vm]
type = "voicemail"
mailbox = "support"
prompt = "hello"
"#;

const CONFIG: &str = r#"
[[queues]]
name = "support"
skills = ["support"]

[calendars.business]
timezone = "Europe/Madrid"
open = { mon = "09:00-18:00" }
"#;

fn edit(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "VALID has no {from:?}");
    VALID.replacen(from, to, 1)
}

fn findings(flow: &str) -> Vec<(String, Option<String>)> {
    Fixture::new().flow("main", flow).findings()
}

/// Asserts `rule` is reported at `node`, and returns every finding.
fn fires(flow: &str, rule: &str, node: Option<&str>) -> Vec<(String, Option<String>)> {
    let f = findings(flow);
    assert!(
        f.iter().any(|(r, n)| r == rule && n.as_deref() == node),
        "expected {rule} at {node:?}, got {f:?}"
    );
    f
}

fn quiet(flow: &str, rule: &str) {
    let f = findings(flow);
    assert!(
        !f.iter().any(|(r, _)| r == rule),
        "{rule} must not fire, got {f:?}"
    );
}

#[test]
fn the_valid_line_is_clean() {
    let (code, v) = Fixture::new().flow("main", VALID).validate();
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["errors"], 0);
    assert_eq!(v["warnings"], 0);
    assert_eq!(v["ok"], true);
}

#[test]
fn invalid_flow_unknown_key() {
    let f = fires(
        &edit(
            "mailbox = \"support\"",
            "mailbox = \"support\"\ncolour = \"red\"",
        ),
        "invalid-flow",
        Some("main.vm"),
    );
    assert_eq!(f.len(), 1, "{f:?}");
}

#[test]
fn invalid_flow_bad_digit_wrong_type_unknown_type_and_missing_field() {
    fires(
        &edit("\"9\" = \"goodbye\"", "\"99\" = \"goodbye\""),
        "invalid-flow",
        Some("main.menu"),
    );
    fires(
        &edit("type = \"menu\"", "type = \"menu\"\ntimeout_s = \"five\""),
        "invalid-flow",
        Some("main.menu"),
    );
    fires(
        &edit("type = \"voicemail\"", "type = \"mailbox\""),
        "invalid-flow",
        Some("main.vm"),
    );
    fires(
        &edit("on_timeout = \"vm\"", ""),
        "invalid-flow",
        Some("main.agents"),
    );
    fires(
        &edit("escape_digit = \"0\"", "escape_digit = \"x\""),
        "invalid-flow",
        None,
    );
}

/// One mistake, one diagnostic: a node that cannot be read, or a flow file that is not
/// TOML, is reported once — not again as an unknown node wherever it is named, nor as the
/// unreachable nodes only it leads to.
#[test]
fn one_mistake_gives_one_diagnostic() {
    // The menu's type is misspelt: the welcome naming it and the nodes only it leads to
    // (goodbye, bye) say nothing.
    let f = findings(&edit("type = \"menu\"", "type = \"menus\""));
    assert_eq!(
        f,
        [("invalid-flow".to_string(), Some("main.menu".to_string()))],
        "{f:?}"
    );
    // A TOML typo in one flow, named by another: one error, in the broken file.
    let fx = Fixture::new();
    fx.flow("main", &edit("\"2\" = \"vm\"", "\"2\" = \"billing.start\""));
    fx.flow(
        "billing",
        &VALID
            .replace("entry = \"welcome\"", "entry = \"start\"")
            .replace("[nodes.welcome]", "[nodes.start]")
            .replace("options = {", "options = {{"),
    );
    let (_, v) = fx.validate();
    let d = v["diagnostics"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{v}");
    assert_eq!(d[0]["rule"], "invalid-flow", "{v}");
    assert!(
        d[0]["file"].as_str().unwrap().ends_with("billing.toml"),
        "{v}"
    );
    assert!(
        d[0]["message"].as_str().unwrap().starts_with("TOML syntax"),
        "{v}"
    );
    // Near miss: a name that is simply wrong is still unknown.
    fires(
        &edit("next = \"menu\"", "next = \"menuu\""),
        "unknown-node",
        Some("main.welcome"),
    );
}

#[test]
fn invalid_flow_duplicate_option() {
    let f = findings(&edit(
        "\"9\" = \"goodbye\"",
        "\"9\" = \"goodbye\", \"1\" = \"vm\"",
    ));
    assert!(f.iter().any(|(r, _)| r == "invalid-flow"), "{f:?}");
}

#[test]
fn unknown_node_in_this_flow_and_in_another() {
    fires(
        &edit("next = \"menu\"", "next = \"menuu\""),
        "unknown-node",
        Some("main.welcome"),
    );
    fires(
        &edit("next = \"menu\"", "next = \"billing.start\""),
        "unknown-node",
        Some("main.welcome"),
    );
    // Near miss: the other flow exists.
    let fx = Fixture::new();
    fx.flow("main", &edit("\"2\" = \"vm\"", "\"2\" = \"billing.start\""));
    fx.flow(
        "billing",
        &VALID
            .replace("entry = \"welcome\"", "entry = \"start\"")
            .replace("[nodes.welcome]", "[nodes.start]"),
    );
    let f = fx.findings();
    assert!(!f.iter().any(|(r, _)| r == "unknown-node"), "{f:?}");
}

#[test]
fn unknown_queue_is_checked_against_the_config_serve_would_use() {
    let flow = edit("queue = \"support\"", "queue = \"suport\"");
    // No hotline.toml: `serve` would run on the embedded demo config, which has no such queue
    // and would refuse to start; validate says so too, and which config it judged by.
    let fx = Fixture::new();
    fx.flow("main", &flow);
    let out = fx.run(&["validate"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("unknown-queue"), "{}", out.stdout);
    assert!(
        out.stderr.contains("embedded demo config"),
        "{}",
        out.stderr
    );
    let fx = Fixture::new();
    fx.flow("main", &flow).config(CONFIG);
    let f = fx.findings();
    assert!(
        f.contains(&("unknown-queue".into(), Some("main.agents".into()))),
        "{f:?}"
    );
    let fx = Fixture::new();
    fx.flow("main", VALID).config(CONFIG);
    assert!(fx.findings().is_empty());
}

#[test]
fn unknown_calendar() {
    let flow = edit(
        "next = \"menu\"",
        "next = \"hours\"\n[nodes.hours]\ntype = \"schedule\"\ncalendar = \"weekdays\"\nopen = \"menu\"\nclosed = \"vm\"",
    );
    let fx = Fixture::new();
    fx.flow("main", &flow).config(CONFIG);
    let f = fx.findings();
    assert!(
        f.contains(&("unknown-calendar".into(), Some("main.hours".into()))),
        "{f:?}"
    );
    let fx = Fixture::new();
    fx.flow("main", &flow.replace("weekdays", "business"))
        .config(CONFIG);
    assert!(fx.findings().is_empty(), "{:?}", fx.findings());
}

#[test]
fn missing_prompt_and_prompts_escaping_the_folder() {
    fires(
        &edit("prompt = \"hello\"", "prompt = \"helo\""),
        "missing-prompt",
        Some("main.welcome"),
    );
    fires(
        &edit("prompt = \"hello\"", "prompt = \"../flows/main\""),
        "missing-prompt",
        Some("main.welcome"),
    );
    fires(
        &edit("prompt = \"hello\"", "prompt = \"/etc/passwd\""),
        "missing-prompt",
        Some("main.welcome"),
    );
    quiet(
        &edit("prompt = \"hello\"", "prompt = [\"hello\", \"bye\"]"),
        "missing-prompt",
    );
}

#[test]
fn bad_prompt_stereo_or_not_8khz() {
    fires(
        &edit("prompt = \"hello\"", "prompt = \"stereo\""),
        "bad-prompt",
        Some("main.welcome"),
    );
    fires(
        &edit("prompt = \"hello\"", "prompt = \"wide\""),
        "bad-prompt",
        Some("main.welcome"),
    );
    quiet(VALID, "bad-prompt");
}

#[test]
fn no_escape_missing_or_not_leading_to_a_human() {
    fires(
        &edit("escape_to = \"agents\"", ""),
        "no-escape",
        Some("main.welcome"),
    );
    fires(
        &edit("escape_to = \"agents\"", "escape_to = \"menu\""),
        "no-escape",
        Some("main.menu"),
    );
    fires(
        &edit("escape_to = \"agents\"", "escape_to = \"vm\""),
        "no-escape",
        Some("main.vm"),
    );
}

#[test]
fn no_escape_through_a_schedule_closed_branch_may_end_in_a_follow_up() {
    let sched = |closed: &str| {
        edit("escape_to = \"agents\"", "escape_to = \"open_now\"")
            + &format!(
                "\n[nodes.open_now]\ntype = \"schedule\"\ncalendar = \"business\"\nopen = \"agents\"\nclosed = \"{closed}\"\n"
            )
    };
    quiet(&sched("vm"), "no-escape");
    fires(&sched("menu"), "no-escape", Some("main.open_now"));
}

#[test]
fn escape_conflict() {
    fires(
        &edit("\"2\" = \"vm\"", "\"0\" = \"vm\""),
        "escape-conflict",
        Some("main.menu"),
    );
    quiet(
        &edit("\"2\" = \"vm\"", "\"0\" = \"agents\""),
        "escape-conflict",
    );
}

#[test]
fn silent_caller_stranded_at_a_hangup_with_the_counterexample() {
    let fx = Fixture::new();
    fx.flow(
        "main",
        &edit("on_exhausted = \"agents\"", "on_exhausted = \"goodbye\""),
    );
    let (code, v) = fx.validate();
    assert_eq!(code, 1);
    let d = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["rule"] == "silent-caller-stranded")
        .expect("silent-caller-stranded");
    assert_eq!(d["node"], "main.menu");
    assert_eq!(d["file"], "flows/main.toml");
    assert_eq!(d["line"], 12);
    assert_eq!(d["column"], 1);
    let path: Vec<&str> = d["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        path,
        [
            "main.welcome",
            "done",
            "main.menu",
            "_",
            "main.menu",
            "_",
            "main.menu",
            "_",
            "main.goodbye",
            "done",
            "main.bye"
        ]
    );
}

#[test]
fn silent_caller_stranded_at_a_voicemail_while_open_or_past_the_bound() {
    fires(
        &edit("on_exhausted = \"agents\"", "on_exhausted = \"vm\""),
        "silent-caller-stranded",
        Some("main.menu"),
    );
    // 3 attempts of the menu are 3 steps: over a bound of 2.
    fires(
        &edit(
            "escape_to = \"agents\"",
            "escape_to = \"agents\"\nmax_steps_to_human = 2",
        ),
        "silent-caller-stranded",
        Some("main.menu"),
    );
    quiet(
        &edit(
            "escape_to = \"agents\"",
            "escape_to = \"agents\"\nmax_steps_to_human = 4",
        ),
        "silent-caller-stranded",
    );
}

#[test]
fn max_steps_flag_overrides_the_flow() {
    let fx = Fixture::new();
    fx.flow("main", VALID);
    let out = fx.run(&["validate", "--format", "json", "--max-steps", "2"]);
    assert_eq!(out.code, 1);
    assert!(common::rules(&out.json()).contains(&"silent-caller-stranded".to_string()));
    assert_eq!(fx.run(&["validate", "--max-steps", "4"]).code, 0);
}

/// Plays going round for ever behind a schedule entry, reached both while open and after
/// the closed branch: a trap, reported — a node met on both sides of a closed branch is two
/// walks, and each goes round.
#[test]
fn a_loop_of_plays_behind_a_schedule_entry_is_a_trap() {
    let flow = r#"
[flow]
entry = "open"
escape_digit = "0"
escape_to = "agents"

[nodes.open]
type = "schedule"
calendar = "business"
open = "a"
closed = "b"

[nodes.a]
type = "play"
prompt = "hello"
next = "b"

[nodes.b]
type = "play"
prompt = "hello"
next = "a"

[nodes.agents]
type = "queue"
queue = "support"
on_timeout = "vm"

[nodes.vm]
type = "voicemail"
mailbox = "support"
prompt = "hello"
"#;
    let fx = Fixture::new();
    fx.flow("main", flow).config(CONFIG);
    let f = fx.findings();
    assert!(
        f.iter().any(|(r, _)| r == "silent-caller-stranded"),
        "{f:?}"
    );
    assert!(f.iter().any(|(r, _)| r == "lost-caller-stranded"), "{f:?}");
}

#[test]
fn silent_caller_after_hours_may_end_in_a_follow_up() {
    let flow = edit("next = \"menu\"", "next = \"open_now\"")
        + "\n[nodes.open_now]\ntype = \"schedule\"\ncalendar = \"business\"\nopen = \"menu\"\nclosed = \"night\"\n"
        + "\n[nodes.night]\ntype = \"menu\"\nprompt = \"menu\"\noptions = { \"1\" = \"vm\" }\non_exhausted = \"vm\"\n";
    quiet(&flow, "silent-caller-stranded");
    quiet(&flow, "lost-caller-stranded");
}

#[test]
fn lost_caller_stranded_but_not_the_silent_one() {
    let flow = edit(
        "on_exhausted = \"agents\"",
        "on_exhausted = \"agents\"\non_invalid = \"goodbye\"",
    );
    let f = fires(&flow, "lost-caller-stranded", Some("main.menu"));
    assert!(
        !f.iter().any(|(r, _)| r == "silent-caller-stranded"),
        "{f:?}"
    );
    quiet(
        &edit(
            "on_exhausted = \"agents\"",
            "on_exhausted = \"agents\"\non_invalid = \"agents\"",
        ),
        "lost-caller-stranded",
    );
}

#[test]
fn forced_hangup_from_a_timeout_but_not_from_a_chosen_option() {
    let f = fires(
        &edit("on_exhausted = \"agents\"", "on_exhausted = \"goodbye\""),
        "forced-hangup",
        Some("main.bye"),
    );
    assert_eq!(
        f.iter().filter(|(r, _)| r == "forced-hangup").count(),
        1,
        "{f:?}"
    );
    // VALID itself hangs up only when the caller presses 9.
    quiet(VALID, "forced-hangup");
    // A hangup as the entry is never chosen.
    fires(
        &edit("entry = \"welcome\"", "entry = \"goodbye\""),
        "forced-hangup",
        Some("main.bye"),
    );
}

#[test]
fn no_fallback_queue_to_menu_or_transfer_to_hangup() {
    fires(
        &edit("on_timeout = \"vm\"", "on_timeout = \"menu\""),
        "no-fallback",
        Some("main.agents"),
    );
    let transfer = edit("\"2\" = \"vm\"", "\"2\" = \"desk\"")
        + "\n[nodes.desk]\ntype = \"transfer\"\nto = \"sip:desk@pbx.example.com\"\non_failure = \"bye\"\n";
    fires(&transfer, "no-fallback", Some("main.desk"));
    // Through a play to a voicemail is fine.
    let via_play = edit("on_timeout = \"vm\"", "on_timeout = \"sorry\"")
        + "\n[nodes.sorry]\ntype = \"play\"\nprompt = \"hello\"\nnext = \"vm\"\n";
    quiet(&via_play, "no-fallback");
}

/// A transfer the server could not place is an error, not a line that quietly plays the
/// ringback and falls back: a `tel:` number needs a trunk (or the gateway) that takes it, a
/// `sips:` URI a TLS trunk. Judged against the config, or the embedded one.
#[test]
fn undialable_destinations() {
    let to = |uri: &str| {
        edit("\"2\" = \"vm\"", "\"2\" = \"desk\"")
            + &format!("\n[nodes.desk]\ntype = \"transfer\"\nto = \"{uri}\"\non_failure = \"vm\"\n")
    };
    // The embedded config dials no numbers.
    let f = fires(
        &to("tel:+34600111222"),
        "undialable-destination",
        Some("main.desk"),
    );
    assert_eq!(f.len(), 1, "{f:?}");
    fires(
        &to("sips:desk@pbx.example.com"),
        "undialable-destination",
        Some("main.desk"),
    );
    quiet(&to("sip:desk@pbx.example.com"), "undialable-destination");
    // A carrier's trunk that takes Spanish numbers: that number is dialled, another is not.
    let with_trunk = format!(
        "{CONFIG}\n[[trunks]]\nname = \"carrier\"\nproxy = \"sip:127.0.0.1:5099\"\nnumbers = [\"+34\"]\ncaller_id = \"+34910000000\"\n"
    );
    let fx = Fixture::new();
    fx.flow("main", &to("tel:+34600111222")).config(&with_trunk);
    let f = fx.findings();
    assert!(
        !f.iter().any(|(r, _)| r == "undialable-destination"),
        "{f:?}"
    );
    let fx = Fixture::new();
    fx.flow("main", &to("tel:+44200000000")).config(&with_trunk);
    let (_, report) = fx.validate();
    let d = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["rule"] == "undialable-destination")
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        d["message"].as_str().unwrap().contains("+44200000000"),
        "{report}"
    );
}

#[test]
fn too_slow_counts_prompts_and_timeouts() {
    // hello 1 s + 3 x (menu 2 s + 5 s timeout) = 22 s to the queue.
    let bound = |s: u32| {
        edit(
            "escape_to = \"agents\"",
            &format!("escape_to = \"agents\"\nmax_seconds_to_human = {s}"),
        )
    };
    let f = fires(&bound(21), "too-slow", Some("main.welcome"));
    assert!(
        !f.iter().any(|(r, _)| r == "silent-caller-stranded"),
        "{f:?}"
    );
    quiet(&bound(22), "too-slow");
    // The message says where the time goes, node by node.
    let (_, report) = Fixture::new().flow("main", &bound(21)).validate();
    let msg = report["diagnostics"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("node by node: main.welcome 1.0 s, main.menu 21.0 s; most in main.menu"),
        "{msg}"
    );
}

/// An entry the caller does not hear (a schedule) is not blamed for the time: the first
/// node that takes some is.
#[test]
fn too_slow_behind_a_schedule_names_a_node_the_caller_hears() {
    let line = edit(
        "entry = \"welcome\"",
        "entry = \"open\"\nmax_seconds_to_human = 21",
    ) + "\n[nodes.open]\ntype = \"schedule\"\ncalendar = \"business\"\nopen = \"welcome\"\nclosed = \"vm\"\n";
    let fx = Fixture::new();
    fx.flow("main", &line).config(CONFIG);
    let (_, report) = fx.validate();
    let slow: Vec<_> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["rule"] == "too-slow")
        .collect();
    assert_eq!(slow.len(), 1, "{report}");
    assert_eq!(slow[0]["node"], "main.welcome", "{report}");
    let msg = slow[0]["message"].as_str().unwrap();
    assert!(msg.contains("most in main.menu"), "{msg}");
    assert!(msg.contains("(1 more caller-facing node after it"), "{msg}");
}

/// A caller who presses 2 and then falls silent is timed from the start of the call: 1 s
/// welcome + 2 s menu to `info`, then 60 s + 1 s of plays and 3 × 7 s of menu = 85 s.
#[test]
fn too_slow_times_a_caller_who_falls_silent_after_a_choice() {
    let line = |s: u32| {
        edit(
            "escape_to = \"agents\"",
            &format!("escape_to = \"agents\"\nmax_seconds_to_human = {s}"),
        )
        .replacen("\"2\" = \"vm\"", "\"2\" = \"info\"", 1)
            + "\n[nodes.info]\ntype = \"play\"\nprompt = \"long\"\nnext = \"info2\"\n\n[nodes.info2]\ntype = \"play\"\nprompt = \"hello\"\nnext = \"menu\"\n"
    };
    let (code, report) = Fixture::new().flow("main", &line(84)).validate();
    assert_eq!(code, 1, "{report}");
    let slow: Vec<&serde_json::Value> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["rule"] == "too-slow")
        .collect();
    // Reported once, where the bound is first exceeded; info2 is counted behind it.
    assert_eq!(slow.len(), 1, "{report}");
    let d = slow[0];
    assert_eq!(d["node"], "main.info", "{report}");
    let msg = d["message"].as_str().unwrap();
    assert!(
        msg.contains("3.0 s into the call") && msg.contains("85.0 s in all"),
        "{msg}"
    );
    assert!(msg.contains("1 more caller-facing node"), "{msg}");
    let path: Vec<&str> = d["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        &path[..5],
        ["main.welcome", "done", "main.menu", "2", "main.info"],
        "{path:?}"
    );
    assert_eq!(path.last(), Some(&"main.agents"), "{path:?}");
    // The silent caller from the entry (22 s) is within the bound.
    assert!(
        !slow.iter().any(|d| d["node"] == "main.welcome"),
        "{report}"
    );
    quiet(&line(85), "too-slow");
}

#[test]
fn dead_ends() {
    fires(
        &edit("next = \"menu\"", ""),
        "dead-end",
        Some("main.welcome"),
    );
    fires(
        &edit(
            "options = { \"1\" = \"agents\", \"2\" = \"vm\", \"9\" = \"goodbye\" }",
            "options = {}",
        ),
        "dead-end",
        Some("main.menu"),
    );
    let looped = edit("next = \"menu\"", "next = \"a\"")
        + "\n[nodes.a]\ntype = \"branch\"\nvariable = \"x\"\ncases = { \"1\" = \"menu\" }\ndefault = \"b\"\n"
        + "\n[nodes.b]\ntype = \"branch\"\nvariable = \"y\"\ndefault = \"a\"\n";
    let f = findings(&looped);
    assert_eq!(
        f.iter().filter(|(r, _)| r == "dead-end").count(),
        1,
        "{f:?}"
    );
    quiet(VALID, "dead-end");
}

#[test]
fn unreachable_node_is_a_warning_and_exits_0() {
    let fx = Fixture::new();
    fx.flow(
        "main",
        &(VALID.to_string()
            + "\n[nodes.spare]\ntype = \"play\"\nprompt = \"hello\"\nnext = \"menu\"\n"),
    );
    let (code, v) = fx.validate();
    assert_eq!(code, 0);
    assert_eq!(
        common::findings(&v),
        vec![(
            "unreachable-node".to_string(),
            Some("main.spare".to_string())
        )]
    );
    assert_eq!(v["diagnostics"][0]["severity"], "warning");
    assert_eq!(v["ok"], true);
}

#[test]
fn watchdog_reachable_when_choices_can_loop() {
    let flow = edit(
        "\"9\" = \"goodbye\"",
        "\"9\" = \"goodbye\", \"3\" = \"info\"",
    ) + "\n[nodes.info]\ntype = \"play\"\nprompt = \"hello\"\nnext = \"menu\"\n";
    let fx = Fixture::new();
    fx.flow("main", &flow);
    let (code, v) = fx.validate();
    assert_eq!(code, 0, "{v}");
    let d = &v["diagnostics"][0];
    assert_eq!(d["rule"], "watchdog-reachable");
    // welcome, menu, info, menu, info: five steps; the sixth is the watchdog's.
    assert_eq!(d["path"].as_array().unwrap().len(), 11, "{d}");
    quiet(VALID, "watchdog-reachable");
}

/// A collect reads digits and the escape digit is one: its entries could not begin with it,
/// unless it says how escape works there (`escape = "alone"` or `"first"`). A `*` escape
/// digit is no digit anyone types into an account.
#[test]
fn escape_in_collect() {
    let with_collect = edit("\"2\" = \"vm\"", "\"2\" = \"account\"")
        + "\n[nodes.account]\ntype = \"collect\"\nprompt = \"hello\"\nmin_digits = 3\nmax_digits = 6\nvariable = \"account\"\nnext = \"agents\"\non_exhausted = \"agents\"\n";
    let f = fires(&with_collect, "escape-in-collect", Some("main.account"));
    assert_eq!(
        f.iter().filter(|(r, _)| r == "escape-in-collect").count(),
        1,
        "{f:?}"
    );
    for said in ["alone", "first"] {
        quiet(
            &with_collect.replacen(
                "variable = \"account\"",
                &format!("variable = \"account\"\nescape = \"{said}\""),
                1,
            ),
            "escape-in-collect",
        );
    }
    quiet(
        &with_collect.replacen("escape_digit = \"0\"", "escape_digit = \"*\"", 1),
        "escape-in-collect",
    );
}

/// A branch on a variable some way to it never sets: a misspelt name, or a menu option
/// that skips the collect. Every such caller would take the default without a word; the
/// validator says so, with that way.
#[test]
fn unknown_variable() {
    let with_branch = |tested: &str, option3: &str| {
        edit(
            "\"2\" = \"vm\"",
            &format!("\"2\" = \"account\", \"3\" = \"{option3}\""),
        ) + &format!(
            "\n[nodes.account]\ntype = \"collect\"\nprompt = \"hello\"\nmin_digits = 3\nmax_digits = 6\nescape = \"alone\"\nvariable = \"account\"\nnext = \"vip\"\non_exhausted = \"agents\"\n\n[nodes.vip]\ntype = \"branch\"\nvariable = \"{tested}\"\ncases = {{ \"100000\" = \"agents\" }}\ndefault = \"vm\"\n"
        )
    };
    quiet(&with_branch("account", "agents"), "unknown-variable");
    let fx = Fixture::new();
    fx.flow("main", &with_branch("acount", "agents"));
    let (_, report) = fx.validate();
    let d = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["rule"] == "unknown-variable")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(d["node"], "main.vip", "{report}");
    let msg = d["message"].as_str().unwrap();
    assert!(
        msg.contains("\"acount\"") && msg.contains("these flows set: account"),
        "{msg}"
    );
    // Through the collect is no way around it when the name is wrong.
    let path: Vec<&str> = d["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(path.last(), Some(&"main.vip"), "{path:?}");
    // Option 3 goes straight to the branch: that way never sets it.
    let fx = Fixture::new();
    fx.flow("main", &with_branch("account", "vip"));
    let (_, report) = fx.validate();
    let d = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["rule"] == "unknown-variable")
        .unwrap_or_else(|| panic!("{report}"));
    assert!(d["path"].to_string().contains("\"3\""), "{report}");
    // A `set` on the way counts: option 3 through a node that sets it is fine …
    let through_set = with_branch("account", "known")
        + "\n[nodes.known]\ntype = \"play\"\nprompt = \"hello\"\nset = { account = \"100000\" }\nnext = \"vip\"\n";
    quiet(&through_set, "unknown-variable");
    // … and so does a `set` on the branch itself; built-ins are always set.
    quiet(
        &with_branch("account", "vip").replacen(
            "type = \"branch\"",
            "type = \"branch\"\nset = { account = \"0\" }",
            1,
        ),
        "unknown-variable",
    );
    for builtin in ["caller_number", "line", "time", "weekday"] {
        quiet(&with_branch(builtin, "vip"), "unknown-variable");
    }
    // A `set` of another name does not.
    fires(
        &through_set.replace("set = { account = ", "set = { acount = "),
        "unknown-variable",
        Some("main.vip"),
    );
}

/// An intended loop ("3 = hear it again", back to the menu) is acknowledged where it is
/// marked, `allow = ["loop"]` on the node callers come back to: no warning for it. A long
/// way that never comes back there still warns; an unknown word in `allow` is an error.
#[test]
fn an_intended_loop_is_acknowledged_where_it_is_marked() {
    let looping = edit(
        "\"9\" = \"goodbye\"",
        "\"9\" = \"goodbye\", \"3\" = \"info\"",
    ) + "\n[nodes.info]\ntype = \"play\"\nprompt = \"hello\"\nnext = \"menu\"\n";
    let marked = looping.replacen("type = \"menu\"", "type = \"menu\"\nallow = [\"loop\"]", 1);
    quiet(&marked, "watchdog-reachable");
    // Marked on a node the loop does not come back to: still warned of.
    let elsewhere = looping.replacen(
        "type = \"voicemail\"",
        "type = \"voicemail\"\nallow = [\"loop\"]",
        1,
    );
    fires(&elsewhere, "watchdog-reachable", Some("main.menu"));
    // A chain of six plays before the menu passes the bound without any return.
    let chain = (1..=5)
        .map(|i| {
            format!(
                "\n[nodes.p{i}]\ntype = \"play\"\nprompt = \"hello\"\nnext = \"p{}\"\n",
                i + 1
            )
        })
        .collect::<String>()
        + "\n[nodes.p6]\ntype = \"play\"\nprompt = \"hello\"\nnext = \"menu\"\n";
    let long = marked.replacen("next = \"menu\"", "next = \"p1\"", 1) + &chain;
    let f = findings(&long);
    assert!(f.iter().any(|(r, _)| r == "watchdog-reachable"), "{f:?}");
    fires(
        &looping.replacen("type = \"menu\"", "type = \"menu\"\nallow = [\"loops\"]", 1),
        "invalid-flow",
        Some("main.menu"),
    );
}

const CRM: &str = r#"
[lookups.crm]
url = "http://127.0.0.1:9/caller"
timeout_ms = 3000
fields = { tier = "string", balance = "number" }
"#;

/// The valid line with a lookup before the menu: VIPs to the agents at once.
fn with_lookup(tested: &str, on_error: &str) -> String {
    edit("next = \"menu\"", "next = \"identify\"")
        + &format!(
            "\n[nodes.identify]\ntype = \"lookup\"\nendpoint = \"crm\"\nnext = \"vip\"\non_error = \"{on_error}\"\n\n[nodes.vip]\ntype = \"branch\"\nvariable = \"{tested}\"\ncases = {{ \"vip\" = \"agents\", \"range:..0\" = \"agents\" }}\ndefault = \"menu\"\n"
        )
}

fn lookup_findings(flow: &str, config: &str) -> Vec<(String, Option<String>)> {
    let fx = Fixture::new();
    fx.flow("main", flow).config(&format!("{CONFIG}{config}"));
    fx.findings()
}

/// A lookup is a branch the validator takes both ways: its answer and `on_error` must each
/// reach a person; its fields are variables only after it answered; it names an endpoint the
/// config declares.
#[test]
fn lookups_are_proven_both_ways() {
    let ok = lookup_findings(&with_lookup("crm.tier", "menu"), CRM);
    assert!(ok.is_empty(), "{ok:?}");
    // on_error to a hangup the caller did not choose.
    let f = lookup_findings(&with_lookup("crm.tier", "bye"), CRM);
    assert!(
        f.iter()
            .any(|(r, n)| r == "forced-hangup" && n.as_deref() == Some("main.bye")),
        "{f:?}"
    );
    // A field the endpoint does not declare is never set.
    let f = lookup_findings(&with_lookup("crm.teir", "menu"), CRM);
    assert!(
        f.iter()
            .any(|(r, n)| r == "unknown-variable" && n.as_deref() == Some("main.vip")),
        "{f:?}"
    );
    // An endpoint the config does not declare.
    let f = lookup_findings(&with_lookup("crm.tier", "menu"), "");
    assert!(
        f.iter()
            .any(|(r, n)| r == "unknown-lookup" && n.as_deref() == Some("main.identify")),
        "{f:?}"
    );
    // No on_error at all.
    let f = lookup_findings(
        &with_lookup("crm.tier", "menu").replace("on_error = \"menu\"\n", ""),
        CRM,
    );
    assert!(f.iter().any(|(r, _)| r == "invalid-flow"), "{f:?}");
}

/// Its timeout counts in the seconds to a human: 3 s of silence waiting for the CRM take a
/// silent caller (1 s welcome, 21 s of menu) past 24 s.
#[test]
fn a_lookups_timeout_counts_in_the_time_to_a_human() {
    let fx = Fixture::new();
    let flow = with_lookup("crm.tier", "menu").replacen(
        "escape_to = \"agents\"",
        "escape_to = \"agents\"\nmax_seconds_to_human = 24",
        1,
    );
    fx.flow("main", &flow).config(&format!("{CONFIG}{CRM}"));
    let (_, report) = fx.validate();
    let d = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["rule"] == "too-slow")
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("main.identify 3.0 s"),
        "{d}"
    );
    // With a quick endpoint, the same line is in time.
    let fast = CRM.replace("timeout_ms = 3000", "timeout_ms = 200");
    fx.config(&format!("{CONFIG}{fast}"));
    let (_, report) = fx.validate();
    assert!(!report.to_string().contains("too-slow"), "{report}");
}

/// A switch is proven in both positions, as a schedule is: a way that strands callers while
/// it is on is an error even while it is off; it names a switch the config declares.
#[test]
fn switches_are_proven_in_both_positions() {
    let with_switch = |on: &str| {
        edit("next = \"menu\"", "next = \"outage\"")
            + &format!(
                "\n[nodes.outage]\ntype = \"switch\"\nswitch = \"outage\"\non = \"{on}\"\noff = \"menu\"\n\n[nodes.told]\ntype = \"queue\"\nqueue = \"support\"\non_timeout = \"vm\"\n"
            )
    };
    let config = "\n[switches.outage]\ndescription = \"storm\"\n";
    let ok = lookup_findings(&with_switch("told"), config);
    assert!(ok.is_empty(), "{ok:?}");
    // On, it hangs up on every caller.
    let f = lookup_findings(&with_switch("bye"), config);
    assert!(
        f.iter()
            .any(|(r, n)| r == "forced-hangup" && n.as_deref() == Some("main.bye")),
        "{f:?}"
    );
    let f = lookup_findings(&with_switch("told"), "");
    assert!(
        f.iter()
            .any(|(r, n)| r == "unknown-switch" && n.as_deref() == Some("main.outage")),
        "{f:?}"
    );
    // Without `off`: one diagnostic, a dead end.
    let f = lookup_findings(&with_switch("told").replace("off = \"menu\"\n", ""), config);
    assert_eq!(
        f.iter().filter(|(r, _)| r != "unreachable-node").count(),
        1,
        "{f:?}"
    );
    assert!(f.iter().any(|(r, _)| r == "dead-end"), "{f:?}");
}

/// A returning caller's way: `returning` is proven both ways, `owner` is a live human whose
/// wait needs a fallback, a goodbye after `withdraw` is one the caller chose, and the
/// `follow_up.*` variables are set only on the `open` way.
#[test]
fn a_returning_callers_way_is_proven() {
    let with_returning = |tested: &str| {
        edit("next = \"menu\"", "next = \"returning\"")
            + &format!(
                "\n[nodes.returning]\ntype = \"returning\"\nopen = \"known\"\nnone = \"{tested}\"\n\n[nodes.known]\ntype = \"menu\"\nprompt = \"menu\"\noptions = {{ \"1\" = \"owner\", \"2\" = \"withdraw\" }}\non_exhausted = \"owner\"\n\n[nodes.owner]\ntype = \"owner\"\nqueue = \"support\"\non_timeout = \"vm\"\n\n[nodes.withdraw]\ntype = \"withdraw\"\nnext = \"goodbye\"\n"
            )
    };
    let ok = findings(&with_returning("menu"));
    assert!(ok.is_empty(), "{ok:?}");
    // Its owner's wait ending in a hangup: no fallback.
    fires(
        &with_returning("menu").replace(
            "on_timeout = \"vm\"\n\n[nodes.withdraw]",
            "on_timeout = \"bye\"\n\n[nodes.withdraw]",
        ),
        "no-fallback",
        Some("main.owner"),
    );
    // A branch on the item's state where a stranger passes too.
    let branch = "\n[nodes.state]\ntype = \"branch\"\nvariable = \"follow_up.state\"\ncases = { \"taken\" = \"agents\" }\ndefault = \"menu\"\n";
    fires(
        &(with_returning("state") + branch),
        "unknown-variable",
        Some("main.state"),
    );
    quiet(
        &(with_returning("menu").replace("open = \"known\"", "open = \"state\"")
            + branch
            + "\n[nodes.unused]\ntype = \"play\"\nprompt = \"hello\"\nnext = \"known\"\n"),
        "unknown-variable",
    );
    // Without `none`: one dead end.
    let f = findings(&with_returning("menu").replace("none = \"menu\"\n", ""));
    assert!(f.iter().any(|(r, _)| r == "dead-end"), "{f:?}");
}

/// A caller who chose Spanish at the menu (`set = { language = "es" }`): the line must have
/// every prompt they meet in Spanish — the flow's own (`prompts/es/…`, or text per language)
/// and the server's where they wait (`prompts/es/queue/…`) — and the time to a person counts
/// the slower language.
const SPANISH: &str = "\n[nodes.spanish]\ntype = \"play\"\nset = { language = \"es\" }\nprompt = \"hello\"\nnext = \"agents\"\n";

fn bilingual() -> String {
    edit(
        "\"9\" = \"goodbye\" }",
        "\"9\" = \"goodbye\", \"3\" = \"spanish\" }",
    ) + SPANISH
}

#[test]
fn every_prompt_a_spanish_caller_meets_is_there_in_spanish() {
    let fx = Fixture::new();
    fx.flow("main", &bilingual());
    let (code, v) = fx.validate();
    assert_eq!(code, 1, "{v}");
    let missing: Vec<(String, String)> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["rule"] == "missing-prompt")
        .map(|d| {
            (
                d["node"].as_str().unwrap_or("").to_string(),
                d["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let at = |node: &str| {
        missing
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| panic!("nothing missing at {node}: {missing:?}"))
    };
    assert!(
        at("main.spanish").contains("in Spanish (es): no file")
            && at("main.spanish").contains("prompts/es/hello.wav"),
        "{missing:?}"
    );
    assert!(at("main.agents").contains("es/queue/"), "{missing:?}");
    // Each says how a Spanish caller gets there.
    let way = |node: &str| -> Vec<String> {
        v["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["rule"] == "missing-prompt" && d["node"] == node)
            .map(|d| serde_json::from_value(d["path"].clone()).unwrap())
            .unwrap_or_default()
    };
    assert_eq!(
        way("main.agents"),
        [
            "main.welcome",
            "done",
            "main.menu",
            "3",
            "main.spanish",
            "done",
            "main.agents"
        ],
        "{v}"
    );
    assert!(at("main.vm").contains("es/followup/saved"), "{missing:?}");
    // An English-only node the Spanish caller never meets needs nothing in Spanish.
    assert!(
        !missing
            .iter()
            .any(|(n, _)| n == "main.menu" || n == "main.welcome")
    );

    // With the Spanish files there, the line is clean.
    let es = fx.path().join("prompts/es");
    std::fs::create_dir_all(&es).unwrap();
    common::write_wav(&es.join("hello.wav"), 8000, 1, 1.0);
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/es");
    for d in ["queue", "digits", "followup"] {
        let ok = std::process::Command::new("cp")
            .arg("-r")
            .arg(repo.join(d))
            .arg(&es)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let (code, v) = fx.validate();
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["errors"], 0, "{v}");

    // A Spanish prompt three times as long breaks the bound, and the message says where.
    common::write_wav(&es.join("hello.wav"), 8000, 1, 30.0);
    fx.flow(
        "main",
        &bilingual().replace(
            "escape_to = \"agents\"",
            "escape_to = \"agents\"\nmax_seconds_to_human = 25",
        ),
    );
    let (code, v) = fx.validate();
    assert_eq!(code, 1, "{v}");
    let slow = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["rule"] == "too-slow")
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        slow["message"]
            .as_str()
            .unwrap()
            .contains("main.spanish 30.0 s in Spanish (es)"),
        "{slow}"
    );
}

#[test]
fn a_language_is_one_hotline_speaks() {
    let f = fires(
        &(bilingual().replace("language = \"es\"", "language = \"fr\"")),
        "invalid-flow",
        Some("main.spanish"),
    );
    assert!(!f.iter().any(|(r, _)| r == "missing-prompt"), "{f:?}");
    fires(
        &edit(
            "escape_to = \"agents\"",
            "escape_to = \"agents\"\nlanguage = \"klingon\"",
        ),
        "invalid-flow",
        None,
    );
    // A text prompt in a language hotline does not speak.
    fires(
        &edit(
            "prompt = \"bye\"",
            "prompt = { say = { en = \"Bye.\", xx = \"Adieu.\" } }",
        ),
        "invalid-flow",
        Some("main.goodbye"),
    );
}

/// Text in the caller's language: a node Spanish callers reach with English text only is an
/// error naming the language to add; given per language, the line is clean; an offer said
/// in Spanish to everyone (`language = "es"`) needs no English.
#[test]
fn a_text_prompt_gives_its_words_in_every_language_that_reaches_it() {
    let fx = Fixture::new();
    fx.flow(
        "main",
        &bilingual().replace(
            "prompt = \"hello\"\nnext = \"agents\"",
            "prompt = { say = \"Hello.\" }\nnext = \"agents\"",
        ),
    );
    let (_, v) = fx.validate();
    let d = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["node"] == "main.spanish" && d["rule"] == "missing-prompt")
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("no text in Spanish (es): add it (say = { es = \"…\" })"),
        "{d}"
    );
    fx.flow(
        "main",
        &bilingual()
            .replace(
                "prompt = \"hello\"\nnext = \"agents\"",
                "prompt = { say = { en = \"Hello.\", es = \"Hola.\" } }\nnext = \"agents\"",
            )
            .replace(
                "prompt = \"menu\"",
                "prompt = [\"menu\", { say = \"Para español, pulse dos.\", language = \"es\" }]",
            ),
    );
    let (_, v) = fx.validate();
    assert!(
        !v["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["node"] == "main.spanish" || d["node"] == "main.menu"),
        "{v}"
    );
}
