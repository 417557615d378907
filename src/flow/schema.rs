//! `hotline schema`: a JSON Schema (draft 2020-12) of the flow format, so editors that read
//! schemas for TOML (taplo, Even Better TOML) complete keys and flag mistakes while typing.
//! It says what the loader accepts, field by field; what needs the whole graph (references,
//! the escape guarantee) stays the validator's job.

use serde_json::{Value, json};

/// Where the schema says it lives (`$id`); the `#:schema` line in a flow file may name a local
/// copy instead.
const ID: &str = "https://hotline.dev/schema/flow.json";

fn string(description: &str) -> Value {
    json!({ "type": "string", "minLength": 1, "description": description })
}

/// A node reference: `node` or `flow.node`.
fn target(description: &str) -> Value {
    json!({
        "type": "string",
        "pattern": "^[^.\\s]+(\\.[^.\\s]+)?$",
        "description": format!("{description} A node of this flow (`name`) or of another (`flow.name`).")
    })
}

fn number(description: &str, default: u32, max: u32) -> Value {
    json!({
        "type": "integer",
        "minimum": 0,
        "maximum": max,
        "default": default,
        "description": description
    })
}

fn key(description: &str) -> Value {
    json!({ "type": "string", "pattern": "^[0-9*#]$", "description": description })
}

fn prompts(description: &str) -> Value {
    let name = json!({ "type": "string", "minLength": 1, "pattern": "^[^/\\\\]" });
    let text = json!({ "type": "string", "minLength": 1, "maxLength": 2000 });
    let languages: Vec<&str> = crate::flow::language::SPOKEN
        .iter()
        .map(|(c, _)| *c)
        .collect();
    let by_language = json!({
        "type": "object",
        "minProperties": 1,
        "propertyNames": { "enum": languages },
        "additionalProperties": text,
        "description": "The text per caller language."
    });
    let say = json!({
        "type": "object",
        "properties": {
            "say": { "oneOf": [text, by_language] },
            "language": {
                "enum": languages,
                "description": "Said in this language to every caller (with a single text)."
            }
        },
        "required": ["say"],
        "additionalProperties": false
    });
    let one = json!({ "oneOf": [name, say] });
    json!({
        "description": format!("{description} A prompt name (prompts/NAME.wav: 8 kHz mono 16-bit PCM; prompts/es/NAME.wav for a Spanish caller), {{ say = \"text\" }} (rendered by [tts]), {{ say = {{ en = \"…\", es = \"…\" }} }}, or a list played in order."),
        "oneOf": [name, say, { "type": "array", "items": one, "minItems": 1 }]
    })
}

/// One node type: its fields and which are required.
fn node(kind: &str, description: &str, fields: Vec<(&str, Value)>, required: &[&str]) -> Value {
    let mut properties = serde_json::Map::new();
    properties.insert(
        "type".into(),
        json!({ "const": kind, "description": description }),
    );
    for (name, schema) in fields {
        properties.insert(name.into(), schema);
    }
    properties.insert(
        "set".into(),
        json!({
            "type": "object",
            "description": "Variables the call takes on arriving at this node: name -> a string, number or boolean.",
            "propertyNames": { "pattern": "^[A-Za-z][A-Za-z0-9_]{0,63}$", "not": { "enum": crate::flow::variables::BUILTINS } },
            "additionalProperties": { "type": ["string", "number", "boolean"] }
        }),
    );
    properties.insert(
        "allow".into(),
        json!({
            "type": "array",
            "items": { "enum": ["loop"] },
            "description": "\"loop\": callers coming back here as often as they choose is intended; watchdog-reachable does not count those returns"
        }),
    );
    let mut required: Vec<&str> = required.to_vec();
    required.insert(0, "type");
    json!({
        "if": { "properties": { "type": { "const": kind } }, "required": ["type"] },
        "then": {
            "properties": properties,
            "required": required,
            "additionalProperties": false
        }
    })
}

/// The fields of a `queue` node, which an `owner` node has too; `queue` says what its queue is.
fn queue_fields(queue: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("queue", string(queue)),
        ("priority", number("Higher is served first.", 0, 1000)),
        (
            "max_wait_s",
            number("The longest wait before on_timeout.", 600, 86_400),
        ),
        (
            "announce_position_every_s",
            number("Position and wait announcements; 0 = never.", 0, 86_400),
        ),
        (
            "offer_callback_after_s",
            number(
                "After this wait the caller may press 1 to be called back; 0 = never.",
                0,
                86_400,
            ),
        ),
        (
            "record",
            json!({
                "enum": ["off", "on", "on-demand"],
                "description": "Whether this line's callers are recorded once an agent answers, over the queue's own record of hotline.toml (on-demand: once she asks)."
            }),
        ),
        (
            "on_timeout",
            target("After max_wait_s, or at once when no agent is logged in."),
        ),
    ]
}

