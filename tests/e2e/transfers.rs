//! Agents passing callers on: a SIPp agent phone sends REFER (a blind transfer) to another
//! queue; the caller waits there and the next agent's phone rings with the caller's context
//! and who passed them on; the call record says so.

use std::time::Duration;

use super::agents::{
    AgentPorts, Listener, agent_answers, agent_hangs_up_after, answers_until_bye, finish, json,
    matched_speech, pcap_audio, refuses, register_agent, sipp_at,
};
use super::linphone::Linphone;
use super::*;

const TWO_QUEUES: &str = r#"
[[agents]]
id = "alice"
password = "alice-pw"
skills = { support = 5 }

[[agents]]
id = "bob"
password = "bob-pw"
skills = { billing = 5 }

[[queues]]
name = "support"
skills = ["support"]
ring_timeout_s = 5
wrap_up_s = 0

[[queues]]
name = "billing"
skills = ["billing"]
ring_timeout_s = 5
wrap_up_s = 0
"#;

/// The agent's phone answers, then after a moment transfers the caller to `target` by
/// REFER; it expects the 202 and a NOTIFY whose sipfrag says `outcome`, then hangs up —
/// or, when the transfer failed, stays on the call until the other side hangs up.
fn answers_then_refers(rtp: u16, target: &str, outcome: &str) -> String {
    answers_then_refers_and_waits(rtp, target, false, outcome)
}

