//! Property tests on random flows: the validator's verdict and the engine's behaviour agree.
//! (a) Where the validator finds no error, every caller script ends at a live human, a
//!     follow-up or a hangup the caller chose, silent and wrong-key callers reach a human within
//!     N steps with no watchdog, and no call passes N steps before a human with it.
//! (b) Every stranded-caller and forced-hangup counterexample, replayed in the engine, walks
//!     exactly the path the diagnostic shows.
//! (c) Every watchdog-reachable path, replayed with the watchdog on, is stepped in on where the
//!     message says, and the engine goes to the target the message names.
//!
//! Lines are two flows, `main` and `billing`, whose nodes may lead into each other's: what holds
//! for one flow must hold for a call that moves between flows. Their nodes include lookups
//! (answered, failing, or silent till the timeout), a switch in either position, `set`, and
//! branches on collected, set, looked-up and built-in variables with typed cases: every such
//! world is tried (a), and a counterexample is replayed in the world its path shows (b, c) (the watchdog counts against the
//! bound of the flow the call entered and sends the caller to the escape of the flow they are in).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use proptest::prelude::*;

use hotline::engine::Outcome;
use hotline::engine::simulate::{Assumed, Run, Token, World, run};
use hotline::flow::calendar::Calendar;
use hotline::flow::check::{self, Context};
use hotline::flow::model::FlowSet;
use hotline::flow::node::NodeKind;
use hotline::flow::{Diagnostic, Severity, load};

