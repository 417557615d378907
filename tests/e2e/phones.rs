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
