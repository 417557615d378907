//! The demo line in Spanish, end to end: a caller presses 2 at the welcome ("para español,
//! pulse dos"), then 0 during the Spanish greeting, and waits in the support queue: their
//! place in line is announced in Spanish, from `prompts/es/`, byte for byte as the prompts
//! are, and never in English.

use super::agents::{AgentPorts, Listener, finish, sipp_at};
use super::*;
use hotline::media::g711::Law;

/// The µ-law bytes a caller hears for a prompt of the server's folder.
fn audio(server: &Server, name: &str) -> Vec<u8> {
    read_wav(&server.path().join(format!("prompts/{name}.wav")))
        .into_iter()
        .map(|s| Law::Pcmu.encode(s))
        .collect()
}

/// Where `needle` starts in `heard`.
fn find(heard: &[u8], needle: &[u8]) -> Option<usize> {
    heard.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn a_caller_who_presses_2_then_0_hears_the_queue_in_spanish() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::take();
    super::probe::demo(dir.path(), &ports);
    let mut server = Server {
        dir,
        ports,
        child: None,
        env: vec![("HOTLINE_TOKEN".into(), "test-token".into())],
    };
    server.spawn();
    // Alice logged in but not ready: the caller waits in line, and is told their place.
    let agents = AgentPorts::take();
    super::agents::alice_logged_in_not_ready(&server, &agents, "change-me");

    let hears = Listener::bind(agents.listen(1), false);
    let caller = sipp_at(
        &server,
        "caller",
        &call("PCMU", Some(agents.listen(1)), &[pause(11_000)], CALLER_BYE),
        agents.register(2),
        agents.media(2),
        &["-s", "main", "-m", "1"],
    );
    // 2 while the welcome plays; 0 (the escape) while the Spanish greeting does.
    std::thread::sleep(Duration::from_millis(2500));
    hears.press('2');
    std::thread::sleep(Duration::from_millis(2000));
    hears.press('0');
    let r = finish(&server, "caller", caller);
    assert!(r.ok, "{}", r.text);
    let heard: Vec<u8> = hears
        .stop()
        .into_iter()
        .filter(|(pt, _)| *pt == 0)
        .flat_map(|p| p.1)
        .collect();
    let log = server.log();

    // "Es usted el número uno en la fila.", in that order.
    let mut at = 0;
    for name in ["es/queue/you_are_number", "es/digits/1", "es/queue/in_line"] {
        let found = find(&heard[at..], &audio(&server, name))
            .unwrap_or_else(|| panic!("the caller did not hear {name} (after byte {at})\n{log}"));
        at += found + 1;
    }
    // Never the English announcement.
    assert!(
        find(&heard, &audio(&server, "queue/you_are_number")).is_none(),
        "the caller heard the English announcement\n{log}"
    );
    // The call went the Spanish way: on record.
    let calls = super::agents::json(&server, "/api/calls?limit=5");
    let path = path_of(&calls[0]);
    assert!(
        path.windows(3)
            .any(|w| w == ["main.welcome", "2", "main.spanish"]),
        "{calls}"
    );
    // The agent who answers (and the record) sees the caller's language.
    assert_eq!(calls[0]["variables"]["language"], "es", "{calls}");
    server.kill();
}
