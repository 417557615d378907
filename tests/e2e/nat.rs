//! Agents' phones behind a NAT: a phone whose Contact names a port nothing listens on (the
//! address inside its NAT) but which asked for answers where it sends from (`rport`) is rung
//! where its REGISTER came from; hotline's OPTIONS keep its mapping open, and when it stops
//! answering them it is marked unreachable and skipped, until it answers again.

use std::process::Child;
use std::time::Duration;

use super::agents::{
    AGENT_RINGS_ANY, AGENTS, AgentPorts, Listener, answers_until_bye, eventually, finish, json,
    register_as, sipp_at,
};
use super::{CALLER_BYE, Server, call, key, pause, scenario};

/// The phone at `port`, answering every OPTIONS (SIPp's `-aa`: each is a call of its own
/// to SIPp, so it runs until stopped rather than for one call) and `xml` for its calls.
fn phone(server: &Server, ports: &AgentPorts, name: &str, xml: &str) -> Child {
    sipp_at(server, name, xml, ports.phone(0), ports.media(0), &["-aa"])
}

/// Stops SIPp: `timeout`, which runs it, passes SIGTERM on.
fn stop(mut child: Child) {
    // SAFETY: a signal to the process this test started; no memory is involved.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

fn alice(server: &Server) -> serde_json::Value {
    json(server, "/api/agents/alice")
}

#[test]
fn a_phone_behind_a_nat_rings_and_one_that_stops_answering_is_skipped_until_it_answers() {
    // OPTIONS every second; T1 of 100 ms gives up on one after 6.4 s.
    let server = Server::start_full(
        "answer_after_ms = 100\nshutdown_grace_s = 2\nqualify_s = 1\nt1_ms = 100",
        AGENTS,
    );
    let ports = AgentPorts::take();
    // Registered from the port it listens on; its Contact names one nothing listens on.
    let nowhere = ports.register(0) + 1;
    let reg = sipp_at(
        &server,
        "register_alice",
        &register_as(nowhere, ";rport", "200"),
        ports.phone(0),
        ports.media(0) + 4,
        &["-s", "alice", "-au", "alice", "-ap", "alice-pw", "-m", "1"],
    );
    let reg = finish(&server, "register_alice", reg);
    assert!(reg.ok, "{}", reg.text);

    // A caller presses 0 for an agent: alice's phone rings where it registered from.
    let agent_hears = Listener::bind(ports.listen(0), true);
    let p = phone(
        &server,
        &ports,
        "alice_phone",
        &scenario(&[
            AGENT_RINGS_ANY.to_string(),
            answers_until_bye(ports.listen(0)),
        ]),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        alice(&server)["state"],
        "available",
        "its OPTIONS are answered"
    );
    let caller = server.sipp(
        "caller",
        &call(
            "PCMU",
            None,
            &[pause(300), key('0'), pause(2000)],
            CALLER_BYE,
        ),
        "agent",
        &[],
    );
    assert!(caller.ok, "{}", caller.text);
    eventually("the call is on record as ended", || {
        json(&server, "/api/calls?limit=1")[0]["ended"].is_string()
    });
    assert_eq!(
        json(&server, "/api/calls?limit=1")[0]["agent"],
        "alice",
        "the phone behind the NAT rang and answered\n{}",
        server.log()
    );
    assert!(
        !agent_hears.stop().is_empty(),
        "the agent's phone got the call's audio"
    );
    stop(p);

    // The phone is gone (its NAT mapping closed): OPTIONS go unanswered; it is unreachable.
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    while alice(&server)["unreachable"] != true {
        assert!(
            std::time::Instant::now() < deadline,
            "alice's phone is never marked unreachable: {}\n{}",
            alice(&server),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let a = alice(&server);
    assert_eq!(a["registered"], true, "{a}");
    assert_eq!(a["reason"], "unreachable", "{a}");
    assert_ne!(a["state"], "available", "{a}");
    // A caller now is not offered to her: no ring, no ring-no-answer against her.
    let caller = server.sipp(
        "caller_2",
        &call(
            "PCMU",
            None,
            &[pause(300), key('0'), pause(1500)],
            CALLER_BYE,
        ),
        "agent",
        &[],
    );
    assert!(caller.ok, "{}", caller.text);
    let c = &json(&server, "/api/calls?limit=1")[0];
    assert!(c["agent"].is_null(), "{c}");
    assert_eq!(alice(&server)["reason"], "unreachable");
    assert!(
        server.log().contains("agent phone does not answer OPTIONS"),
        "{}",
        server.log()
    );

    // It answers again: reachable, and available (ready on register).
    let back = phone(
        &server,
        &ports,
        "alice_back",
        &scenario(&[AGENT_RINGS_ANY.to_string()]),
    );
    eventually("alice's phone answers again", || {
        alice(&server)["unreachable"] == false
    });
    assert_eq!(alice(&server)["state"], "available");
    stop(back);
}
