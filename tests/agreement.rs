//! Property tests on random flows: the validator's verdict and the engine's behaviour agree.
//! (a) Where the validator finds no error, every caller script ends at a live human, a
//!     follow-up or a hangup the caller chose, silent and wrong-key callers reach a human within
//!     N steps with no watchdog, and no call passes N steps before a human with it.
//! (b) Every stranded-caller and forced-hangup counterexample, replayed in the engine, walks
//!     exactly the path the diagnostic shows.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use proptest::prelude::*;

use hotline::engine::Outcome;
use hotline::engine::simulate::{Run, Token, run};
use hotline::flow::calendar::Calendar;
use hotline::flow::check::{self, Context};
use hotline::flow::model::FlowSet;
use hotline::flow::node::NodeKind;
use hotline::flow::{Diagnostic, Severity, load};

/// A node of a random flow; targets are indices into the flow's nodes.
#[derive(Debug, Clone)]
enum Gen {
    Play(usize),
    Menu {
        options: Vec<(u8, usize)>,
        exhausted: usize,
        invalid: Option<usize>,
        retries: u32,
    },
    Collect {
        min: u32,
        next: usize,
        exhausted: usize,
        retries: u32,
    },
    Schedule {
        open_cal: bool,
        open: usize,
        closed: usize,
    },
    Queue(usize),
    Transfer(usize),
    Voicemail,
    Callback,
    Hangup,
}

/// Nodes `n` and `n + 1` are always a queue and its voicemail: where fallbacks usually go.
fn gen_node(n: usize) -> impl Strategy<Value = Gen> {
    let t = 0..n + 2;
    let human = prop_oneof![4 => Just(n), 1 => 0..n + 2];
    prop_oneof![
        3 => t.clone().prop_map(Gen::Play),
        4 => (proptest::collection::vec((1u8..10, 0..n + 2), 1..4), human.clone(), proptest::option::weighted(0.2, 0..n + 2), 0u32..3)
            .prop_map(|(mut options, exhausted, invalid, retries)| {
                options.sort_by_key(|o| o.0);
                options.dedup_by_key(|o| o.0);
                Gen::Menu { options, exhausted, invalid, retries }
            }),
        1 => (1u32..4, t.clone(), human, 0u32..3).prop_map(|(min, next, exhausted, retries)| Gen::Collect { min, next, exhausted, retries }),
        1 => (any::<bool>(), t.clone(), t.clone()).prop_map(|(open_cal, open, closed)| Gen::Schedule { open_cal, open, closed }),
        2 => prop_oneof![3 => Just(n + 1), 1 => t.clone()].prop_map(Gen::Queue),
        1 => t.prop_map(Gen::Transfer),
        1 => Just(Gen::Voicemail),
        1 => Just(Gen::Callback),
        1 => Just(Gen::Hangup),
    ]
}

#[derive(Debug, Clone)]
struct GenFlow {
    nodes: Vec<Gen>,
    escape_to: usize,
    max_steps: u32,
}

fn gen_flow() -> impl Strategy<Value = GenFlow> {
    (2usize..10).prop_flat_map(|n| {
        (
            proptest::collection::vec(gen_node(n), n),
            prop_oneof![5 => Just(n), 1 => 0..n + 2],
            2u32..7,
        )
            .prop_map(move |(mut nodes, escape_to, max_steps)| {
                nodes.push(Gen::Queue(n + 1));
                nodes.push(Gen::Voicemail);
                GenFlow {
                    nodes,
                    escape_to,
                    max_steps,
                }
            })
    })
}

