//! `branch`: invisible; tests a call variable. A case key is an exact value (`"100000"`), a
//! prefix (`"prefix:+34"`), one of a list (`"one_of:gold,platinum"`) or a range
//! (`"range:100..500"`: 100 ≤ value < 500, numbers or `HH:MM` times; either end may be left
//! out). Whatever order the keys are written in, an exact or listed value wins, then the
//! longest matching prefix, then the range holding the value; ranges may not overlap.

use crate::flow::fields::Fields;
use crate::flow::model::{Action, Edge, Target};
use crate::flow::source::Pos;

/// One end of a `range:` case: a number, or a time of day in minutes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Number(f64),
    Minutes(u32),
}

impl Bound {
    fn parse(s: &str) -> Option<Bound> {
        let s = s.trim();
        if let Some((h, m)) = s.split_once(':') {
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            return (h <= 24 && m < 60 && h * 60 + m <= 24 * 60 && s.len() == 5)
                .then_some(Bound::Minutes(h * 60 + m));
        }
        let n: f64 = s.parse().ok()?;
        n.is_finite().then_some(Bound::Number(n))
    }

    fn same_kind(self, other: Bound) -> bool {
        matches!(
            (self, other),
            (Bound::Number(_), Bound::Number(_)) | (Bound::Minutes(_), Bound::Minutes(_))
        )
    }

    fn value(self) -> f64 {
        match self {
            Bound::Number(n) => n,
            Bound::Minutes(m) => f64::from(m),
        }
    }

