//! A returning caller, end to end: a caller leaves a voicemail, alice takes it on her desk,
//! the same number calls again, is recognised and presses 1: alice's phone rings first
//! (before bob, free longer). With alice not ready, the caller waits ahead of earlier callers.
//! Pressing 2 ("I no longer need it") closes the item with that reason, on the follow-ups.

use super::agents::{
    AGENT_RINGS_ANY, AgentPorts, answers_until_bye, eventually, finish, http, json, register_agent,
    sipp_at,
};
use super::phones::{desk_post, login_cookie};
use super::*;

const AGENTS: &str = r#"
[[agents]]
id = "alice"
password = "alice-pw"
skills = { support = 1 }

[[agents]]
id = "bob"
password = "bob-pw"
skills = { support = 1 }

[[queues]]
name = "support"
skills = ["support"]
ring_timeout_s = 8
wrap_up_s = 0
"#;

const LINE: &str = r#"
[flow]
entry = "returning"
escape_digit = "0"
escape_to = "agents"

[nodes.returning]
type = "returning"
open = "known"
none = "menu"

[nodes.menu]
type = "menu"
prompt = "short"
options = { "1" = "vm" }
timeout_s = 1
max_retries = 0
on_exhausted = "agents"

[nodes.vm]
type = "voicemail"
mailbox = "support"
prompt = "short"
max_length_s = 10

[nodes.known]
type = "menu"
prompt = "short"
options = { "1" = "owner", "2" = "withdraw" }
timeout_s = 1
max_retries = 0
on_exhausted = "owner"

[nodes.owner]
type = "owner"
queue = "support"
max_wait_s = 30
on_timeout = "messages"

[nodes.withdraw]
type = "withdraw"
next = "bye"

[nodes.bye]
type = "hangup"
prompt = "short"

[nodes.agents]
type = "queue"
queue = "support"
max_wait_s = 30
on_timeout = "messages"

[nodes.messages]
type = "voicemail"
mailbox = "support"
prompt = "short"
max_length_s = 10
"#;

/// A caller from `number` who presses `key` after the first prompt and stays `ms`, then
/// hangs up.
fn caller(number: &str, key_at_menu: char, ms: u32) -> String {
    caller_ending(number, key_at_menu, ms, CALLER_BYE)
}

fn caller_ending(number: &str, key_at_menu: char, ms: u32, end: &str) -> String {
    call(
        "PCMU",
        None,
        &[pause(600), key(key_at_menu), pause(ms)],
        end,
    )
    .replace(
        "sip:caller@[local_ip]:[local_port]>;tag",
        &format!("sip:{number}@[local_ip]:[local_port]>;tag"),
    )
}

