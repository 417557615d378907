//! `hotline probe`: dials a line and proves the escape on the real phone path. The pure parts
//! live here: which nodes to probe and the keys that reach each (found by the engine's own
//! simulation at the current time), recognising hotline's prompts in the G.711 a caller
//! receives (they are known byte for byte), and the report. `call.rs` is the SIP/RTP caller.

pub mod call;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::engine::simulate::{self, Token};
use crate::flow::calendar::Calendar;
use crate::flow::model::FlowSet;
use crate::flow::node::NodeKind;
use crate::media::player::Encoded;
use crate::media::rtp::SAMPLES_PER_PACKET;

/// Scripts tried to find a way to every node (breadth first, shortest first).
const MAX_RUNS: usize = 4_000;
/// Caller actions in one script.
const MAX_TOKENS: usize = 6;

/// One step of the way to a node: wait for `node`'s first prompt, then do `action` (a path
/// label: `done`, `_`, a key, or `digits` with the keys to send).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub node: String,
    pub prompt: Option<String>,
    /// Keys to press once the prompt has ended; empty for `done` and silence.
    pub keys: String,
    pub label: String,
    /// How long the node takes from its prompt's start to the next node (its prompts, and
    /// its timeout when the caller is silent there): the next prompt is due by then.
    pub takes_s: f64,
}

/// A node to probe: the way there, its prompt, its escape digit.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub node: String,
    pub prompt: Option<String>,
    pub escape: char,
    pub before: Vec<Step>,
    /// The flow's `max_seconds_to_human`.
    pub bound_s: u32,
    /// The escape goes straight to this transfer: its ringback is due, not a queue's music.
    pub transfer: Option<String>,
}

/// What the probe must do: every caller-facing node reachable now, and the silent caller.
#[derive(Debug, Clone)]
pub struct Plan {
    pub flow: String,
    pub targets: Vec<Target>,
    /// The silent caller: the steps and seconds the engine takes to a human now.
    pub silent_steps: u32,
    pub silent_seconds: f64,
    /// The line is closed now and the silent caller's way ends in a follow-up (a voicemail or
    /// a callback after a schedule's `closed` branch): what the validator accepts then.
    pub silent_follow_up: bool,
    /// The silent caller's human is this transfer: its ringback is due, not a queue's music
    /// (hold music means the transfer failed and its `on_failure` took the caller).
    pub silent_transfer: Option<String>,
    pub bound_s: u32,
    pub max_steps: u32,
    /// Every prompt a probe may hear: the flows' and the queue's.
    pub prompts: Vec<String>,
    /// Prompts of the ends that are not a live human (voicemail, callback, hangup): hearing
    /// one where a human was due ends that probe at once.
    pub not_human: Vec<String>,
}

fn first_prompt(kind: &NodeKind) -> Option<String> {
    let (prompts, _) = kind.prompts_and_timeout()?;
    prompts.first().map(|p| p.name.clone())
}

