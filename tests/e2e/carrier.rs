//! A real carrier in front of hotline: Debian's Kamailio as the provider's registrar and
//! proxy on 127.0.0.2, demanding digest credentials for hotline's REGISTER (401) and for
//! every call hotline places through it (407), and a "public network" of SIPp phones on
//! 127.0.0.3 behind it. Nothing here is mocked: the carrier is a SIP server users run.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::agents::{
    AGENTS, AgentPorts, Listener, agent_answers, answers_until_bye, eventually, finish, json,
    register_agent, sipp_at,
};
use super::{SERVER_BYE, Server, key, pause, scenario};

const CARRIER_IP: &str = "127.0.0.2";
const PSTN_IP: &str = "127.0.0.3";
const PASSWORD: &str = "s3cret";

/// Kamailio, run in the foreground for one test, killed when dropped.
struct Carrier {
    child: Child,
    dir: std::path::PathBuf,
    log: std::path::PathBuf,
    port: u16,
    tls: bool,
}

/// How hotline reaches the carrier's proxy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Over {
    Udp,
    Tcp,
    /// TLS on the carrier's port + 1, its certificate signed by the test's own CA.
    Tls,
}

impl Over {
    /// The transport as Kamailio's `$pr` names it.
    fn name(self) -> &'static str {
        match self {
            Over::Udp => "udp",
            Over::Tcp => "tcp",
            Over::Tls => "tls",
        }
    }
}

impl Carrier {
    /// The carrier on `CARRIER_IP:port` (and TLS on `port + 1` when `tls`), sending
    /// hotline's calls to `pstn`.
    fn start(dir: &Path, port: u16, pstn: u16, tls: bool) -> Carrier {
        if tls {
            let (_, cert, key) = certificates(dir, CARRIER_IP);
            std::fs::write(
                dir.join("tls.cfg"),
                format!(
                    "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\nprivate_key = {}\ncertificate = {}\n\n[client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n",
                    key.display(),
                    cert.display()
                ),
            )
            .unwrap();
        }
        let cfg =
            std::fs::read_to_string(super::common::repo().join("tests/data/carrier/kamailio.cfg"))
                .unwrap()
                .replace("__CARRIER__", CARRIER_IP)
                .replace("__TLS_PORT__", &(port + 1).to_string())
                .replace("__DIR__", &dir.display().to_string())
                .replace("__PORT__", &port.to_string())
                .replace("__PASSWORD__", PASSWORD)
                .replace("__USER__", "line1")
                .replace("__HOTLINE__", "127.0.0.1")
                .replace("__PSTN__", &format!("{PSTN_IP}:{pstn}"));
        std::fs::write(dir.join("kamailio.cfg"), cfg).unwrap();
        let log = dir.join("kamailio.log");
        let child = Carrier::spawn(dir, &log, port, tls);
        Carrier {
            child,
            dir: dir.to_path_buf(),
            log,
            port,
            tls,
        }
    }

