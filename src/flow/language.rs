//! The caller's language. A flow has one (`[flow] language`, English by default): a call that
//! starts in the flow speaks it, `set = { language = "es" }` on a node changes it for the rest
//! of the call. Prompts resolve per language: a file prompt `welcome` is `prompts/welcome.wav`
//! in English and `prompts/es/welcome.wav` in Spanish; a text prompt gives its text per
//! language (`say = { en = "…", es = "…" }`). So do the queue announcements and the follow-up
//! confirmations (`prompts/es/queue/…`), and the numbers they are built from, which is why a
//! language is one hotline can speak, not any code.
//!
//! The validator knows, for every node, which languages a caller may arrive in (a dataflow
//! over the flows' edges): every prompt must exist in each, and the time to a human counts
//! each node's prompts in its slowest language.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::model::{Class, FlowSet, NodeId};

/// The language of the top of the prompts folder, and of a flow that names none.
pub const DEFAULT: &str = "en";

/// The languages hotline speaks, with their names: its queue announcements say numbers in
/// each (`engine::announce`).
pub const SPOKEN: [(&str, &str); 2] = [("en", "English"), ("es", "Spanish")];

/// The variable a node's `set` changes the caller's language with; a branch may test it.
pub const VARIABLE: &str = "language";

pub fn is_spoken(code: &str) -> bool {
    SPOKEN.iter().any(|(c, _)| *c == code)
}

/// "Spanish (es)".
pub fn display(code: &str) -> String {
    match SPOKEN.iter().find(|(c, _)| *c == code) {
        Some((c, name)) => format!("{name} ({c})"),
        None => format!("\"{code}\""),
    }
}

/// What to say about a language hotline does not speak.
pub fn unknown(code: &str) -> String {
    format!(
        "language \"{code}\" is not one hotline speaks ({})",
        SPOKEN
            .iter()
            .map(|(c, n)| format!("{c} = {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The prompt file `name` in `language`: the top of the prompts folder for the default
/// language, `LANG/NAME` for the others.
pub fn file_in(language: &str, name: &str) -> String {
    if language == DEFAULT || language.is_empty() {
        name.to_string()
    } else {
        format!("{language}/{name}")
    }
}

/// The language a node's `set` gives the caller, if it does.
pub fn set_at(set: &FlowSet, node: NodeId) -> Option<&str> {
    set.nodes[node]
        .set
        .iter()
        .rev()
        .find(|(k, _)| k == VARIABLE)
        .map(|(_, v)| v.as_str())
}

/// For every node, the languages a caller may speak there: a call starting at a flow's entry
/// speaks the flow's language, a node's `set` changes it on arrival, and every way on keeps it
/// (the escape too). A node no call reaches has none.
pub fn reachable(set: &FlowSet) -> Vec<BTreeSet<String>> {
    let mut at: Vec<BTreeSet<String>> = vec![BTreeSet::new(); set.nodes.len()];
    for (node, language) in search(set).into_keys() {
        at[node].insert(language);
    }
    at
}

/// How a caller speaking each language first arrives at each node (one search for all the
/// diagnostics of a line).
pub struct Ways(Seen);

impl Ways {
    pub fn of(set: &FlowSet) -> Ways {
        Ways(search(set))
    }

    /// The shortest way (in nodes) a caller speaking `language` arrives at `node`, as
    /// diagnostics print paths: `main.welcome`, `2`, `main.spanish`, … `node`.
    pub fn to(&self, set: &FlowSet, node: NodeId, language: &str) -> Vec<String> {
        way_to(&self.0, set, node, language)
    }
}

fn way_to(preds: &Seen, set: &FlowSet, node: NodeId, language: &str) -> Vec<String> {
    let mut path = Vec::new();
    let mut at = Some((node, language.to_string()));
    while let Some(key) = at.take() {
        path.push(set.nodes[key.0].full_name.clone());
        if let Some(Some((from, label))) = preds.get(&key) {
            path.push(label.clone());
            at = Some(from.clone());
        }
        if path.len() > 2 * (set.nodes.len() * SPOKEN.len() + 1) {
            break;
        }
    }
    path.reverse();
    path
}

/// Where each (node, language) a caller may be at was first reached from, breadth first from
/// the entries: the (node, language) before and the action taken there.
type Seen = HashMap<(NodeId, String), Option<Step>>;
/// A (node, language) and the action taken there.
type Step = ((NodeId, String), String);

fn search(set: &FlowSet) -> Seen {
    let mut seen: Seen = HashMap::new();
    let mut queue: VecDeque<(NodeId, String, Option<Step>)> = VecDeque::new();
    for (f, flow) in set.flows.iter().enumerate() {
        if let Some(entry) = set.entry(f) {
            queue.push_back((entry, flow.language.clone(), None));
        }
    }
    while let Some((node, arriving, from)) = queue.pop_front() {
        let language = set_at(set, node).map_or(arriving, str::to_string);
        let key = (node, language);
        if seen.contains_key(&key) {
            continue;
        }
        seen.insert(key.clone(), from);
        let n = &set.nodes[node];
        let mut next: Vec<(NodeId, String)> = n
            .kind
            .edges()
            .iter()
            .filter_map(|e| e.target.node.map(|t| (t, e.action.to_string())))
            .collect();
        if n.class() == Class::CallerFacing {
            let escape = set.flows[n.flow].escape_digit.to_string();
            next.extend(set.escape_to(n.flow).map(|t| (t, escape)));
        }
        for (to, label) in next {
            queue.push_back((to, key.1.clone(), Some((key.clone(), label))));
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_file_lives_in_its_language_folder() {
        assert_eq!(file_in("en", "welcome"), "welcome");
        assert_eq!(file_in("es", "welcome"), "es/welcome");
        assert_eq!(file_in("es", "queue/in_line"), "es/queue/in_line");
        assert!(is_spoken("es") && !is_spoken("fr"));
        assert_eq!(display("es"), "Spanish (es)");
        assert!(unknown("fr").contains("es = Spanish"), "{}", unknown("fr"));
    }
}