impl GenFlow {
    fn toml(&self) -> String {
        let name = |i: usize| format!("n{i}");
        let mut s = format!(
            "[flow]\nentry = \"n0\"\nescape_digit = \"0\"\nescape_to = \"{}\"\nmax_steps_to_human = {}\nmax_seconds_to_human = 86400\n",
            name(self.escape_to),
            self.max_steps
        );
        for (i, g) in self.nodes.iter().enumerate() {
            s += &format!("\n[nodes.n{i}]\n");
            s += &match g {
                Gen::Play(t) => format!(
                    "type = \"play\"\nprompt = \"invalid\"\nnext = \"{}\"\n",
                    name(*t)
                ),
                Gen::Menu {
                    options,
                    exhausted,
                    invalid,
                    retries,
                } => {
                    let opts: Vec<String> = options
                        .iter()
                        .map(|(k, t)| format!("\"{k}\" = \"{}\"", name(*t)))
                        .collect();
                    let mut m = format!(
                        "type = \"menu\"\nprompt = \"invalid\"\noptions = {{ {} }}\ntimeout_s = 2\nmax_retries = {retries}\non_exhausted = \"{}\"\n",
                        opts.join(", "),
                        name(*exhausted)
                    );
                    if let Some(t) = invalid {
                        m += &format!("on_invalid = \"{}\"\n", name(*t));
                    }
                    m
                }
                Gen::Collect {
                    min,
                    next,
                    exhausted,
                    retries,
                } => format!(
                    "type = \"collect\"\nprompt = \"invalid\"\nmin_digits = {min}\nmax_digits = 6\nterminator = \"#\"\ntimeout_s = 2\nmax_retries = {retries}\nvariable = \"v\"\nnext = \"{}\"\non_exhausted = \"{}\"\n",
                    name(*next),
                    name(*exhausted)
                ),
                Gen::Schedule {
                    open_cal,
                    open,
                    closed,
                } => format!(
                    "type = \"schedule\"\ncalendar = \"{}\"\nopen = \"{}\"\nclosed = \"{}\"\n",
                    if *open_cal { "always" } else { "never" },
                    name(*open),
                    name(*closed)
                ),
                Gen::Queue(t) => format!(
                    "type = \"queue\"\nqueue = \"q\"\non_timeout = \"{}\"\n",
                    name(*t)
                ),
                Gen::Transfer(t) => format!(
                    "type = \"transfer\"\nto = \"sip:desk@example.com\"\non_failure = \"{}\"\n",
                    name(*t)
                ),
                Gen::Voicemail => "type = \"voicemail\"\nmailbox = \"m\"\n".to_string(),
                Gen::Callback => "type = \"callback\"\nqueue = \"q\"\n".to_string(),
                Gen::Hangup => "type = \"hangup\"\n".to_string(),
            };
        }
        s
    }
}

fn calendars() -> &'static HashMap<String, Calendar> {
    static C: OnceLock<HashMap<String, Calendar>> = OnceLock::new();
    C.get_or_init(|| {
        let all: Vec<(String, String)> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .map(|d| (d.to_string(), "00:00-24:00".to_string()))
            .collect();
        HashMap::from([
            (
                "always".to_string(),
                Calendar::new("UTC", &all, &[]).unwrap(),
            ),
            ("never".to_string(), Calendar::new("UTC", &[], &[]).unwrap()),
        ])
    })
}

fn prompts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")
}

fn load(flow: &GenFlow) -> (FlowSet, Vec<Diagnostic>) {
    let mut set = FlowSet::default();
    let mut diags = Vec::new();
    load::load_text(
        &mut set,
        Path::new("flows/main.toml"),
        &flow.toml(),
        &mut diags,
    );
    load::finish(&mut set, Some(&prompts()), &mut diags);
    let ctx = Context {
        queues: Some(HashSet::from(["q".to_string()])),
        calendars: Some(HashSet::from(["always".to_string(), "never".to_string()])),
        max_steps: None,
    };
    diags.extend(check::check(&set, &ctx).diagnostics);
    (set, diags)
}

fn simulate(set: &FlowSet, script: &[Token], watchdog: bool) -> Run {
    #[allow(clippy::disallowed_methods)] // the clock is virtual; any origin will do
    let origin = Instant::now();
    run(
        set,
        calendars(),
        0,
        script,
        jiff::Timestamp::UNIX_EPOCH,
        origin,
        watchdog,
    )
}

fn token() -> impl Strategy<Value = Token> {
    prop_oneof![
        5 => (0u8..10).prop_map(|d| Token::Keys(d.to_string())),
        1 => Just(Token::Keys("*".into())),
        2 => Just(Token::Silence),
        1 => Just(Token::HangUp),
        1 => "[0-9]{1,7}#?".prop_map(Token::Keys),
    ]
}

/// A hangup the caller chose: the last action before it, past any plays, is a key they pressed.
fn chosen_hangup(set: &FlowSet, path: &[String]) -> bool {
    let mut i = path.len() - 1;
    while i >= 2 {
        let (node, action) = (&path[i - 2], &path[i - 1]);
        let kind = &set.nodes[set
            .find(0, node.strip_prefix("main.").unwrap_or(node))
            .unwrap()]
        .kind;
        match (kind, action.as_str()) {
            (NodeKind::Play(_), "done") => i -= 2,
            (NodeKind::Menu(_), a) => return a.len() == 1 && a.chars().all(|c| c.is_ascii_digit()),
            _ => return false,
        }
    }
    false
}

/// The caller reached a person, or a follow-up after the line was found closed.
fn reached_help(r: &Run) -> bool {
    matches!(r.outcome, Outcome::Queue | Outcome::Transfer)
        || (matches!(r.outcome, Outcome::Voicemail | Outcome::Callback)
            && r.path.iter().any(|p| p == "closed"))
}

