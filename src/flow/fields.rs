//! Typed reads from a spanned TOML table. Every mistake becomes an `invalid-flow` diagnostic at
//! the offending value, every key not read is reported as unknown, and reading goes on, so an
//! ops team sees all their mistakes at once.

use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::{Diagnostic, Rule};
use super::model::{Prompt, Target};
use super::source::{Pos, Source};

/// The keys a caller may press.
pub fn is_key(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#'
}

pub struct Fields<'a, 'i> {
    table: &'a DeTable<'i>,
    source: &'a Arc<Source>,
    /// What the table is, for messages: `node main.menu`, `[flow]`.
    owner: String,
    node: Option<String>,
    used: Vec<&'static str>,
    pub diags: &'a mut Vec<Diagnostic>,
}

impl<'a, 'i> Fields<'a, 'i> {
    pub fn new(
        table: &'a DeTable<'i>,
        source: &'a Arc<Source>,
        owner: impl Into<String>,
        node: Option<String>,
        diags: &'a mut Vec<Diagnostic>,
    ) -> Self {
        Fields {
            table,
            source,
            owner: owner.into(),
            node,
            used: Vec::new(),
            diags,
        }
    }

    pub fn source(&self) -> &Arc<Source> {
        self.source
    }

    pub fn pos_of<T>(&self, s: &Spanned<T>) -> Pos {
        self.source.pos(s.span().start)
    }