/// Finds a way to every caller-facing node of `flow`'s line that a call placed at `wall`
/// meets before a live human: the engine's own simulation, over scripts of menu keys, digits
/// and silence, shortest first.
pub fn plan(
    set: &FlowSet,
    calendars: &HashMap<String, Calendar>,
    flow: usize,
    wall: Timestamp,
    origin: Instant,
) -> Plan {
    let mut keys: Vec<Token> = vec![Token::Silence];
    let mut seen_keys = HashSet::new();
    for n in &set.nodes {
        match &n.kind {
            NodeKind::Menu(m) => {
                for (k, _) in &m.options {
                    if *k != set.flows[n.flow].escape_digit && seen_keys.insert(k.to_string()) {
                        keys.push(Token::Keys(k.to_string()));
                    }
                }
            }
            NodeKind::Collect(c) => {
                let digits = "1".repeat(c.min_digits.max(1) as usize) + "#";
                if seen_keys.insert(digits.clone()) {
                    keys.push(Token::Keys(digits));
                }
            }
            _ => {}
        }
    }
    let find = |name: &str| set.find(flow, name);
    let mut targets: Vec<Target> = Vec::new();
    let mut found: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<Vec<Token>> = VecDeque::from([Vec::new()]);
    let mut paths_seen: HashSet<Vec<String>> = HashSet::new();
    let mut runs = 0;
    let world = simulate::World::new(calendars);
    let silent = simulate::run(set, &world, flow, &[], wall, origin, false);
    while let Some(script) = queue.pop_front() {
        if runs >= MAX_RUNS {
            break;
        }
        runs += 1;
        let run = simulate::run(set, &world, flow, &script, wall, origin, false);
        if !paths_seen.insert(run.path.clone()) {
            continue;
        }
        // Node names sit at the even places of the path, the caller's actions between them.
        let mut before: Vec<Step> = Vec::new();
        let mut i = 0;
        while i < run.path.len() {
            let name = &run.path[i];
            let Some(id) = find(name) else { break };
            let node = &set.nodes[id];
            if node.class() == crate::flow::model::Class::LiveHuman {
                break;
            }
            if let NodeKind::Lookup(l) = &node.kind
                && let Some(last) = before.last_mut()
            {
                // The next prompt may wait for the lookup's answer, at most its timeout.
                last.takes_s += set.lookup_millis(l.endpoint()) as f64 / 1000.0;
            }
            let facing = node.kind.prompts_and_timeout();
            if facing.is_some() && found.insert(node.full_name.clone()) {
                targets.push(Target {
                    node: node.full_name.clone(),
                    prompt: first_prompt(&node.kind),
                    escape: set.flows[node.flow].escape_digit,
                    before: before.clone(),
                    bound_s: set.flows[flow].max_seconds_to_human,
                    transfer: set
                        .escape_to(node.flow)
                        .filter(|&e| matches!(set.nodes[e].kind, NodeKind::Transfer(_)))
                        .map(|e| set.nodes[e].full_name.clone()),
                });
            }
            let Some(label) = run.path.get(i + 1) else {
                break;
            };
            let keys = match (&node.kind, label.as_str()) {
                (NodeKind::Collect(c), "digits") => "1".repeat(c.min_digits.max(1) as usize) + "#",
                (_, "_" | "done" | "open" | "closed" | "default") => String::new(),
                (_, l) if l.starts_with("case:") => String::new(),
                (_, "wrong") => "*".into(),
                (_, k) => k.to_string(),
            };
            if let Some((prompts, timeout)) = facing {
                let waits = if label == "_" {
                    f64::from(timeout)
                } else {
                    0.0
                };
                before.push(Step {
                    node: node.full_name.clone(),
                    prompt: first_prompt(&node.kind),
                    keys,
                    label: label.clone(),
                    takes_s: set.prompt_seconds(id, prompts) + waits,
                });
            }
            i += 2;
        }
        if script.len() < MAX_TOKENS {
            for k in &keys {
                let mut next = script.clone();
                next.push(k.clone());
                queue.push_back(next);
            }
        }
    }
    let mut prompts: Vec<String> = set.prompts.keys().cloned().collect();
    prompts.extend([
        crate::engine::announce::RINGBACK.to_string(),
        HOLD.to_string(),
    ]);
    prompts.sort();
    prompts.dedup();
    let mut not_human: Vec<String> = set
        .nodes
        .iter()
        .filter_map(|n| match &n.kind {
            NodeKind::Voicemail(v) => v.prompts.first(),
            NodeKind::Callback(c) => c.prompts.first(),
            NodeKind::Hangup(h) => h.prompts.first(),
            _ => None,
        })
        // In every language a caller may hear it.
        .flat_map(|p| {
            crate::flow::language::SPOKEN
                .iter()
                .filter_map(|(l, _)| p.name_in(l))
                .chain([p.name.clone()])
                .collect::<Vec<_>>()
        })
        .filter(|name| set.prompts.contains_key(name))
        .collect();
    not_human.sort();
    not_human.dedup();
    Plan {
        flow: set.flows[flow].name.clone(),
        targets,
        silent_steps: silent.steps,
        silent_seconds: silent.seconds,
        silent_follow_up: matches!(
            silent.outcome,
            crate::engine::Outcome::Voicemail | crate::engine::Outcome::Callback
        ) && silent.path.iter().any(|p| p == "closed"),
        silent_transfer: (silent.outcome == crate::engine::Outcome::Transfer)
            .then(|| silent.node.clone()),
        bound_s: set.flows[flow].max_seconds_to_human,
        max_steps: set.flows[flow].max_steps_to_human,
        prompts,
        not_human,
    }
}

