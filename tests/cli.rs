//! The command line as users and CI meet it: output formats, exit codes, hostile input,
//! simulate, graph, and the demo line.

mod common;

use common::{Fixture, repo, run_in};

const LINE: &str = r##"
[flow]
entry = "welcome"
escape_digit = "0"
escape_to = "agents"
max_steps_to_human = 5

[nodes.welcome]
type = "play"
prompt = "hello"
next = "open_now"

[nodes.open_now]
type = "schedule"
calendar = "business"
open = "menu"
closed = "night"

[nodes.menu]
type = "menu"
prompt = "menu"
options = { "1" = "agents", "2" = "account", "3" = "info", "9" = "bye" }
invalid_prompt = "hello"
on_exhausted = "agents"

[nodes.info]
type = "play"
prompt = "hello"
next = "menu"

[nodes.account]
type = "collect"
prompt = "menu"
min_digits = 4
max_digits = 6
terminator = "#"
variable = "account"
next = "vip"
on_exhausted = "agents"

[nodes.vip]
type = "branch"
variable = "account"
cases = { "prefix:99" = "priority" }
default = "agents"

[nodes.priority]
type = "queue"
queue = "support"
priority = 10
on_timeout = "vm"

[nodes.agents]
type = "queue"
queue = "support"
on_timeout = "vm"

[nodes.night]
type = "menu"
prompt = "menu"
options = { "1" = "vm" }
max_retries = 1
on_exhausted = "vm"

[nodes.vm]
type = "voicemail"
mailbox = "support"

[nodes.bye]
type = "hangup"
prompt = "bye"
"##;

const CONFIG: &str = r#"
[[queues]]
name = "support"

[calendars.business]
timezone = "Europe/Madrid"
open = { mon = "09:00-18:00", tue = "09:00-18:00", wed = "09:00-18:00", thu = "09:00-18:00", fri = "09:00-17:00" }
"#;

/// Monday 10:00 and Sunday 10:00 in Madrid.
const OPEN: &str = "2026-11-23T10:00:00+01:00";
const CLOSED: &str = "2026-11-22T10:00:00+01:00";

fn line() -> Fixture {
    let fx = Fixture::new();
    fx.flow("main", LINE).config(CONFIG);
    fx
}

