//! Looking a caller up: the endpoints an operator declares (`[lookups.NAME]` in `hotline.toml`)
//! and how their JSON answers become call variables. Pure: the request itself is made by
//! `server/lookups.rs`; `simulate` reads an answer from a file through the same code.
//!
//! A flow names an endpoint, never a URL, so a flow cannot send caller data anywhere new.
//! What comes back is caller-controlled data: typed against the declared fields, bounded,
//! never dialled (a transfer's destination is written in the flow).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The most an answer may weigh.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The longest text a string field may carry.
pub const MAX_TEXT_CHARS: usize = 256;
/// The longest a lookup may take, and the default.
pub const MAX_TIMEOUT_MS: u32 = 10_000;
pub const DEFAULT_TIMEOUT_MS: u32 = 2_000;

/// `[lookups.NAME]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// `http://` or `https://`: requested with GET, the parameters in the query string.
    pub url: String,
    /// A hard bound on the whole request, answer included (2000; at most 10000).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u32,
    /// The environment variable holding a bearer token sent with each request (none).
    #[serde(default)]
    pub token_env: String,
    /// The fields read from the answer, each `"string"`, `"number"` or `"bool"`: they become
    /// the variables `NAME.FIELD`. Other fields are ignored.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldType>,
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_MS
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    String,
    Number,
    Bool,
}

impl FieldType {
    fn name(self) -> &'static str {
        match self {
            FieldType::String => "a string",
            FieldType::Number => "a number",
            FieldType::Bool => "true or false",
        }
    }
}

impl Endpoint {
    /// What serde cannot check; the error names the key.
    pub fn check(&self, name: &str) -> Result<(), String> {
        let at = format!("[lookups.{name}]");
        if !crate::flow::variables::valid_name(name) {
            return Err(format!(
                "{at}: a lookup's name is letters, digits and _, starting with a letter"
            ));
        }
        let lower = self.url.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"));
        match rest {
            Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(['?', '#', ' ']) => {}
            _ => {
                return Err(format!(
                    "{at} url = \"{}\": an http:// or https:// URL with a host and no query (\"https://crm.example.com/api/caller\")",
                    self.url
                ));
            }
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(format!(
                "{at} timeout_ms = {}: between 1 and {MAX_TIMEOUT_MS} (a caller waits in silence meanwhile)",
                self.timeout_ms
            ));
        }
        for field in self.fields.keys() {
            if !crate::flow::variables::valid_name(field) {
                return Err(format!(
                    "{at} fields: \"{field}\" is letters, digits and _, starting with a letter"
                ));
            }
        }
        Ok(())
    }

    /// The variables a successful lookup sets: `NAME.FIELD` for each field.
    pub fn variables(&self, name: &str) -> Vec<String> {
        self.fields.keys().map(|f| format!("{name}.{f}")).collect()
    }
}

/// Reads an answer into the declared fields, as text (`"vip"`, `"12.5"`, `"true"`): a field
/// absent or `null` reads as empty. Anything but a JSON object, a field of another type, a
/// string over 256 characters or an answer over 64 KiB is a bad answer (the `on_error` way).
pub fn read_answer(
    body: &[u8],
    fields: &BTreeMap<String, FieldType>,
) -> Result<Vec<(String, String)>, String> {
    if body.len() > MAX_ANSWER_BYTES {
        return Err(format!(
            "the answer is over {} KiB",
            MAX_ANSWER_BYTES / 1024
        ));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let serde_json::Value::Object(object) = value else {
        return Err("the answer is not a JSON object".to_string());
    };
    let mut out = Vec::with_capacity(fields.len());
    for (field, ty) in fields {
        let text = match (object.get(field), ty) {
            (None | Some(serde_json::Value::Null), _) => String::new(),
            (Some(serde_json::Value::String(s)), FieldType::String) => {
                if s.chars().count() > MAX_TEXT_CHARS {
                    return Err(format!(
                        "field \"{field}\" is over {MAX_TEXT_CHARS} characters"
                    ));
                }
                // Control characters have no place in a value shown to agents and logged.
                s.chars().filter(|c| !c.is_control()).collect()
            }
            (Some(serde_json::Value::Number(n)), FieldType::Number) => n.to_string(),
            (Some(serde_json::Value::Bool(b)), FieldType::Bool) => b.to_string(),
            (Some(other), ty) => {
                let found = match other {
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::Bool(_) => "a boolean",
                    serde_json::Value::Array(_) => "a list",
                    _ => "an object",
                };
                return Err(format!("field \"{field}\" is {found}, not {}", ty.name()));
            }
        };
        out.push((field.clone(), text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> BTreeMap<String, FieldType> {
        BTreeMap::from([
            ("tier".to_string(), FieldType::String),
            ("balance".to_string(), FieldType::Number),
            ("open_ticket".to_string(), FieldType::Bool),
        ])
    }

    #[test]
    fn an_answer_fills_the_declared_fields_and_ignores_the_rest() {
        let got = read_answer(
            br#"{"tier":"vip","balance":-12.5,"open_ticket":true,"ssn":"secret"}"#,
            &fields(),
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                ("balance".to_string(), "-12.5".to_string()),
                ("open_ticket".to_string(), "true".to_string()),
                ("tier".to_string(), "vip".to_string()),
            ]
        );
        // Absent and null read as empty.
        let got = read_answer(br#"{"tier":null}"#, &fields()).unwrap();
        assert!(got.iter().all(|(_, v)| v.is_empty()), "{got:?}");
    }

    #[test]
    fn bad_answers_are_errors_that_say_why() {
        let f = fields();
        assert!(read_answer(b"<html>", &f).unwrap_err().contains("not JSON"));
        assert!(read_answer(b"[1]", &f).unwrap_err().contains("object"));
        let e = read_answer(br#"{"balance":"12"}"#, &f).unwrap_err();
        assert!(e.contains("\"balance\" is a string, not a number"), "{e}");
        let long = format!(r#"{{"tier":"{}"}}"#, "x".repeat(300));
        assert!(read_answer(long.as_bytes(), &f).is_err());
        let huge = vec![b' '; MAX_ANSWER_BYTES + 1];
        assert!(read_answer(&huge, &f).unwrap_err().contains("KiB"));
        let ctl = read_answer(b"{\"tier\":\"v\\u0007ip\\n\"}", &f).unwrap();
        assert_eq!(ctl[2].1, "vip");
    }

    #[test]
    fn endpoints_are_checked_with_the_key_named() {
        let ok = Endpoint {
            url: "http://127.0.0.1:8090/caller".into(),
            timeout_ms: 2000,
            token_env: String::new(),
            fields: fields(),
        };
        assert!(ok.check("crm").is_ok());
        for url in ["ftp://x/", "http://", "crm.example.com", "http://x/?a=1"] {
            let e = Endpoint {
                url: url.into(),
                ..ok.clone()
            };
            assert!(e.check("crm").unwrap_err().contains("url"), "{url}");
        }
        let slow = Endpoint {
            timeout_ms: 60_000,
            ..ok.clone()
        };
        assert!(slow.check("crm").unwrap_err().contains("timeout_ms"));
        assert!(ok.check("my-crm").is_err());
        assert_eq!(ok.variables("crm")[0], "crm.balance");
    }
}