/// As `answers_then_refers`; with `trying`, a NOTIFY "100 Trying" comes first (another
/// agent rings).
fn answers_then_refers_and_waits(rtp: u16, target: &str, trying: bool, outcome: &str) -> String {
    let trying = if trying {
        r#"  <recv request="NOTIFY">
    <action>
      <ereg regexp="SIP/2.0 100 Trying" search_in="body" check_it="true" assign_to="trying"/>
      <ereg regexp="active" search_in="hdr" header="Subscription-State:" check_it="true" assign_to="active"/>
    </action>
  </recv>
  <Reference variables="trying,active"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
"#
    } else {
        ""
    };
    let end = if outcome.starts_with('2') {
        r#"  <send retrans="500">
    <![CDATA[
      BYE sip:hotline@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$to]
      To: [$from]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
"#
    } else {
        r#"  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
"#
    };
    format!(
        r#"  <recv request="INVITE" crlf="true"/>
{answer}  <pause milliseconds="1500"/>
  <send retrans="500">
    <![CDATA[
      REFER sip:hotline@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$to]
      To: [$from]
      Call-ID: [call_id]
      CSeq: 1 REFER
      Contact: <sip:agent@[local_ip]:[local_port]>
      Refer-To: <sip:{target}@[remote_ip]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="202"/>
{trying}  <recv request="NOTIFY">
    <action>
      <ereg regexp="SIP/2.0 {outcome}" search_in="body" check_it="true" assign_to="frag"/>
      <ereg regexp="refer" search_in="hdr" header="Event:" check_it="true" assign_to="event"/>
    </action>
  </recv>
  <Reference variables="frag,event"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
{end}"#,
        answer = agent_answers(rtp),
    )
}

/// A caller on the agent line types 7 (their account), talks to whoever has them for `ms`,
/// then hangs up; the call must go through.
fn caller_talks(server: &Server, ports: &AgentPorts, ms: u32) {
    let caller = server.sipp(
        "caller",
        &call(
            "PCMU",
            Some(ports.listen(1)),
            &[pause(500), key('7'), pause(ms)],
            CALLER_BYE,
        ),
        "agent",
        &[],
    );
    assert!(caller.ok, "{}", caller.text);
}

/// Bob's phone rings for a caller Alice passed on: the INVITE says so, with what the caller
/// told the line.
const RINGS_AFTER_TRANSFER: &str = r#"  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="X-Hotline-Transferred-By: alice" search_in="msg" check_it="true" assign_to="by"/>
      <ereg regexp="X-Hotline-Queue: billing" search_in="msg" check_it="true" assign_to="queue"/>
      <ereg regexp="X-Hotline-Var-account: 7" search_in="msg" check_it="true" assign_to="account"/>
    </action>
  </recv>
  <Reference variables="by,queue,account"/>
"#;

/// Alice answers a caller and passes them on to billing from her phone; Bob's phone rings
/// with the caller's context and who passed them on, answers, and hears the caller; the
/// record shows both agents and the transfer.
#[test]
fn an_agent_passes_a_caller_on_to_another_queue_by_refer() {
    let server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", TWO_QUEUES);
    let ports = AgentPorts::take();
    let alice_hears = Listener::bind(ports.listen(0), true);
    let bob_hears = Listener::bind(ports.listen(2), true);
    let caller_hears = Listener::bind(ports.listen(1), true);
    let alice = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[answers_then_refers(ports.listen(0), "billing", "200 OK")]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let bob = sipp_at(
        &server,
        "bob_phone",
        &scenario(&[
            RINGS_AFTER_TRANSFER.to_string(),
            answers_until_bye(ports.listen(2)),
        ]),
        ports.phone(1),
        ports.media(1),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    register_agent(&server, &ports, 1, "bob", "bob-pw", "200");
    caller_talks(&server, &ports, 9000);
    let alice = finish(&server, "alice_phone", alice);
    assert!(alice.ok, "{}", alice.text);
    let bob = finish(&server, "bob_phone", bob);
    assert!(bob.ok, "{}", bob.text);
    std::thread::sleep(Duration::from_millis(200));
    drop((alice_hears.stop(), caller_hears.stop()));
    let said = pcap_audio();
    let heard: Vec<u8> = bob_hears.stop().into_iter().flat_map(|p| p.1).collect();
    assert!(
        matched_speech(&heard, &said) >= 8000 * 2,
        "Bob hears the caller\n{}",
        server.log()
    );
    let calls = json(&server, "/api/calls?limit=1");
    let record = &calls[0];
    assert_eq!(record["agent"], "bob", "{record}");
    assert_eq!(record["transfers"][0]["by"], "alice", "{record}");
    assert_eq!(record["transfers"][0]["to"], "queue:billing", "{record}");
    assert_eq!(record["end_reason"], "caller", "{record}");
}

/// A transfer to a queue that does not exist is refused (NOTIFY 404): the caller stays
/// with Alice, who is still on the call when the caller hangs up.
#[test]
fn a_transfer_to_no_such_queue_leaves_the_caller_with_the_agent() {
    let server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", TWO_QUEUES);
    let ports = AgentPorts::take();
    let alice_hears = Listener::bind(ports.listen(0), true);
    let caller_hears = Listener::bind(ports.listen(1), true);
    let alice = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[answers_then_refers(
            ports.listen(0),
            "nowhere",
            "404 Not Found",
        )]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    caller_talks(&server, &ports, 6000);
    let alice = finish(&server, "alice_phone", alice);
    assert!(alice.ok, "{}", alice.text);
    std::thread::sleep(Duration::from_millis(200));
    drop(caller_hears.stop());
    let said = pcap_audio();
    let heard: Vec<u8> = alice_hears.stop().into_iter().flat_map(|p| p.1).collect();
    assert!(
        matched_speech(&heard, &said) >= 8000 * 4,
        "Alice still hears the caller after the refused transfer\n{}",
        server.log()
    );
    let calls = json(&server, "/api/calls?limit=1");
    assert_eq!(calls[0]["agent"], "alice");
    assert_eq!(calls[0]["transfers"], serde_json::json!([]));
}

/// Bob's phone rings for a caller Alice passes on to him by name.
const RINGS_FROM_ALICE: &str = r#"  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="X-Hotline-Transferred-By: alice" search_in="msg" check_it="true" assign_to="by"/>
      <ereg regexp="X-Hotline-Var-account: 7" search_in="msg" check_it="true" assign_to="account"/>
    </action>
  </recv>
  <Reference variables="by,account"/>
"#;

/// Alice passes her caller on to Bob by name: Bob's phone rings with the caller's context
/// while Alice hears "100 Trying", he answers and hears the caller, Alice is told "200" and
/// hangs up; the record names Bob and the transfer to him.
#[test]
fn an_agent_passes_a_caller_on_to_another_agent_by_name() {
    let server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", TWO_QUEUES);
    let ports = AgentPorts::take();
    let alice_hears = Listener::bind(ports.listen(0), true);
    let bob_hears = Listener::bind(ports.listen(2), true);
    let caller_hears = Listener::bind(ports.listen(1), true);
    let alice = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[answers_then_refers_and_waits(
            ports.listen(0),
            "Bob",
            true,
            "200 OK",
        )]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let bob = sipp_at(
        &server,
        "bob_phone",
        &scenario(&[
            RINGS_FROM_ALICE.to_string(),
            answers_until_bye(ports.listen(2)),
        ]),
        ports.phone(1),
        ports.media(1),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    register_agent(&server, &ports, 1, "bob", "bob-pw", "200");
    caller_talks(&server, &ports, 9000);
    let alice = finish(&server, "alice_phone", alice);
    assert!(alice.ok, "{}", alice.text);
    let bob = finish(&server, "bob_phone", bob);
    assert!(bob.ok, "{}", bob.text);
    std::thread::sleep(Duration::from_millis(200));
    drop((alice_hears.stop(), caller_hears.stop()));
    let said = pcap_audio();
    let heard: Vec<u8> = bob_hears.stop().into_iter().flat_map(|p| p.1).collect();
    assert!(
        matched_speech(&heard, &said) >= 8000 * 2,
        "Bob hears the caller\n{}",
        server.log()
    );
    let calls = json(&server, "/api/calls?limit=1");
    let record = &calls[0];
    assert_eq!(record["agent"], "bob", "{record}");
    assert_eq!(record["transfers"][0]["by"], "alice", "{record}");
    assert_eq!(record["transfers"][0]["to"], "agent:bob", "{record}");
    assert_eq!(record["end_reason"], "caller", "{record}");
    // The call's quality names both agents' legs, Alice's first, each with what it sent.
    let agents = record["quality"]["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2, "{record}");
    assert!(
        agents.iter().all(|a| a["received"].as_u64() > Some(20)),
        "{record}"
    );
}

/// Bob's phone is busy when Alice passes her caller to him: Alice is told "480" and has
/// the caller again (she hears them after the failed transfer) until they hang up.
#[test]
fn a_transfer_the_other_agent_does_not_take_brings_the_caller_back() {
    let server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", TWO_QUEUES);
    let ports = AgentPorts::take();
    let alice_hears = Listener::bind(ports.listen(0), true);
    let caller_hears = Listener::bind(ports.listen(1), true);
    let alice = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[answers_then_refers_and_waits(
            ports.listen(0),
            "bob",
            true,
            "480 Temporarily Unavailable",
        )]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let bob = sipp_at(
        &server,
        "bob_phone",
        &scenario(&[RINGS_FROM_ALICE.to_string(), refuses("486 Busy Here")]),
        ports.phone(1),
        ports.media(1),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    register_agent(&server, &ports, 1, "bob", "bob-pw", "200");
    caller_talks(&server, &ports, 9000);
    let alice = finish(&server, "alice_phone", alice);
    assert!(alice.ok, "{}", alice.text);
    let bob = finish(&server, "bob_phone", bob);
    assert!(bob.ok, "{}", bob.text);
    std::thread::sleep(Duration::from_millis(200));
    drop(caller_hears.stop());
    let said = pcap_audio();
    // Alice passed the caller on 1.5 s after answering: hearing them for 4 s or more means
    // she had them back.
    let heard: Vec<u8> = alice_hears.stop().into_iter().flat_map(|p| p.1).collect();
    assert!(
        matched_speech(&heard, &said) >= 8000 * 4,
        "Alice has the caller back after Bob's phone was busy\n{}",
        server.log()
    );
    let calls = json(&server, "/api/calls?limit=1");
    let record = &calls[0];
    assert_eq!(record["agent"], "alice", "{record}");
    assert_eq!(record["transfers"][0]["to"], "agent:bob", "{record}");
    assert_eq!(record["end_reason"], "caller", "{record}");
}

/// Alice and Bob, and a carrier's trunk at `port` that takes Spanish numbers.
fn with_gateway(port: u16) -> String {
    format!(
        "{TWO_QUEUES}\n[[trunks]]\nname = \"carrier\"\nproxy = \"sip:127.0.0.1:{port}\"\nnumbers = [\"+34\"]\ncaller_id = \"+34910000000\"\n"
    )
}

/// The carrier is asked for the number Alice passed her caller on to.
const GATEWAY_RINGS: &str = r#"  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="INVITE sip:\+34600111222@127.0.0.1(:[0-9]+)?;user=phone SIP/2.0" search_in="msg" check_it="true" assign_to="number"/>
    </action>
  </recv>
  <Reference variables="number"/>
"#;

/// Alice passes her caller on to a number outside from her phone: the gateway the dial
/// policy names is asked for it, answers and hears the caller; Alice hears "100 Trying",
/// then "200" and hangs up; the record names the number.
#[test]
fn an_agent_passes_a_caller_on_to_an_allowed_number_outside() {
    let ports = AgentPorts::take();
    let server = Server::start_full(
        "answer_after_ms = 100\nshutdown_grace_s = 2",
        &with_gateway(ports.phone(1)),
    );
    let alice_hears = Listener::bind(ports.listen(0), true);
    let outside_hears = Listener::bind(ports.listen(2), true);
    let caller_hears = Listener::bind(ports.listen(1), true);
    let alice = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[answers_then_refers_and_waits(
            ports.listen(0),
            "+34600111222",
            true,
            "200 OK",
        )]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let gateway = sipp_at(
        &server,
        "gateway",
        &scenario(&[
            GATEWAY_RINGS.to_string(),
            answers_until_bye(ports.listen(2)),
        ]),
        ports.phone(1),
        ports.media(1),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    caller_talks(&server, &ports, 9000);
    let alice = finish(&server, "alice_phone", alice);
    assert!(alice.ok, "{}", alice.text);
    let gateway = finish(&server, "gateway", gateway);
    assert!(gateway.ok, "{}\n{}", gateway.text, server.log());
    std::thread::sleep(Duration::from_millis(200));
    drop((alice_hears.stop(), caller_hears.stop()));
    let said = pcap_audio();
    let heard: Vec<u8> = outside_hears.stop().into_iter().flat_map(|p| p.1).collect();
    assert!(
        matched_speech(&heard, &said) >= 8000 * 2,
        "the number outside hears the caller\n{}",
        server.log()
    );
    let calls = json(&server, "/api/calls?limit=1");
    let record = &calls[0];
    assert_eq!(record["transfers"][0]["by"], "alice", "{record}");
    assert_eq!(record["transfers"][0]["to"], "tel:+34600111222", "{record}");
    assert_eq!(record["end_reason"], "caller", "{record}");
    let agents = json(&server, "/api/agents");
    assert_ne!(agents[0]["state"], "busy", "Alice is free again: {agents}");
}

/// The number outside is busy: Alice hears "486" and has her caller back until they hang
/// up. A number the dial policy does not allow is never dialled: "403", and the caller
/// stays with her.
#[test]
fn a_busy_or_forbidden_number_outside_leaves_the_caller_with_the_agent() {
    for (number, status, dialled) in [
        ("+34600111222", "486 Busy Here", true),
        ("+44200000000", "403 Forbidden", false),
    ] {
        let ports = AgentPorts::take();
        let server = Server::start_full(
            "answer_after_ms = 100\nshutdown_grace_s = 2",
            &with_gateway(ports.phone(1)),
        );
        let alice_hears = Listener::bind(ports.listen(0), true);
        let caller_hears = Listener::bind(ports.listen(1), true);
        let alice = sipp_at(
            &server,
            "alice_phone",
            &scenario(&[answers_then_refers_and_waits(
                ports.listen(0),
                number,
                dialled,
                status,
            )]),
            ports.phone(0),
            ports.media(0),
            &["-m", "1"],
        );
        let gateway = dialled.then(|| {
            sipp_at(
                &server,
                "gateway",
                &scenario(&[GATEWAY_RINGS.to_string(), refuses("486 Busy Here")]),
                ports.phone(1),
                ports.media(1),
                &["-m", "1"],
            )
        });
        register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
        caller_talks(&server, &ports, 8000);
        let alice = finish(&server, "alice_phone", alice);
        assert!(alice.ok, "{status}: {}\n{}", alice.text, server.log());
        if let Some(gateway) = gateway {
            let gateway = finish(&server, "gateway", gateway);
            assert!(gateway.ok, "{}", gateway.text);
        }
        std::thread::sleep(Duration::from_millis(200));
        drop(caller_hears.stop());
        let said = pcap_audio();
        let heard: Vec<u8> = alice_hears.stop().into_iter().flat_map(|p| p.1).collect();
        assert!(
            matched_speech(&heard, &said) >= 8000 * 4,
            "{status}: Alice has the caller back\n{}",
            server.log()
        );
        let calls = json(&server, "/api/calls?limit=1");
        let record = &calls[0];
        assert_eq!(record["agent"], "alice", "{record}");
        assert_eq!(record["end_reason"], "caller", "{record}");
        if !dialled {
            assert_eq!(record["transfers"], serde_json::json!([]), "{record}");
            assert!(
                server
                    .log()
                    .contains("not a number any trunk's numbers allow"),
                "{}",
                server.log()
            );
        }
    }
}

/// Bob's phone rings for Alice's call about her caller: it shows her, and carries the
/// caller's context.
const CONSULTED_BY_ALICE: &str = r#"  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="From: [^\r\n]*sip:alice@" search_in="msg" check_it="true" assign_to="from"/>
      <ereg regexp="X-Hotline-Transferred-By: alice" search_in="msg" check_it="true" assign_to="by"/>
      <ereg regexp="X-Hotline-Var-account: 7" search_in="msg" check_it="true" assign_to="account"/>
    </action>
  </recv>
  <Reference variables="from,by,account"/>
"#;

fn agent_state(server: &Server, id: &str) -> String {
    let agents = json(server, "/api/agents");
    let agent = agents.as_array().unwrap().iter().find(|a| a["id"] == id);
    agent.map_or_else(String::new, |a| {
        a["state"].as_str().unwrap_or("").to_string()
    })
}

/// How Alice ends her talk with Bob: her phone's transfer (REFER with Replaces), or hanging
/// up on the caller while Bob is on the line (hotline then puts the caller through to him).
#[derive(Clone, Copy)]
enum Handover {
    Transfer,
    HangUp,
}

/// An attended transfer from a real phone: Alice (Linphone) answers a caller, calls `dial`
/// from her phone — Bob by name, the billing queue (Bob serves it), or a number outside
/// (through the carrier the dial policy names) — and her phone puts the caller on hold; she
/// talks to whoever answers while the caller is still hers, then hands the caller over.
/// They have the caller and hear them; hotline ends Alice's call to them; the record shows
/// the transfer and who made it.
fn consult_then_hand_over(how: Handover, dial: &str) {
    let ports = AgentPorts::take();
    let outside = dial.starts_with('+');
    let config = if outside {
        with_gateway(ports.phone(1))
    } else {
        TWO_QUEUES.to_string()
    };
    let server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", &config);
    let far_hears = Listener::bind(ports.listen(2), true);
    let caller_hears = Listener::bind(ports.listen(1), true);
    let rings = if outside {
        GATEWAY_RINGS
    } else {
        CONSULTED_BY_ALICE
    };
    let far = sipp_at(
        &server,
        "far_phone",
        &scenario(&[rings.to_string(), answers_until_bye(ports.listen(2))]),
        ports.phone(1),
        ports.media(1),
        &["-m", "1"],
    );
    let (alice, registrar) = alice_on_linphone(&server, &ports);
    if !outside {
        register_agent(&server, &ports, 1, "bob", "bob-pw", "200");
    }
    std::thread::scope(|s| {
        let caller = s.spawn(|| caller_talks(&server, &ports, 14_000));
        // Her phone answers the caller by itself; then she calls about them.
        alice.wait_for("call-status 1", "StreamsRunning");
        let placed = alice.command(&format!("call sip:{dial}@{registrar}"));
        assert!(placed.contains("Id: 2"), "{placed}");
        alice.wait_for("call-status 2", "StreamsRunning");
        // They talk; the caller is still hers, and she is busy (Bob too).
        if !outside {
            assert_eq!(agent_state(&server, "bob"), "busy", "{}", server.log());
        }
        assert_eq!(agent_state(&server, "alice"), "busy");
        std::thread::sleep(Duration::from_millis(1000));
        let done = match how {
            // Told it worked, her phone hangs up the caller's call itself.
            Handover::Transfer => alice.command("call-transfer 1 2"),
            Handover::HangUp => alice.command("terminate 1"),
        };
        assert!(done.contains("Status: Ok"), "{done}");
        alice.wait_for("call-status 1", "No call with such id");
        // Hotline hangs up her call to them.
        alice.wait_for("call-status 2", "No call with such id");
        assert_eq!(agent_state(&server, "alice"), "available");
        if !outside {
            assert_eq!(agent_state(&server, "bob"), "busy");
        }
        caller.join().unwrap();
    });
    let far = finish(&server, "far_phone", far);
    assert!(far.ok, "{}\n{}", far.text, alice.log());
    std::thread::sleep(Duration::from_millis(200));
    drop(caller_hears.stop());
    let said = pcap_audio();
    let heard: Vec<u8> = far_hears.stop().into_iter().flat_map(|p| p.1).collect();
    assert!(
        matched_speech(&heard, &said) >= 8000 * 2,
        "{dial} hears the caller\n{}",
        server.log()
    );
    let calls = json(&server, "/api/calls?limit=5");
    assert_eq!(
        calls.as_array().unwrap().len(),
        1,
        "no record for the agents' own call"
    );
    let record = &calls[0];
    let (agent, to) = if outside {
        ("alice", "tel:+34600111222")
    } else {
        ("bob", "agent:bob")
    };
    assert_eq!(record["agent"], agent, "{record}");
    assert_eq!(record["transfers"][0]["by"], "alice", "{record}");
    assert_eq!(record["transfers"][0]["to"], to, "{record}");
    assert_eq!(record["end_reason"], "caller", "{record}");
    if !outside {
        assert_eq!(agent_state(&server, "bob"), "available");
    }
}

#[test]
fn an_agent_consults_a_colleague_then_transfers_the_caller_to_him() {
    consult_then_hand_over(Handover::Transfer, "bob");
}

#[test]
fn an_agent_hanging_up_on_her_caller_while_her_colleague_is_on_the_line_hands_them_over() {
    consult_then_hand_over(Handover::HangUp, "bob");
}

#[test]
fn an_agent_consults_a_queue_then_transfers_the_caller_to_whoever_answered() {
    consult_then_hand_over(Handover::Transfer, "billing");
}

#[test]
fn an_agent_consults_a_number_outside_then_transfers_the_caller_to_it() {
    consult_then_hand_over(Handover::Transfer, "+34600111222");
}

/// Bob hangs up on Alice's call about her caller: her call to him ends, the caller is still
/// hers (she takes them off hold and they talk until they hang up), Bob is free; the record
/// shows no transfer.
#[test]
fn a_consultation_the_colleague_hangs_up_leaves_the_caller_with_the_agent() {
    let server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", TWO_QUEUES);
    let ports = AgentPorts::take();
    let _bob_hears = Listener::bind(ports.listen(2), true);
    let caller_hears = Listener::bind(ports.listen(1), true);
    let bob = sipp_at(
        &server,
        "bob_phone",
        &scenario(&[
            CONSULTED_BY_ALICE.to_string(),
            agent_answers(ports.listen(2)),
            agent_hangs_up_after(1500),
        ]),
        ports.phone(1),
        ports.media(1),
        &["-m", "1"],
    );
    let (alice, registrar) = alice_on_linphone(&server, &ports);
    register_agent(&server, &ports, 1, "bob", "bob-pw", "200");
    std::thread::scope(|s| {
        let caller = s.spawn(|| caller_talks(&server, &ports, 12_000));
        alice.wait_for("call-status 1", "StreamsRunning");
        let placed = alice.command(&format!("call sip:bob@{registrar}"));
        assert!(placed.contains("Id: 2"), "{placed}");
        // He answers, then hangs up: her call to him ends, the caller's is still there.
        alice.wait_for("call-status 2", "No call with such id");
        let status = alice.command("call-status 1");
        assert!(status.contains("Paused"), "{status}");
        assert_eq!(agent_state(&server, "bob"), "available");
        assert_eq!(agent_state(&server, "alice"), "busy");
        let resumed = alice.command("call-resume 1");
        assert!(resumed.contains("Status: Ok"), "{resumed}");
        alice.wait_for("call-status 1", "StreamsRunning");
        caller.join().unwrap();
        // The caller hung up on her.
        alice.wait_for("call-status 1", "No call with such id");
    });
    let bob = finish(&server, "bob_phone", bob);
    assert!(bob.ok, "{}", bob.text);
    drop(caller_hears.stop());
    let calls = json(&server, "/api/calls?limit=5");
    let record = &calls[0];
    assert_eq!(calls.as_array().unwrap().len(), 1, "{calls}");
    assert_eq!(record["agent"], "alice", "{record}");
    assert_eq!(record["transfers"], serde_json::json!([]), "{record}");
    assert_eq!(record["end_reason"], "caller", "{record}");
    assert_eq!(agent_state(&server, "alice"), "available");
}

/// A blind transfer from a real phone's transfer key: Alice (Linphone) passes her caller on
/// to Bob without talking to him first; his phone rings with the caller's context, he
/// answers and hears the caller; her phone, told it worked, hangs up.
#[test]
fn an_agent_passes_a_caller_on_from_linphone_without_talking_first() {
    let server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", TWO_QUEUES);
    let ports = AgentPorts::take();
    let bob_hears = Listener::bind(ports.listen(2), true);
    let caller_hears = Listener::bind(ports.listen(1), true);
    let bob = sipp_at(
        &server,
        "bob_phone",
        &scenario(&[
            RINGS_FROM_ALICE.to_string(),
            answers_until_bye(ports.listen(2)),
        ]),
        ports.phone(1),
        ports.media(1),
        &["-m", "1"],
    );
    let (alice, registrar) = alice_on_linphone(&server, &ports);
    register_agent(&server, &ports, 1, "bob", "bob-pw", "200");
    std::thread::scope(|s| {
        let caller = s.spawn(|| caller_talks(&server, &ports, 12_000));
        alice.wait_for("call-status 1", "StreamsRunning");
        std::thread::sleep(Duration::from_millis(500));
        let done = alice.command(&format!("call-transfer 1 sip:bob@{registrar}"));
        assert!(done.contains("Status: Ok"), "{done}");
        alice.wait_for("call-status 1", "No call with such id");
        caller.join().unwrap();
    });
    let bob = finish(&server, "bob_phone", bob);
    assert!(bob.ok, "{}\n{}", bob.text, alice.log());
    std::thread::sleep(Duration::from_millis(200));
    drop(caller_hears.stop());
    let said = pcap_audio();
    let heard: Vec<u8> = bob_hears.stop().into_iter().flat_map(|p| p.1).collect();
    assert!(
        matched_speech(&heard, &said) >= 8000 * 2,
        "Bob hears the caller\n{}",
        server.log()
    );
    let calls = json(&server, "/api/calls?limit=1");
    let record = &calls[0];
    assert_eq!(record["agent"], "bob", "{record}");
    assert_eq!(record["transfers"][0]["by"], "alice", "{record}");
    assert_eq!(record["transfers"][0]["to"], "agent:bob", "{record}");
}

/// A flow's transfer to a number (`to = "tel:+34600111222"`) is dialled through the carrier
/// whose trunk takes it, as a number at the carrier; the caller talks to whoever answers.
/// (The line is added by a reload: a `tel:` no trunk takes would not validate.)
#[test]
fn a_flow_transfers_a_caller_to_a_number_through_the_trunk() {
    let ports = AgentPorts::take();
    let server = Server::start_full(
        "answer_after_ms = 100\nshutdown_grace_s = 2",
        &with_gateway(ports.phone(1)),
    );
    let number_hears = Listener::bind(ports.listen(2), true);
    let gateway = sipp_at(
        &server,
        "gateway",
        &scenario(&[
            GATEWAY_RINGS.to_string(),
            answers_until_bye(ports.listen(2)),
        ]),
        ports.phone(1),
        ports.media(1),
        &["-m", "1"],
    );
    std::fs::write(
        server.path().join("flows/telline.toml"),
        super::agents::transfer_line(0).replace(
            "to = \"sip:frontdesk@127.0.0.1:0\"",
            "to = \"tel:+34600111222\"",
        ),
    )
    .unwrap();
    let config = std::fs::read_to_string(server.path().join("hotline.toml")).unwrap();
    std::fs::write(
        server.path().join("hotline.toml"),
        config.replacen("[lines]\n", "[lines]\ntel = \"telline\"\n", 1),
    )
    .unwrap();
    server.signal("-HUP");
    let log = server.log_with("flows reloaded");
    assert!(log.contains("telline"), "{log}");
    let caller_hears = Listener::bind(ports.listen(1), true);
    let caller = server.sipp(
        "caller",
        &call("PCMU", Some(ports.listen(1)), &[pause(6000)], CALLER_BYE),
        "tel",
        &[],
    );
    assert!(caller.ok, "{}", caller.text);
    let gateway = finish(&server, "gateway", gateway);
    assert!(gateway.ok, "{}\n{}", gateway.text, server.log());
    std::thread::sleep(Duration::from_millis(200));
    drop(caller_hears.stop());
    let said = pcap_audio();
    let heard: Vec<u8> = number_hears.stop().into_iter().flat_map(|p| p.1).collect();
    assert!(
        matched_speech(&heard, &said) >= 8000 * 2,
        "the number hears the caller\n{}",
        server.log()
    );
    let calls = json(&server, "/api/calls?limit=1");
    assert_eq!(calls[0]["outcome"], "transfer", "{}", calls[0]);
}

/// Alice's phone is Linphone, registered with the server; and where it registered (what
/// she dials colleagues at).
fn alice_on_linphone(server: &Server, ports: &AgentPorts) -> (Linphone, String) {
    let alice = Linphone::start(ports.phone(0), ports.media(0));
    let registrar = format!("127.0.0.1:{}", server.ports.sip);
    alice.register("alice", "alice-pw", &registrar);
    (alice, registrar)
}
