//! `hotline probe` against the demo line as `hotline serve` runs it: real SIP calls, real
//! RFC 4733 keys, the demo's own prompts recognised in the RTP. Then the served line is
//! changed behind the probe's back and the probe names the node that broke.

use std::process::Command;
use std::time::Duration;

use super::agents::{AgentPorts, json, register_agent};
use super::*;

const TOKEN: &str = "probe-secret";

/// The repository's demo line (flows, prompts, examples/hotline.toml) in `dir`, on the
/// test's ports.
pub(super) fn demo(dir: &Path, ports: &Ports) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for d in ["flows", "prompts"] {
        let ok = Command::new("cp")
            .arg("-r")
            .arg(repo.join(d))
            .arg(dir)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let config = std::fs::read_to_string(repo.join("examples/hotline.toml"))
        .unwrap()
        .replace("127.0.0.1:5060", &format!("127.0.0.1:{}", ports.sip))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", ports.http))
        .replace(
            "ports = [20000, 29999]",
            &format!("ports = [{}, {}]", ports.rtp.0, ports.rtp.1),
        );
    std::fs::write(dir.join("hotline.toml"), config).unwrap();
    // The demo speaks text: rendered here (the cache copied along is used when it is there),
    // not on the clock of a server's start.
    let rendered = Command::new(common::bin())
        .args(["validate", "flows"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stdout)
    );
}

fn probe(dir: &Path, uri: &str, extra: &[&str]) -> (i32, Value, String) {
    let out = Command::new("timeout")
        .args(["-k", "5", "400"])
        .arg(common::bin())
        .arg("probe")
        .arg(uri)
        .args(["--format", "json"])
        .args(extra)
        .current_dir(dir)
        .env("HOTLINE_PROBE_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), v, stdout)
}

#[test]
fn the_probe_proves_the_escape_on_the_demo_line_and_names_a_node_that_broke() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::take();
    demo(dir.path(), &ports);
    let mut server = Server {
        dir,
        ports,
        child: None,
        env: vec![("HOTLINE_PROBE_TOKEN".into(), TOKEN.into())],
    };
    server.spawn();
    // Agents logged in to every queue, so callers wait for them (a queue nobody serves sends
    // its callers on to voicemail at once): the probe must never ring them.
    let agents = AgentPorts::take();
    register_agent(&server, &agents, 0, "alice", "change-me", "200");
    register_agent(&server, &agents, 1, "bob", "change-me-too", "200");
    // The probe walks its own copy of the line: what the repository says.
    let mine = tempfile::tempdir().unwrap();
    demo(mine.path(), &server.ports);

    let uri = format!("sip:main@127.0.0.1:{}", server.ports.sip);
    let (code, report, text) = probe(mine.path(), &uri, &[]);
    let log = server.log();
    assert_eq!(code, 0, "{text}\n{log}");
    assert_eq!(report["ok"], true, "{text}");
    let nodes = report["nodes"].as_array().unwrap();
    // The silent caller, the welcome, and whatever the schedule gives now (the menu, or the
    // after-hours menu) at least.
    assert!(nodes.len() >= 3, "{text}");
    assert!(nodes.iter().all(|n| n["reached"] == true), "{text}");
    let welcome = nodes
        .iter()
        .find(|n| n["node"] == "main.welcome")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(welcome["escape"], "0", "{text}");
    // The escape is taken at once: hold music within a couple of seconds of the key.
    assert!(
        welcome["seconds_after_escape"].as_f64().unwrap() < 3.0,
        "{text}"
    );
    let silent = &nodes[0];
    assert_eq!(silent["escape"], Value::Null, "{text}");
    assert!(silent["seconds"].as_f64().unwrap() <= 120.0, "{text}");

    // The probe's calls rang no agent, left no message, and are marked in the records.
    assert!(!log.contains("ringing the agent"), "{log}");
    assert!(server.voicemails("support").is_empty());
    let calls = json(&server, "/api/calls?limit=100");
    let calls = calls.as_array().unwrap();
    assert_eq!(calls.len(), nodes.len(), "one call per probed node");
    assert!(calls.iter().all(|c| c["probe"] == true), "{calls:?}");
    let out = Command::new(common::bin())
        .args(["report", "--format", "json"])
        .current_dir(server.path())
        .output()
        .unwrap();
    let figures: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        figures["calls"], 0,
        "probe calls are not callers: {figures}"
    );

    // Behind the probe's back, the served welcome now says other words: the probe waits
    // for the welcome it knows, never hears it, and says so for that node. (Over TCP this
    // time: the silent caller's call still reaches the queue.)
    let file = server.path().join("flows/main.toml");
    let flow = std::fs::read_to_string(&file).unwrap().replace(
        "say = \"Welcome to Acme support.",
        "say = \"Hello from Acme.",
    );
    assert!(flow.contains("Hello from Acme."));
    std::fs::write(&file, flow).unwrap();
    server.signal("-HUP");
    super::agents::eventually("the changed line is served", || {
        server.log().contains("flows reloaded")
    });
    std::thread::sleep(Duration::from_millis(500));
    let tcp = format!("{uri};transport=tcp");
    let (code, report, text) = probe(mine.path(), &tcp, &["--node", "main.welcome"]);
    assert_eq!(code, 1, "{text}");
    assert_eq!(report["ok"], false, "{text}");
    let broken = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "main.welcome")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(broken["ok"], false, "{text}");
    assert!(
        broken["error"].as_str().unwrap().contains("never heard"),
        "{text}"
    );
    let silent = &report["nodes"][0];
    assert_eq!(silent["escape"], Value::Null, "{text}");
    assert_eq!(silent["ok"], true, "the silent caller over TCP: {text}");
    assert_eq!(report["nodes"].as_array().unwrap().len(), 2, "{text}");
}

