//! The caller card: what an agent sees of the caller while their phone rings and while they
//! talk — who calls, from which queue, how long they waited, the way they came through the
//! line in words, and what they typed — so the caller never repeats themselves.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallerCard {
    /// The caller's Call-ID (the call record's `id`).
    pub call: String,
    /// The name their phone gives, or their number when it gives none.
    pub name: String,
    /// Their SIP URI, and the number (its user part).
    pub uri: String,
    pub number: String,
    pub queue: String,
    /// How long they waited in the queue before this agent answered (or until now, while it
    /// rings).
    pub waited_s: u64,
    /// The way they came, one step a line ("main.menu: pressed 2").
    pub steps: Vec<String>,
    pub variables: Vec<Variable>,
    /// The agent is calling them back (they asked to be called back earlier).
    pub callback: bool,
    /// The agent who passed them on to this one, and her note, when one did.
    pub transferred_by: Option<String>,
    pub note: Option<String>,
    /// A returning caller: "returning: voicemail from 09:14, taken by alice".
    pub returning: Option<String>,
}

/// A caller waiting for or talking to a human, for the wall.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveCall {
    pub call: String,
    pub name: String,
    pub number: String,
    pub queue: String,
    /// `waiting`, `ringing` (an agent's phone rings) or `talking`.
    pub state: &'static str,
    /// Who they talk to.
    pub agent: Option<String>,
    /// Since they joined the queue (until answered, once talking).
    pub waited_s: u64,
    pub steps: Vec<String>,
    /// A returning caller, as on the card.
    pub returning: Option<String>,
}

/// The wall lists at most this many live calls (the longest waiting first).
pub const LIVE_CALLS_SHOWN: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variable {
    pub name: String,
    pub value: String,
}

/// What a `returning` node learnt of the caller's open follow-up (its `follow_up.*`
/// variables), in words: "returning: voicemail from 09:14, taken by alice" / "…, not yet
/// taken".
pub fn returning<'a>(variables: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    let mut kind = None;
    let (mut state, mut owner, mut at) = ("", "", "");
    for (name, value) in variables {
        match name {
            "follow_up.kind" => kind = Some(value),
            "follow_up.state" => state = value,
            "follow_up.owner" => owner = value,
            "follow_up.at" => at = value,
            _ => {}
        }
    }
    let kind = kind?;
    let who = match (state, owner) {
        ("taken", o) if !o.is_empty() => format!("taken by {o}"),
        ("failed", _) => "failed lately".to_string(),
        _ => "not yet taken".to_string(),
    };
    let from = if at.is_empty() {
        String::new()
    } else {
        format!(" from {at}")
    };
    Some(format!("returning: {kind}{from}, {who}"))
}

/// A call's path (nodes alternating with what the caller did there) as readable steps.
pub fn steps(path: &[String]) -> Vec<String> {
    path.chunks(2)
        .map(|pair| match pair {
            [node, action] => format!("{node}: {}", action_words(action)),
            [node] => format!("{node}: reached"),
            _ => String::new(),
        })
        .collect()
}

fn action_words(action: &str) -> String {
    let words = match action {
        "_" => "said nothing",
        "done" => "listened to the end",
        "wrong" => "pressed a wrong key",
        "digits" => "typed their digits",
        "timeout" => "waited until the wait ran out",
        "failure" => "could not be put through",
        "open" => "open hours",
        "closed" => "closed hours",
        "default" => "none of the cases",
        "watchdog" => "moved on by the watchdog (too many steps)",
        "callback" => "asked to be called back",
        a if a.len() == 1
            && a.chars()
                .all(|c| c.is_ascii_digit() || c == '*' || c == '#') =>
        {
            return format!("pressed {a}");
        }
        a => {
            if let Some(value) = a.strip_prefix("case:") {
                return format!("was {value}");
            }
            a
        }
    };
    words.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_reads_as_steps() {
        let path: Vec<String> = [
            "main.welcome",
            "done",
            "main.menu",
            "2",
            "main.account",
            "digits",
            "main.vip",
            "case:gold",
            "main.agents",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            steps(&path),
            [
                "main.welcome: listened to the end",
                "main.menu: pressed 2",
                "main.account: typed their digits",
                "main.vip: was gold",
                "main.agents: reached",
            ]
        );
        assert!(steps(&[]).is_empty());
    }
}