/// The hold music a queue plays: reaching it is reaching the human node.
pub const HOLD: &str = "hold";

/// What the probe heard in one 20 ms frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// The first frame of a prompt (it began `offset` frames before this one).
    Start { prompt: String, offset: usize },
    /// A frame of a prompt, not its first.
    Within { prompt: String },
}

/// Recognises hotline's prompts in the µ-law stream a caller receives: every frame that belongs
/// to exactly one prompt (and is not a constant run, like silence) names it.
#[derive(Debug, Default)]
pub struct Recogniser {
    frames: HashMap<Vec<u8>, (usize, usize)>,
    names: Vec<String>,
    /// Each prompt's first recognisable frame.
    first: Vec<usize>,
}

impl Recogniser {
    pub fn new(prompts: &[(String, Encoded)]) -> Recogniser {
        let mut owners: HashMap<Vec<u8>, Vec<(usize, usize)>> = HashMap::new();
        for (p, (_, e)) in prompts.iter().enumerate() {
            for (k, f) in e.pcmu.chunks(SAMPLES_PER_PACKET).enumerate() {
                if f.iter().all(|&b| b == f[0]) {
                    continue;
                }
                owners.entry(f.to_vec()).or_default().push((p, k));
            }
        }
        let mut r = Recogniser {
            names: prompts.iter().map(|(n, _)| n.clone()).collect(),
            first: vec![usize::MAX; prompts.len()],
            ..Recogniser::default()
        };
        for (frame, who) in owners {
            let distinct: HashSet<usize> = who.iter().map(|w| w.0).collect();
            // A frame of one prompt only (it may recur in it, as in a steady tone).
            if distinct.len() == 1 {
                let (p, k) = who.iter().copied().min_by_key(|w| w.1).unwrap_or(who[0]);
                r.first[p] = r.first[p].min(k);
                r.frames.insert(frame, (p, k));
            }
        }
        r
    }

    /// Whether the prompt can be recognised at all (it has a frame of its own).
    pub fn knows(&self, prompt: &str) -> bool {
        self.names
            .iter()
            .position(|n| n == prompt)
            .is_some_and(|p| self.first[p] != usize::MAX)
    }

    pub fn hear(&self, payload: &[u8]) -> Option<Heard> {
        let &(p, k) = self.frames.get(payload)?;
        let prompt = self.names[p].clone();
        Some(if k == self.first[p] {
            Heard::Start { prompt, offset: k }
        } else {
            Heard::Within { prompt }
        })
    }
}

/// How one probed node did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeResult {
    pub node: String,
    /// `silent` for the caller who presses nothing.
    pub escape: Option<char>,
    pub reached: bool,
    /// From the answer to the human node (hold music or ringback heard).
    pub seconds: Option<f64>,
    /// From the escape key to the human node.
    pub seconds_after_escape: Option<f64>,
    pub steps: u32,
    pub bound_s: u32,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Results {
    pub target: String,
    pub flow: String,
    pub at: String,
    pub nodes: Vec<NodeResult>,
}

impl Results {
    pub fn ok(&self) -> bool {
        !self.nodes.is_empty() && self.nodes.iter().all(|n| n.ok)
    }

