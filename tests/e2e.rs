//! End to end over loopback: the real `hotline serve` answering SIPp, an independent SIP
//! implementation, with real RTP (RFC 4733 digits and G.711 audio from SIPp's pcaps), real WAV
//! recordings and the real SQLite store. SIPp's exit status says whether every message it
//! expected arrived in order; the tests then look at what a user would see: the audio, the
//! voicemail files, the callback rows.

#![allow(clippy::disallowed_methods)] // a black-box test of a live server reads the real clock

#[path = "e2e/agents.rs"]
mod agents;
#[path = "e2e/carrier.rs"]
mod carrier;
mod common;
#[path = "e2e/desk.rs"]
mod desk;
#[path = "e2e/languages.rs"]
mod languages;
#[path = "e2e/linphone.rs"]
mod linphone;
#[path = "e2e/lookups.rs"]
mod lookups;
#[path = "e2e/nat.rs"]
mod nat;
#[path = "e2e/operations.rs"]
mod operations;
#[path = "e2e/phones.rs"]
mod phones;
#[path = "e2e/probe.rs"]
mod probe;
#[path = "e2e/returning.rs"]
mod returning;
#[path = "e2e/switches.rs"]
mod switches;
#[path = "e2e/transfers.rs"]
mod transfers;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// SIPp's own data folder (Debian's sip-tester): RFC 4733 digit pcaps and a G.711 A-law
/// recording.
const PCAPS: &str = "/usr/share/sip-tester";

/// Each server takes a block of ports, so tests run side by side.
static NEXT_BLOCK: AtomicU16 = AtomicU16::new(0);
const BLOCK: u16 = 64;

struct Ports {
    sip: u16,
    rtp: (u16, u16),
    sipp: u16,
    sipp_media: u16,
    listen_rtp: u16,
    http: u16,
    /// Where the transfer line's target phone answers (SIP), and its media.
    transfer_target: u16,
    transfer_media: u16,
}

impl Ports {
    fn take() -> Ports {
        // Below Linux's ephemeral range (32768 and up), where the sockets the tests and SIPp
        // bind to port 0 could otherwise take a port a server is about to use.
        // Blocks are reused round the 62 there are: the tests run a few at a time, so the
        // block taken 62 servers ago is long free.
        let block = NEXT_BLOCK.fetch_add(1, Ordering::Relaxed) % 62;
        let base = 20_000 + (std::process::id() % 3) as u16 * 4000 + block * BLOCK;
        Ports {
            sip: base,
            rtp: (base + 10, base + 40),
            sipp: base + 2,
            sipp_media: base + 44,
            listen_rtp: base + 56,
            http: base + 60,
            transfer_target: base + 62,
            transfer_media: base + 52,
        }
    }
}

/// The test line. `welcome` plays 2 s (time to press the escape digit during it); the menu
/// waits 1 s after its prompt and retries once; every ending is a distinct mailbox, callback
/// or hangup, so a test can tell which way the call went.
const MAIN: &str = r#"
[flow]
entry = "welcome"
escape_digit = "0"
escape_to = "agents"
max_steps_to_human = 5

[nodes.welcome]
type = "play"
prompt = "welcome"
next = "menu"

[nodes.menu]
type = "menu"
prompt = "short"
options = { "1" = "one", "2" = "call_me", "3" = "bye", "4" = "brief" }
timeout_s = 1
max_retries = 1
on_exhausted = "agents"

[nodes.one]
type = "voicemail"
mailbox = "one"
prompt = "short"
max_length_s = 20

[nodes.brief]
type = "voicemail"
mailbox = "brief"
prompt = "short"
max_length_s = 2

[nodes.call_me]
type = "callback"
queue = "support"
prompt = "short"

[nodes.bye]
type = "hangup"
prompt = "short"

[nodes.agents]
type = "queue"
queue = "support"
max_wait_s = 1
on_timeout = "messages"

[nodes.messages]
type = "voicemail"
mailbox = "support"
prompt = "short"
max_length_s = 20
"#;

/// A line that holds the caller in a queue for a long time: for shutdown tests.
const HOLD: &str = r#"
[flow]
entry = "agents"
escape_digit = "0"
escape_to = "agents"

[nodes.agents]
type = "queue"
queue = "support"
max_wait_s = 60
on_timeout = "messages"

[nodes.messages]
type = "voicemail"
mailbox = "support"
max_length_s = 20
"#;

