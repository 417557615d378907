//! A `[switches]` switch flipped through the API changes the next call's way: real calls
//! before and after, the flip kept through a restart, and refused without the token.

use super::agents::{http, json};
use super::*;

const LINE: &str = r#"
[flow]
entry = "outage"
escape_digit = "0"
escape_to = "normal"

[nodes.outage]
type = "switch"
switch = "outage"
on = "told"
off = "normal"

[nodes.told]
type = "queue"
queue = "support"
max_wait_s = 1
on_timeout = "messages"

[nodes.normal]
type = "queue"
queue = "support"
max_wait_s = 1
on_timeout = "messages"

[nodes.messages]
type = "voicemail"
mailbox = "support"
max_length_s = 5
"#;

/// One call; the first three places of its record's path once it has ended.
fn way(server: &Server, n: usize) -> Vec<String> {
    let xml = call("PCMU", None, &[pause(1000)], CALLER_BYE);
    let r = server.sipp(&format!("sw{n}"), &xml, "main", &[]);
    assert!(r.ok, "{}", r.text);
    path_of(&super::agents::ended_record(server, n))
        .into_iter()
        .take(3)
        .collect()
}

#[test]
fn an_outage_switch_flipped_by_the_api_changes_the_next_calls_way() {
    let mut server = Server::start_full(
        "answer_after_ms = 0",
        "[[queues]]\nname = \"support\"\nskills = [\"support\"]\n\n[switches.outage]\ndescription = \"storm\"\n",
    );
    server.kill();
    std::fs::write(server.path().join("flows/main.toml"), LINE).unwrap();
    server.spawn();
    assert_eq!(way(&server, 1), ["main.outage", "off", "main.normal"]);
    // Without the token: refused, and nothing changes.
    let (status, _) = http(
        &server,
        "POST",
        "/api/switches/outage",
        None,
        r#"{"on": true}"#,
    );
    assert_eq!(status, 401);
    let (status, body) = http(
        &server,
        "POST",
        "/api/switches/outage",
        Some("test-token"),
        r#"{"on": true, "for_s": 3600}"#,
    );
    assert_eq!(status, 200, "{body}");
    let row: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(row["on"], true);
    assert_eq!(row["flip"]["by"], "api");
    assert!(row["flip"]["until"].is_string(), "{row}");
    assert!(server.log().contains("switch flipped"), "{}", server.log());
    assert_eq!(way(&server, 2), ["main.outage", "on", "main.told"]);
    // A bad body or an unknown switch is refused with why.
    let (status, body) = http(
        &server,
        "POST",
        "/api/switches/outage",
        Some("test-token"),
        r#"{"on": true, "for_s": 0}"#,
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = http(
        &server,
        "POST",
        "/api/switches/storm",
        Some("test-token"),
        r#"{"on": true}"#,
    );
    assert_eq!(status, 404);
    // The flip outlives a restart.
    server.crash_and_restart();
    assert_eq!(json(&server, "/api/switches")[0]["on"], true);
    assert_eq!(way(&server, 3), ["main.outage", "on", "main.told"]);
    let (status, _) = http(
        &server,
        "POST",
        "/api/switches/outage",
        Some("test-token"),
        r#"{"on": false}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(way(&server, 4), ["main.outage", "off", "main.normal"]);
}
