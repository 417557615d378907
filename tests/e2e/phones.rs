//! Real softphones as agents' phones: Debian's baresip, headless (a WAV file as its
//! microphone, received audio dumped to WAV files, driven over its `ctrl_tcp` socket). It
//! registers with hotline's default digest challenge, is rung for a waiting caller, answers,
//! and each side's audio is checked at the other end.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::agents::{Listener, json};
use super::*;

/// A baresip phone for agent `user`, registered to the server, its microphone playing a
/// 1 kHz tone, what it hears dumped under `snd/`.
pub(super) struct Baresip {
    child: Child,
    ctrl: u16,
    dir: PathBuf,
}

/// How a baresip phone reaches the server.
#[derive(Clone, Copy)]
pub(super) struct Setup<'a> {
    /// SIP over TLS to this port, trusting this certificate; plain UDP otherwise.
    pub tls: Option<(u16, &'a Path)>,
    /// baresip's `mediaenc`: `srtp` (SRTP when the other end takes it), `srtp-mand`.
    pub mediaenc: Option<&'a str>,
    /// The tone its microphone plays.
    pub tone: f64,
    /// Whether it registers (an agent's phone) or only dials (a caller's).
    pub register: bool,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            tls: None,
            mediaenc: None,
            tone: 1000.0,
            register: true,
        }
    }
}

impl Baresip {
    pub(super) fn start(server: &Server, user: &str, password: &str, base: u16) -> Baresip {
        Baresip::start_with(server, user, password, base, Setup::default())
    }