struct Server {
    dir: tempfile::TempDir,
    ports: Ports,
    child: Option<Child>,
    /// Extra environment for `hotline serve`.
    env: Vec<(String, String)>,
}

impl Server {
    fn start() -> Server {
        Server::start_with("answer_after_ms = 300\nshutdown_grace_s = 2")
    }

    /// A server on the test line with these extra `[sip]` keys.
    fn start_with(sip_extra: &str) -> Server {
        Server::start_full(
            sip_extra,
            "[[queues]]\nname = \"support\"\nskills = [\"support\"]\n",
        )
    }

    /// A server with these extra `[sip]` keys and this tail of hotline.toml (agents, queues).
    fn start_full(sip_extra: &str, tail: &str) -> Server {
        Server::start_env(sip_extra, tail, &[])
    }

    /// The same, with extra environment variables for the server.
    fn start_env(sip_extra: &str, tail: &str, env: &[(&str, &str)]) -> Server {
        Server::start_config(sip_extra, "", tail, env)
    }

    /// The same, with extra `[rtp]` keys too.
    fn start_config(sip_extra: &str, rtp_extra: &str, tail: &str, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let ports = Ports::take();
        let p = dir.path();
        std::fs::create_dir_all(p.join("flows")).unwrap();
        std::fs::create_dir_all(p.join("prompts")).unwrap();
        std::fs::write(p.join("flows/main.toml"), MAIN).unwrap();
        std::fs::write(p.join("flows/hold.toml"), HOLD).unwrap();
        std::fs::write(p.join("flows/agentline.toml"), agents::LINE).unwrap();
        std::fs::write(p.join("flows/waitline.toml"), agents::WAIT_LINE).unwrap();
        std::fs::write(
            p.join("flows/transferline.toml"),
            agents::transfer_line(ports.transfer_target),
        )
        .unwrap();
        write_prompt(&p.join("prompts/welcome.wav"), 2.0, 700.0);
        write_prompt(&p.join("prompts/short.wav"), 0.3, 500.0);
        write_prompt(&p.join("prompts/hold.wav"), 1.0, 300.0);
        agents::write_queue_prompts(&p.join("prompts"));
        let config = format!(
            r#"[sip]
listen = "127.0.0.1:{sip}"
advertise = "127.0.0.1"
{sip_extra}

[rtp]
address = "127.0.0.1"
ports = [{lo}, {hi}]
{rtp_extra}

[http]
listen = "127.0.0.1:{http}"

[callbacks]
domains = ["127.0.0.1"]

[lines]
default = "main"
hold = "hold"
agent = "agentline"
wait = "waitline"
front = "transferline"
"+34910000000" = "main"

{tail}"#,
            sip = ports.sip,
            http = ports.http,
            lo = ports.rtp.0,
            hi = ports.rtp.1,
        );
        std::fs::write(p.join("hotline.toml"), config).unwrap();
        let mut server = Server {
            dir,
            ports,
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        server.spawn();
        server
    }

    /// Starts `hotline serve` in the server's folder, its log appended to `server.log`.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("server.log"))
            .unwrap();
        let child = Command::new(common::bin())
            .arg("serve")
            .current_dir(self.path())
            .env("HOTLINE_LOG", "debug")
            .env("HOTLINE_TOKEN", "test-token")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_until_answering();
    }