fn follow_up(server: &Server) -> Value {
    let (status, body) = http(server, "GET", "/api/followups", Some("test-token"), "");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v.as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn a_returning_caller_is_put_through_to_whoever_has_their_message() {
    let mut server = Server::start_full("answer_after_ms = 0", AGENTS);
    server.kill();
    std::fs::write(server.path().join("flows/main.toml"), LINE).unwrap();
    server.spawn();
    const ANA: &str = "+34600111222";

    // 1. Nobody is in: Ana leaves a message.
    let r = server.sipp(
        "leave",
        &call(
            "PCMU",
            None,
            &[pause(600), key('1'), pause(800), speak(), pause(2000)],
            CALLER_BYE,
        )
        .replace(
            "sip:caller@[local_ip]:[local_port]>;tag",
            &format!("sip:{ANA}@[local_ip]:[local_port]>;tag"),
        ),
        "main",
        &[],
    );
    assert!(r.ok, "{}", r.text);
    let mut item = Value::Null;
    eventually("her message is a follow-up", || {
        item = follow_up(&server);
        item["kind"] == "voicemail"
    });
    // 2. Alice takes it on her desk.
    let cookie = login_cookie(&server, "alice", "alice-pw");
    let (status, body) = desk_post(
        &server,
        &cookie,
        &format!("/api/followups/{}", item["id"]),
        r#"{"action": "take"}"#,
    );
    assert_eq!(status, 200, "{body}");
    // 3. Bob's phone registers first (free longest), then alice's.
    let ports = AgentPorts::take();
    let bob = sipp_at(
        &server,
        "bob_phone",
        &scenario(&[
            AGENT_RINGS_ANY.to_string(),
            answers_until_bye(ports.listen(1)),
        ]),
        ports.phone(1),
        ports.media(1),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 1, "bob", "bob-pw", "200");
    std::thread::sleep(Duration::from_millis(1200));
    let alice = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[
            AGENT_RINGS_ANY.to_string(),
            answers_until_bye(ports.listen(0)),
        ]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    // 4. Ana calls again, is recognised, presses 1: alice's phone rings first.
    let r = server.sipp("again", &caller(ANA, '1', 5000), "main", &[]);
    assert!(r.ok, "{}", r.text);
    let again = super::agents::ended_record(&server, 2);
    let path = path_of(&again);
    assert_eq!(
        &path[..4],
        ["main.returning", "open", "main.known", "1"],
        "{again}"
    );
    assert_eq!(again["agent"], "alice", "{again}\n{}", server.log());
    assert_eq!(again["variables"]["follow_up.owner"], "alice");
    let r = finish(&server, "alice_phone", alice);
    assert!(r.ok, "{}", r.text);
    assert!(
        server
            .log()
            .contains("a returning caller asks for whoever has their follow-up")
    );

    // 5. Alice not ready, bob busy with nobody yet: a stranger waits, then Ana comes back;
    // bob, once free, gets Ana first.
    let (status, _) = http(
        &server,
        "POST",
        "/api/agents/alice/state",
        Some("test-token"),
        r#"{"state": "not-ready"}"#,
    );
    assert_eq!(status, 200);
    let (status, _) = http(
        &server,
        "POST",
        "/api/agents/bob/state",
        Some("test-token"),
        r#"{"state": "not-ready"}"#,
    );
    assert_eq!(status, 200);
    let stranger_file = server.path().join("stranger.xml");
    std::fs::write(&stranger_file, caller("+34911000000", '9', 8000)).unwrap();
    let stranger = sipp_command(&server, &stranger_file, "main", &[], 0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let ana_file = server.path().join("ana3.xml");
    std::fs::write(&ana_file, caller(ANA, '1', 6000)).unwrap();
    let ana = sipp_command(&server, &ana_file, "main", &[], 4)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    let (status, _) = http(
        &server,
        "POST",
        "/api/agents/bob/state",
        Some("test-token"),
        r#"{"state": "available"}"#,
    );
    assert_eq!(status, 200);
    let ana = ana.wait_with_output().unwrap();
    assert!(ana.status.success());
    let _ = stranger.wait_with_output();
    let calls = json(&server, "/api/calls?limit=10");
    let ana_call = calls
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["from"].as_str().unwrap_or("").contains(ANA) && c["agent"] == "bob")
        .unwrap_or_else(|| panic!("Ana was not bob's first: {calls}\n{}", server.log()));
    assert_eq!(ana_call["variables"]["follow_up.owner"], "alice");
    let r = finish(&server, "bob_phone", bob);
    assert!(r.ok, "{}", r.text);

    // 6. Ana no longer needs it: closed with that reason, on the follow-ups.
    // (The line says goodbye and hangs up: the goodbye she chose.)
    let r = server.sipp("done", &caller_ending(ANA, '2', 0, SERVER_BYE), "main", &[]);
    assert!(r.ok, "{}", r.text);
    eventually("her follow-up is closed at her word", || {
        let f = follow_up(&server);
        f["state"] == "done" && f["reason"] == "no longer needed, said the caller"
    });
    // Then she is a stranger again.
    let r = server.sipp("stranger_again", &caller(ANA, '9', 1500), "main", &[]);
    assert!(r.ok, "{}", r.text);
    let last = super::agents::ended_record(&server, 6);
    assert_eq!(&path_of(&last)[..2], ["main.returning", "none"], "{last}");
}
