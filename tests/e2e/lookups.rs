//! A flow's `lookup` against a real HTTP server: the CRM stand-in shipped in `examples/`
//! (`cargo run --example crm`), then the same port stopped, then a server that accepts and
//! never answers. A VIP reaches the priority queue; when the CRM is down or silent the caller
//! goes `on_error`, to a human all the same; `/metrics` counts each way.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use super::agents::http;
use super::*;

/// Who is calling decides the queue: the CRM's `tier`.
const LINE: &str = r#"
[flow]
entry = "identify"
escape_digit = "0"
escape_to = "normal"

[nodes.identify]
type = "lookup"
endpoint = "crm"
next = "vip"
on_error = "fallback"

[nodes.vip]
type = "branch"
variable = "crm.tier"
cases = { "vip" = "priority" }
default = "normal"

[nodes.priority]
type = "queue"
queue = "support"
priority = 10
max_wait_s = 1
on_timeout = "messages"

[nodes.normal]
type = "queue"
queue = "support"
max_wait_s = 1
on_timeout = "messages"

[nodes.fallback]
type = "queue"
queue = "support"
max_wait_s = 1
on_timeout = "messages"

[nodes.messages]
type = "voicemail"
mailbox = "support"
max_length_s = 5
"#;

/// The CRM stand-in (`examples/crm.rs`, built with the tests) on a free port: the process and
/// its port.
fn crm(callers: &Path) -> (Child, u16) {
    let exe = common::bin().parent().unwrap().join("examples").join("crm");
    let mut child = Command::new(&exe)
        .arg("127.0.0.1:0")
        .arg(callers)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (cargo test builds the examples)", exe.display()));
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let port = first
        .rsplit_once("127.0.0.1:")
        .and_then(|(_, p)| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the CRM said: {first}"));
    (child, port)
}

/// One call from `number`; its record once it has ended.
fn call_from(server: &Server, number: &str, n: usize) -> Value {
    call_for(server, number, n, 1500)
}

/// The same, the caller staying `ms` on the line.
fn call_for(server: &Server, number: &str, n: usize, ms: u32) -> Value {
    let xml = call("PCMU", None, &[pause(ms)], CALLER_BYE).replace(
        "sip:caller@[local_ip]:[local_port]>;tag",
        &format!("sip:{number}@[local_ip]:[local_port]>;tag"),
    );
    let r = server.sipp(&format!("crm{n}"), &xml, "main", &[]);
    assert!(r.ok, "{}", r.text);
    super::agents::ended_record(server, n)
}

fn metric(server: &Server, line_start: &str) -> Option<f64> {
    let (_, text) = http(server, "GET", "/metrics", None, "");
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn the_crm_sends_vips_to_the_priority_queue_and_its_failures_go_on_error() {
    let callers = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        callers.path(),
        r#"{"+34600111222": {"tier": "vip", "name": "Ana <b>García</b>"}}"#,
    )
    .unwrap();
    let (mut crm, port) = crm(callers.path());
    let mut server = Server::start_full(
        "answer_after_ms = 0",
        &format!(
            "[[queues]]\nname = \"support\"\nskills = [\"support\"]\n\n[lookups.crm]\nurl = \"http://127.0.0.1:{port}/caller\"\ntimeout_ms = 1500\nfields = {{ tier = \"string\", name = \"string\" }}\n"
        ),
    );
    server.kill();
    std::fs::write(server.path().join("flows/main.toml"), LINE).unwrap();
    server.spawn();

    // A VIP: the priority queue, with what the CRM knows on the call.
    let vip = call_from(&server, "+34600111222", 1);
    let path = path_of(&vip);
    assert_eq!(
        &path[..5],
        [
            "main.identify",
            "answer",
            "main.vip",
            "case:vip",
            "main.priority"
        ],
        "{vip}\n{}",
        server.log()
    );
    assert_eq!(vip["variables"]["crm.name"], "Ana <b>García</b>", "{vip}");
    // Someone it does not know: an answer, the default way.
    let stranger = call_from(&server, "+34911000000", 2);
    assert_eq!(
        &path_of(&stranger)[..5],
        [
            "main.identify",
            "answer",
            "main.vip",
            "default",
            "main.normal"
        ],
        "{stranger}"
    );
    // The CRM stops: the next caller goes on_error at once, to a person all the same.
    crm.kill().unwrap();
    crm.wait().unwrap();
    let down = call_from(&server, "+34600111222", 3);
    assert_eq!(
        &path_of(&down)[..3],
        ["main.identify", "error", "main.fallback"],
        "{down}"
    );
    // A CRM that takes the connection and never answers: the hard timeout, then on_error.
    let silent = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let slow = call_from(&server, "+34600111222", 4);
    assert_eq!(
        &path_of(&slow)[..3],
        ["main.identify", "error", "main.fallback"],
        "{slow}"
    );
    drop(silent);
    let log = server.log();
    assert!(
        log.contains("reason=\"timeout\"") || log.contains("reason=timeout"),
        "{log}"
    );
    assert_eq!(
        metric(&server, "hotline_lookup_seconds_count{endpoint=\"crm\"}"),
        Some(4.0)
    );
    assert_eq!(
        metric(
            &server,
            "hotline_lookup_errors_total{endpoint=\"crm\",reason=\"unreachable\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &server,
            "hotline_lookup_errors_total{endpoint=\"crm\",reason=\"timeout\"}"
        ),
        Some(1.0)
    );
}

/// The demo line as the repository ships it, asking the CRM stand-in with its own callers
/// (`examples/crm.json`): Ana's number skips the menu for the priority queue, the CRM's name
/// for her on the call; a stranger goes the usual way.
#[test]
fn the_demo_line_knows_its_vips_through_the_crm_stand_in() {
    let callers = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/crm.json");
    let (mut crm, port) = crm(&callers);
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::take();
    super::probe::demo(dir.path(), &ports);
    let config = std::fs::read_to_string(dir.path().join("hotline.toml"))
        .unwrap()
        .replace(
            "http://127.0.0.1:8090/caller",
            &format!("http://127.0.0.1:{port}/caller"),
        );
    std::fs::write(dir.path().join("hotline.toml"), config).unwrap();
    let mut server = Server {
        dir,
        ports,
        child: None,
        env: Vec::new(),
    };
    server.spawn();
    // The welcome and the offer of Spanish play 7 s first, then 2 s for the key.
    let vip = call_for(&server, "+34600111222", 1, 11_000);
    let path = path_of(&vip);
    assert!(
        path.windows(2).any(|w| w == ["main.vip", "case:vip"]),
        "{vip}"
    );
    assert!(path.contains(&"main.priority".to_string()), "{vip}");
    assert_eq!(vip["variables"]["crm.name"], "Ana García");
    let stranger = call_for(&server, "+34911000999", 2, 11_000);
    assert!(
        path_of(&stranger)
            .windows(2)
            .any(|w| w == ["main.vip", "default"]),
        "{stranger}"
    );
    server.kill();
    crm.kill().unwrap();
    crm.wait().unwrap();
}