/// The schema, pretty-printed.
pub fn flow_schema() -> String {
    let retries = || number("The prompt plays at most 1 + max_retries times.", 2, 20);
    let timeout = || number("Seconds of silence after the prompt ends.", 5, 3600);
    let nodes = vec![
        node(
            "play",
            "Plays prompts, then goes on.",
            vec![
                ("prompt", prompts("What the caller hears.")),
                ("next", target("Where the call goes after the prompt.")),
            ],
            &["prompt"],
        ),
        node(
            "menu",
            "A prompt and a choice of keys.",
            vec![
                ("prompt", prompts("What the caller hears.")),
                (
                    "options",
                    json!({
                        "type": "object",
                        "description": "Key pressed -> node.",
                        "propertyNames": { "pattern": "^[0-9*#]$" },
                        "additionalProperties": target("Where this key goes.")
                    }),
                ),
                ("timeout_s", timeout()),
                ("max_retries", retries()),
                (
                    "invalid_prompt",
                    prompts("Played before a retry on a wrong key."),
                ),
                (
                    "on_invalid",
                    target("Where a wrong key goes instead of a retry."),
                ),
                (
                    "on_exhausted",
                    target("Where silence and wrong keys end up."),
                ),
            ],
            &["prompt", "on_exhausted"],
        ),
        node(
            "collect",
            "Reads digits into a call variable.",
            vec![
                ("prompt", prompts("What the caller hears.")),
                ("min_digits", number("Fewest digits accepted.", 1, 64)),
                ("max_digits", number("Most digits read.", 20, 64)),
                ("terminator", key("Ends the entry early.")),
                ("timeout_s", timeout()),
                ("max_retries", retries()),
                (
                    "variable",
                    string("Stored on the call and shown to the agent."),
                ),
                ("next", target("Where the call goes with the digits.")),
                (
                    "on_exhausted",
                    target("Where silence and short entries end up."),
                ),
            ],
            &["prompt", "on_exhausted"],
        ),
        node(
            "schedule",
            "Invisible to the caller: open or closed by a calendar.",
            vec![
                (
                    "calendar",
                    string("A [calendars.NAME] table of hotline.toml."),
                ),
                ("open", target("Where the call goes while open.")),
                ("closed", target("Where the call goes while closed.")),
            ],
            &["calendar"],
        ),
        node(
            "switch",
            "Invisible to the caller: on or off by a switch of hotline.toml, which supervisors flip.",
            vec![
                ("switch", string("A [switches.NAME] table of hotline.toml.")),
                ("on", target("Where the call goes while it is on.")),
                ("off", target("Where the call goes while it is off.")),
            ],
            &["switch"],
        ),
        node(
            "lookup",
            "Invisible to the caller: asks an endpoint of hotline.toml about the caller; its fields become the variables NAME.FIELD.",
            vec![
                (
                    "endpoint",
                    string("A [lookups.NAME] table of hotline.toml."),
                ),
                (
                    "send",
                    json!({
                        "type": "array",
                        "items": { "type": "string", "minLength": 1 },
                        "description": "Variables sent besides caller_number and line."
                    }),
                ),
                ("next", target("Where the call goes once it answered.")),
                (
                    "on_error",
                    target(
                        "Where the call goes on a timeout, an HTTP error or an answer that does not read.",
                    ),
                ),
            ],
            &["endpoint", "next", "on_error"],
        ),
        node(
            "branch",
            "Invisible to the caller: tests a call variable.",
            vec![
                (
                    "variable",
                    string(
                        "The variable tested: one a collect, `set` or lookup gives, or a built-in (caller_number, line, time, weekday).",
                    ),
                ),
                (
                    "cases",
                    json!({
                        "type": "object",
                        "description": "Case -> node. A case is an exact value, `prefix:TEXT`, `one_of:A,B,C`, or `range:LOW..HIGH` (LOW <= value < HIGH; numbers or HH:MM times; either end may be left out). An exact or listed value wins, then the longest prefix, then a range.",
                        "additionalProperties": target("Where this value goes.")
                    }),
                ),
                ("default", target("Where any other value goes.")),
            ],
            &["variable"],
        ),
        node(
            "queue",
            "A LIVE HUMAN: waits for an agent of the queue.",
            queue_fields("A [[queues]] name of hotline.toml."),
            &["queue", "on_timeout"],
        ),
        node(
            "owner",
            "A LIVE HUMAN: a returning caller's follow-up owner is rung first (the queue's ring time), then the caller waits at the head of its queue.",
            queue_fields(
                "The queue when the caller has no open follow-up, or its queue is not in hotline.toml.",
            ),
            &["queue", "on_timeout"],
        ),
        node(
            "returning",
            "Invisible to the caller: open when the caller has an open voicemail or callback request; sets follow_up.kind, follow_up.state, follow_up.owner, follow_up.at.",
            vec![
                (
                    "open",
                    target("Where a caller with an open follow-up goes."),
                ),
                ("none", target("Where any other caller goes.")),
            ],
            &[],
        ),
        node(
            "withdraw",
            "Invisible to the caller: closes the caller's open follow-up (they no longer need it), then goes on.",
            vec![("next", target("Where the call goes next."))],
            &[],
        ),
        node(
            "transfer",
            "A LIVE HUMAN elsewhere: dials a SIP URI.",
            vec![
                (
                    "to",
                    json!({ "type": "string", "pattern": "^sips?:", "description": "The SIP URI dialled." }),
                ),
                (
                    "ring_timeout_s",
                    number("How long it rings before on_failure.", 30, 600),
                ),
                ("on_failure", target("Declined, unanswered or unreachable.")),
            ],
            &["to", "on_failure"],
        ),
        node(
            "voicemail",
            "A FOLLOW-UP: records a message to a mailbox.",
            vec![
                ("mailbox", string("The mailbox (a folder under data/).")),
                ("prompt", prompts("The greeting before the beep.")),
                ("max_length_s", number("Longest message.", 120, 3600)),
            ],
            &["mailbox"],
        ),
        node(
            "callback",
            "A FOLLOW-UP: stores a callback, dialled when an agent of the queue is free.",
            vec![
                ("queue", string("A [[queues]] name of hotline.toml.")),
                ("prompt", prompts("The confirmation.")),
            ],
            &["queue"],
        ),
        node(
            "hangup",
            "Ends the call.",
            vec![("prompt", prompts("Said before hanging up."))],
            &[],
        ),
    ];
    let types: Vec<&str> = vec![
        "play",
        "menu",
        "collect",
        "schedule",
        "switch",
        "branch",
        "lookup",
        "queue",
        "owner",
        "returning",
        "withdraw",
        "transfer",
        "voicemail",
        "callback",
        "hangup",
    ];
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": ID,
        "title": "hotline flow",
        "description": "One phone line's flow: menus, prompts, queues. `hotline validate` proves every caller reaches a live human.",
        "type": "object",
        "required": ["flow", "nodes"],
        "additionalProperties": false,
        "properties": {
            "flow": {
                "type": "object",
                "required": ["entry"],
                "additionalProperties": false,
                "properties": {
                    "entry": target("The first node."),
                    "escape_digit": key("Pressed during any prompt of this flow, goes to escape_to."),
                    "escape_to": target("Must lead to a live human."),
                    "max_steps_to_human": {
                        "type": "integer", "minimum": 1, "maximum": 1000, "default": 5,
                        "description": "The bound the validator proves."
                    },
                    "max_seconds_to_human": number("Bound on IVR time before a live human is offered.", 120, 86_400),
                    "description": { "type": "string" },
                    "language": {
                        "enum": crate::flow::language::SPOKEN.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
                        "default": crate::flow::language::DEFAULT,
                        "description": "What a call starting here speaks; `set = { language = \"es\" }` changes it."
                    }
                }
            },
            "nodes": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": { "pattern": "^[A-Za-z0-9_-]+$" },
                "additionalProperties": {
                    "type": "object",
                    "required": ["type"],
                    "properties": { "type": { "enum": types } },
                    "allOf": nodes
                }
            }
        }
    });
    let mut out = serde_json::to_string_pretty(&schema).unwrap_or_default();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_type_has_its_fields_and_the_schema_is_json() {
        let s: Value = serde_json::from_str(&flow_schema()).unwrap();
        let all = &s["properties"]["nodes"]["additionalProperties"];
        let types = all["properties"]["type"]["enum"].as_array().unwrap();
        assert_eq!(types.len(), crate::flow::node::TYPES.len());
        let queue = all["allOf"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["if"]["properties"]["type"]["const"] == "queue")
            .unwrap();
        assert_eq!(
            queue["then"]["required"],
            json!(["type", "queue", "on_timeout"])
        );
        assert_eq!(
            queue["then"]["properties"]["max_wait_s"]["default"],
            json!(600)
        );
        // The languages: a flow's, and a text given per language.
        assert_eq!(
            s["properties"]["flow"]["properties"]["language"]["enum"],
            json!(["en", "es"])
        );
        let play = all["allOf"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["if"]["properties"]["type"]["const"] == "play")
            .unwrap();
        let say = &play["then"]["properties"]["prompt"]["oneOf"][1]["properties"]["say"];
        assert_eq!(
            say["oneOf"][1]["propertyNames"]["enum"],
            json!(["en", "es"])
        );
    }
}