    /// Reports a mistake in this table's value at `pos`.
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        let mut d = Diagnostic::new(Rule::InvalidFlow, self.source, pos, message);
        d.node = self.node.clone();
        self.diags.push(d);
    }

    fn take(&mut self, key: &'static str) -> Option<&'a Spanned<DeValue<'i>>> {
        let v = self.table.get(key)?;
        self.used.push(key);
        Some(v)
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    pub fn missing(&mut self, key: &str, at: Pos) {
        let owner = self.owner.clone();
        self.error(at, format!("{owner}: missing required field `{key}`"));
    }

    fn wrong_type(&mut self, key: &str, v: &Spanned<DeValue<'_>>, want: &str) {
        let pos = self.pos_of(v);
        let owner = self.owner.clone();
        self.error(
            pos,
            format!(
                "{owner}: `{key}` must be {want}, found {}",
                v.get_ref().type_str()
            ),
        );
    }

    pub fn string(&mut self, key: &'static str) -> Option<(String, Pos)> {
        let v = self.take(key)?;
        match v.get_ref().as_str() {
            Some(s) => Some((s.to_string(), self.pos_of(v))),
            None => {
                self.wrong_type(key, v, "a string");
                None
            }
        }
    }

    pub fn required_string(&mut self, key: &'static str, at: Pos) -> Option<(String, Pos)> {
        if !self.table.contains_key(key) {
            self.missing(key, at);
            return None;
        }
        self.string(key)
    }

    pub fn target(&mut self, key: &'static str) -> Option<Target> {
        let (text, pos) = self.string(key)?;
        Some(Target::new(text, pos))
    }

    pub fn required_target(&mut self, key: &'static str, at: Pos) -> Option<Target> {
        if !self.table.contains_key(key) {
            self.missing(key, at);
            return None;
        }
        self.target(key)
    }

    /// A non-negative whole number no larger than `max`.
    pub fn number(&mut self, key: &'static str, default: u32, max: u32) -> u32 {
        let Some(v) = self.take(key) else {
            return default;
        };
        let Some(int) = v.get_ref().as_integer() else {
            self.wrong_type(key, v, "a whole number");
            return default;
        };
        let pos = self.pos_of(v);
        match i64::from_str_radix(int.as_str(), int.radix()) {
            Ok(n) if (0..=i64::from(max)).contains(&n) => n as u32,
            _ => {
                let owner = self.owner.clone();
                self.error(
                    pos,
                    format!("{owner}: `{key}` must be between 0 and {max}, found {int}"),
                );
                default
            }
        }
    }

    /// One key of the keypad: `0`-`9`, `*` or `#`.
    pub fn key(&mut self, key: &'static str) -> Option<char> {
        let (s, pos) = self.string(key)?;
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if is_key(c) => Some(c),
            _ => {
                let owner = self.owner.clone();
                self.error(
                    pos,
                    format!("{owner}: `{key}` must be one key of 0-9, * or #, found \"{s}\""),
                );
                None
            }
        }
    }

    /// A text prompt: `{ say = "…" }` in the flow's language, `{ say = "…", language = "es" }`
    /// said so to every caller, or `{ say = { en = "…", es = "…" } }` per caller language.
    fn say(&mut self, key: &str, v: &Spanned<DeValue<'_>>) -> Option<Prompt> {
        let pos = self.pos_of(v);
        let table = v.get_ref().as_table()?;
        let owner = self.owner.clone();
        let shape = format!(
            "{owner}: `{key}` takes a prompt name, {{ say = \"text\" }}, {{ say = \"text\", language = \"es\" }} or {{ say = {{ en = \"…\", es = \"…\" }} }}"
        );
        let language = match table.get("language").map(|l| l.get_ref()) {
            None => None,
            Some(DeValue::String(l)) => Some(l.to_string()),
            Some(_) => {
                self.error(pos, shape);
                return None;
            }
        };
        let extra = table
            .len()
            .saturating_sub(1 + usize::from(language.is_some()));
        let mut texts: Vec<(String, String)> = match table.get("say").map(|t| t.get_ref()) {
            Some(DeValue::String(s)) if extra == 0 => {
                vec![(language.clone().unwrap_or_default(), s.trim().to_string())]
            }
            Some(DeValue::Table(by)) if extra == 0 && language.is_none() && !by.is_empty() => {
                let mut out = Vec::new();
                for (l, s) in by.iter() {
                    match s.get_ref() {
                        DeValue::String(s) => {
                            out.push((l.get_ref().to_string(), s.trim().to_string()))
                        }
                        _ => {
                            self.error(pos, shape);
                            return None;
                        }
                    }
                }
                out
            }
            _ => {
                self.error(pos, shape);
                return None;
            }
        };
        for (l, text) in &texts {
            if !l.is_empty() && !super::language::is_spoken(l) {
                self.error(
                    pos,
                    format!("{owner}: `{key}`: {}", super::language::unknown(l)),
                );
                return None;
            }
            if text.is_empty() || text.chars().count() > crate::tts::MAX_TEXT_CHARS {
                self.error(
                    pos,
                    format!(
                        "{owner}: `{key}`: a text prompt says 1 to {} characters",
                        crate::tts::MAX_TEXT_CHARS
                    ),
                );
                return None;
            }
        }
        let (first_language, first) = texts.remove(0);
        Some(Prompt {
            pos,
            say: Some(first),
            language: first_language,
            fixed: language.is_some(),
            others: texts
                .into_iter()
                .map(|(l, text)| (l, (text, String::new())))
                .collect(),
            ..Prompt::default()
        })
    }

    /// A prompt name or a list of them, played in order; any may be `{ say = "text" }`.
    pub fn prompts(&mut self, key: &'static str) -> Vec<Prompt> {
        let Some(v) = self.take(key) else {
            return Vec::new();
        };
        let pos = self.pos_of(v);
        match v.get_ref() {
            DeValue::String(s) => vec![Prompt::file(s, pos)],
            DeValue::Table(_) => self.say(key, v).into_iter().collect(),
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => out.push(Prompt::file(s, self.pos_of(item))),
                        DeValue::Table(_) => out.extend(self.say(key, item)),
                        _ => self.wrong_type(key, item, "a prompt name or { say = \"text\" }"),
                    }
                }
                if out.is_empty() && items.is_empty() {
                    let owner = self.owner.clone();
                    self.error(pos, format!("{owner}: `{key}` is an empty list"));
                }
                out
            }
            _ => {
                self.wrong_type(
                    key,
                    v,
                    "a prompt name, { say = \"text\" }, or a list of them",
                );
                Vec::new()
            }
        }
    }

    /// A list of strings (`allow = ["loop"]`), each with its place.
    pub fn strings(&mut self, key: &'static str) -> Vec<(String, Pos)> {
        let Some(v) = self.take(key) else {
            return Vec::new();
        };
        let Some(items) = v.get_ref().as_array() else {
            self.wrong_type(key, v, "a list of strings");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref().as_str() {
                Some(s) => out.push((s.to_string(), self.pos_of(item))),
                None => self.wrong_type(key, item, "a string"),
            }
        }
        out
    }

    /// A table, with its place.
    pub fn table(&mut self, key: &'static str) -> Option<(&'a DeTable<'i>, Pos)> {
        let v = self.take(key)?;
        match v.get_ref().as_table() {
            Some(t) => Some((t, self.pos_of(v))),
            None => {
                self.wrong_type(key, v, "a table");
                None
            }
        }
    }

    /// A table of string keys to node references (`cases`, `options`).
    pub fn target_map(&mut self, key: &'static str) -> Option<Vec<(String, Pos, Target)>> {
        let v = self.take(key)?;
        let Some(table) = v.get_ref().as_table() else {
            self.wrong_type(key, v, "a table");
            return None;
        };
        let mut out = Vec::new();
        for (k, val) in table.iter() {
            let kpos = self.pos_of(k);
            match val.get_ref().as_str() {
                Some(s) => out.push((
                    k.get_ref().to_string(),
                    kpos,
                    Target::new(s.to_string(), self.pos_of(val)),
                )),
                None => self.wrong_type(&format!("{key}.{}", k.get_ref()), val, "a node name"),
            }
        }
        Some(out)
    }

    /// Reports every key that was not read: unknown keys are errors.
    pub fn finish(self, allowed_elsewhere: &[&str]) {
        let mut unknown = Vec::new();
        for (k, _) in self.table.iter() {
            let name = k.get_ref();
            if !self.used.iter().any(|u| *u == name.as_ref())
                && !allowed_elsewhere.contains(&name.as_ref())
            {
                unknown.push((name.to_string(), self.source.pos(k.span().start)));
            }
        }
        for (name, pos) in unknown {
            let mut d = Diagnostic::new(
                Rule::InvalidFlow,
                self.source,
                pos,
                format!("{}: unknown key `{name}`", self.owner),
            );
            d.node = self.node.clone();
            self.diags.push(d);
        }
    }
}