/// A probe reaching a transfer hears its ringback and hangs up; the transfer's target is never
/// dialled (nobody is rung for a probe).
#[test]
fn a_probe_at_a_transfer_hears_the_ringback_and_nobody_is_dialled() {
    let server = Server::start_env(
        "answer_after_ms = 100",
        "[[queues]]\nname = \"support\"\nskills = [\"support\"]\n",
        &[("HOTLINE_PROBE_TOKEN", TOKEN)],
    );
    // Where the transfer would ring: a socket the test watches.
    let desk = std::net::UdpSocket::bind(("127.0.0.1", server.ports.transfer_target)).unwrap();
    desk.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let uri = format!("sip:front@127.0.0.1:{}", server.ports.sip);
    let (code, report, text) = probe(server.path(), &uri, &["--flow", "transferline"]);
    let log = server.log();
    assert_eq!(code, 0, "{text}\n{log}");
    assert_eq!(report["nodes"][0]["reached"], true, "{text}");
    assert!(log.contains("a probe call reached a transfer"), "{log}");
    let mut buf = [0u8; 2048];
    assert!(
        desk.recv_from(&mut buf).is_err(),
        "the transfer target got: {}",
        String::from_utf8_lossy(&buf)
    );
}

/// A transfer whose target cannot be reached falls back to its `on_failure`: the probe hears
/// the fallback's way (here a queue nobody serves, then a voicemail's greeting) where the
/// ringback was due, and fails the line.
#[test]
fn a_probe_fails_a_transfer_that_reached_its_fallback() {
    // Its host resolves nowhere: the only DNS server named does not answer.
    let mut server = Server::start_env(
        "answer_after_ms = 100\nresolvers = [\"127.0.0.1:9\"]",
        "[[queues]]\nname = \"support\"\nskills = [\"support\"]\n",
        &[("HOTLINE_PROBE_TOKEN", TOKEN)],
    );
    server.kill();
    std::fs::write(
        server.path().join("flows/transferline.toml"),
        r#"
[flow]
entry = "front"
escape_digit = "0"
escape_to = "front"

[nodes.front]
type = "transfer"
to = "sip:frontdesk@pbx.nowhere.invalid"
ring_timeout_s = 2
on_failure = "agents"

[nodes.agents]
type = "queue"
queue = "support"
max_wait_s = 60
on_timeout = "messages"

[nodes.messages]
type = "voicemail"
mailbox = "front"
prompt = "short"
max_length_s = 20
"#,
    )
    .unwrap();
    server.spawn();
    let uri = format!("sip:front@127.0.0.1:{}", server.ports.sip);
    let (code, report, text) = probe(server.path(), &uri, &["--flow", "transferline"]);
    let log = server.log();
    assert_eq!(code, 1, "{text}\n{log}");
    let error = report["nodes"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("transfer (transferline.front) failed"),
        "{text}\n{log}"
    );
    assert!(log.contains("cannot transfer"), "{log}");
}