    /// `value` read as this bound's kind, when it is one.
    fn read(self, value: &str) -> Option<f64> {
        let v = Bound::parse(value)?;
        self.same_kind(v).then(|| v.value())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CaseMatch {
    Exact(String),
    Prefix(String),
    OneOf(Vec<String>),
    /// `lo ≤ value < hi`.
    Range(Option<Bound>, Option<Bound>),
}

impl CaseMatch {
    /// Reads a case key; `Err` says what is wrong with it.
    pub fn parse(key: &str) -> Result<CaseMatch, String> {
        if let Some(p) = key.strip_prefix("prefix:") {
            return Ok(CaseMatch::Prefix(p.to_string()));
        }
        if let Some(list) = key.strip_prefix("one_of:") {
            let items: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
            if items.iter().any(String::is_empty) {
                return Err(format!(
                    "case \"{key}\": `one_of:` takes values separated by commas, none empty (\"one_of:gold,platinum\")"
                ));
            }
            return Ok(CaseMatch::OneOf(items));
        }
        if let Some(range) = key.strip_prefix("range:") {
            let bad = || {
                format!(
                    "case \"{key}\": `range:LOW..HIGH` takes numbers or HH:MM times of one kind, LOW below HIGH, either left out (\"range:100..500\", \"range:09:00..14:00\", \"range:..0\")"
                )
            };
            let (lo, hi) = range.split_once("..").ok_or_else(bad)?;
            let end = |s: &str| -> Result<Option<Bound>, String> {
                if s.trim().is_empty() {
                    Ok(None)
                } else {
                    Bound::parse(s).map(Some).ok_or_else(bad)
                }
            };
            let (lo, hi) = (end(lo)?, end(hi)?);
            match (lo, hi) {
                (None, None) => return Err(bad()),
                (Some(a), Some(b)) if !a.same_kind(b) || a.value() >= b.value() => {
                    return Err(bad());
                }
                _ => {}
            }
            return Ok(CaseMatch::Range(lo, hi));
        }
        Ok(CaseMatch::Exact(key.to_string()))
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            CaseMatch::Exact(v) => v == value,
            CaseMatch::Prefix(p) => value.starts_with(p.as_str()),
            CaseMatch::OneOf(items) => items.iter().any(|i| i == value),
            CaseMatch::Range(lo, hi) => {
                let kind = lo.or(*hi).expect("a range has an end");
                let Some(v) = kind.read(value) else {
                    return false;
                };
                lo.is_none_or(|l| v >= l.value()) && hi.is_none_or(|h| v < h.value())
            }
        }
    }

    /// Higher wins when several cases match.
    fn rank(&self) -> usize {
        match self {
            CaseMatch::Exact(_) | CaseMatch::OneOf(_) => usize::MAX,
            CaseMatch::Prefix(p) => p.len() + 1,
            CaseMatch::Range(..) => 0,
        }
    }

    /// The bounds of a range as numbers, open ends infinite.
    fn span(&self) -> Option<(bool, f64, f64)> {
        match self {
            CaseMatch::Range(lo, hi) => {
                let kind = lo.or(*hi)?;
                Some((
                    matches!(kind, Bound::Minutes(_)),
                    lo.map_or(f64::NEG_INFINITY, Bound::value),
                    hi.map_or(f64::INFINITY, Bound::value),
                ))
            }
            _ => None,
        }
    }

    /// The exact values the case takes.
    fn values(&self) -> &[String] {
        match self {
            CaseMatch::Exact(v) => std::slice::from_ref(v),
            CaseMatch::OneOf(items) => items,
            _ => &[],
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
        let mut cases: Vec<(String, Target)> = Vec::new();
        let mut matchers: Vec<CaseMatch> = Vec::new();
        let mut taken: Vec<(String, String)> = Vec::new(); // (value, key)
        for (key, pos, target) in f.target_map("cases").unwrap_or_default() {
            let m = match CaseMatch::parse(&key) {
                Ok(m) => m,
                Err(e) => {
                    f.error(pos, format!("branch: {e}"));
                    continue;
                }
            };
            for v in m.values() {
                if let Some((_, other)) = taken.iter().find(|(t, _)| t == v) {
                    let other = other.clone();
                    f.error(
                        pos,
                        format!("branch: the value \"{v}\" is in case \"{key}\" and in case \"{other}\": a caller can take only one"),
                    );
                }
                taken.push((v.clone(), key.clone()));
            }
            if let Some((time, lo, hi)) = m.span() {
                for (other_key, other) in cases.iter().map(|c| &c.0).zip(&matchers) {
                    if let Some((t2, lo2, hi2)) = other.span()
                        && t2 == time
                        && lo < hi2
                        && lo2 < hi
                    {
                        f.error(
                            pos,
                            format!("branch: case \"{key}\" overlaps case \"{other_key}\": ranges may not overlap (LOW is in, HIGH is not)"),
                        );
                    }
                }
            }
            cases.push((key, target));
            matchers.push(m);
        }
        Branch {
            variable,
            cases,
            matchers,
            default: f.target("default"),
        }
    }

    /// The target for a variable's value (`None` when unset): an exact or listed value wins
    /// over any `prefix:` case, the longest matching prefix over shorter ones, and a prefix
    /// over a range, whatever order the keys are written in (a TOML table has none to rely
    /// on).
    pub fn select(&self, value: Option<&str>) -> (Action<'_>, Option<&Target>) {
        if let Some(value) = value {
            let mut best: Option<(usize, usize)> = None; // (rank, case index)
            for (i, m) in self.matchers.iter().enumerate() {
                if !m.matches(value) {
                    continue;
                }
                let rank = m.rank();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn m(key: &str) -> CaseMatch {
        CaseMatch::parse(key).unwrap()
    }

    #[test]
    fn cases_compare_by_their_kind() {
        assert!(m("100000").matches("100000"));
        assert!(!m("100000").matches("1000001"));
        assert!(m("prefix:+34").matches("+34600111222"));
        assert!(m("one_of:gold, platinum").matches("platinum"));
        assert!(!m("one_of:gold,platinum").matches("silver"));
        let r = m("range:100..500");
        assert!(r.matches("100") && r.matches("499.5") && !r.matches("500"));
        assert!(!r.matches("abc") && !r.matches("09:00"));
        assert!(m("range:..0").matches("-12.5") && !m("range:..0").matches("0"));
        let t = m("range:09:00..14:00");
        assert!(t.matches("09:00") && t.matches("13:59") && !t.matches("14:00"));
        assert!(!t.matches("900"));
    }

    #[test]
    fn bad_keys_say_how_to_write_them() {
        for bad in [
            "range:",
            "range:..",
            "range:5..1",
            "range:1..09:00",
            "range:a..b",
            "range:25:00..",
            "one_of:",
            "one_of:a,,b",
        ] {
            assert!(CaseMatch::parse(bad).is_err(), "{bad}");
        }
    }
}