    pub(super) fn start_with(
        server: &Server,
        user: &str,
        password: &str,
        base: u16,
        setup: Setup,
    ) -> Baresip {
        let dir = server.path().join(format!("baresip-{user}"));
        std::fs::create_dir_all(dir.join("snd")).unwrap();
        write_prompt(&dir.join("mic.wav"), 30.0, setup.tone);
        let mut extra = String::new();
        if let Some((_, ca)) = setup.tls {
            extra.push_str(&format!("sip_cafile {}\n", ca.display()));
        }
        // Loaded before the accounts, which name it.
        let srtp = if setup.mediaenc.is_some() {
            "module srtp.so\n"
        } else {
            ""
        };
        // baresip also takes the SIP port + 1 (TLS).
        let (sip, ctrl, rtp) = (base, base + 10, base + 20);
        std::fs::write(
            dir.join("config"),
            format!(
                "poll_method epoll\n\
                 sip_listen 127.0.0.1:{sip}\n\
                 net_interface 127.0.0.1\n\
                 audio_player aubridge,nil\n\
                 audio_alert aubridge,nil\n\
                 audio_source aufile,{mic}\n\
                 rtp_ports {rtp}-{rtp_hi}\n\
                 module_path /usr/lib/baresip/modules\n\
                 module g711.so\n\
                 module aufile.so\n\
                 module aubridge.so\n\
                 module sndfile.so\n\
                 {srtp}\
                 module account.so\n\
                 module_app menu.so\n\
                 module_app ctrl_tcp.so\n\
                 ctrl_tcp_listen 127.0.0.1:{ctrl}\n\
                 snd_path {snd}\n{extra}",
                mic = dir.join("mic.wav").display(),
                rtp_hi = rtp + 7,
                snd = dir.join("snd").display(),
            ),
        )
        .unwrap();
        let (transport, port) = match setup.tls {
            Some((port, _)) => (";transport=tls", port),
            None => ("", server.ports.sip),
        };
        let mediaenc = setup
            .mediaenc
            .map(|m| format!(";mediaenc={m}"))
            .unwrap_or_default();
        std::fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{user}@hotline.local{transport}>;auth_pass={password};outbound=\"sip:127.0.0.1:{port}{transport}\";regint={regint};answermode=manual{mediaenc}\n",
                regint = if setup.register { 600 } else { 0 },
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
        // -t: baresip quits by itself after a minute, whatever happens to the test.
        let child = Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .args(["-s", "-t", "60"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("baresip (Debian package baresip) must be installed");
        Baresip { child, ctrl, dir }
    }

    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    /// The control socket, once baresip listens on it.
    fn control(&self) -> TcpStream {
        let mut tries = 0;
        loop {
            match TcpStream::connect(("127.0.0.1", self.ctrl)) {
                Ok(s) => return s,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("baresip's ctrl_tcp: {e}\n{}", self.log()),
            }
        }
    }

    /// Waits for an incoming call's event and answers it, as an agent clicking "answer".
    pub(super) fn answer_when_rung(&self) {
        let mut s = self.control();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        loop {
            let event =
                netstring(&mut r).unwrap_or_else(|| panic!("no call came:\n{}", self.log()));
            if event.contains("\"CALL_INCOMING\"") {
                break;
            }
        }
        let cmd = r#"{"command":"accept","params":"","token":"1"}"#;
        write!(s, "{}:{cmd},", cmd.len()).unwrap();
    }

    /// Presses `keys` on the phone during its call (sent as RFC 4733 events).
    pub(super) fn press(&self, keys: &str) {
        let mut s = self.control();
        let cmd = format!(r#"{{"command":"sndcode","params":"{keys}","token":"3"}}"#);
        write!(s, "{}:{cmd},", cmd.len()).unwrap();
    }

    /// Dials `uri` from the phone, as its user would.
    pub(super) fn dial(&self, uri: &str) {
        let mut s = self.control();
        let cmd = format!(r#"{{"command":"dial","params":"{uri}","token":"2"}}"#);
        write!(s, "{}:{cmd},", cmd.len()).unwrap();
    }

    /// The audio baresip heard on its calls (sndfile's decoded dumps), in order.
    pub(super) fn heard(&self) -> Vec<i16> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("snd"))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .collect();
        files.sort();
        files.iter().flat_map(|f| read_wav(f)).collect()
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One netstring (`LEN:TEXT,`) from baresip's control socket.
fn netstring(r: &mut impl BufRead) -> Option<String> {
    let mut len = Vec::new();
    r.read_until(b':', &mut len).ok()?;
    let n: usize = std::str::from_utf8(&len[..len.len().checked_sub(1)?])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let mut body = vec![0; n + 1];
    r.read_exact(&mut body).ok()?;
    body.pop();
    String::from_utf8(body).ok()
}

/// 100 ms blocks in which a tone at `freq` carries most of the power (Goertzel).
pub(super) fn tone_blocks(samples: &[i16], freq: f64) -> usize {
    samples
        .chunks(800)
        .filter(|c| {
            let k = 2.0 * (2.0 * std::f64::consts::PI * freq / 8000.0).cos();
            let (mut s1, mut s2) = (0.0, 0.0);
            let mut energy = 0.0;
            for &x in c.iter() {
                let x = f64::from(x);
                energy += x * x;
                let s0 = x + k * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            let power = s1 * s1 + s2 * s2 - k * s1 * s2;
            // A pure tone's Goertzel power is energy * N / 2.
            energy > 1.0e5 * c.len() as f64 && power > 0.4 * energy * c.len() as f64 / 2.0
        })
        .count()
}

/// baresip, an independent SIP phone, registers as alice with the default config (one MD5
/// challenge: it gives up on a 401 carrying two), rings for a waiting caller, answers, and
/// each side hears the other: the caller the phone's 1 kHz tone, the phone the caller's voice.
#[test]
fn baresip_registers_is_rung_answers_and_both_sides_hear_each_other() {
    let server = Server::start_full(
        "answer_after_ms = 100\nshutdown_grace_s = 2",
        "[[agents]]\nid = \"alice\"\npassword = \"alice-pw\"\nskills = { support = 1 }\n\n[[queues]]\nname = \"support\"\nskills = [\"support\"]\nring_timeout_s = 15\nwrap_up_s = 0\n",
    );
    let base = Ports::take().sip;
    let phone = Baresip::start(&server, "alice", "alice-pw", base);
    let base = base + 40;
    let deadline = Instant::now() + Duration::from_secs(10);
    while json(&server, "/api/agents")[0]["state"] != "available" {
        assert!(
            Instant::now() < deadline,
            "baresip never registered:\n{}\n{}",
            phone.log(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let caller_hears = Listener::bind(base, true);
    let file = server.path().join("caller.xml");
    std::fs::write(&file, call("PCMU", Some(base), &[pause(9000)], CALLER_BYE)).unwrap();
    let caller = sipp_command(&server, &file, "hold", &[], 0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    phone.answer_when_rung();
    let caller = caller.wait_with_output().unwrap();
    assert!(
        caller.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&caller.stdout),
        server.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    let heard = super::agents::pcmu_samples(&caller_hears.stop());
    let tone = tone_blocks(&heard, 1000.0);
    assert!(
        tone >= 30,
        "the caller heard {tone} blocks of the phone's tone\n{}\n{}",
        phone.log(),
        server.log()
    );
    // Our answers tell the phone where its requests came from (RFC 3581: it asked with rport).
    assert!(
        phone.log().contains(";received=127.0.0.1;rport="),
        "{}",
        phone.log()
    );
    // The phone's screen shows who called (the caller's From), not the line.
    assert!(
        phone
            .log()
            .contains("Incoming call from: Test Caller sip:caller@127.0.0.1"),
        "{}",
        phone.log()
    );
    let agent_heard = phone.heard();
    let loud = loud_blocks(&agent_heard);
    assert!(
        loud >= 30,
        "baresip heard {loud} loud blocks of the caller ({} samples)\n{}",
        agent_heard.len(),
        phone.log()
    );
    assert_eq!(
        tone_blocks(&agent_heard, 300.0),
        0,
        "the phone hears the caller, not the hold music"
    );
    // Alice goes on a break from her phone: *45, authenticated with her account's password.
    let alice = |s: &Server| json(s, "/api/agents")[0]["state"].clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alice(&server) != "available" {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    phone.dial(&format!("sip:*45@127.0.0.1:{}", server.ports.sip));
    let deadline = Instant::now() + Duration::from_secs(10);
    while alice(&server) != "not-ready" {
        assert!(
            Instant::now() < deadline,
            "*45 from baresip:\n{}\n{}",
            phone.log(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Baresip {
    /// Hangs up the phone's call, as its user would.
    pub(super) fn hang_up(&self) {
        let mut s = self.control();
        let cmd = r#"{"command":"hangup","params":"","token":"3"}"#;
        write!(s, "{}:{cmd},", cmd.len()).unwrap();
    }
}

/// A self-signed certificate for 127.0.0.1 (an EC key: quick to make), as `(cert, key)`.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

fn metric(server: &Server, name: &str) -> f64 {
    let (_, text) = super::agents::http(server, "GET", "/metrics", None, "");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// An agent's baresip registers over TLS and insists on SRTP (`mediaenc=srtp-mand`: it
/// refuses plain RTP); a caller's baresip offers SRTP the best-effort way (RTP/AVP with a
/// key). hotline answers the caller with its own key, rings the agent over the TLS
/// connection with an RTP/SAVP offer, and each side hears the other through two SRTP legs.
#[test]
fn an_agent_registers_over_tls_and_both_legs_talk_srtp() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let tls_port = Ports::take().sip + 1;
    let server = Server::start_config(
        &format!(
            "answer_after_ms = 100\nshutdown_grace_s = 2\ntls_listen = \"127.0.0.1:{tls_port}\"\ntls_certificate = \"{}\"\ntls_key = \"{}\"",
            cert.display(),
            key.display()
        ),
        "srtp = \"agents\"",
        "[[agents]]\nid = \"alice\"\npassword = \"alice-pw\"\nskills = { support = 1 }\n\n[[queues]]\nname = \"support\"\nskills = [\"support\"]\nring_timeout_s = 15\nwrap_up_s = 0\n",
        &[],
    );
    let base = Ports::take().sip;
    let agent = Baresip::start_with(
        &server,
        "alice",
        "alice-pw",
        base,
        Setup {
            tls: Some((tls_port, &cert)),
            mediaenc: Some("srtp-mand"),
            tone: 1000.0,
            register: true,
        },
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while json(&server, "/api/agents")[0]["state"] != "available" {
        assert!(
            Instant::now() < deadline,
            "baresip never registered over TLS:\n{}\n{}",
            agent.log(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let caller = Baresip::start_with(
        &server,
        "caller",
        "unused",
        base + 30,
        Setup {
            tls: None,
            mediaenc: Some("srtp"),
            tone: 600.0,
            register: false,
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    caller.dial(&format!("sip:hold@127.0.0.1:{}", server.ports.sip));
    agent.answer_when_rung();
    std::thread::sleep(Duration::from_secs(6));
    caller.hang_up();
    std::thread::sleep(Duration::from_millis(500));
    let logs = || format!("{}\n{}\n{}", agent.log(), caller.log(), server.log());
    assert_eq!(
        metric(&server, "hotline_srtp_legs_total"),
        2.0,
        "the caller's leg and the agent's are both SRTP\n{}",
        logs()
    );
    let agent_heard = agent.heard();
    let caller_heard = caller.heard();
    assert!(
        tone_blocks(&agent_heard, 600.0) >= 30,
        "the agent heard {} blocks of the caller's tone\n{}",
        tone_blocks(&agent_heard, 600.0),
        logs()
    );
    assert!(
        tone_blocks(&caller_heard, 1000.0) >= 30,
        "the caller heard {} blocks of the agent's tone\n{}",
        tone_blocks(&caller_heard, 1000.0),
        logs()
    );
    assert_eq!(metric(&server, "hotline_srtp_packets_refused_total"), 0.0);
}

/// The certificate a TLS client is shown on `port`: its subject line, as openssl prints it.
fn presented_subject(port: u16) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .output()
        .expect("openssl must be installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or("no certificate")
        .to_string()
}

/// A renewed certificate put in place of the old one is presented to new connections after
/// SIGHUP; a broken one is refused with a log line and the running one stays.
#[test]
fn sighup_reloads_the_tls_certificate_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let tls_port = Ports::take().sip + 1;
    let server = Server::start_with(&format!(
        "tls_listen = \"127.0.0.1:{tls_port}\"\ntls_certificate = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    ));
    server.log_with("listening for SIP over TLS");
    let first = presented_subject(tls_port);
    assert!(first.contains("127.0.0.1"), "{first}\n{}", server.log());
    let renewed = dir.path().join("renewed");
    std::fs::create_dir_all(&renewed).unwrap();
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=renewed.example"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success());
    server.signal("-HUP");
    server.log_with("TLS certificate reloaded");
    assert!(
        presented_subject(tls_port).contains("renewed.example"),
        "{}",
        presented_subject(tls_port)
    );
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    server.signal("-HUP");
    let log = server.log_with("TLS certificate NOT reloaded");
    assert!(log.contains("TLS certificate NOT reloaded"), "{log}");
    assert!(presented_subject(tls_port).contains("renewed.example"));
}

/// With `[rtp] srtp = "all"`, a caller offering plain RTP is refused with 488: nobody's audio
/// crosses the network in the clear.
#[test]
fn a_plain_offer_gets_488_when_srtp_is_required_for_every_call() {
    let server = Server::start_config(
        "answer_after_ms = 100",
        "srtp = \"all\"",
        "[[queues]]\nname = \"support\"\nskills = [\"support\"]\n",
        &[],
    );
    let refused = r#"  <recv response="100" optional="true"/>
  <recv response="488"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"#;
    let xml = scenario(&[invite("PCMU", None), refused.to_string()]);
    let r = server.sipp("plain", &xml, "main", &[]);
    assert!(r.ok, "{}\n{}", r.text, server.log());
    assert!(
        server.log().contains("SRTP is required"),
        "{}",
        server.log()
    );
}

/// A caller whose From is long enough that the INVITE to the agent (From, P-Asserted-Identity
/// and X-Hotline-Caller each carry it) is bigger than UDP takes (RFC 3261 §18.1.1): hotline
/// opens a TCP connection to the phone, which registered over UDP, and rings it there;
/// baresip answers and the caller hears it.
#[test]
fn an_invite_too_big_for_udp_reaches_the_agents_phone_over_tcp() {
    let server = Server::start_full(
        "answer_after_ms = 100\nshutdown_grace_s = 2",
        "[[agents]]\nid = \"alice\"\npassword = \"alice-pw\"\nskills = { support = 1 }\n\n[[queues]]\nname = \"support\"\nskills = [\"support\"]\nring_timeout_s = 15\nwrap_up_s = 0\n",
    );
    let base = Ports::take().sip;
    let phone = Baresip::start(&server, "alice", "alice-pw", base);
    let base = base + 40;
    let deadline = Instant::now() + Duration::from_secs(10);
    while json(&server, "/api/agents")[0]["state"] != "available" {
        assert!(
            Instant::now() < deadline,
            "baresip never registered:\n{}\n{}",
            phone.log(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let caller_hears = Listener::bind(base, true);
    let file = server.path().join("caller.xml");
    let user = format!("caller-{}", "7".repeat(420));
    let xml = call("PCMU", Some(base), &[pause(6000)], CALLER_BYE)
        .replace("<sip:caller@", &format!("<sip:{user}@"));
    std::fs::write(&file, xml).unwrap();
    let caller = sipp_command(&server, &file, "hold", &[], 0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    phone.answer_when_rung();
    let caller = caller.wait_with_output().unwrap();
    assert!(
        caller.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&caller.stdout),
        phone.log(),
        server.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    let heard = super::agents::pcmu_samples(&caller_hears.stop());
    let tone = tone_blocks(&heard, 1000.0);
    assert!(
        tone >= 30,
        "the caller heard {tone} blocks of the phone's tone\n{}\n{}",
        phone.log(),
        server.log()
    );
    let log = server.log();
    assert!(
        log.contains("too big for UDP: the INVITE goes over TCP"),
        "the INVITE went over a connection hotline opened:\n{log}"
    );
    assert!(
        !log.contains("sent over UDP"),
        "not over UDP after all:\n{log}"
    );
}

/// GET `path` with extra request headers (a cookie, a token): the status and the body's bytes.
fn get_bytes(server: &Server, path: &str, headers: &str) -> (u16, Vec<u8>) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.ports.http)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let status = std::str::from_utf8(&raw[9..12]).unwrap().parse().unwrap();
    let body = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(Vec::new(), |at| raw[at + 4..].to_vec());
    (status, body)
}

/// A desk login's session cookie (`name=value`), as the login page sets it.
pub(super) fn login_cookie(server: &Server, agent: &str, password: &str) -> String {
    use std::io::Read;
    let body = format!("agent={agent}&password={password}&next=%2Fdesk");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.ports.http)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST /login HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .map(|c| c.split(';').next().unwrap_or_default().to_string())
        .find(|c| !c.is_empty())
        .unwrap_or_else(|| panic!("no session for {agent}:\n{text}"))
}

/// A POST from the desk page as its script sends it (session cookie and the page's CSRF
/// token): (status, body).
pub(super) fn desk_post(server: &Server, cookie: &str, path: &str, body: &str) -> (u16, String) {
    let (status, page) = get_bytes(server, "/desk", &format!("Cookie: {cookie}\r\n"));
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    let csrf = page
        .split("data-csrf=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF token on the desk:\n{page}"));
    let headers = format!("Cookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n");
    super::agents::http_with(server, "POST", path, &headers, body)
}

/// The longest run of 100 ms blocks with nothing audible in it.
fn longest_quiet(samples: &[i16]) -> usize {
    let mut best = 0;
    let mut run = 0;
    for c in samples.chunks(800) {
        let energy: f64 = c.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        if energy > 1.0e5 * c.len() as f64 {
            run = 0;
        } else {
            run += 1;
            best = best.max(run);
        }
    }
    best
}

/// An `on-demand` queue records only when the agent asks: before she does the desk is told
/// she is on no call, then her desk starts it, the caller hears `[recording] announcement`,
/// her phone's `*7` pauses it (both sides are silence in the file meanwhile) and the desk's
/// button resumes it; the record counts the paused seconds.
#[test]
fn an_agent_starts_pauses_and_resumes_her_calls_recording() {
    let server = Server::start_full(
        "answer_after_ms = 100\nshutdown_grace_s = 2",
        "[recording]\npause_keys = \"*7\"\nannouncement = \"welcome\"\n\n[[agents]]\nid = \"alice\"\npassword = \"alice-pw\"\nskills = { support = 1 }\n\n[[queues]]\nname = \"support\"\nskills = [\"support\"]\nring_timeout_s = 15\nwrap_up_s = 0\nrecord = \"on-demand\"\n",
    );
    let base = Ports::take().sip;
    let phone = Baresip::start(&server, "alice", "alice-pw", base);
    let base = base + 40;
    super::agents::eventually("alice's phone registers", || {
        json(&server, "/api/agents")[0]["state"] == "available"
    });
    let alice = login_cookie(&server, "alice", "alice-pw");
    let (status, body) = desk_post(&server, &alice, "/desk/recording", r#"{"on":true}"#);
    assert_eq!(status, 409, "no call yet: {body}");
    assert!(body.contains("not talking"), "{body}");

    let caller_hears = Listener::bind(base, true);
    let file = server.path().join("caller.xml");
    std::fs::write(&file, call("PCMU", Some(base), &[pause(10000)], CALLER_BYE)).unwrap();
    let caller = sipp_command(&server, &file, "hold", &[], 0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    phone.answer_when_rung();
    super::agents::eventually("alice talks to the caller", || {
        json(&server, "/api/agents")[0]["state"] == "busy"
            && json(&server, "/api/calls?limit=1")[0]["agent_answered_at"].is_string()
    });
    std::thread::sleep(Duration::from_millis(1000));
    let (status, body) = desk_post(&server, &alice, "/desk/recording", r#"{"on":true}"#);
    assert_eq!((status, body.as_str()), (200, r#"{"recording":true}"#));
    std::thread::sleep(Duration::from_millis(2500));
    phone.press("*7");
    std::thread::sleep(Duration::from_millis(2500));
    let (status, body) = desk_post(&server, &alice, "/desk/recording", "{}");
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"recording":true}"#),
        "the desk's button resumes what the phone paused\n{}",
        server.log()
    );
    let caller = caller.wait_with_output().unwrap();
    assert!(
        caller.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&caller.stdout),
        server.log()
    );
    let heard = super::agents::pcmu_samples(&caller_hears.stop());
    assert!(
        tone_blocks(&heard, 700.0) >= 12,
        "the caller hears that the call is recorded: {} blocks of it",
        tone_blocks(&heard, 700.0)
    );

    let mut record = Value::Null;
    super::agents::eventually("the call's record is final", || {
        record = json(&server, "/api/calls?limit=1")[0].clone();
        record["recording"]["seconds"].is_number()
    });
    // The call's quality: on loopback nothing is lost, and baresip's RTCP reports say how
    // it hears us.
    let q = &record["quality"];
    assert!(q["caller"]["received"].as_u64().unwrap() > 100, "{q}");
    assert_eq!(q["caller"]["lost"], 0, "{q}");
    let agent = &q["agents"][0];
    assert!(agent["received"].as_u64().unwrap() > 200, "{q}");
    assert_eq!(agent["loss_pct"], 0.0, "{q}");
    assert_eq!(
        agent["far_loss_pct"], 0.0,
        "baresip reported on our audio: {q}"
    );
    if let Some(rtt) = agent["rtt_ms"].as_f64() {
        assert!(rtt < 50.0, "a loopback round trip: {q}");
    }
    let (_, metrics) = super::agents::http(&server, "GET", "/metrics", None, "");
    let counter = |line: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{line} in\n{metrics}"))
    };
    assert!(counter("hotline_rtcp_reports_total{direction=\"received\"}") >= 1.0);
    assert!(counter("hotline_rtcp_reports_total{direction=\"sent\"}") >= 1.0);
    assert_eq!(counter("hotline_rtp_packets_lost_total"), 0.0);
    let meta = &record["recording"];
    let seconds = meta["seconds"].as_f64().unwrap();
    let paused = meta["paused_s"].as_f64().unwrap();
    assert!((1.5..4.0).contains(&paused), "{record}\n{}", server.log());
    let at = |k: &str| {
        record[k]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    let talked = at("ended")
        .duration_since(at("agent_answered_at"))
        .as_secs_f64();
    assert!(
        seconds > 3.0 && seconds < talked - 0.8,
        "from the desk's start to the end, not from the answer ({talked} s): {record}"
    );
    let path = server
        .path()
        .join("data")
        .join(meta["file"].as_str().unwrap());
    let samples = read_wav(&path);
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let agent_tone = tone_blocks(&right, 1000.0);
    assert!(
        agent_tone as f64 >= (seconds - paused) * 10.0 * 0.6,
        "the agent's tone while it records: {agent_tone} blocks in {seconds} s"
    );
    assert!(
        agent_tone as f64 <= (seconds - paused) * 10.0 + 3.0,
        "nothing of her while paused: {agent_tone} blocks in {seconds} s, {paused} s paused"
    );
    assert!(
        longest_quiet(&right) >= 15 && longest_quiet(&left) >= 15,
        "both sides silent for the pause: {} and {} blocks",
        longest_quiet(&left),
        longest_quiet(&right)
    );
    assert!(
        server
            .log()
            .contains("the agent pauses or resumes the recording"),
        "{}",
        server.log()
    );
    // The compliance report counts it, pause and all.
    let out = Command::new(super::common::bin())
        .args(["report", "--format", "json"])
        .current_dir(server.path())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["recordings"]["calls"], 1, "{report}");
    assert_eq!(report["recordings"]["incomplete"], 0, "{report}");
    assert!(
        (report["recordings"]["paused_s"].as_f64().unwrap() - paused).abs() < 0.01,
        "{report}"
    );
}

/// The hold line records its callers (its queue node's `record = "on"`, over the support
/// queue's own "off"): the caller (speech) and baresip's agent (a 1 kHz
/// tone) end up in one stereo WAV, the caller left and the agent right, as long as they
/// talked; the record says where, how long and that it is complete. The file is served to
/// the API's token and to the agent who took the call; another agent gets 403, nobody 401.
#[test]
fn a_recorded_queue_keeps_both_sides_in_one_stereo_file_for_those_allowed() {
    let server = Server::start_full(
        "answer_after_ms = 100\nshutdown_grace_s = 2",
        "[[agents]]\nid = \"alice\"\npassword = \"alice-pw\"\nskills = { support = 1 }\n\n[[agents]]\nid = \"bob\"\npassword = \"bob-pw\"\nskills = { billing = 1 }\n\n[[queues]]\nname = \"support\"\nskills = [\"support\"]\nring_timeout_s = 15\nwrap_up_s = 0\n\n[[queues]]\nname = \"billing\"\nskills = [\"billing\"]\n",
    );
    // Support does not record; this line's queue node does, for its callers.
    let hold = server.path().join("flows/hold.toml");
    let flow = std::fs::read_to_string(&hold).unwrap();
    let before = json(&server, "/api/flows")["last_reload"]["at"].clone();
    std::fs::write(
        &hold,
        flow.replace("max_wait_s = 60\n", "max_wait_s = 60\nrecord = \"on\"\n"),
    )
    .unwrap();
    server.signal("-HUP");
    super::agents::eventually("the line's flow reloads", || {
        json(&server, "/api/flows")["last_reload"]["at"] != before
    });
    assert_eq!(json(&server, "/api/flows")["last_reload"]["ok"], true);
    let base = Ports::take().sip;
    let phone = Baresip::start(&server, "alice", "alice-pw", base);
    let base = base + 40;
    let deadline = Instant::now() + Duration::from_secs(10);
    while json(&server, "/api/agents")[0]["state"] != "available" {
        assert!(
            Instant::now() < deadline,
            "{}\n{}",
            phone.log(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let caller_hears = Listener::bind(base, true);
    let file = server.path().join("caller.xml");
    std::fs::write(&file, call("PCMU", Some(base), &[pause(6000)], CALLER_BYE)).unwrap();
    let caller = sipp_command(&server, &file, "hold", &[], 0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    phone.answer_when_rung();
    let caller = caller.wait_with_output().unwrap();
    assert!(
        caller.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&caller.stdout),
        server.log()
    );
    drop(caller_hears.stop());
    let mut record = Value::Null;
    super::agents::eventually("the call's record is final", || {
        record = json(&server, "/api/calls?limit=1")[0].clone();
        record["recording"]["seconds"].is_number()
    });
    let meta = &record["recording"];
    assert_eq!(meta["complete"], true, "{record}");
    let seconds = meta["seconds"].as_f64().unwrap();
    assert!((3.0..8.0).contains(&seconds), "{record}");
    let path = server
        .path()
        .join("data")
        .join(meta["file"].as_str().unwrap());
    let wav = hound::WavReader::open(&path).unwrap();
    assert_eq!((wav.spec().channels, wav.spec().sample_rate), (2, 8000));
    let samples = read_wav(&path);
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let agent_tone = tone_blocks(&right, 1000.0);
    assert!(
        agent_tone as f64 >= seconds * 10.0 * 0.6,
        "the agent's tone on the right for most of the call: {agent_tone} blocks in {seconds} s\n{}",
        server.log()
    );
    assert_eq!(tone_blocks(&left, 1000.0), 0, "the left is the caller's");
    assert!(
        loud_blocks(&left) as f64 >= seconds * 10.0 * 0.3,
        "the caller's speech on the left: {} blocks",
        loud_blocks(&left)
    );

    let id = record["id"].as_str().unwrap();
    let url = format!("/api/calls/{id}/recording");
    let (status, body) = get_bytes(&server, &url, "Authorization: Bearer test-token\r\n");
    assert_eq!(status, 200);
    assert!(body.starts_with(b"RIFF"), "a WAV file");
    let alice = login_cookie(&server, "alice", "alice-pw");
    let (status, _) = get_bytes(&server, &url, &format!("Cookie: {alice}\r\n"));
    assert_eq!(status, 200, "the agent who took the call may listen");
    let bob = login_cookie(&server, "bob", "bob-pw");
    let (status, body) = get_bytes(&server, &url, &format!("Cookie: {bob}\r\n"));
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    let (status, _) = get_bytes(&server, &url, "");
    assert_eq!(status, 401);
}