    /// Runs Kamailio (its log appended to `log`) until it listens on `port`.
    fn spawn(dir: &Path, log: &Path, port: u16, tls: bool) -> Child {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        // Its own process group: its workers are stopped with it.
        let child = Command::new("kamailio")
            .process_group(0)
            .arg("-f")
            .arg(dir.join("kamailio.cfg"))
            .args(["-DD", "-E", "-n", "1", "-m", "32", "-M", "4", "-w"])
            .arg(dir)
            .args(if tls { &["-A", "WITH_TLS"][..] } else { &[] })
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("Kamailio (Debian package kamailio) must be installed");
        // Listening once its port is taken.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::UdpSocket::bind((CARRIER_IP, port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "Kamailio never listened:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// Stops the carrier and starts it again: its registrations (kept in memory) are lost,
    /// and its TCP connections closed.
    fn restart(&mut self) {
        stop_group(&mut self.child);
        std::fs::write(&self.log, "").unwrap();
        self.child = Carrier::spawn(&self.dir, &self.log, self.port, self.tls);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

/// A CA and a certificate it signed for `ip` (and its key), as PEM files in `dir`.
fn certificates(
    dir: &Path,
    ip: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    let (cert, key, csr) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("cert.csr"),
    );
    let ext = dir.join("san.ext");
    std::fs::write(
        &ext,
        format!("subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n"),
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl must be installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Test Carrier CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        &format!("/CN={ip}"),
        "-keyout",
        "key.pem",
        "-out",
        "cert.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "cert.pem",
    ]);
    let _ = (ca_key, csr);
    (ca, cert, key)
}

/// Stops Kamailio and its workers (its process group).
fn stop_group(child: &mut Child) {
    let group = -(child.id() as i32);
    // SAFETY: signals to the process group this test started; no memory is involved.
    unsafe { libc::kill(group, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above; whatever did not stop in time.
    unsafe { libc::kill(group, libc::SIGKILL) };
    let _ = child.wait();
}

/// Alice's phone rings for a callback to `number` (it says so), answers with media at `rtp`
/// and talks until the other side hangs up.
fn alice_takes_callback_for(number: &str, rtp: u16) -> String {
    let number = number.replace('+', "\\+");
    scenario(&[
        format!(
            r#"  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="X-Hotline-Callback: tel:{number}" search_in="msg" check_it="true" assign_to="cb"/>
    </action>
  </recv>
  <Reference variables="cb"/>
"#
        ),
        answers_until_bye(rtp),
    ])
}

fn both_logs(carrier: &Carrier, server: &Server) -> String {
    format!(
        "--- carrier ---\n{}\n--- hotline ---\n{}",
        carrier.log(),
        server.log()
    )
}

/// hotline.toml's tail: the trunk to the carrier (its proxy, and extra keys), Spanish
/// numbers, and the agents.
fn trunk(proxy: &str, extra: &str) -> String {
    format!(
        r#"[numbers]
country = "34"
national_digits = 9

[[trunks]]
name = "carrier"
proxy = "{proxy}"
{extra}
domain = "carrier.test"
username = "line1"
password = "{PASSWORD}"
register = true
expires_s = 60
numbers = ["+34"]
addresses = ["{CARRIER_IP}"]
caller_id = "910000099"
{AGENTS}
[[agents]]
id = "sam"
password = "sam-pw"
name = "Sam Supervisor"
role = "supervisor"
"#
    )
}

/// SIPp on the public network (127.0.0.1's neighbour), talking to the carrier.
fn pstn_sipp(
    server: &Server,
    carrier: &Carrier,
    name: &str,
    xml: &str,
    port: u16,
    media: u16,
    extra: &[&str],
) -> Child {
    let file = server.path().join(format!("{name}.xml"));
    std::fs::write(&file, xml).unwrap();
    Command::new("timeout")
        .args(["-k", "5", "60", "sipp"])
        .arg(format!("{CARRIER_IP}:{}", carrier.port))
        .arg("-sf")
        .arg(&file)
        .args(["-i", PSTN_IP, "-nostdin", "-trace_err"])
        .arg("-error_file")
        .arg(server.path().join(format!("{name}_errors.log")))
        .args(["-p", &port.to_string(), "-mp", &media.to_string()])
        .args(["-timeout", "40s", "-timeout_error", "-m", "1"])
        .args(extra)
        .current_dir(server.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("SIPp (Debian package sip-tester) must be installed")
}

/// A caller on the public network dials the line as `[service]` (the number in whatever
/// format), from 600 111 222, through the carrier; `middle` happens once answered.
fn caller_through_carrier(middle: &[String], end: &str) -> String {
    caller_through_carrier_from("600111222", middle, end)
}

/// The same, from `number`.
fn caller_through_carrier_from(number: &str, middle: &[String], end: &str) -> String {
    let mut steps = vec![
        r#"  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@carrier.test SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:NUMBER@carrier.test>;tag=[pid]T[call_number]
      To: <sip:[service]@carrier.test>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:NUMBER@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20
      a=sendrecv
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"#
        .to_string(),
    ];
    steps.extend(middle.iter().cloned());
    steps.push(end.to_string());
    scenario(&steps).replace("NUMBER", number)
}

/// The caller hangs up, through the carrier (its Record-Route).
const CALLER_HANGS_UP: &str = r#"  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 20 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
"#;

/// The phone on the public network that hotline calls back: the INVITE arrives through the
/// carrier (so it passed the 407) and shows the line's own number, asserted; it rings,
/// answers with media at `rtp`, talks 3 s and hangs up through the carrier.
fn called_back_phone(rtp: u16) -> String {
    format!(
        r#"  <recv request="INVITE" crlf="true" rrs="true">
    <action>
      <ereg regexp="^INVITE sip:\+34600111222@carrier.test" search_in="msg" check_it="true" assign_to="ruri"/>
      <ereg regexp="From: &quot;support&quot; &lt;sip:\+34910000000@carrier.test&gt;;tag=" search_in="msg" check_it="true" assign_to="from"/>
      <ereg regexp="P-Asserted-Identity: &quot;support&quot; &lt;sip:\+34910000000@carrier.test&gt;" search_in="msg" check_it="true" assign_to="pai"/>
      <ereg regexp="Record-Route: &lt;sip:{CARRIER_IP}" search_in="msg" check_it="true" assign_to="rr"/>
    </action>
  </recv>
  <Reference variables="ruri,from,pai,rr"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]P[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:600111222@[local_ip]:[local_port]>
      Content-Length: 0
    ]]>
  </send>
{answer}  <pause milliseconds="3000"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: [$to]
      To: [$from]
      Call-ID: [call_id]
      CSeq: 1 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
"#,
        answer = agent_answers(rtp)
            .replace("[last_Via:]\n", "[last_Via:]\n      [last_Record-Route:]\n"),
    )
}

/// hotline registers to the carrier (401 answered) and stays registered across refreshes;
/// a caller reaches the line through it with the number in three formats, each recorded as
/// one line, the caller known by the number the carrier asserted; that caller asks for a
/// callback, and when the agent answers, hotline calls them back through the carrier: its
/// 407 answered, the line's own number in From and P-Asserted-Identity, and the two talk.
#[test]
fn a_line_on_a_carrier_registers_takes_calls_and_calls_back_through_it() {
    line_on_a_carrier(Over::Udp);
}

/// The same over TCP: hotline opens the connection to the carrier's proxy, registers and
/// calls back over it; the carrier reaches hotline over TCP too.
#[test]
fn a_line_on_a_tcp_trunk_registers_takes_calls_and_calls_back_through_it() {
    line_on_a_carrier(Over::Tcp);
}

/// The same over TLS (`sips:`): hotline checks the carrier's certificate against the CA the
/// trunk names, registers and calls back over its connection; the carrier reaches hotline's
/// TLS port.
#[test]
fn a_line_on_a_tls_trunk_registers_takes_calls_and_calls_back_through_it() {
    line_on_a_carrier(Over::Tls);
}

fn line_on_a_carrier(over: Over) {
    let ports = AgentPorts::take();
    let carrier_port = ports.phone(5);
    let pstn_phone = ports.phone(6);
    let carrier_dir = tempfile::tempdir().unwrap();
    let mut carrier = Carrier::start(
        carrier_dir.path(),
        carrier_port,
        pstn_phone,
        over == Over::Tls,
    );
    let (proxy, extra, sip) = match over {
        Over::Udp => (
            format!("sip:{CARRIER_IP}:{carrier_port}"),
            String::new(),
            String::new(),
        ),
        Over::Tcp => (
            format!("sip:{CARRIER_IP}:{carrier_port};transport=tcp"),
            String::new(),
            String::new(),
        ),
        Over::Tls => {
            // hotline's own TLS port, where the carrier sends the line's calls.
            let own = carrier_dir.path().join("hotline");
            std::fs::create_dir_all(&own).unwrap();
            let (_, cert, key) = certificates(&own, "127.0.0.1");
            (
                format!("sips:{CARRIER_IP}:{}", carrier_port + 1),
                format!(
                    "ca_file = \"{}\"",
                    carrier_dir.path().join("ca.pem").display()
                ),
                format!(
                    "\ntls_listen = \"127.0.0.1:{}\"\ntls_certificate = \"{}\"\ntls_key = \"{}\"",
                    super::Ports::take().sip + 1,
                    cert.display(),
                    key.display()
                ),
            )
        }
    };
    let server = Server::start_full(
        &format!("answer_after_ms = 100\nshutdown_grace_s = 2{sip}"),
        &trunk(&proxy, &extra),
    );

    // Registered, its challenge answered.
    let deadline = Instant::now() + Duration::from_secs(10);
    while json(&server, "/api/trunks")[0]["state"] != "registered" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let trunks = json(&server, "/api/trunks");
    assert_eq!(
        trunks[0]["state"],
        "registered",
        "{trunks}\n{}",
        both_logs(&carrier, &server)
    );
    assert_eq!(trunks[0]["expires_s"], 10, "the carrier's maximum");
    let metrics = super::agents::http(&server, "GET", "/metrics", None, "").1;
    assert!(
        metrics.contains("hotline_trunk_registered{trunk=\"carrier\"} 1"),
        "{metrics}"
    );
    let proto = over.name();
    let registers: Vec<String> = carrier
        .log()
        .lines()
        .filter(|l| l.contains("carrier: REGISTER sip:carrier.test from 127.0.0.1:"))
        .map(str::to_string)
        .collect();
    assert!(
        !registers.is_empty()
            && registers
                .iter()
                .all(|l| l.ends_with(&format!("over {proto}"))),
        "every REGISTER over {proto}\n{}",
        carrier.log()
    );
    // The supervisor sees it on the wall (once: the page does not depend on the transport).
    if over == Over::Udp {
        let browser = super::desk::Browser::open(server.ports.http);
        browser.log_in("sam", "sam-pw");
        // The login's own navigation first: a page asked for meanwhile would cut it short,
        // and without its cookie the wall sends the browser back to the login.
        assert_eq!(browser.path_after("/desk"), "/desk", "logged in");
        browser.goto("/wall");
        let shown = browser.wait_text("#trunks tr[data-trunk='carrier'] td.state", "registered");
        assert!(shown.starts_with("registered"), "the wall says {shown:?}");
        browser.screenshot("wall-trunks");
        drop(browser);
    }

    // The line, dialled three ways; each caller hangs up after a second.
    for (i, dialled) in ["+34910000000", "34910000000", "0034910000000"]
        .iter()
        .enumerate()
    {
        let name = format!("caller_{i}");
        let c = pstn_sipp(
            &server,
            &carrier,
            &name,
            &caller_through_carrier(&[pause(1000)], CALLER_HANGS_UP),
            ports.register(3) + i as u16 * 2,
            ports.media(3),
            &["-s", dialled],
        );
        let c = finish(&server, &name, c);
        assert!(c.ok, "{dialled}: {}\n{}", c.text, carrier.log());
    }
    let mut calls = Vec::new();
    eventually("three calls are recorded", || {
        calls = json(&server, "/api/calls?limit=10")
            .as_array()
            .cloned()
            .unwrap_or_default();
        calls.len() == 3
    });
    for c in &calls {
        assert_eq!(c["line"], "+34910000000", "{c}");
        assert_eq!(c["from"], "tel:+34600111222", "{c}");
    }

    // The binding is refreshed (the carrier grants 10 s).
    let registered = || server.log().matches("registered to the carrier").count();
    eventually("the registration is refreshed", || registered() >= 2);

    // The carrier restarts: it forgets every registration (and over TCP drops the
    // connection). hotline is back in its registrar within seconds: over TCP as soon as it
    // sees the connection closed, over UDP at its next refresh.
    let before = registered();
    carrier.restart();
    eventually("hotline registers again with the restarted carrier", || {
        registered() > before && carrier.log().contains("carrier: REGISTER")
    });
    if over != Over::Udp {
        assert!(
            server
                .log()
                .contains("the trunk's TCP connection has closed: connecting again"),
            "{}",
            both_logs(&carrier, &server)
        );
    }

    // The caller asks to be called back (the menu's 2), through the carrier.
    let caller = pstn_sipp(
        &server,
        &carrier,
        "callback_caller",
        &caller_through_carrier(&[pause(2400), key('2')], SERVER_BYE),
        ports.register(4),
        ports.media(4),
        &["-s", "910000000"],
    );
    let caller = finish(&server, "callback_caller", caller);
    assert!(
        caller.ok,
        "{}\n{}",
        caller.text,
        both_logs(&carrier, &server)
    );
    let db = rusqlite::Connection::open(server.path().join("data/hotline.db")).unwrap();
    let stored: String = db
        .query_row("SELECT caller FROM callbacks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, "tel:+34600111222");

    // Alice answers the callback; hotline dials the caller through the carrier.
    let agent_hears = Listener::bind(ports.listen(0), true);
    let caller_hears = Listener::bind_on(PSTN_IP, ports.listen(3), true);
    let phone = sipp_at(
        &server,
        "alice_phone",
        &alice_takes_callback_for("+34600111222", ports.listen(0)),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let called = pstn_sipp(
        &server,
        &carrier,
        "called_back",
        &scenario(&[called_back_phone(ports.listen(3))]),
        pstn_phone,
        ports.media(6),
        &[],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "{}\n{}", phone.text, carrier.log());
    let called = finish(&server, "called_back", called);
    assert!(called.ok, "{}\n{}", called.text, carrier.log());
    std::thread::sleep(Duration::from_millis(200));
    let log = both_logs(&carrier, &server);
    assert!(
        carrier.log().contains(&format!(
            "carrier: hotline calls +34600111222 as +34910000000 over {proto}"
        )),
        "the carrier let the call through only with credentials\n{log}"
    );
    let said = super::agents::pcap_audio();
    let heard: Vec<u8> = agent_hears.stop().into_iter().flat_map(|p| p.1).collect();
    assert!(
        super::agents::matched_speech(&heard, &said) >= 8000,
        "the agent heard the caller\n{log}"
    );
    let heard: Vec<u8> = caller_hears.stop().into_iter().flat_map(|p| p.1).collect();
    assert!(
        super::agents::matched_speech(&heard, &said) >= 8000,
        "the caller heard the agent\n{log}"
    );
    eventually("the callback is marked done", || {
        db.query_row("SELECT state FROM callbacks", [], |r| r.get::<_, String>(0))
            .is_ok_and(|s| s == "done")
    });

    // Another caller's number has moved: the carrier redirects hotline's call (302) to a
    // premium number abroad. The dial policy does not allow it: not followed, and the
    // callback waits for its next attempt.
    let caller = pstn_sipp(
        &server,
        &carrier,
        "moved_caller",
        &caller_through_carrier_from("600111333", &[pause(2400), key('2')], SERVER_BYE),
        ports.register(4),
        ports.media(4),
        &["-s", "910000000"],
    );
    let caller = finish(&server, "moved_caller", caller);
    assert!(
        caller.ok,
        "{}\n{}",
        caller.text,
        both_logs(&carrier, &server)
    );
    let phone = sipp_at(
        &server,
        "alice_again",
        &alice_takes_callback_for("+34600111333", ports.listen(0)),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let phone = finish(&server, "alice_again", phone);
    assert!(
        phone.ok,
        "alice is released: {}\n{}",
        phone.text,
        carrier.log()
    );
    let log = both_logs(&carrier, &server);
    assert!(
        carrier
            .log()
            .contains("carrier: hotline calls +34600111333 as +34910000000"),
        "{log}"
    );
    assert!(!carrier.log().contains("+19005550100 as"), "{log}");
    assert!(server.log().contains("a redirect is not followed"), "{log}");
    eventually(
        "the moved caller's callback waits for its next attempt",
        || {
            db.query_row(
                "SELECT state, attempts FROM callbacks WHERE caller = 'tel:+34600111333'",
                [],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
            )
            .is_ok_and(|(s, a)| s == "pending" && a == 1)
        },
    );
}

/// dnsmasq on loopback as the carrier's DNS: SRV records and the addresses of their targets.
struct Dns {
    child: Child,
    port: u16,
}

impl Dns {
    /// `records`: (service name, target, port, priority); every target is `CARRIER_IP`.
    fn start(port: u16, records: &[(&str, &str, u16, u16)]) -> Dns {
        let mut args: Vec<String> = [
            "--no-daemon",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--user=root",
            "--pid-file=",
            "--log-queries",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--port={port}"));
        for (service, target, target_port, priority) in records {
            args.push(format!(
                "--srv-host={service},{target},{target_port},{priority},10"
            ));
            args.push(format!("--host-record={target},{CARRIER_IP}"));
        }
        // Its own process group, stopped with it; `timeout` in case the test never does.
        let child = Command::new("timeout")
            .process_group(0)
            .args(["-k", "5", "120", "dnsmasq"])
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (Debian package dnsmasq-base) must be installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < deadline, "dnsmasq never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Dns { child, port }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

/// A trunk named by its domain alone (`sip:carrier.test;transport=tcp`, no port) is found by
/// DNS SRV (RFC 3263): the first target by priority refuses connections, so hotline goes on
/// to the next, at the port its record gives, and registers there.
#[test]
fn a_trunk_named_by_its_domain_is_found_by_dns_srv_and_the_next_target_tried() {
    let ports = AgentPorts::take();
    let carrier_port = ports.phone(5);
    let dead_port = ports.phone(7);
    let carrier_dir = tempfile::tempdir().unwrap();
    let carrier = Carrier::start(carrier_dir.path(), carrier_port, ports.phone(6), false);
    let dns = Dns::start(
        ports.phone(8),
        &[
            ("_sip._tcp.carrier.test", "sip1.carrier.test", dead_port, 1),
            (
                "_sip._tcp.carrier.test",
                "sip2.carrier.test",
                carrier_port,
                2,
            ),
        ],
    );
    let server = Server::start_full(
        &format!(
            "answer_after_ms = 100\nshutdown_grace_s = 2\nresolvers = [\"127.0.0.1:{}\"]",
            dns.port
        ),
        &trunk("sip:carrier.test;transport=tcp", ""),
    );
    eventually(
        "hotline registers through the SRV target that answers",
        || json(&server, "/api/trunks")[0]["state"] == "registered",
    );
    let log = both_logs(&carrier, &server);
    let line = |what: &str, port: u16| {
        let at = format!("addr={CARRIER_IP}:{port}");
        server
            .log()
            .lines()
            .position(|l| l.contains(what) && l.contains(&at))
    };
    let refused = line("no TCP connection to the trunk", dead_port);
    let opened = line("TCP connection to the trunk opened", carrier_port);
    assert!(
        refused.is_some() && opened.is_some() && refused < opened,
        "the first target by priority was tried first, then the next\n{log}"
    );
    assert!(
        carrier
            .log()
            .contains("carrier: REGISTER sip:carrier.test from 127.0.0.1:"),
        "{log}"
    );
}