/// Tokens that replay a counterexample path; `None` when the engine cannot be made to take it
/// (a schedule choice its calendar does not give, or an escape during a play).
fn replay_script(set: &FlowSet, path: &[String]) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    for pair in path.chunks(2) {
        let [node, action] = pair else { break };
        let id = set.find(0, node.strip_prefix("main.")?)?;
        match (&set.nodes[id].kind, action.as_str()) {
            (NodeKind::Menu(_) | NodeKind::Collect(_), "_") => tokens.push(Token::Silence),
            (NodeKind::Menu(_) | NodeKind::Collect(_), "wrong") => {
                tokens.push(Token::Keys("*".into()))
            }
            (NodeKind::Collect(c), "digits") => {
                tokens.push(Token::Keys("1".repeat(c.min_digits as usize)))
            }
            (NodeKind::Menu(_) | NodeKind::Collect(_), key) => {
                tokens.push(Token::Keys(key.to_string()))
            }
            (NodeKind::Play(_), "done") => {}
            (NodeKind::Schedule(s), choice) => {
                let open = s.calendar.as_ref()?.0 == "always";
                if (choice == "open") != open {
                    return None;
                }
            }
            (NodeKind::Queue(_) | NodeKind::Transfer(_), _) => return None,
            _ => return None,
        }
    }
    Some(tokens)
}

proptest! {
    // PROPTEST_CASES=20000 for a long run.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400)
    ))]

    #[test]
    fn valid_flows_never_trap_a_caller(flow in gen_flow(), scripts in proptest::collection::vec(proptest::collection::vec(token(), 0..12), 8)) {
        let (set, diags) = load(&flow);
        if diags.iter().any(|d| d.severity() == Severity::Error) {
            return Ok(());
        }
        let n = flow.max_steps;
        let silent = simulate(&set, &[], false);
        prop_assert!(reached_help(&silent) && silent.steps <= n, "silent caller: {silent:?}\n{}", flow.toml());
        let lost = simulate(&set, &vec![Token::Keys("*".into()); 64], false);
        prop_assert!(reached_help(&lost) && lost.steps <= n, "lost caller: {lost:?}\n{}", flow.toml());
        for script in scripts {
            let r = simulate(&set, &script, true);
            prop_assert!(r.steps <= n, "{} steps > {n}: {r:?}\n{}", r.steps, flow.toml());
            match r.outcome {
                Outcome::Hangup => prop_assert!(chosen_hangup(&set, &r.path), "forced hangup: {r:?}\n{}", flow.toml()),
                Outcome::Queue | Outcome::Transfer | Outcome::Voicemail | Outcome::Callback | Outcome::CallerHangup => {}
            }
        }
    }

    #[test]
    fn counterexamples_replay_in_the_engine(flow in gen_flow()) {
        let (set, diags) = load(&flow);
        let structural = ["invalid-flow", "unknown-node", "dead-end", "missing-prompt", "no-escape"];
        if diags.iter().any(|d| structural.contains(&d.rule.id())) {
            return Ok(());
        }
        for d in diags.iter().filter(|d| matches!(d.rule.id(), "silent-caller-stranded" | "lost-caller-stranded" | "forced-hangup")) {
            prop_assert_eq!(d.path.first().map(String::as_str), Some("main.n0"), "paths start at the entry");
            let Some(script) = replay_script(&set, &d.path) else { continue };
            let r = simulate(&set, &script, false);
            prop_assert!(r.path.starts_with(&d.path), "{}: diagnostic path {:?}\nengine path {:?}\n{}", d.rule.id(), d.path, r.path, flow.toml());
            if r.path.len() > d.path.len() {
                // Only a loop goes on past the counterexample: it ends where it came round.
                let last = d.path.last().unwrap();
                prop_assert!(d.path[..d.path.len() - 1].contains(last), "{:?} vs {:?}", d.path, r.path);
            }
        }
    }
}

/// The generator must make enough valid flows for property (a) to mean something.
#[test]
fn the_generator_makes_valid_and_invalid_flows() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut valid, mut stranded, mut replayable) = (0, 0, 0);
    for _ in 0..400 {
        let flow = gen_flow().new_tree(&mut runner).unwrap().current();
        let (_, diags) = load(&flow);
        if !diags.iter().any(|d| d.severity() == Severity::Error) {
            valid += 1;
        }
        if diags.iter().any(|d| d.rule.id().ends_with("stranded")) {
            stranded += 1;
        }
        let structural = diags
            .iter()
            .any(|d| d.rule.id() == "invalid-flow" || d.rule.id() == "unknown-node");
        let (set, _) = load(&flow);
        if !structural
            && diags.iter().any(|d| {
                d.rule.id().ends_with("stranded") && replay_script(&set, &d.path).is_some()
            })
        {
            replayable += 1;
        }
    }
    assert!(valid >= 20, "only {valid} of 400 random flows are valid");
    assert!(
        stranded >= 40,
        "only {stranded} of 400 random flows strand a caller"
    );
    assert!(
        replayable >= 40,
        "only {replayable} of 400 random flows have a counterexample to replay"
    );
}