    /// Kills the server outright (SIGKILL: no shutdown, as in a crash) and starts it again.
    fn crash_and_restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        self.spawn();
    }

    /// Kills the server (SIGKILL) and leaves it stopped, to change its folder before `spawn`.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("server.log")).unwrap_or_default()
    }

    /// OPTIONS until the server answers 200 (it is also the OPTIONS test).
    fn wait_until_answering(&self) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let local = s.local_addr().unwrap();
        let options = format!(
            "OPTIONS sip:hotline@127.0.0.1:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-opt{n}\r\nFrom: <sip:probe@{local}>;tag=p1\r\nTo: <sip:hotline@127.0.0.1>\r\nCall-ID: probe-{n}@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            sip = self.ports.sip,
            n = self.ports.sip,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            s.send_to(options.as_bytes(), ("127.0.0.1", self.ports.sip))
                .unwrap();
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]);
                assert!(text.starts_with("SIP/2.0 200"), "{text}");
                assert!(
                    text.contains("Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"),
                    "{text}"
                );
                return;
            }
        }
        panic!("the server never answered OPTIONS:\n{}", self.log());
    }

    /// Runs SIPp with a scenario against this server; returns (success, output).
    fn sipp(&self, name: &str, xml: &str, service: &str, extra: &[&str]) -> Sipp {
        let file = self.path().join(format!("{name}.xml"));
        std::fs::write(&file, xml).unwrap();
        let mut cmd = sipp_command(self, &file, service, extra, 0);
        let out = cmd
            .output()
            .expect("SIPp (Debian package sip-tester) must be installed");
        Sipp {
            ok: out.status.success(),
            text: format!(
                "{}\n{}\n--- server log ---\n{}",
                String::from_utf8_lossy(&out.stdout),
                std::fs::read_to_string(self.path().join(format!("{name}_errors.log")))
                    .unwrap_or_default(),
                self.log()
            ),
        }
    }

    /// The messages in a mailbox once `n` have been saved (a message is saved just after the
    /// caller hangs up), or whatever is there after 10 s.
    fn voicemails_when(&self, mailbox: &str, n: usize) -> Vec<(Value, PathBuf)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.voicemails(mailbox);
            if found.len() >= n || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server log once it contains `needle`, or after 10 s.
    fn log_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn voicemails(&self, mailbox: &str) -> Vec<(Value, PathBuf)> {
        let dir = self.path().join("data/voicemail").join(mailbox);
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                out.push((v, p.with_extension("wav")));
            }
        }
        out
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success());
    }

    /// Waits for the server to exit; its exit code.
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// SIPp against `server`; `shift` moves its ports, for a second SIPp beside the first.
fn sipp_command(
    server: &Server,
    file: &Path,
    service: &str,
    extra: &[&str],
    shift: u16,
) -> Command {
    let errors = file.with_file_name(format!(
        "{}_errors.log",
        file.file_stem().unwrap().to_string_lossy()
    ));
    let mut cmd = Command::new("timeout");
    // SIPp's own -timeout does not stop it while a call is open.
    cmd.args(["-k", "5", "60", "sipp"])
        .arg(format!("127.0.0.1:{}", server.ports.sip))
        .arg("-sf")
        .arg(file)
        .args(["-s", service, "-i", "127.0.0.1", "-nostdin", "-trace_err"])
        .arg("-error_file")
        .arg(&errors)
        .args(["-p", &(server.ports.sipp + shift).to_string()])
        .args(["-mp", &(server.ports.sipp_media + shift).to_string()])
        .args(["-timeout", "40s", "-timeout_error"])
        .args(extra)
        .current_dir(server.path());
    if !extra.contains(&"-m") {
        cmd.args(["-m", "1"]);
    }
    cmd
}

struct Sipp {
    ok: bool,
    text: String,
}