    pub fn text(&self) -> String {
        let mut s = format!(
            "probe {} (flow {}) at {}\n",
            self.target, self.flow, self.at
        );
        for n in &self.nodes {
            let what = match n.escape {
                Some(d) => format!("{}: escape {d}", n.node),
                None => "silent caller".to_string(),
            };
            let verdict = if n.ok { "ok" } else { "FAILED" };
            let _ = match (&n.error, n.seconds) {
                (None, Some(secs)) => writeln!(
                    s,
                    "  {what}: {verdict}, a human after {secs:.1} s{} and {} steps (bound {} s)",
                    n.seconds_after_escape
                        .map(|e| format!(" ({e:.1} s after the key)"))
                        .unwrap_or_default(),
                    n.steps,
                    n.bound_s
                ),
                (Some(e), _) => writeln!(s, "  {what}: {verdict}: {e}"),
                (None, None) => writeln!(s, "  {what}: {verdict}"),
            };
        }
        let failed = self.nodes.iter().filter(|n| !n.ok).count();
        let _ = writeln!(
            s,
            "{}: {} checked, {failed} failed",
            if self.ok() { "ok" } else { "FAILED" },
            self.nodes.len()
        );
        s
    }

    pub fn json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["ok"] = serde_json::Value::Bool(self.ok());
        serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
    }

    pub fn junit(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let failures = self.nodes.iter().filter(|n| !n.ok).count();
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"hotline probe {}\" tests=\"{}\" failures=\"{failures}\">\n",
            esc(&self.target),
            self.nodes.len()
        );
        for n in &self.nodes {
            let name = match n.escape {
                Some(d) => format!("{} escape {d}", n.node),
                None => "silent caller".into(),
            };
            let time = n.seconds.unwrap_or(0.0);
            if n.ok {
                let _ = writeln!(
                    s,
                    "  <testcase name=\"{}\" classname=\"{}\" time=\"{time:.3}\"/>",
                    esc(&name),
                    esc(&self.flow)
                );
            } else {
                let _ = writeln!(
                    s,
                    "  <testcase name=\"{}\" classname=\"{}\" time=\"{time:.3}\"><failure message=\"{}\"/></testcase>",
                    esc(&name),
                    esc(&self.flow),
                    esc(n.error.as_deref().unwrap_or("failed"))
                );
            }
        }
        s.push_str("</testsuite>\n");
        s
    }

    /// Prometheus text of the last round (`--every`).
    pub fn metrics(&self, rounds: u64) -> String {
        let mut s = String::from(
            "# HELP hotline_probe_ok Whether the node's escape reached a human within the bound (1) or not (0).\n# TYPE hotline_probe_ok gauge\n",
        );
        let label = |n: &NodeResult| match n.escape {
            Some(_) => n.node.replace('\\', "\\\\").replace('"', "\\\""),
            None => "silent".into(),
        };
        for n in &self.nodes {
            let _ = writeln!(
                s,
                "hotline_probe_ok{{node=\"{}\"}} {}",
                label(n),
                u8::from(n.ok)
            );
        }
        s.push_str("# HELP hotline_probe_seconds_to_human From the answer to the human node, in the last round.\n# TYPE hotline_probe_seconds_to_human gauge\n");
        for n in &self.nodes {
            if let Some(secs) = n.seconds {
                let _ = writeln!(
                    s,
                    "hotline_probe_seconds_to_human{{node=\"{}\"}} {secs}",
                    label(n)
                );
            }
        }
        let _ = writeln!(
            s,
            "# HELP hotline_probe_rounds_total Probe rounds run.\n# TYPE hotline_probe_rounds_total counter\nhotline_probe_rounds_total {rounds}"
        );
        s
    }
}

