//! `branch`: invisible; tests a call variable against exact values or `prefix:` keys.

use crate::flow::fields::Fields;
use crate::flow::model::{Action, Edge, Target};
use crate::flow::source::Pos;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseMatch {
    Exact(String),
    Prefix(String),
}

impl CaseMatch {
    fn parse(key: &str) -> CaseMatch {
        match key.strip_prefix("prefix:") {
            Some(p) => CaseMatch::Prefix(p.to_string()),
            None => CaseMatch::Exact(key.to_string()),
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            CaseMatch::Exact(v) => v == value,
            CaseMatch::Prefix(p) => value.starts_with(p.as_str()),
        }
    }
}

#[derive(Debug)]
pub struct Branch {
    pub variable: Option<(String, Pos)>,
    /// In file order. The string is the key as written.
    pub cases: Vec<(String, Target)>,
    pub matchers: Vec<CaseMatch>,
    pub default: Option<Target>,
}

impl Branch {
    pub fn parse(f: &mut Fields, at: Pos) -> Branch {
        let variable = f.required_string("variable", at);
        let cases: Vec<(String, Target)> = f
            .target_map("cases")
            .unwrap_or_default()
            .into_iter()
            .map(|(k, _, t)| (k, t))
            .collect();
        let matchers = cases.iter().map(|(k, _)| CaseMatch::parse(k)).collect();
        Branch {
            variable,
            cases,
            matchers,
            default: f.target("default"),
        }
    }

    /// The target for a variable's value (`None` when unset): an exact case wins over any
    /// `prefix:` case, and the longest matching prefix over shorter ones, whatever order the
    /// keys are written in (a TOML table has none to rely on).
    pub fn select(&self, value: Option<&str>) -> (Action<'_>, Option<&Target>) {
        if let Some(value) = value {
            let mut best: Option<(usize, usize)> = None; // (rank, case index)
            for (i, m) in self.matchers.iter().enumerate() {
                if !m.matches(value) {
                    continue;
                }
                let rank = match m {
                    CaseMatch::Exact(_) => usize::MAX,
                    CaseMatch::Prefix(p) => p.len(),
                };
                if best.is_none_or(|(r, _)| rank > r) {
                    best = Some((rank, i));
                }
            }
            if let Some((_, i)) = best {
                let (key, target) = &self.cases[i];
                return (Action::Case(key), Some(target));
            }
        }
        (Action::Default, self.default.as_ref())
    }

    pub fn edges(&self) -> Vec<Edge<'_>> {
        let mut out: Vec<Edge> = self
            .cases
            .iter()
            .map(|(key, target)| Edge {
                action: Action::Case(key),
                target,
            })
            .collect();
        out.extend(self.default.iter().map(|target| Edge {
            action: Action::Default,
            target,
        }));
        out
    }
}