/// A WAV prompt: a tone at `freq` Hz, loud enough to tell from silence.
fn write_prompt(path: &Path, seconds: f64, freq: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(seconds * 8000.0) as u32 {
        let t = f64::from(i) / 8000.0;
        w.write_sample((6000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// 100 ms blocks of a recording loud enough to be speech, not silence or line noise.
fn loud_blocks(samples: &[i16]) -> usize {
    samples
        .chunks(800)
        .filter(|c| c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64 > 1.0e5)
        .count()
}

fn read_wav(path: &Path) -> Vec<i16> {
    hound::WavReader::open(path)
        .unwrap()
        .into_samples::<i16>()
        .map(Result::unwrap)
        .collect()
}

// ---- scenarios -------------------------------------------------------------------------

/// The caller's INVITE, offering `codec` (PCMU or PCMA) and telephone-event, with its media at
/// `rtp` (a port the test listens on) or SIPp's own media port.
fn invite(codec: &str, rtp: Option<u16>) -> String {
    let pt = if codec == "PCMA" { 8 } else { 0 };
    let port = rtp.map_or("[media_port]".to_string(), |p| p.to_string());
    format!(
        r#"  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Test Caller" <sip:caller@[local_ip]:[local_port]>;tag=[pid]T[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio {port} RTP/AVP {pt} 101
      a=rtpmap:{pt} {codec}/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20
      a=sendrecv
    ]]>
  </send>
"#
    )
}

const ANSWERED: &str = r#"  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"#;

/// The caller hangs up.
const CALLER_BYE: &str = r#"  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
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

/// The server hangs up; the caller answers its BYE.
const SERVER_BYE: &str = r#"  <recv request="BYE"/>
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
"#;

fn pause(ms: u32) -> String {
    format!("  <pause milliseconds=\"{ms}\"/>\n")
}

/// Plays one of SIPp's RFC 4733 digit captures into the call.
fn key(digit: char) -> String {
    let name = match digit {
        '*' => "star".to_string(),
        '#' => "pound".to_string(),
        d => d.to_string(),
    };
    format!(
        "  <nop><action><exec play_pcap_audio=\"{PCAPS}/dtmf_2833_{name}.pcap\"/></action></nop>\n"
    )
}

/// SIPp's 7 s G.711 A-law recording, played as the caller's voice.
fn speak() -> String {
    format!("  <nop><action><exec play_pcap_audio=\"{PCAPS}/g711a.pcap\"/></action></nop>\n")
}

fn info_digit(digit: char, cseq: u32) -> String {
    format!(
        r#"  <send retrans="500">
    <![CDATA[
      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={digit}
      Duration=160
    ]]>
  </send>
  <recv response="200"/>
"#
    )
}

fn scenario(steps: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"hotline test\">\n{}</scenario>\n",
        steps.concat()
    )
}

fn call(codec: &str, rtp: Option<u16>, middle: &[String], end: &str) -> String {
    let mut steps = vec![invite(codec, rtp), ANSWERED.to_string()];
    steps.extend(middle.iter().cloned());
    steps.push(end.to_string());
    scenario(&steps)
}

/// Places the call `xml` whose media comes to `listen`, and keeps up to `n` RTP packets (when
/// each came, and the whole packet) within `limit`; SIPp must succeed.
fn listen_to_call(
    server: &Server,
    listen: &UdpSocket,
    xml: &str,
    n: usize,
    limit: Duration,
) -> Vec<(Instant, Vec<u8>)> {
    let file = server.path().join("listen.xml");
    std::fs::write(&file, xml).unwrap();
    let mut sipp = sipp_command(server, &file, "main", &[], 0)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut packets: Vec<(Instant, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && packets.len() < n {
        if let Ok((n, _)) = listen.recv_from(&mut buf) {
            packets.push((Instant::now(), buf[..n].to_vec()));
        }
    }
    let status = sipp.wait().unwrap();
    assert!(status.success(), "SIPp failed:\n{}", server.log());
    packets
}

fn path_of(v: &Value) -> Vec<String> {
    v["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

// ---- tests -----------------------------------------------------------------------------

/// The caller hears the welcome prompt itself, sample for sample, at 20 ms pacing.
#[test]
fn a_caller_hears_the_prompt_paced_at_20_ms() {
    let server = Server::start();
    let listen = UdpSocket::bind(("127.0.0.1", server.ports.listen_rtp)).unwrap();
    listen
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let xml = call(
        "PCMU",
        Some(server.ports.listen_rtp),
        &[pause(2600)],
        CALLER_BYE,
    );
    let packets = listen_to_call(&server, &listen, &xml, 110, Duration::from_secs(8));
    assert!(packets.len() >= 100, "only {} RTP packets", packets.len());

    // The first 100 packets are the 2 s welcome prompt, encoded µ-law, frame by frame.
    let samples = read_wav(&server.path().join("prompts/welcome.wav"));
    let expected: Vec<u8> = samples
        .iter()
        .map(|&s| hotline::media::g711::ulaw_encode(s))
        .collect();
    let first_seq = u16::from_be_bytes([packets[0].1[2], packets[0].1[3]]);
    let first_ts = u32::from_be_bytes(packets[0].1[4..8].try_into().unwrap());
    let ssrc = &packets[0].1[8..12];
    assert_eq!(packets[0].1[1] & 0x80, 0x80, "marker on the first packet");
    for (i, (_, p)) in packets.iter().take(100).enumerate() {
        assert_eq!(p[0] >> 6, 2, "RTP version 2");
        assert_eq!(p[1] & 0x7f, 0, "PCMU");
        assert_eq!(p.len(), 12 + 160);
        assert_eq!(
            u16::from_be_bytes([p[2], p[3]]),
            first_seq.wrapping_add(i as u16)
        );
        assert_eq!(
            u32::from_be_bytes(p[4..8].try_into().unwrap()),
            first_ts.wrapping_add(160 * i as u32)
        );
        assert_eq!(&p[8..12], ssrc);
        assert_eq!(
            &p[12..],
            &expected[i * 160..(i + 1) * 160],
            "frame {i} is the prompt"
        );
    }
    // Pacing: the gaps between arrivals centre on 20 ms.
    let mut gaps: Vec<f64> = packets
        .windows(2)
        .take(99)
        .map(|w| w[1].0.duration_since(w[0].0).as_secs_f64() * 1000.0)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let median = gaps[gaps.len() / 2];
    assert!((18.0..=22.0).contains(&median), "median gap {median:.2} ms");
    let span = packets[99].0.duration_since(packets[0].0).as_secs_f64();
    assert!((1.85..=2.3).contains(&span), "99 gaps took {span:.3} s");
}

/// RFC 4733 digits navigate the menu; the voicemail records the caller's own voice.
#[test]
fn a_key_picks_a_menu_option_and_the_voicemail_records_the_caller() {
    let server = Server::start();
    // The welcome (2 s) and the menu prompt (0.3 s) play; "1" during the menu's wait; the
    // greeting and beep play; then the caller speaks for 7 s and hangs up.
    let xml = call(
        "PCMA",
        None,
        &[pause(2500), key('1'), pause(1500), speak(), pause(7500)],
        CALLER_BYE,
    );
    let r = server.sipp("vm", &xml, "main", &[]);
    assert!(r.ok, "{}", r.text);
    let vm = server.voicemails_when("one", 1);
    assert_eq!(vm.len(), 1, "one message in mailbox one\n{}", r.text);
    let (meta, wav) = &vm[0];
    assert_eq!(
        path_of(meta),
        ["main.welcome", "done", "main.menu", "1", "main.one"]
    );
    assert!(
        meta["caller"]
            .as_str()
            .unwrap()
            .starts_with("sip:caller@127.0.0.1")
    );
    assert!(!meta["call_id"].as_str().unwrap().is_empty());
    let seconds = meta["duration_s"].as_f64().unwrap();
    assert!((6.0..=8.5).contains(&seconds), "{seconds} s recorded");
    let samples = read_wav(wav);
    assert_eq!(samples.len() as f64 / 8000.0, seconds);
    // The caller's speech, not silence: a loud stretch somewhere in it.
    let loud = loud_blocks(&samples);
    assert!(
        loud >= 10,
        "only {loud} loud 100 ms blocks in the recording"
    );
}

/// A message stops at the mailbox's `max_length_s` however long the caller talks, and the
/// line then hangs up.
#[test]
fn a_message_stops_at_its_length_limit_and_the_line_hangs_up() {
    let server = Server::start();
    // "4" during the menu's wait; the greeting plays; the caller speaks for 7 s, but the
    // mailbox takes 2 s.
    let xml = call(
        "PCMA",
        None,
        &[pause(2500), key('4'), pause(800), speak()],
        SERVER_BYE,
    );
    let r = server.sipp("brief", &xml, "main", &[]);
    assert!(r.ok, "the server hangs up after the message\n{}", r.text);
    let vm = server.voicemails_when("brief", 1);
    assert_eq!(vm.len(), 1, "{}", r.text);
    let samples = read_wav(&vm[0].1);
    let seconds = samples.len() as f64 / 8000.0;
    assert!((1.8..=2.0).contains(&seconds), "{seconds} s recorded");
    assert_eq!(vm[0].0["duration_s"].as_f64().unwrap(), seconds);
    let loud = loud_blocks(&samples);
    assert!(loud >= 5, "only {loud} loud 100 ms blocks in the recording");
}

/// A silent caller walks the menu's retries to on_exhausted: the queue, whose max_wait_s
/// sends them on to voicemail.
#[test]
fn silence_walks_the_retries_to_on_exhausted() {
    let server = Server::start();
    // welcome 2 s + 2 × (0.3 s prompt + 1 s wait) + queue 1 s + greeting ≈ 6 s.
    let xml = call("PCMU", None, &[pause(8000)], CALLER_BYE);
    let r = server.sipp("silent", &xml, "main", &[]);
    assert!(r.ok, "{}", r.text);
    let vm = server.voicemails_when("support", 1);
    assert_eq!(vm.len(), 1, "{}", r.text);
    assert_eq!(
        path_of(&vm[0].0),
        [
            "main.welcome",
            "done",
            "main.menu",
            "_",
            "main.menu",
            "_",
            "main.agents",
            "timeout",
            "main.messages"
        ]
    );
}

/// The escape digit works while a prompt is playing.
#[test]
fn the_escape_digit_works_during_a_play() {
    let server = Server::start();
    let xml = call(
        "PCMU",
        None,
        &[pause(600), key('0'), pause(4000)],
        CALLER_BYE,
    );
    let r = server.sipp("escape", &xml, "main", &[]);
    assert!(r.ok, "{}", r.text);
    let vm = server.voicemails_when("support", 1);
    assert_eq!(vm.len(), 1, "{}", r.text);
    assert_eq!(
        path_of(&vm[0].0),
        [
            "main.welcome",
            "0",
            "main.agents",
            "timeout",
            "main.messages"
        ]
    );
}

/// SIP INFO digits (application/dtmf-relay) work like RTP ones; choosing the hangup option
/// gets a BYE from the server after its goodbye prompt.
#[test]
fn info_digits_navigate_and_the_server_hangs_up() {
    let server = Server::start();
    let xml = call("PCMU", None, &[pause(2400), info_digit('3', 2)], SERVER_BYE);
    let r = server.sipp("info", &xml, "main", &[]);
    assert!(r.ok, "{}", r.text);
    let needle = "path=\"main.welcome done main.menu 3 main.bye\"";
    assert!(server.log_with(needle).contains(needle), "{}", r.text);
}

/// A callback request is in SQLite when the caller hears its confirmation.
#[test]
fn a_callback_request_is_stored_durably() {
    let server = Server::start();
    let xml = call("PCMU", None, &[pause(2400), key('2')], SERVER_BYE);
    let r = server.sipp("callback", &xml, "main", &[]);
    assert!(r.ok, "{}", r.text);
    let db = rusqlite::Connection::open(server.path().join("data/hotline.db")).unwrap();
    let rows: Vec<(String, String, String)> = db
        .prepare("SELECT caller, queue, flow FROM callbacks")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 1, "{}", r.text);
    assert!(rows[0].0.starts_with("sip:caller@127.0.0.1"));
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2.as_str()),
        ("support", "main")
    );
}

/// CANCEL while the call rings: 200 for the CANCEL, 487 for the INVITE.
#[test]
fn cancel_before_answer_gets_487() {
    let server = Server::start();
    let cancel = r#"  <recv response="100" optional="true"/>
  <recv response="180"/>
  <send>
    <![CDATA[
      CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: "Test Caller" <sip:caller@[local_ip]:[local_port]>;tag=[pid]T[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
  <recv response="487"/>
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
  <pause milliseconds="1000"/>
"#;
    let xml = scenario(&[invite("PCMU", None), cancel.to_string()]);
    let r = server.sipp("cancel", &xml, "main", &[]);
    assert!(r.ok, "{}", r.text);
    // Cancelled means never answered: no call ran.
    assert!(!server.log().contains("call ended"), "{}", r.text);
}

/// BYE in the middle of a prompt stops the audio at once, and the next call still works.
#[test]
fn bye_mid_prompt_stops_the_audio() {
    let server = Server::start();
    let listen = UdpSocket::bind(("127.0.0.1", server.ports.listen_rtp)).unwrap();
    listen
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let xml = call(
        "PCMU",
        Some(server.ports.listen_rtp),
        &[pause(700)],
        CALLER_BYE,
    );
    let r = server.sipp("bye", &xml, "main", &[]);
    assert!(r.ok, "{}", r.text);
    // Whatever was in flight drains; then nothing more comes.
    let mut buf = [0u8; 2048];
    std::thread::sleep(Duration::from_millis(200));
    while listen.recv_from(&mut buf).is_ok() {}
    let mut late = 0;
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        if listen.recv_from(&mut buf).is_ok() {
            late += 1;
        }
    }
    assert_eq!(late, 0, "RTP kept coming after the BYE");
    let needle = "outcome=\"caller-hangup\"";
    assert!(server.log_with(needle).contains(needle), "{}", r.text);
    let again = server.sipp(
        "again",
        &call("PCMU", None, &[pause(300)], CALLER_BYE),
        "main",
        &[],
    );
    assert!(again.ok, "{}", again.text);
}

/// Malformed requests get a 400 with a reason and garbage is ignored; the server keeps
/// answering calls.
#[test]
fn a_malformed_request_gets_400_and_the_next_call_works() {
    let server = Server::start();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let local = s.local_addr().unwrap();
    let to = ("127.0.0.1", server.ports.sip);
    let no_cseq = format!(
        "INVITE sip:main@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-bad1\r\nFrom: <sip:x@{local}>;tag=1\r\nTo: <sip:main@127.0.0.1>\r\nCall-ID: bad1@test\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    s.send_to(no_cseq.as_bytes(), to).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = s
        .recv_from(&mut buf)
        .expect("an answer to the malformed INVITE");
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        text.starts_with("SIP/2.0 400 Missing CSeq Header\r\n"),
        "{text}"
    );
    s.send_to(b"\x00\x01\x02 not SIP at all \xff\xfe", to)
        .unwrap();
    let long_line = format!(
        "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-bad2\r\nX-Junk: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let _ = s.send_to(&long_line.as_bytes()[..60_000], to);
    let r = server.sipp(
        "after-bad",
        &call("PCMU", None, &[pause(300)], CALLER_BYE),
        "main",
        &[],
    );
    assert!(r.ok, "{}", r.text);
}

/// An unknown method is 501, and a BYE for no call is 481.
#[test]
fn unknown_methods_and_strangers_get_the_right_refusals() {
    let server = Server::start();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let local = s.local_addr().unwrap();
    let ask = |method: &str, to_tag: &str| {
        let m = format!(
            "{method} sip:main@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{method}\r\nFrom: <sip:x@{local}>;tag=1\r\nTo: <sip:main@127.0.0.1>{to_tag}\r\nCall-ID: {method}@test\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        s.send_to(m.as_bytes(), ("127.0.0.1", server.ports.sip))
            .unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(ask("PUBLISH", ""), "SIP/2.0 501 Not Implemented");
    assert_eq!(
        ask("BYE", ";tag=nobody"),
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );
}

/// With 10% of SIPp's messages lost each way, retransmissions still complete every call.
#[test]
fn ten_percent_packet_loss_still_completes_calls() {
    let server = Server::start_with("answer_after_ms = 0\nshutdown_grace_s = 2");
    let xml = call("PCMU", None, &[pause(1000)], CALLER_BYE);
    let r = server.sipp(
        "lossy",
        &xml,
        "main",
        &["-lost", "10", "-m", "10", "-l", "5", "-r", "5"],
    );
    assert!(r.ok, "{}", r.text);
}

/// SIGTERM: new calls get 503, the live call gets BYE after the grace period, exit 0.
#[test]
fn shutdown_refuses_new_calls_and_ends_live_ones_after_the_grace_period() {
    let mut server = Server::start_with("answer_after_ms = 0\nshutdown_grace_s = 2");
    let live = call("PCMU", None, &[], SERVER_BYE);
    let file = server.path().join("live.xml");
    std::fs::write(&file, live).unwrap();
    let mut first = sipp_command(&server, &file, "hold", &[], 0)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    server.signal("-TERM");
    std::thread::sleep(Duration::from_millis(300));
    let refused = scenario(&[
        invite("PCMU", None),
        r#"  <recv response="100" optional="true"/>
  <recv response="503"/>
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
"#
        .to_string(),
    ]);
    let file = server.path().join("refused.xml");
    std::fs::write(&file, refused).unwrap();
    let mut second = sipp_command(&server, &file, "main", &[], 4);
    let out = second.output().unwrap();
    assert!(
        out.status.success(),
        "the new call was not refused:\n{}",
        server.log()
    );
    assert!(
        first.wait().unwrap().success(),
        "the live call did not get its BYE:\n{}",
        server.log()
    );
    assert_eq!(
        server.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        server.log()
    );
}

/// An invalid flow stops `serve` before it listens: exit 2 and the diagnostics.
#[test]
fn serve_refuses_to_start_on_an_invalid_flow() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
    std::fs::write(
        dir.path().join("flows/main.toml"),
        "[flow]\nentry = \"m\"\n\n[nodes.m]\ntype = \"menu\"\nprompt = \"p\"\noptions = { \"1\" = \"nowhere\" }\non_exhausted = \"m\"\n",
    )
    .unwrap();
    write_prompt(&dir.path().join("prompts/p.wav"), 0.5, 400.0);
    std::fs::write(
        dir.path().join("hotline.toml"),
        "[sip]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = common::run_in(dir.path(), &["serve"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("unknown-node"), "{}", out.stderr);
    assert!(out.stderr.contains("refusing to start"), "{}", out.stderr);
}

fn reinvite(cseq: u32, direction: &str, rtp: u16, expect: &str) -> String {
    format!(
        r#"  <send retrans="500">
    <![CDATA[
      INVITE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 1 {cseq} IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio {rtp} RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a={direction}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200" rrs="true">
    <action>
      <ereg regexp="a={expect}" search_in="body" check_it="true" assign_to="dir"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"#
    )
}

/// A re-INVITE puts the call on hold (our answer is recvonly and the audio stops) and takes it
/// off hold again (the audio resumes).
#[test]
fn a_reinvite_holds_and_resumes_the_audio() {
    let server = Server::start_with("answer_after_ms = 0\nshutdown_grace_s = 2");
    let rtp = server.ports.listen_rtp;
    let listen = UdpSocket::bind(("127.0.0.1", rtp)).unwrap();
    listen
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let xml = call(
        "PCMU",
        Some(rtp),
        &[
            pause(500),
            reinvite(2, "sendonly", rtp, "recvonly"),
            pause(1000),
            reinvite(3, "sendrecv", rtp, "sendrecv"),
            pause(700),
        ],
        CALLER_BYE,
    );
    let file = server.path().join("hold.xml");
    std::fs::write(&file, xml).unwrap();
    let mut sipp = sipp_command(&server, &file, "main", &[], 0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut arrivals: Vec<Instant> = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        if let Ok((_, _)) = listen.recv_from(&mut buf) {
            arrivals.push(Instant::now());
        }
        if let Ok(Some(_)) = sipp.try_wait() {
            break;
        }
    }
    let out = sipp.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "SIPp failed:\n{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    let t0 = arrivals[0];
    let between = |a: f64, b: f64| {
        arrivals
            .iter()
            .filter(|t| {
                let s = t.duration_since(t0).as_secs_f64();
                s >= a && s < b
            })
            .count()
    };
    assert!(between(0.0, 0.4) >= 15, "audio before the hold");
    assert_eq!(between(0.8, 1.3), 0, "audio while on hold");
    assert!(between(1.8, 2.1) >= 10, "audio after the hold");
}

/// The same call over TCP: framing by Content-Length, answers on the same connection.
#[test]
fn a_call_over_tcp_works() {
    let server = Server::start();
    let r = server.sipp(
        "tcp",
        &call("PCMU", None, &[pause(2400), key('3')], SERVER_BYE),
        "main",
        &["-t", "t1"],
    );
    assert!(r.ok, "{}", r.text);
    let needle = "path=\"main.welcome done main.menu 3 main.bye\"";
    assert!(server.log_with(needle).contains(needle), "{}", r.text);
}

/// A phone's TCP keep-alive (RFC 5626 §4.4.1): a CRLF CRLF ping gets a CRLF pong, and the
/// connection goes on carrying SIP.
#[test]
fn a_tcp_keep_alive_ping_gets_a_pong() {
    use std::io::{Read, Write};
    let server = Server::start();
    let mut c = std::net::TcpStream::connect(("127.0.0.1", server.ports.sip)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    c.read_exact(&mut pong).expect("a pong");
    assert_eq!(&pong, b"\r\n");
    let options = format!(
        "OPTIONS sip:main@127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKka1\r\nMax-Forwards: 70\r\nFrom: <sip:phone@127.0.0.1>;tag=k1\r\nTo: <sip:main@127.0.0.1>\r\nCall-ID: keepalive-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        server.ports.sip
    );
    c.write_all(options.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        let n = c.read(&mut buf).expect("an answer to the OPTIONS");
        assert!(n > 0, "the connection closed");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("SIP/2.0 200"), "{text}");
}

/// An INVITE without SDP (a delayed offer) gets our offer in the 200; the caller's answer in
/// the ACK picks A-law, and the audio arrives in A-law where that answer says.
#[test]
fn a_delayed_offer_is_answered_in_the_ack() {
    let server = Server::start_with("answer_after_ms = 0\nshutdown_grace_s = 2");
    let rtp = server.ports.listen_rtp;
    let listen = UdpSocket::bind(("127.0.0.1", rtp)).unwrap();
    listen
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let steps = format!(
        r#"  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]D[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200" rrs="true">
    <action>
      <ereg regexp="m=audio [0-9]+ RTP/AVP 0 8 101" search_in="body" check_it="true" assign_to="offer"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio {rtp} RTP/AVP 8
      a=rtpmap:8 PCMA/8000
    ]]>
  </send>
  <pause milliseconds="1500"/>
  <Reference variables="offer"/>
"#
    );
    let xml = scenario(&[steps, CALLER_BYE.to_string()]);
    let file = server.path().join("delayed.xml");
    std::fs::write(&file, xml).unwrap();
    let sipp = sipp_command(&server, &file, "main", &[], 0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut alaw = 0;
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && alaw < 40 {
        if let Ok((n, _)) = listen.recv_from(&mut buf)
            && n > 12
            && buf[1] & 0x7f == 8
        {
            alaw += 1;
        }
    }
    let out = sipp.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "SIPp failed:\n{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert!(alaw >= 40, "only {alaw} A-law packets\n{}", server.log());
}