/// `--every 5m`, `30s`, `1h`.
pub fn parse_every(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("--every {s}: a number and s, m or h (30s, 5m, 1h)"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("--every {s}: a number and s, m or h (30s, 5m, 1h)")),
    };
    if secs < 10 {
        return Err(format!("--every {s}: at least 10 s"));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, secs: f64) -> Encoded {
        let n = (8000.0 * secs) as usize;
        let samples: Vec<i16> = (0..n)
            .map(|i| ((i as f64 * freq * std::f64::consts::TAU / 8000.0).sin() * 8000.0) as i16)
            .collect();
        Encoded::from_samples(&samples)
    }

    #[test]
    fn prompts_are_recognised_frame_by_frame_and_silence_is_not() {
        let mut quiet = vec![0i16; 800];
        quiet.extend((0..800).map(|i| ((i as f64 * 0.3).sin() * 6000.0) as i16));
        let prompts = vec![
            ("welcome".to_string(), tone(440.0, 0.5)),
            ("hold".to_string(), tone(523.0, 0.5)),
            ("late".to_string(), Encoded::from_samples(&quiet)),
        ];
        let r = Recogniser::new(&prompts);
        let frames: Vec<&[u8]> = prompts[0].1.pcmu.chunks(160).collect();
        assert!(
            matches!(r.hear(frames[0]), Some(Heard::Start { ref prompt, offset: 0 }) if prompt == "welcome")
        );
        assert!(
            matches!(r.hear(frames[3]), Some(Heard::Within { ref prompt }) if prompt == "welcome")
        );
        let hold = &prompts[1].1.pcmu[..160];
        assert!(matches!(r.hear(hold), Some(Heard::Start { ref prompt, .. }) if prompt == "hold"));
        assert_eq!(r.hear(&[0xFF; 160]), None, "silence names no prompt");
        // A prompt that starts with half a second of silence starts at its first sound.
        let late = &prompts[2].1.pcmu[800..960];
        assert!(
            matches!(r.hear(late), Some(Heard::Start { ref prompt, offset: 5 }) if prompt == "late")
        );
        assert!(r.knows("late") && !r.knows("missing"));
    }

    fn result(node: &str, escape: Option<char>, ok: bool) -> NodeResult {
        NodeResult {
            node: node.into(),
            escape,
            reached: ok,
            seconds: ok.then_some(4.5),
            seconds_after_escape: escape.filter(|_| ok).map(|_| 0.3),
            steps: 2,
            bound_s: 120,
            ok,
            error: (!ok).then(|| "its prompt (hours) was never heard".to_string()),
        }
    }

    #[test]
    fn results_read_as_text_json_junit_and_metrics() {
        let r = Results {
            target: "sip:main@127.0.0.1:5060".into(),
            flow: "main".into(),
            at: "2026-12-02T16:00:00Z".into(),
            nodes: vec![
                result("main", None, true),
                result("main.welcome", Some('0'), true),
                result("main.\"hours\"", Some('0'), false),
            ],
        };
        assert!(!r.ok());
        let text = r.text();
        assert!(
            text.contains("silent caller: ok, a human after 4.5 s"),
            "{text}"
        );
        assert!(
            text.contains("main.welcome: escape 0: ok, a human after 4.5 s (0.3 s after the key)"),
            "{text}"
        );
        assert!(
            text.contains("FAILED: its prompt (hours) was never heard"),
            "{text}"
        );
        assert!(text.ends_with("FAILED: 3 checked, 1 failed\n"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["nodes"][1]["escape"], "0");
        let junit = r.junit();
        assert!(junit.contains("tests=\"3\" failures=\"1\""), "{junit}");
        assert!(
            junit.contains("name=\"main.&quot;hours&quot; escape 0\""),
            "{junit}"
        );
        let m = r.metrics(7);
        assert!(m.contains("hotline_probe_ok{node=\"silent\"} 1"), "{m}");
        assert!(
            m.contains("hotline_probe_ok{node=\"main.\\\"hours\\\"\"} 0"),
            "{m}"
        );
        assert!(
            m.contains("hotline_probe_seconds_to_human{node=\"main.welcome\"} 4.5"),
            "{m}"
        );
        assert!(m.contains("hotline_probe_rounds_total 7"), "{m}");
        let none = Results {
            nodes: Vec::new(),
            ..r
        };
        assert!(!none.ok(), "a round that checked nothing proves nothing");
    }

    #[test]
    fn every_is_a_duration_of_at_least_ten_seconds() {
        assert_eq!(parse_every("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_every("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_every("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_every("5").is_err());
        assert!(parse_every("fortnight").is_err());
        assert!(parse_every("10x").is_err());
    }
}