fn simulate(fx: &Fixture, input: &str, at: &str) -> serde_json::Value {
    let out = fx.run(&[
        "simulate", "main", "--input", input, "--at", at, "--format", "json",
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    out.json()
}

#[test]
fn json_output_has_the_contract_fields() {
    let fx = Fixture::new();
    fx.flow(
        "main",
        &LINE.replace(
            "on_exhausted = \"agents\"\n\n[nodes.info]",
            "on_exhausted = \"bye\"\n\n[nodes.info]",
        ),
    );
    let (code, v) = fx.validate();
    assert_eq!(code, 1);
    assert_eq!(v["ok"], false);
    assert!(v["errors"].as_u64().unwrap() >= 1);
    assert!(v["warnings"].is_u64());
    for d in v["diagnostics"].as_array().unwrap() {
        for key in [
            "rule", "severity", "file", "line", "column", "node", "message", "path",
        ] {
            assert!(d.get(key).is_some(), "{key} missing in {d}");
        }
        assert!(d["line"].as_u64().unwrap() >= 1 && d["column"].as_u64().unwrap() >= 1);
    }
}

#[test]
fn text_output_quotes_the_line_with_a_caret_and_summarises_each_flow() {
    let fx = line();
    let ok = fx.run(&["validate"]);
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    assert!(
        ok.stdout
            .contains("main (flows/main.toml): entry main.welcome, 11 nodes"),
        "{}",
        ok.stdout
    );
    assert!(
        ok.stdout.contains("worst silent path 4 steps"),
        "{}",
        ok.stdout
    );
    fx.flow("main", &LINE.replace("next = \"vip\"", "next = \"vipp\""));
    let bad = fx.run(&["validate"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stdout.contains("error[unknown-node]"), "{}", bad.stdout);
    assert!(
        bad.stdout.contains("--> flows/main.toml:38:8"),
        "{}",
        bad.stdout
    );
    assert!(
        bad.stdout.contains("38 | next = \"vipp\"\n   |        ^"),
        "{}",
        bad.stdout
    );
    assert!(
        bad.stdout.contains("FAILED: 1 flow file checked, 1 error"),
        "{}",
        bad.stdout
    );
}

#[test]
fn junit_has_a_testcase_per_flow_file_and_a_failure_per_error() {
    let fx = line();
    fx.flow(
        "other",
        &LINE
            .replace("escape_to = \"agents\"", "escape_to = \"menu\"")
            .replace("next = \"vip\"", "next = \"nope\""),
    );
    let out = fx.run(&["validate", "--format", "junit"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout.matches("<testcase ").count(),
        2,
        "{}",
        out.stdout
    );
    assert_eq!(out.stdout.matches("<failure ").count(), 2, "{}", out.stdout);
    assert!(out.stdout.contains("type=\"no-escape\""));
    assert!(
        out.stdout.contains("tests=\"2\" failures=\"1\""),
        "{}",
        out.stdout
    );
    assert!(out.stdout.starts_with("<?xml"));
}

#[test]
fn github_annotations() {
    let fx = line();
    fx.flow(
        "main",
        &LINE.replace("escape_to = \"agents\"", "escape_to = \"menu\""),
    );
    let out = fx.run(&["validate", "--format", "github"]);
    assert_eq!(out.code, 1);
    let first = out.stdout.lines().next().unwrap();
    assert!(
        first.starts_with("::error file=flows/main.toml,line=5,col=13,title=no-escape::"),
        "{first}"
    );
    assert!(!first.contains('\n'));
}

#[test]
fn malformed_toml_is_an_error_with_its_position() {
    let fx = Fixture::new();
    fx.flow("main", "[flow]\nentry = \"a\"\n[nodes.a\ntype = \"play\"\n");
    let (code, v) = fx.validate();
    assert_eq!(code, 1);
    assert_eq!(v["diagnostics"][0]["rule"], "invalid-flow");
    assert_eq!(v["diagnostics"][0]["line"], 3);
}

#[test]
fn non_utf8_bytes_are_an_error_at_the_first_bad_byte() {
    let fx = Fixture::new();
    std::fs::write(
        fx.path().join("flows/main.toml"),
        b"[flow]\nentry = \"caf\xe9\"\n",
    )
    .unwrap();
    let (code, v) = fx.validate();
    assert_eq!(code, 1);
    let d = &v["diagnostics"][0];
    assert_eq!(d["rule"], "invalid-flow");
    assert!(d["message"].as_str().unwrap().contains("UTF-8"));
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(2), Some(13))
    );
}

#[test]
fn a_10_mb_file_is_refused_without_parsing() {
    let fx = Fixture::new();
    let big = format!(
        "[flow]\nentry = \"a\"\n# {}\n",
        "x".repeat(10 * 1024 * 1024)
    );
    std::fs::write(fx.path().join("flows/main.toml"), big).unwrap();
    let (code, v) = fx.validate();
    assert_eq!(code, 1);
    assert!(
        v["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 8 MiB"),
        "{v}"
    );
}

#[test]
fn a_missing_or_empty_folder_cannot_run() {
    let fx = Fixture::new();
    let out = fx.run(&["validate", "nowhere"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("nowhere: no such file or folder"),
        "{}",
        out.stderr
    );
    let out = fx.run(&["validate"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no flow files"), "{}", out.stderr);
    let out = fx.run(&["validate", "--format", "yaml", "flows"]);
    assert_eq!(out.code, 2);
}

#[test]
fn a_bad_config_cannot_run() {
    let fx = line();
    fx.config("[sip]\nlisen = 1\n");
    let out = fx.run(&["validate"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("hotline.toml:2:1"), "{}", out.stderr);
}

/// Config mistakes that would run a broken line are refused with file and line, by
/// `validate` in CI and by `serve` before it opens a socket.
#[test]
fn a_config_that_would_serve_a_broken_line_is_refused_with_its_place() {
    for (config, why) in [
        ("[rtp]\nports = [80, 90]\n", "below 1024"),
        ("[sip]\nadvertise = \"0.0.0.0\"\n", "unspecified"),
        (
            "[[agents]]\nid = \"alice\"\npassword = \"\"\n",
            "empty password",
        ),
    ] {
        let fx = line();
        fx.config(config);
        for cmd in ["validate", "serve"] {
            let out = fx.run(&[cmd]);
            assert_eq!(out.code, 2, "{cmd} with {config}: {}", out.stderr);
            assert!(out.stderr.contains("hotline.toml:"), "{}", out.stderr);
            assert!(out.stderr.contains(why), "{}", out.stderr);
        }
    }
}

/// A line that would record callers without telling them, as its config asks, does not start.
#[test]
fn serve_refuses_a_recording_announcement_it_cannot_play() {
    let fx = line();
    fx.config(&format!(
        "{CONFIG}\n[recording]\nannouncement = \"recorded\"\n"
    ));
    let out = fx.run(&["serve"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("[recording] announcement = \"recorded\": ")
            && out.stderr.contains("recorded.wav is missing"),
        "{}",
        out.stderr
    );
}

/// A queue's own hold music must be there: `validate` says so (as a missing prompt, in the
/// config) and `serve` refuses to start rather than leave its callers in silence. A name
/// that leaves the prompts folder is no prompt name at all.
#[test]
fn a_queues_hold_music_is_checked_by_validate_and_serve() {
    let fx = line();
    fx.config(&CONFIG.replace(
        "name = \"support\"\n",
        "name = \"support\"\nhold_music = \"jazz\"\n",
    ));
    let (code, report) = fx.validate();
    assert_eq!(code, 1, "{report}");
    let d = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["rule"] == "missing-prompt")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(d["file"], "hotline.toml", "{report}");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("queue \"support\": hold_music = \"jazz\""),
        "{report}"
    );
    let out = fx.run(&["serve"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("jazz.wav is missing"), "{}", out.stderr);
    // There: clean.
    common::write_wav(&fx.path().join("prompts/jazz.wav"), 8000, 1, 1.0);
    let (code, report) = fx.validate();
    assert_eq!(code, 0, "{report}");
    // Not a prompt name.
    fx.config(&CONFIG.replace(
        "name = \"support\"\n",
        "name = \"support\"\nhold_music = \"../jazz\"\n",
    ));
    let out = fx.run(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("hotline.toml:4:14")
            && out
                .stderr
                .contains("hold_music = \"../jazz\" is no prompt name"),
        "{}",
        out.stderr
    );
}

/// Holidays that come back every year are written once ("01-06"): Epiphany 2027 is closed
/// though nobody typed 2027; a calendar whose closed dates are all past is warned of, by
/// `validate` and `serve`.
#[test]
fn yearly_holidays_close_every_year_and_a_stale_calendar_is_warned_of() {
    let fx = line();
    fx.config(&CONFIG.replace(
        "fri = \"09:00-17:00\" }",
        "fri = \"09:00-17:00\" }\nclosed_dates = [\"01-06\", \"12-24 14:00-24:00\"]",
    ));
    // Wednesday 6 January 2027, 10:00 in Madrid: closed, whatever year it is.
    let v = simulate(&fx, "_", "2027-01-06T10:00:00+01:00");
    assert!(v["path"].to_string().contains("\"closed\""), "{v}");
    let v = simulate(&fx, "_", "2027-01-07T10:00:00+01:00");
    assert!(v["path"].to_string().contains("\"open\""), "{v}");
    let out = fx.run(&["validate"]);
    assert!(!out.stderr.contains("closes on no day"), "{}", out.stderr);
    // Only a date gone by: told.
    fx.config(&CONFIG.replace(
        "fri = \"09:00-17:00\" }",
        "fri = \"09:00-17:00\" }\nclosed_dates = [\"2020-12-25\"]",
    ));
    let out = fx.run(&["validate"]);
    assert!(
        out.stderr
            .contains("calendar \"business\" closes on no day in the 12 months"),
        "{}",
        out.stderr
    );
}

/// A calendar's holidays from an iCalendar file beside the config: a yearly one closes the
/// line every year; a file that cannot be read is refused with its name.
#[test]
fn holidays_come_from_an_icalendar_file() {
    let fx = line();
    std::fs::write(
        fx.path().join("holidays.ics"),
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:1\r\nSUMMARY:Reyes\r\nDTSTART;VALUE=DATE:20270106\r\nRRULE:FREQ=YEARLY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    .unwrap();
    fx.config(&CONFIG.replace(
        "fri = \"09:00-17:00\" }",
        "fri = \"09:00-17:00\" }\nholidays_file = \"holidays.ics\"",
    ));
    // Thursday 6 January 2028: closed.
    let v = simulate(&fx, "_", "2028-01-06T10:00:00+01:00");
    assert!(v["path"].to_string().contains("\"closed\""), "{v}");
    fx.config(&CONFIG.replace(
        "fri = \"09:00-17:00\" }",
        "fri = \"09:00-17:00\" }\nholidays_file = \"nowhere.ics\"",
    ));
    let out = fx.run(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("calendar \"business\": holidays_file")
            && out.stderr.contains("nowhere.ics"),
        "{}",
        out.stderr
    );
    // A device is not read at all, a huge file not read whole.
    fx.config(&CONFIG.replace(
        "fri = \"09:00-17:00\" }",
        "fri = \"09:00-17:00\" }\nholidays_file = \"/dev/zero\"",
    ));
    let out = fx.run(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    std::fs::write(fx.path().join("huge.ics"), vec![b'x'; 5 << 20]).unwrap();
    fx.config(&CONFIG.replace(
        "fri = \"09:00-17:00\" }",
        "fri = \"09:00-17:00\" }\nholidays_file = \"huge.ics\"",
    ));
    let out = fx.run(&["validate"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("larger than 4 MiB"), "{}", out.stderr);
}

#[test]
fn a_single_file_resolves_references_to_its_neighbours() {
    let fx = line();
    fx.flow(
        "billing",
        &LINE.replace("\"2\" = \"account\"", "\"2\" = \"main.account\""),
    );
    let out = fx.run(&["validate", "flows/billing.toml", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
}

#[test]
fn simulate_a_choice_reaches_the_queue() {
    let v = simulate(&line(), "1", OPEN);
    assert_eq!(v["outcome"], "queue");
    assert_eq!(v["node"], "main.agents");
    assert_eq!(v["steps"], 2);
    // hello 1 s + menu 2 s, then the key.
    assert_eq!(v["seconds"], 3.0);
    assert_eq!(
        v["path"],
        serde_json::json!([
            "main.welcome",
            "done",
            "main.open_now",
            "open",
            "main.menu",
            "1",
            "main.agents"
        ])
    );
    assert!(v.get("watchdog").is_none());
}

#[test]
fn simulate_silence_walks_the_retries() {
    let v = simulate(&line(), "", OPEN);
    assert_eq!(v["outcome"], "queue");
    assert_eq!(v["node"], "main.agents");
    assert_eq!(v["steps"], 4);
    assert_eq!(v["seconds"], 22.0);
}

#[test]
fn simulate_escape_digit_wrong_keys_and_hangup() {
    let fx = line();
    assert_eq!(simulate(&fx, "0", OPEN)["node"], "main.agents");
    let v = simulate(&fx, "7,7,7", OPEN);
    assert_eq!(v["node"], "main.agents");
    assert_eq!(v["path"][5], "wrong");
    let v = simulate(&fx, "!", OPEN);
    assert_eq!(v["outcome"], "caller-hangup");
    assert_eq!(v["node"], "main.menu");
    let v = simulate(&fx, "9", OPEN);
    assert_eq!(v["outcome"], "hangup");
}

#[test]
fn simulate_collect_branch_and_schedule() {
    let fx = line();
    let v = simulate(&fx, "2,9912#", OPEN);
    assert_eq!(v["node"], "main.priority");
    assert_eq!(simulate(&fx, "2,1234", OPEN)["node"], "main.agents");
    let closed = simulate(&fx, "", CLOSED);
    assert_eq!(closed["outcome"], "voicemail");
    assert!(
        closed["path"]
            .as_array()
            .unwrap()
            .contains(&"closed".into())
    );
}

#[test]
fn simulate_the_watchdog_steps_in() {
    let v = simulate(&line(), "3,3,3", OPEN);
    assert_eq!(v["outcome"], "queue");
    assert_eq!(v["watchdog"], true);
    assert_eq!(v["steps"], 5);
}

#[test]
fn simulate_refuses_invalid_flows_and_bad_arguments() {
    let fx = line();
    fx.flow("main", &LINE.replace("next = \"vip\"", "next = \"vipp\""));
    let out = fx.run(&["simulate", "main"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("unknown-node"), "{}", out.stderr);
    let fx = line();
    assert_eq!(fx.run(&["simulate", "nosuch"]).code, 2);
    assert_eq!(fx.run(&["simulate", "main", "--input", "1,x"]).code, 2);
    assert_eq!(fx.run(&["simulate", "main", "--at", "tomorrow"]).code, 2);
    assert_eq!(
        fx.run(&["simulate", "flows/main.toml", "--input", "1", "--at", OPEN])
            .code,
        0
    );
}

#[test]
fn graph_dot_renders_with_graphviz() {
    let fx = line();
    let out = fx.run(&["graph", "flows/main.toml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("doubleoctagon"),
        "live humans stand out"
    );
    assert!(
        out.stdout.contains("[label=\"9\"]"),
        "edges carry the caller action"
    );
    assert!(out.stdout.contains("2 steps to a human"), "{}", out.stdout);
    let dot = fx.path().join("main.dot");
    std::fs::write(&dot, &out.stdout).unwrap();
    let svg = std::process::Command::new("dot")
        .args(["-Tsvg", dot.to_str().unwrap()])
        .output()
        .expect("Graphviz `dot` must be installed (.ci/run installs it)");
    assert!(
        svg.status.success(),
        "{}",
        String::from_utf8_lossy(&svg.stderr)
    );
    assert!(String::from_utf8_lossy(&svg.stdout).contains("<svg"));
}

#[test]
fn graph_mermaid_and_bad_files() {
    let fx = line();
    let out = fx.run(&["graph", "flows/main.toml", "--format", "mermaid"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with("flowchart TD\n"));
    assert!(out.stdout.contains("-->|\"1\"|"), "{}", out.stdout);
    assert_eq!(fx.run(&["graph", "flows/none.toml"]).code, 2);
    fx.flow("broken", "[flow\n");
    assert_eq!(fx.run(&["graph", "flows/broken.toml"]).code, 2);
}

#[test]
fn the_demo_line_validates_with_and_without_its_config() {
    let out = run_in(&repo(), &["validate", "flows"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("0 errors"), "{}", out.stdout);
    let out = run_in(&repo(), &["validate", "--format", "json"]);
    assert_eq!(out.json()["errors"], 0);
    // With the demo config, queue and calendar names are checked too.
    let fx = Fixture::new();
    let cfg = std::fs::read_to_string(repo().join("examples/hotline.toml")).unwrap();
    fx.config(&cfg);
    for f in ["main", "billing"] {
        fx.flow(
            f,
            &std::fs::read_to_string(repo().join(format!("flows/{f}.toml"))).unwrap(),
        );
    }
    std::fs::remove_dir_all(fx.path().join("prompts")).unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(repo().join("prompts"))
        .arg(fx.path())
        .status()
        .unwrap();
    assert!(copied.success());
    let (code, v) = fx.validate();
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["errors"], 0);
}

#[test]
fn the_demo_line_answers_callers() {
    let sim = |input: &str| {
        let out = run_in(
            &repo(),
            &[
                "simulate", "main", "--input", input, "--at", OPEN, "--format", "json",
            ],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.json()
    };
    // The welcome offers Spanish on 2; silence (or any other key) goes on in English.
    assert_eq!(sim("_,1")["node"], "main.sales");
    assert_eq!(sim("0")["node"], "main.agents");
    assert_eq!(sim("")["node"], "main.agents");
    assert_eq!(sim("_,2,123456#")["node"], "billing.billing_queue");
    assert_eq!(sim("_,2,100000#")["node"], "billing.priority_queue");
    let spanish = sim("2,1");
    assert_eq!(spanish["node"], "main.sales");
    assert_eq!(spanish["language"], "es", "{spanish}");
    assert_eq!(sim("_,1")["language"], "en");
    // A returning caller: put through to whoever has their message, or withdrawing it.
    let returning = |input: &str| {
        let out = run_in(
            &repo(),
            &[
                "simulate",
                "main",
                "--input",
                input,
                "--at",
                OPEN,
                "--returning",
                "voicemail:taken:alice",
                "--format",
                "json",
            ],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.json()
    };
    assert_eq!(returning("")["node"], "main.owner");
    assert_eq!(returning("_,1")["node"], "main.owner");
    let withdrawn = returning("_,2");
    assert_eq!(withdrawn["node"], "main.withdrawn");
    assert_eq!(withdrawn["outcome"], "hangup");
}

/// `diff` between two versions of the line, each in its own folder (as a CI job checks out the
/// base branch beside the change).
fn diff(old: &str, new: &str, format: &str) -> common::Output {
    let fx = Fixture::new();
    fx.config(CONFIG);
    for (dir, text) in [("old", old), ("new", new)] {
        std::fs::create_dir_all(fx.path().join(dir)).unwrap();
        std::fs::write(fx.path().join(dir).join("main.toml"), text).unwrap();
    }
    fx.run(&["diff", "old", "new", "--format", format])
}

#[test]
fn diff_of_an_unchanged_line_passes_with_every_node_the_same() {
    let out = diff(LINE, LINE, "text");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("main.menu"), "{}", out.stdout);
    assert!(
        !out.stdout
            .lines()
            .any(|l| l.ends_with("worse") || l.contains("WORSE")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("ok: 5 nodes compared"),
        "{}",
        out.stdout
    );
}

#[test]
fn diff_shows_a_slower_menu_within_the_bound_and_passes() {
    // Two more seconds of silence at the menu: worse in seconds, not in steps.
    let slower = LINE.replace(
        "invalid_prompt = \"hello\"\non_exhausted = \"agents\"",
        "invalid_prompt = \"hello\"\ntimeout_s = 7\non_exhausted = \"agents\"",
    );
    assert_ne!(slower, LINE);
    let out = diff(LINE, &slower, "text");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let menu = out
        .stdout
        .lines()
        .find(|l| l.starts_with("main.menu "))
        .unwrap();
    assert!(menu.contains("worse"), "{menu}");
    assert!(menu.contains(" -> "), "{menu}");
}

#[test]
fn diff_fails_when_a_change_puts_callers_beyond_the_bound() {
    // Six retries at the menu: a silent caller now needs 7 steps there (bound 5).
    let trap = LINE.replace(
        "invalid_prompt = \"hello\"\non_exhausted = \"agents\"",
        "invalid_prompt = \"hello\"\nmax_retries = 6\non_exhausted = \"agents\"",
    );
    let out = diff(LINE, &trap, "text");
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("FAILED: main.menu got worse"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("new error["), "{}", out.stdout);
    let md = diff(LINE, &trap, "markdown");
    assert_eq!(md.code, 1);
    assert!(md.stdout.contains("| `main.menu` |"), "{}", md.stdout);
    assert!(md.stdout.contains("**failed**"), "{}", md.stdout);
}

#[test]
fn diff_lists_new_and_removed_nodes() {
    let changed = LINE
        .replace("\"3\" = \"info\", ", "")
        .replace(
            "[nodes.info]\ntype = \"play\"\nprompt = \"hello\"\nnext = \"menu\"\n",
            "[nodes.news]\ntype = \"play\"\nprompt = \"hello\"\nnext = \"agents\"\n",
        )
        .replace("\"9\" = \"bye\"", "\"9\" = \"bye\", \"4\" = \"news\"");
    let out = diff(LINE, &changed, "text");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("new node main.news"), "{}", out.stdout);
    assert!(
        out.stdout.contains("removed node main.info"),
        "{}",
        out.stdout
    );
}

#[test]
fn diff_of_a_missing_file_is_a_usage_error() {
    let fx = line();
    let out = fx.run(&["diff", "flows/main.toml", "flows/nope.toml"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("nope.toml"), "{}", out.stderr);
}

#[test]
fn schema_is_a_json_schema_of_every_node_type() {
    let out = line().run(&["schema"]);
    assert_eq!(out.code, 0);
    let v = out.json();
    assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
    let types = &v["properties"]["nodes"]["additionalProperties"]["properties"]["type"]["enum"];
    for t in [
        "play",
        "menu",
        "collect",
        "schedule",
        "branch",
        "lookup",
        "queue",
        "transfer",
        "voicemail",
        "callback",
        "hangup",
    ] {
        assert!(types.as_array().unwrap().iter().any(|x| x == t), "{t}");
    }
}

/// A data folder with three finished calls and one live, written as the server writes them.
fn records() -> Fixture {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.path().join("data")).unwrap();
    let db = rusqlite::Connection::open(fx.path().join("data/hotline.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE calls (id INTEGER PRIMARY KEY, uid TEXT, call_id TEXT NOT NULL, caller TEXT NOT NULL, line TEXT NOT NULL, flow TEXT NOT NULL DEFAULT '', flow_version TEXT NOT NULL DEFAULT '', started TEXT NOT NULL, answered TEXT, human_offered_at TEXT, agent_answered_at TEXT, ended TEXT, path TEXT NOT NULL, steps INTEGER NOT NULL DEFAULT 0, outcome TEXT NOT NULL, steps_to_human INTEGER, seconds_to_human REAL, escape_used INTEGER NOT NULL DEFAULT 0, watchdog_used INTEGER NOT NULL DEFAULT 0, agent TEXT, variables TEXT NOT NULL DEFAULT '{}', end_reason TEXT);
         INSERT INTO calls (uid, call_id, caller, line, flow, started, human_offered_at, agent_answered_at, ended, path, steps, outcome, steps_to_human, seconds_to_human, escape_used, agent, end_reason) VALUES
           ('a', 'c1', 'sip:a@x', 'main', 'main', '2026-11-01T10:00:00Z', '2026-11-01T10:00:10Z', '2026-11-01T10:00:15Z', '2026-11-01T10:05:00Z', '[\"main.welcome\",\"0\",\"main.agents\"]', 1, 'queue', 1, 10.0, 1, 'alice', 'agent'),
           ('b', 'c2', 'sip:b@x', 'main', 'main', '2026-11-02T10:00:00Z', '2026-11-02T10:04:00Z', NULL, '2026-11-02T10:06:00Z', '[\"main.welcome\",\"done\",\"main.menu\",\"_\",\"main.agents\"]', 3, 'queue', 3, 240.0, 0, NULL, 'caller'),
           ('c', 'c3', 'sip:c@x', 'main', 'main', '2026-11-03T10:00:00Z', '2026-11-03T10:00:20Z', '2026-11-03T10:00:50Z', '2026-11-03T10:09:00Z', '[\"main.welcome\",\"done\",\"main.agents\"]', 2, 'queue', 2, 20.0, 0, 'bob', 'caller'),
           ('d', 'c4', 'sip:d@x', 'main', 'main', '2026-11-04T10:00:00Z', NULL, NULL, NULL, '[\"main.welcome\"]', 0, 'live', NULL, NULL, 0, NULL, NULL);",
    )
    .unwrap();
    fx
}

#[test]
fn report_computes_the_compliance_figures_from_the_records() {
    let fx = records();
    let out = fx.run(&["report", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(r["calls"], 3, "the live call is not counted");
    assert_eq!(r["offered_within_3_min"], 2);
    assert_eq!(r["answered_by_human"], 2);
    assert_eq!(r["average_speed_of_answer_s"], 17.5);
    assert_eq!(r["service_level"].as_f64().unwrap(), 1.0 / 3.0);
    assert_eq!(r["abandoned"], 1);
    assert_eq!(r["flows"][0]["escape_used"], 1);
    assert_eq!(r["longest_paths"][0]["id"], "c2");

    let since = fx
        .run(&["report", "--since", "2026-11-02", "--format", "json"])
        .json();
    assert_eq!(since["calls"], 2);
    let text = fx.run(&["report"]).stdout;
    assert!(
        text.contains("offered a live human within 3 min: 2 of 3 (66.7%; target 95%: NOT met)"),
        "{text}"
    );
    let csv = fx.run(&["report", "--format", "csv"]).stdout;
    assert!(csv.starts_with("flow,calls,"), "{csv}");
    assert!(csv.contains("\nmain,3,3,"), "{csv}");

    let bad = fx.run(&["report", "--since", "last tuesday"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("last tuesday"), "{}", bad.stderr);
}

#[test]
fn report_without_records_says_where_it_looked() {
    let out = line().run(&["report"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("hotline.db"), "{}", out.stderr);
}

/// Under a service manager's small open-file limit, `serve` raises its soft limit to the hard
/// one and says, at start, when even that caps the calls its RTP range could carry — rather
/// than refusing the 1,000th call with a misleading "no free RTP port".
#[test]
fn serve_warns_when_the_open_file_limit_caps_the_calls() {
    let fx = line();
    fx.config(
        "[sip]\nlisten = \"127.0.0.1:0\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[calendars.business]\ntimezone = \"Europe/Madrid\"\n\n[[queues]]\nname = \"support\"\nskills = [\"support\"]\n",
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 64; ulimit -Hn 128; timeout -s INT 2 {} serve",
            common::bin().display()
        ))
        .current_dir(fx.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the open-file limit caps the server") && stderr.contains("open_files=128"),
        "{stderr}"
    );
}

/// The prompts the server plays itself (hold music, queue announcements, follow-ups) are
/// checked by `validate` as `serve` checks them: a broken `hold.wav` fails CI, not start-up.
#[test]
fn a_broken_server_prompt_fails_validate_as_it_fails_serve() {
    let fx = line();
    assert_eq!(fx.validate().0, 0, "valid without the server prompts");
    common::write_wav(&fx.path().join("prompts/hold.wav"), 44100, 2, 1.0);
    let (code, report) = fx.validate();
    assert_eq!(code, 1, "{report}");
    let d = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["rule"] == "bad-prompt")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(d["severity"], "error", "{report}");
    assert!(
        d["file"].as_str().unwrap().ends_with("prompts/hold.wav"),
        "{report}"
    );
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("played by the server"),
        "{report}"
    );
    fx.config(
        "[sip]\nlisten = \"127.0.0.1:0\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[calendars.business]\ntimezone = \"Europe/Madrid\"\n\n[[queues]]\nname = \"support\"\nskills = [\"support\"]\n",
    );
    let out = fx.run(&["serve"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("hold.wav"), "{}", out.stderr);
    // The text report names the file too.
    let out = fx.run(&["validate"]);
    assert!(
        out.stdout.contains("prompts/hold.wav:1:1"),
        "{}",
        out.stdout
    );
}

/// One mistake, one diagnostic, however long the line: a ring of 2,000 menus whose silent
/// caller goes round for ever, and a chain of 20,000 plays too long for the bound, each get
/// one diagnostic per rule (they used to get one per node, each with its full path: minutes
/// and gigabytes).
#[test]
fn a_mistake_in_a_huge_flow_is_reported_once() {
    let fx = Fixture::new();
    fx.config(CONFIG);
    let head = "[flow]\nentry = \"n0\"\nescape_digit = \"0\"\nescape_to = \"agents\"\nmax_steps_to_human = 5\n\n[nodes.agents]\ntype = \"queue\"\nqueue = \"support\"\non_timeout = \"vm\"\n\n[nodes.vm]\ntype = \"voicemail\"\nmailbox = \"support\"\n";
    let mut ring = head.to_string();
    for i in 0..2000 {
        let next = (i + 1) % 2000;
        ring.push_str(&format!(
            "\n[nodes.n{i}]\ntype = \"menu\"\nprompt = \"hello\"\noptions = {{ \"1\" = \"n{next}\" }}\non_exhausted = \"n{next}\"\n"
        ));
    }
    let mut chain = head.to_string();
    for i in 0..20_000 {
        let next = if i + 1 < 20_000 {
            format!("n{}", i + 1)
        } else {
            "agents".into()
        };
        chain.push_str(&format!(
            "\n[nodes.n{i}]\ntype = \"play\"\nprompt = \"hello\"\nnext = \"{next}\"\n"
        ));
    }
    for (name, text, node, behind) in [
        ("ring", ring, "ring.n0", 1999),
        ("chain", chain, "chain.n19994", 19994),
    ] {
        let _ = std::fs::remove_file(fx.path().join("flows/ring.toml"));
        let _ = std::fs::remove_file(fx.path().join("flows/chain.toml"));
        fx.flow(name, &text);
        let (code, report) = fx.validate();
        assert_eq!(code, 1, "{name}");
        for rule in ["silent-caller-stranded", "lost-caller-stranded"] {
            let found: Vec<&serde_json::Value> = report["diagnostics"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["rule"] == rule)
                .collect();
            assert_eq!(found.len(), 1, "{name}: {rule}");
            assert_eq!(found[0]["node"], node, "{name}: {rule}");
            // It says how many other nodes' callers it strands.
            let message = found[0]["message"].as_str().unwrap();
            assert!(
                message.contains(&format!("{behind} more caller-facing nodes lead here")),
                "{name}: {rule}: {message}"
            );
        }
    }
}

/// A branch's exact case beats any prefix, and the longest prefix beats shorter ones,
/// whatever order the keys are written in.
#[test]
fn a_branch_prefers_the_exact_case_then_the_longest_prefix() {
    for cases in [
        r#"{ "prefix:1" = "short", "prefix:12" = "long", "123" = "exact" }"#,
        r#"{ "123" = "exact", "prefix:12" = "long", "prefix:1" = "short" }"#,
        r#"{ "prefix:12" = "long", "123" = "exact", "prefix:1" = "short" }"#,
    ] {
        let fx = Fixture::new();
        fx.config(CONFIG);
        let mut flow = String::from(
            "[flow]\nentry = \"account\"\nescape_digit = \"0\"\nescape_to = \"other\"\n\n[nodes.account]\ntype = \"collect\"\nprompt = \"hello\"\nmin_digits = 1\nmax_digits = 6\nterminator = \"#\"\nvariable = \"account\"\nnext = \"pick\"\non_exhausted = \"other\"\n\n[nodes.pick]\ntype = \"branch\"\nvariable = \"account\"\n",
        );
        flow.push_str(&format!("cases = {cases}\ndefault = \"other\"\n"));
        for q in ["short", "long", "exact", "other"] {
            flow.push_str(&format!(
                "\n[nodes.{q}]\ntype = \"queue\"\nqueue = \"support\"\non_timeout = \"vm\"\n"
            ));
        }
        flow.push_str("\n[nodes.vm]\ntype = \"voicemail\"\nmailbox = \"support\"\n");
        fx.flow("main", &flow);
        for (keys, node) in [
            ("123#", "main.exact"),
            ("1239#", "main.long"),
            ("19#", "main.short"),
            ("9#", "main.other"),
        ] {
            let out = simulate(&fx, keys, OPEN);
            assert_eq!(out["node"], node, "{cases} with {keys}");
        }
    }
}

/// A call that entered in one flow and moved to another: the watchdog's bound is the line's
/// (the flow the call entered), and it sends the caller to the escape of the flow they are in,
/// as the escape digit would. The validator's message, `simulate` and the engine agree.
#[test]
fn the_watchdog_sends_a_caller_to_the_escape_of_the_flow_they_are_in() {
    let fx = Fixture::new();
    fx.config(CONFIG);
    fx.flow(
        "main",
        "[flow]\nentry = \"main_menu\"\nescape_digit = \"0\"\nescape_to = \"agents\"\nmax_steps_to_human = 3\n\n[nodes.main_menu]\ntype = \"menu\"\nprompt = \"hello\"\noptions = { \"1\" = \"agents\", \"2\" = \"billing.info\" }\nmax_retries = 0\non_exhausted = \"billing.start\"\n\n[nodes.agents]\ntype = \"queue\"\nqueue = \"support\"\non_timeout = \"vm\"\n\n[nodes.vm]\ntype = \"voicemail\"\nmailbox = \"support\"\n",
    );
    fx.flow(
        "billing",
        "[flow]\nentry = \"start\"\nescape_digit = \"0\"\nescape_to = \"desk\"\nmax_steps_to_human = 5\n\n[nodes.start]\ntype = \"play\"\nprompt = \"hello\"\nnext = \"desk\"\n\n[nodes.info]\ntype = \"play\"\nprompt = \"hello\"\nnext = \"more\"\n\n[nodes.more]\ntype = \"menu\"\nprompt = \"hello\"\noptions = { \"1\" = \"info\" }\nmax_retries = 0\non_exhausted = \"desk\"\n\n[nodes.desk]\ntype = \"queue\"\nqueue = \"support\"\non_timeout = \"vm\"\n\n[nodes.vm]\ntype = \"voicemail\"\nmailbox = \"support\"\n",
    );
    let (code, report) = fx.validate();
    assert_eq!(code, 0, "{report}");
    let watchdog = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["rule"] == "watchdog-reachable" && d["path"][0] == "main.main_menu")
        .unwrap_or_else(|| panic!("{report}"))
        .clone();
    assert_eq!(watchdog["node"], "billing.info", "{watchdog}");
    assert!(
        watchdog["message"]
            .as_str()
            .unwrap()
            .contains("sends them to billing.desk"),
        "{watchdog}"
    );
    let out = simulate(&fx, "2,1", OPEN);
    assert_eq!(out["watchdog"], true, "{out}");
    assert_eq!(out["node"], "billing.desk", "{out}");
}

/// The stranded-caller diagnostic carries the shortest path from any entry, whatever the order
/// of the files: `billing.dead_end` is three plays from billing's own entry but one key from
/// main's.
#[test]
fn the_counterexample_is_the_shortest_from_any_entry_in_any_argument_order() {
    let fx = Fixture::new();
    fx.config(CONFIG);
    fx.flow(
        "main",
        r#"
[flow]
entry = "main_menu"
escape_digit = "0"
escape_to = "agents"

[nodes.main_menu]
type = "menu"
prompt = "menu"
options = { "1" = "billing.dead_end", "2" = "agents" }
on_exhausted = "billing.start"

[nodes.agents]
type = "queue"
queue = "support"
on_timeout = "vm"

[nodes.vm]
type = "voicemail"
mailbox = "support"
"#,
    );
    fx.flow(
        "billing",
        r#"
[flow]
entry = "start"
escape_digit = "0"
escape_to = "main.agents"

[nodes.start]
type = "play"
prompt = "hello"
next = "a"

[nodes.a]
type = "play"
prompt = "hello"
next = "b"

[nodes.b]
type = "play"
prompt = "hello"
next = "dead_end"

[nodes.dead_end]
type = "menu"
prompt = "menu"
options = { "1" = "main.agents" }
on_exhausted = "bye"

[nodes.bye]
type = "hangup"
"#,
    );
    let mut paths = Vec::new();
    for args in [
        vec!["validate", "flows", "--format", "json"],
        vec![
            "validate",
            "flows/main.toml",
            "flows/billing.toml",
            "--format",
            "json",
        ],
        vec![
            "validate",
            "flows/billing.toml",
            "flows/main.toml",
            "--format",
            "json",
        ],
    ] {
        let out = fx.run(&args);
        let report = out.json();
        let d = report["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["rule"] == "silent-caller-stranded")
            .unwrap_or_else(|| panic!("{args:?}: {report}"))
            .clone();
        assert_eq!(d["node"], "billing.dead_end", "{args:?}: {d}");
        paths.push((args, d["path"].clone()));
    }
    for (args, path) in &paths {
        assert_eq!(path[0], "main.main_menu", "{args:?}: {path}");
        assert_eq!(path[2], "billing.dead_end", "{args:?}: {path}");
        assert_eq!(path, &paths[0].1, "{args:?}");
    }
}

/// `--caller` is the built-in `caller_number`, read as `[numbers]` reads numbers; a branch
/// on it routes a known number, and something that is no number is a usage error.
#[test]
fn simulate_as_a_given_caller() {
    let fx = Fixture::new();
    fx.flow(
        "main",
        &LINE.replace(
            "next = \"open_now\"",
            "next = \"who\"\n\n[nodes.who]\ntype = \"branch\"\nvariable = \"caller_number\"\ncases = { \"+34600111222\" = \"priority\" }\ndefault = \"open_now\"",
        ),
    )
    .config(&format!("{CONFIG}\n[numbers]\ncountry = \"34\"\nnational_digits = 9\n"));
    let run = |caller: &str| {
        fx.run(&[
            "simulate", "main", "--at", OPEN, "--caller", caller, "--format", "json",
        ])
    };
    let known = run("600 111 222");
    assert_eq!(known.code, 0, "{}", known.stderr);
    assert_eq!(known.json()["node"], "main.priority");
    let other = run("+34911000000");
    assert_eq!(other.json()["path"][2], "main.who");
    assert_ne!(other.json()["node"], "main.priority");
    let bad = run("alice");
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--caller \"alice\""), "{}", bad.stderr);
}

/// `--lookup` says what an endpoint answers: a JSON file read as the server reads an answer,
/// `error`, or by default no answer in time (its timeout passes, then `on_error`).
#[test]
fn simulate_assumes_what_a_lookup_answers() {
    let fx = Fixture::new();
    fx.flow(
        "main",
        &LINE.replace(
            "next = \"open_now\"",
            "next = \"who\"\n\n[nodes.who]\ntype = \"lookup\"\nendpoint = \"crm\"\nnext = \"tier\"\non_error = \"open_now\"\n\n[nodes.tier]\ntype = \"branch\"\nvariable = \"crm.tier\"\ncases = { \"vip\" = \"priority\" }\ndefault = \"open_now\"",
        ),
    )
    .config(&format!(
        "{CONFIG}\n[lookups.crm]\nurl = \"http://127.0.0.1:9/x\"\ntimeout_ms = 1500\nfields = {{ tier = \"string\" }}\n"
    ));
    std::fs::write(
        fx.path().join("vip.json"),
        r#"{"tier": "vip", "other": [1]}"#,
    )
    .unwrap();
    std::fs::write(fx.path().join("bad.json"), r#"{"tier": 7}"#).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["simulate", "main", "--at", OPEN, "--format", "json"];
        args.extend_from_slice(extra);
        fx.run(&args)
    };
    let vip = run(&["--lookup", "crm=vip.json"]);
    assert_eq!(vip.code, 0, "{}", vip.stderr);
    assert_eq!(vip.json()["node"], "main.priority");
    assert_eq!(vip.json()["path"][3], "answer");
    let error = run(&["--lookup", "crm=error", "--input", "1"]);
    assert_eq!(error.json()["path"][3], "error");
    assert_eq!(error.json()["node"], "main.agents");
    // No answer: 1 s welcome, then the 1.5 s timeout before the menu.
    let silent = run(&["--input", "1"]);
    assert_eq!(silent.json()["path"][3], "error");
    assert_eq!(silent.json()["seconds"], 3.0 + 1.5);
    // A file the server would not read is the error it would be, and said so.
    let bad = run(&["--lookup", "crm=bad.json", "--input", "1"]);
    assert_eq!(bad.code, 0);
    assert_eq!(bad.json()["path"][3], "error");
    assert!(
        bad.stderr.contains("\"tier\" is a number, not a string"),
        "{}",
        bad.stderr
    );
    let unknown = run(&["--lookup", "erp=error"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no [lookups.erp]"),
        "{}",
        unknown.stderr
    );
}

/// `--switch NAME=on|off` sets a switch's position; unsaid, it is where the config sets it.
#[test]
fn simulate_takes_a_switchs_position() {
    let fx = Fixture::new();
    fx.flow(
        "main",
        &LINE.replace(
            "next = \"open_now\"",
            "next = \"outage\"\n\n[nodes.outage]\ntype = \"switch\"\nswitch = \"outage\"\non = \"priority\"\noff = \"open_now\"",
        ),
    )
    .config(&format!("{CONFIG}\n[switches.outage]\non = true\n"));
    let run = |extra: &[&str]| {
        let mut args = vec!["simulate", "main", "--at", OPEN, "--format", "json"];
        args.extend_from_slice(extra);
        fx.run(&args)
    };
    assert_eq!(run(&[]).json()["node"], "main.priority");
    let off = run(&["--switch", "outage=off", "--input", "1"]);
    assert_eq!(off.json()["path"][3], "off");
    assert_eq!(off.json()["node"], "main.agents");
    let bad = run(&["--switch", "outage=maybe"]);
    assert_eq!(bad.code, 2);
    let unknown = run(&["--switch", "storm=on"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no [switches.storm]"),
        "{}",
        unknown.stderr
    );
}

/// `--returning` simulates a caller with an open follow-up; without it, a stranger.
#[test]
fn simulate_a_returning_caller() {
    let fx = Fixture::new();
    fx.flow(
        "main",
        &LINE.replace(
            "next = \"open_now\"",
            "next = \"returning\"\n\n[nodes.returning]\ntype = \"returning\"\nopen = \"owner\"\nnone = \"open_now\"\n\n[nodes.owner]\ntype = \"owner\"\nqueue = \"support\"\non_timeout = \"vm\"",
        ),
    )
    .config(CONFIG);
    let run = |extra: &[&str]| {
        let mut args = vec!["simulate", "main", "--at", OPEN];
        args.extend_from_slice(extra);
        fx.run(&args)
    };
    let known = run(&["--returning", "voicemail:taken:alice"]);
    assert_eq!(known.code, 0, "{}", known.stderr);
    assert!(
        known.stdout.contains("main.returning -(open)-> main.owner"),
        "{}",
        known.stdout
    );
    assert!(
        known.stdout.contains("variable follow_up.owner = alice"),
        "{}",
        known.stdout
    );
    let stranger = run(&["--input", "1"]);
    assert!(
        stranger
            .stdout
            .contains("main.returning -(none)-> main.open_now"),
        "{}",
        stranger.stdout
    );
    let bad = run(&["--returning", "email"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("--returning \"email\""),
        "{}",
        bad.stderr
    );
}

/// A prompt written as text is rendered by the configured engine and judged like any other:
/// its length counts in the timings. With no engine installed, validate names the prompt and
/// how to get one, and serve refuses to start rather than play silence.
#[test]
fn text_prompts_are_rendered_or_refused_with_how_to_fix_it() {
    let fx = Fixture::new();
    let flow = LINE.replacen(
        "prompt = \"hello\"",
        "prompt = { say = \"Hello, and welcome to the test line.\" }",
        1,
    );
    fx.flow("main", &flow).config(CONFIG);
    let (code, v) = fx.validate();
    assert_eq!(code, 0, "{v}");
    let out = fx.run(&["graph", "flows/main.toml"]);
    assert!(
        out.stdout.contains("Hello, and welcome to the test line."),
        "{}",
        out.stdout
    );
    let sim = fx.run(&[
        "simulate", "main", "--at", OPEN, "--input", "1", "--format", "json",
    ]);
    // The rendered welcome takes more than the 1 s the recorded "hello" did.
    assert!(
        sim.json()["seconds"].as_f64().unwrap() > 3.5,
        "{}",
        sim.stdout
    );
    let broken = Fixture::new();
    broken.flow("main", &flow).config(&format!(
        "{CONFIG}\n[tts]\ncommand = \"no-such-tts-engine -w {{out}} {{text}}\"\n"
    ));
    let out = broken.run(&["validate", "--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let d = &out.json()["diagnostics"][0];
    assert_eq!(d["rule"], "missing-prompt");
    assert_eq!(d["node"], "main.welcome");
    let msg = d["message"].as_str().unwrap();
    assert!(
        msg.contains("\"Hello, and welcome") && msg.contains("apt-get install espeak-ng"),
        "{msg}"
    );
    let serve = broken.run(&["serve"]);
    assert_eq!(serve.code, 2, "{}", serve.stderr);
    assert!(
        serve.stderr.contains("apt-get install espeak-ng"),
        "{}",
        serve.stderr
    );
}

/// A changed text prompt shows in `diff` as what the caller now hears, with its new length.
#[test]
fn diff_shows_a_changed_text_prompt() {
    let say = |text: &str| {
        LINE.replacen(
            "prompt = \"menu\"\noptions",
            &format!("prompt = {{ say = \"{text}\" }}\noptions"),
            1,
        )
    };
    let old = say("For an agent, press 1.");
    let new = say("For an agent, press 1. For your account, press 2. To hear our hours, press 3.");
    assert_ne!(old, LINE);
    let out = diff(&old, &new, "text");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "main.menu now says \"For an agent, press 1. For your account, press 2. To hear our hours, press 3.\", hello (was \"For an agent, press 1.\", hello)"
        ),
        "{}",
        out.stdout
    );
    let menu = out
        .stdout
        .lines()
        .find(|l| l.starts_with("main.menu ") && l.contains("->"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(menu.contains("worse"), "{menu}");
    let md = diff(&old, &new, "markdown");
    assert!(
        md.stdout.contains("- `main.menu` now says"),
        "{}",
        md.stdout
    );
}

/// A number of its own for Spanish callers: a flow in Spanish (`language = "es"`), named by
/// that number in `[lines]`, going on into the main line. Its callers start in Spanish, and
/// the validator holds every main node they meet to Spanish: the files in `prompts/es/`, the
/// queue's words where they wait.
#[test]
fn a_line_in_spanish_starts_its_callers_in_spanish() {
    let fx = Fixture::new();
    fx.config(CONFIG);
    fx.flow("main", LINE);
    fx.flow(
        "espanol",
        "[flow]\nentry = \"hola\"\nescape_digit = \"0\"\nescape_to = \"main.agents\"\nlanguage = \"es\"\n\n[nodes.hola]\ntype = \"play\"\nprompt = \"hello\"\nnext = \"main.menu\"\n",
    );
    let (code, v) = fx.validate();
    assert_eq!(code, 1, "{v}");
    let missing: Vec<String> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["rule"] == "missing-prompt")
        .map(|d| format!("{} {}", d["node"], d["message"]))
        .collect();
    for (node, what) in [
        ("espanol.hola", "prompts/es/hello.wav"),
        ("main.menu", "prompts/es/menu.wav"),
        ("main.agents", "es/queue/you_are_number.wav"),
    ] {
        assert!(
            missing
                .iter()
                .any(|m| m.contains(node) && m.contains(what) && m.contains("Spanish (es)")),
            "{node}: {what} in {missing:#?}"
        );
    }
    // The English line's own callers need nothing in Spanish before the menu.
    assert!(
        !missing.iter().any(|m| m.contains("main.welcome")),
        "{missing:#?}"
    );
    // With the Spanish files there, the line validates, and its callers are simulated.
    let es = fx.path().join("prompts/es");
    std::fs::create_dir_all(&es).unwrap();
    for name in ["hello", "menu", "bye"] {
        common::write_wav(&es.join(format!("{name}.wav")), 8000, 1, 1.0);
    }
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .args(["queue", "digits", "followup"].map(|d| repo().join("prompts/es").join(d)))
        .arg(&es)
        .status()
        .unwrap();
    assert!(copied.success());
    let (code, v) = fx.validate();
    assert_eq!(code, 0, "{v}");
    let sim = fx.run(&[
        "simulate", "espanol", "--input", "1", "--at", OPEN, "--format", "json",
    ]);
    let run = sim.json();
    assert_eq!(run["language"], "es", "{}", sim.stdout);
    assert_eq!(run["node"], "main.agents", "{}", sim.stdout);
    let text = fx.run(&["simulate", "espanol", "--input", "1", "--at", OPEN]);
    assert!(
        text.stdout.contains("the caller heard Spanish (es)"),
        "{}",
        text.stdout
    );
}