/// A node of a random flow; targets are indices into the flow's nodes.
#[derive(Debug, Clone)]
enum Gen {
    /// A play; `set` sets `w = "x"` on arriving.
    Play(usize, bool),
    Lookup {
        next: usize,
        on_error: usize,
    },
    Switch {
        on: usize,
        off: usize,
    },
    /// Does the caller have an open follow-up?
    Returning {
        open: usize,
        none: usize,
    },
    /// The caller withdraws it.
    Withdraw(usize),
    /// Its owner first, then the queue.
    Owner(usize),
    /// A branch on variable `var` (an index into `VARS`) with that variable's case.
    Branch {
        var: usize,
        case: usize,
        default: usize,
    },
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

/// A target at or above this is a node of the other flow (its index modulo that flow's size).
const OTHER: usize = 1000;

/// What branches test, with the one case each has: a collect's digits (`v`), what a play sets
/// (`w`), a lookup's field, a built-in.
const VARS: [(&str, &str); 4] = [
    ("v", "range:..50"),
    ("w", "one_of:x,y"),
    ("crm.tier", "vip"),
    ("caller_number", "prefix:+34"),
];

/// Nodes `n` and `n + 1` are always a queue and its voicemail: where fallbacks usually go.
fn gen_node(n: usize) -> impl Strategy<Value = Gen> {
    let t = prop_oneof![8 => 0..n + 2, 1 => OTHER..OTHER + 20];
    let human = prop_oneof![4 => Just(n), 1 => 0..n + 2];
    prop_oneof![
        3 => (t.clone(), proptest::bool::weighted(0.3)).prop_map(|(t, set)| Gen::Play(t, set)),
        1 => (t.clone(), t.clone()).prop_map(|(next, on_error)| Gen::Lookup { next, on_error }),
        1 => (t.clone(), t.clone()).prop_map(|(on, off)| Gen::Switch { on, off }),
        1 => (0..VARS.len(), t.clone(), t.clone()).prop_map(|(var, case, default)| Gen::Branch { var, case, default }),
        4 => (proptest::collection::vec((1u8..10, 0..n + 2), 1..4), human.clone(), proptest::option::weighted(0.2, 0..n + 2), 0u32..3)
            .prop_map(|(mut options, exhausted, invalid, retries)| {
                options.sort_by_key(|o| o.0);
                options.dedup_by_key(|o| o.0);
                Gen::Menu { options, exhausted, invalid, retries }
            }),
        1 => (1u32..4, t.clone(), human, 0u32..3).prop_map(|(min, next, exhausted, retries)| Gen::Collect { min, next, exhausted, retries }),
        1 => (any::<bool>(), t.clone(), t.clone()).prop_map(|(open_cal, open, closed)| Gen::Schedule { open_cal, open, closed }),
        2 => prop_oneof![3 => Just(n + 1), 1 => t.clone()].prop_map(Gen::Queue),
        1 => t.clone().prop_map(Gen::Transfer),
        1 => (t.clone(), t.clone()).prop_map(|(open, none)| Gen::Returning { open, none }),
        1 => t.clone().prop_map(Gen::Withdraw),
        1 => prop_oneof![3 => Just(n + 1), 1 => t].prop_map(Gen::Owner),
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
    /// The flow's file; `other` is the other flow of the line and its size.
    fn toml(&self, other: (&str, usize)) -> String {
        let name = |i: usize| {
            if i >= OTHER {
                format!("{}.n{}", other.0, (i - OTHER) % other.1)
            } else {
                format!("n{i}")
            }
        };
        let mut s = format!(
            "[flow]\nentry = \"n0\"\nescape_digit = \"0\"\nescape_to = \"{}\"\nmax_steps_to_human = {}\nmax_seconds_to_human = 86400\n",
            name(self.escape_to),
            self.max_steps
        );
        for (i, g) in self.nodes.iter().enumerate() {
            s += &format!("\n[nodes.n{i}]\n");
            s += &match g {
                Gen::Play(t, set) => format!(
                    "type = \"play\"\nprompt = \"invalid\"\nnext = \"{}\"\n{}",
                    name(*t),
                    if *set { "set = { w = \"x\" }\n" } else { "" }
                ),
                Gen::Lookup { next, on_error } => format!(
                    "type = \"lookup\"\nendpoint = \"crm\"\nnext = \"{}\"\non_error = \"{}\"\n",
                    name(*next),
                    name(*on_error)
                ),
                Gen::Switch { on, off } => format!(
                    "type = \"switch\"\nswitch = \"sw\"\non = \"{}\"\noff = \"{}\"\n",
                    name(*on),
                    name(*off)
                ),
                Gen::Branch { var, case, default } => format!(
                    "type = \"branch\"\nvariable = \"{}\"\ncases = {{ \"{}\" = \"{}\" }}\ndefault = \"{}\"\n",
                    VARS[*var].0,
                    VARS[*var].1,
                    name(*case),
                    name(*default)
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
                Gen::Returning { open, none } => format!(
                    "type = \"returning\"\nopen = \"{}\"\nnone = \"{}\"\n",
                    name(*open),
                    name(*none)
                ),
                Gen::Withdraw(t) => format!("type = \"withdraw\"\nnext = \"{}\"\n", name(*t)),
                Gen::Owner(t) => format!(
                    "type = \"owner\"\nqueue = \"q\"\non_timeout = \"{}\"\n",
                    name(*t)
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

/// The two flows of a line, entered at `main` (flow 0) or `billing` (flow 1).
const FLOWS: [&str; 2] = ["main", "billing"];

#[derive(Debug, Clone)]
struct GenLine {
    flows: Vec<GenFlow>,
}

fn gen_line() -> impl Strategy<Value = GenLine> {
    (gen_flow(), gen_flow()).prop_map(|(a, b)| GenLine { flows: vec![a, b] })
}

impl GenLine {
    fn toml(&self, f: usize) -> String {
        let other = 1 - f;
        self.flows[f].toml((FLOWS[other], self.flows[other].nodes.len()))
    }

    fn text(&self) -> String {
        (0..2)
            .map(|f| format!("# flows/{}.toml\n{}", FLOWS[f], self.toml(f)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn load(line: &GenLine) -> (FlowSet, Vec<Diagnostic>) {
    let mut set = FlowSet::default();
    let mut diags = Vec::new();
    for (f, name) in FLOWS.iter().enumerate() {
        load::load_text(
            &mut set,
            Path::new(&format!("flows/{name}.toml")),
            &line.toml(f),
            &mut diags,
        );
    }
    load::finish(&mut set, Some(&prompts()), &mut diags);
    set.lookups = std::collections::BTreeMap::from([(
        "crm".to_string(),
        toml::from_str(
            "url = \"http://127.0.0.1:9/x\"\ntimeout_ms = 1000\nfields = { tier = \"string\" }",
        )
        .unwrap(),
    )]);
    set.switches = std::collections::BTreeMap::from([("sw".to_string(), Default::default())]);
    let ctx = Context {
        queues: Some(HashSet::from(["q".to_string()])),
        calendars: Some(HashSet::from(["always".to_string(), "never".to_string()])),
        lookups: Some(HashSet::from(["crm".to_string()])),
        switches: Some(HashSet::from(["sw".to_string()])),
        dial: None,
        max_steps: None,
    };
    diags.extend(check::check(&set, &ctx).diagnostics);
    (set, diags)
}

/// The flow a path starts in (its entry).
fn entered(set: &FlowSet, path: &[String]) -> Option<usize> {
    let first = path.first()?;
    (0..set.flows.len()).find(|&f| set.entry(f) == set.find(f, first))
}

/// The world outside a call: what the lookup answers (`None`: nothing in time), the switch's
/// position, the caller's number.
#[derive(Debug, Clone, Default)]
struct Assume {
    answer: Option<Assumed>,
    switch_on: bool,
    caller: String,
    /// The caller has an open follow-up.
    returning: bool,
}

/// Worlds a valid line must serve, each: the CRM knows a VIP, knows nothing, fails, or is
/// silent; the switch either way; a Spanish caller or a withheld number.
fn worlds() -> Vec<Assume> {
    let tier = |t: &str| Some(Assumed::Answer(vec![("tier".into(), t.into())]));
    vec![
        Assume {
            answer: tier("vip"),
            switch_on: true,
            caller: "+34600111222".into(),
            returning: true,
        },
        Assume {
            answer: tier(""),
            switch_on: false,
            caller: String::new(),
            returning: false,
        },
        Assume {
            answer: Some(Assumed::Error),
            switch_on: false,
            caller: "+44207000000".into(),
            returning: true,
        },
        Assume {
            answer: None,
            switch_on: true,
            caller: String::new(),
            returning: false,
        },
    ]
}

fn simulate_in(set: &FlowSet, flow: usize, script: &[Token], watchdog: bool, a: &Assume) -> Run {
    #[allow(clippy::disallowed_methods)] // the clock is virtual; any origin will do
    let origin = Instant::now();
    let mut world = World::new(calendars());
    world.caller_number = a.caller.clone();
    if let Some(answer) = &a.answer {
        world.answers.insert("crm".into(), answer.clone());
    }
    world.switches.insert("sw".into(), a.switch_on);
    world.returning = a.returning.then(|| hotline::engine::OpenItem {
        id: 1,
        kind: "voicemail".into(),
        state: "taken".into(),
        owner: Some("alice".into()),
        queue: "q".into(),
        created_at: "1970-01-01T00:00:00Z".into(),
    });
    run(
        set,
        &world,
        flow,
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

/// A hangup the caller chose: the last action before it, past any plays (and a withdrawal of
/// their follow-up), is a key they pressed.
fn chosen_hangup(set: &FlowSet, path: &[String]) -> bool {
    let mut i = path.len() - 1;
    while i >= 2 {
        let (node, action) = (&path[i - 2], &path[i - 1]);
        let kind = &set.nodes[set.find(0, node).unwrap()].kind;
        match (kind, action.as_str()) {
            (NodeKind::Play(_), "done") | (NodeKind::Withdraw(_), "withdrawn") => i -= 2,
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
    replay(set, path).map(|r| r.0)
}

/// The same, with the world the path shows: what the lookup answered, where the switch
/// stood, who called; `None` too when the path asks two things of one of them, or a branch
/// on what the caller typed or a play set goes the other way.
fn replay(set: &FlowSet, path: &[String]) -> Option<(Vec<Token>, Assume)> {
    let mut tokens = Vec::new();
    let mut world = Assume::default();
    let (mut answer, mut switch, mut caller): (Option<&str>, Option<bool>, Option<bool>) =
        (None, None, None);
    let mut tier: Option<bool> = None;
    let mut item: Option<bool> = None;
    let mut withdrawn = false;
    let mut vars: HashMap<String, String> = HashMap::new();
    fn agree<T: PartialEq + Copy>(slot: &mut Option<T>, v: T) -> Option<()> {
        match *slot {
            Some(old) if old != v => None,
            _ => {
                *slot = Some(v);
                Some(())
            }
        }
    }
    for pair in path.chunks(2) {
        let [node, action] = pair else { break };
        let id = set.find(0, node)?;
        for (k, v) in &set.nodes[id].set {
            vars.insert(k.clone(), v.clone());
        }
        match (&set.nodes[id].kind, action.as_str()) {
            (NodeKind::Lookup(_), a) => {
                agree(&mut answer, if a == "answer" { "answer" } else { "error" })?
            }
            (NodeKind::Switch(_), a) => agree(&mut switch, a == "on")?,
            // Withdrawn once, the caller has no open item after.
            (NodeKind::Returning(_), a) if withdrawn => {
                if a == "open" {
                    return None;
                }
            }
            (NodeKind::Returning(_), a) => agree(&mut item, a == "open")?,
            (NodeKind::Withdraw(_), _) => withdrawn = true,
            (NodeKind::Branch(b), a) => {
                let var = b.variable.as_ref()?.0.as_str();
                let case = a != "default";
                match var {
                    // Before any answer the field is unset: only the default.
                    "crm.tier" if answer != Some("answer") => {
                        if case {
                            return None;
                        }
                    }
                    "crm.tier" => agree(&mut tier, case)?,
                    "caller_number" => agree(&mut caller, case)?,
                    _ => {
                        let (took, _) = b.select(vars.get(var).map(String::as_str));
                        if took.to_string() != a {
                            return None;
                        }
                    }
                }
            }
            (NodeKind::Collect(c), "digits") => {
                vars.insert("v".into(), "1".repeat(c.min_digits as usize));
                tokens.push(Token::Keys("1".repeat(c.min_digits as usize)))
            }
            (NodeKind::Menu(_) | NodeKind::Collect(_), "_") => tokens.push(Token::Silence),
            (NodeKind::Menu(_) | NodeKind::Collect(_), "wrong") => {
                tokens.push(Token::Keys("*".into()))
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
    world.answer = match answer {
        Some("answer") => Some(Assumed::Answer(vec![(
            "tier".into(),
            if tier == Some(true) { "vip" } else { "" }.into(),
        )])),
        Some(_) => Some(Assumed::Error),
        None => None,
    };
    world.switch_on = switch.unwrap_or(false);
    world.returning = item.unwrap_or(false);
    world.caller = if caller == Some(true) {
        "+34600111222".into()
    } else {
        String::new()
    };
    Some((tokens, world))
}

proptest! {
    // PROPTEST_CASES=20000 for a long run.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400)
    ))]

    #[test]
    fn valid_lines_never_trap_a_caller(line in gen_line(), scripts in proptest::collection::vec(proptest::collection::vec(token(), 0..12), 8)) {
        let (set, diags) = load(&line);
        if diags.iter().any(|d| d.severity() == Severity::Error) {
            return Ok(());
        }
        for (f, flow) in line.flows.iter().enumerate() {
          for world in worlds() {
            // The bound is the line's: the flow the call entered.
            let n = flow.max_steps;
            let silent = simulate_in(&set, f, &[], false, &world);
            prop_assert!(reached_help(&silent) && silent.steps <= n, "silent caller into {} ({world:?}): {silent:?}\n{}", FLOWS[f], line.text());
            let lost = simulate_in(&set, f, &vec![Token::Keys("*".into()); 64], false, &world);
            prop_assert!(reached_help(&lost) && lost.steps <= n, "lost caller into {} ({world:?}): {lost:?}\n{}", FLOWS[f], line.text());
            for script in &scripts {
                let r = simulate_in(&set, f, script, true, &world);
                prop_assert!(r.steps <= n, "{} steps > {n}: {r:?}\n{}", r.steps, line.text());
                match r.outcome {
                    Outcome::Hangup => prop_assert!(chosen_hangup(&set, &r.path), "forced hangup: {r:?}\n{}", line.text()),
                    Outcome::Queue | Outcome::Transfer | Outcome::Voicemail | Outcome::Callback | Outcome::CallerHangup => {}
                }
            }
          }
        }
    }

    #[test]
    fn counterexamples_replay_in_the_engine(line in gen_line()) {
        let (set, diags) = load(&line);
        let structural = ["invalid-flow", "unknown-node", "dead-end", "missing-prompt", "no-escape"];
        if diags.iter().any(|d| structural.contains(&d.rule.id())) {
            return Ok(());
        }
        for d in diags.iter().filter(|d| matches!(d.rule.id(), "silent-caller-stranded" | "lost-caller-stranded" | "forced-hangup")) {
            let Some(f) = entered(&set, &d.path) else {
                return Err(TestCaseError::fail(format!("{}: the path starts at no entry: {:?}\n{}", d.rule.id(), d.path, line.text())));
            };
            let Some((script, world)) = replay(&set, &d.path) else { continue };
            let r = simulate_in(&set, f, &script, false, &world);
            prop_assert!(r.path.starts_with(&d.path), "{}: diagnostic path {:?}\nengine path {:?}\n{}", d.rule.id(), d.path, r.path, line.text());
            if r.path.len() > d.path.len() {
                // Only a loop goes on past the counterexample: it ends where it came round.
                let last = d.path.last().unwrap();
                prop_assert!(d.path[..d.path.len() - 1].contains(last), "{:?} vs {:?}", d.path, r.path);
            }
        }
    }

    #[test]
    fn the_watchdog_steps_in_where_the_validator_says(line in gen_line()) {
        let (set, diags) = load(&line);
        let structural = ["invalid-flow", "unknown-node", "dead-end", "missing-prompt", "no-escape"];
        if diags.iter().any(|d| structural.contains(&d.rule.id())) {
            return Ok(());
        }
        for d in diags.iter().filter(|d| d.rule.id() == "watchdog-reachable") {
            let Some(f) = entered(&set, &d.path) else {
                return Err(TestCaseError::fail(format!("the path starts at no entry: {:?}\n{}", d.path, line.text())));
            };
            let named = d.message.split("sends them to ").nth(1).and_then(|m| m.split(' ').next()).unwrap_or_default();
            let Some((script, world)) = replay(&set, &d.path) else { continue };
            let r = simulate_in(&set, f, &script, true, &world);
            let at = r.path.iter().position(|p| p == "watchdog");
            prop_assert!(at.is_some(), "the watchdog did not step in: {:?}\ndiagnostic {:?}\n{}", r.path, d.path, line.text());
            let at = at.unwrap();
            prop_assert_eq!(r.path.get(at + 1).map(String::as_str), Some(named), "engine {:?}\ndiagnostic {:?}: {}\n{}", r.path, d.path, d.message, line.text());
            // It stepped in after the path's last caller-facing node, as the diagnostic shows.
            prop_assert_eq!(&r.path[at - 1], d.path.last().unwrap(), "engine {:?}\ndiagnostic {:?}", r.path, d.path);
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
    let (mut crossing, mut watchdog) = (0, 0);
    for _ in 0..400 {
        let line = gen_line().new_tree(&mut runner).unwrap().current();
        let (_, diags) = load(&line);
        if !diags.iter().any(|d| d.severity() == Severity::Error) {
            valid += 1;
            // A valid line whose calls can move from one flow into the other.
            if line.toml(0).contains("billing.n") || line.toml(1).contains("main.n") {
                crossing += 1;
            }
        }
        if diags.iter().any(|d| d.rule.id().ends_with("stranded")) {
            stranded += 1;
        }
        let structural = diags
            .iter()
            .any(|d| d.rule.id() == "invalid-flow" || d.rule.id() == "unknown-node");
        let (set, _) = load(&line);
        if !structural
            && diags.iter().any(|d| {
                d.rule.id() == "watchdog-reachable" && replay_script(&set, &d.path).is_some()
            })
        {
            watchdog += 1;
        }
        if !structural
            && diags.iter().any(|d| {
                d.rule.id().ends_with("stranded") && replay_script(&set, &d.path).is_some()
            })
        {
            replayable += 1;
        }
    }
    assert!(valid >= 20, "only {valid} of 400 random lines are valid");
    assert!(
        crossing >= 10,
        "only {crossing} of 400 random lines are valid and cross between flows"
    );
    assert!(
        watchdog >= 20,
        "only {watchdog} of 400 random lines have a watchdog path to replay"
    );
    eprintln!(
        "valid {valid}, crossing {crossing}, stranded {stranded}, replayable {replayable}, watchdog {watchdog}"
    );
    assert!(
        stranded >= 40,
        "only {stranded} of 400 random flows strand a caller"
    );
    assert!(
        replayable >= 40,
        "only {replayable} of 400 random flows have a counterexample to replay"
    );
}
