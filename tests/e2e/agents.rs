//! Reaching a human, end to end: SIPp agent phones REGISTER with digest auth and answer (or
//! not), SIPp callers press keys and wait, and the test listens to the RTP both ends really
//! receive through the bridge.

use std::net::UdpSocket;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::*;
use hotline::media::g711::Law;

/// The agent test line: one key is collected as `account`, then the caller waits for an agent
/// of `support` for 6 s before leaving a message.
pub const LINE: &str = r#"
[flow]
entry = "account"
escape_digit = "0"
escape_to = "agents"

[nodes.account]
type = "collect"
prompt = "short"
min_digits = 1
max_digits = 1
timeout_s = 3
max_retries = 0
variable = "account"
next = "agents"
on_exhausted = "agents"

[nodes.agents]
type = "queue"
queue = "support"
max_wait_s = 6
on_timeout = "messages"

[nodes.messages]
type = "voicemail"
mailbox = "support"
prompt = "short"
max_length_s = 20
"#;

/// The waiting line: straight into the queue, where the caller hears their place every 3 s
/// and is offered a callback after 2 s.
pub const WAIT_LINE: &str = r#"
[flow]
entry = "agents"
escape_digit = "0"
escape_to = "agents"

[nodes.agents]
type = "queue"
queue = "support"
max_wait_s = 30
announce_position_every_s = 3
offer_callback_after_s = 2
on_timeout = "messages"

[nodes.messages]
type = "voicemail"
mailbox = "support"
prompt = "short"
max_length_s = 20
"#;

/// The transfer line: the caller is put through to a front desk at `port` (a SIPp phone in
/// the tests); if it does not answer within 2 s, the caller leaves a message.
pub fn transfer_line(port: u16) -> String {
    format!(
        r#"
[flow]
entry = "front"
escape_digit = "0"
escape_to = "front"

[nodes.front]
type = "transfer"
to = "sip:frontdesk@127.0.0.1:{port}"
ring_timeout_s = 2
on_failure = "messages"

[nodes.messages]
type = "voicemail"
mailbox = "front"
prompt = "short"
max_length_s = 20
"#
    )
}

/// The tone standing in for each queue prompt: 0.2 s (ten whole frames), its own frequency,
/// so the test can tell from the RTP which prompts a caller heard and in what order.
fn queue_prompt_tone(i: usize) -> f64 {
    210.0 + 37.0 * i as f64
}

pub fn write_queue_prompts(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("queue")).unwrap();
    std::fs::create_dir_all(dir.join("digits")).unwrap();
    for (i, name) in hotline::engine::announce::prompt_names().iter().enumerate() {
        write_prompt(&dir.join(format!("{name}.wav")), 0.2, queue_prompt_tone(i));
    }
}

/// The µ-law bytes a caller hears for these queue prompts, one after the other.
fn queue_prompts_audio(dir: &std::path::Path, names: &[&str]) -> Vec<u8> {
    names
        .iter()
        .flat_map(|n| read_wav(&dir.join(format!("prompts/{n}.wav"))))
        .map(|s| Law::Pcmu.encode(s))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub(super) const AGENTS: &str = r#"
[[agents]]
id = "alice"
password = "alice-pw"
name = "Alice"
skills = { support = 5 }

[[agents]]
id = "bob"
password = "bob-pw"
name = "Bob"
skills = { support = 5 }

[[queues]]
name = "support"
skills = ["support"]
strategy = "longest-idle"
ring_timeout_s = 2
wrap_up_s = 0
"#;

fn server() -> Server {
    Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", AGENTS)
}

/// A block of ports for the agents' SIPp instances and the test's RTP listeners.
pub(super) struct AgentPorts {
    base: u16,
}

impl AgentPorts {
    pub(super) fn take() -> AgentPorts {
        AgentPorts {
            base: Ports::take().sip,
        }
    }
    /// Where agent `n`'s phone registers from.
    pub(super) fn register(&self, n: u16) -> u16 {
        self.base + n * 4
    }
    /// Where agent `n`'s phone takes calls.
    pub(super) fn phone(&self, n: u16) -> u16 {
        self.base + 2 + n * 4
    }
    pub(super) fn media(&self, n: u16) -> u16 {
        self.base + 20 + n * 8
    }
    /// Where the test listens to what agent `n` receives.
    pub(super) fn listen(&self, n: u16) -> u16 {
        self.base + 50 + n * 2
    }
}

/// SIPp at explicit ports, in the background, wrapped in `timeout`.
pub(super) fn sipp_at(
    server: &Server,
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
        .arg(format!("127.0.0.1:{}", server.ports.sip))
        .arg("-sf")
        .arg(&file)
        .args(["-i", "127.0.0.1", "-nostdin", "-trace_err"])
        .arg("-error_file")
        .arg(server.path().join(format!("{name}_errors.log")))
        .args(["-p", &port.to_string(), "-mp", &media.to_string()])
        .args(["-timeout", "40s", "-timeout_error"])
        .args(extra)
        .current_dir(server.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("SIPp (Debian package sip-tester) must be installed")
}

pub(super) fn finish(server: &Server, name: &str, child: Child) -> Sipp {
    let out = child.wait_with_output().unwrap();
    Sipp {
        ok: out.status.success(),
        text: format!(
            "{name}: {}\n{}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(server.path().join(format!("{name}_errors.log")))
                .unwrap_or_default(),
            server.log()
        ),
    }
}

/// An agent phone registering with digest auth (`-au/-ap`), its calls taken at `phone`.
fn register(phone: u16, expect: &str) -> String {
    register_as(phone, "", expect)
}

/// The same, its Contact naming `contact_port`, `via_params` after its Via's branch
/// (`;rport`).
pub(super) fn register_as(contact_port: u16, via_params: &str, expect: &str) -> String {
    scenario(&[format!(
        r#"  <send retrans="500">
    <![CDATA[
      REGISTER sip:hotline.local SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]{via_params}
      From: <sip:[service]@hotline.local>;tag=[pid]R[call_number]
      To: <sip:[service]@hotline.local>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[service]@[local_ip]:{contact_port}>
      Expires: 3600
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:hotline.local SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]{via_params}
      From: <sip:[service]@hotline.local>;tag=[pid]R[call_number]
      To: <sip:[service]@hotline.local>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[service]@[local_ip]:{contact_port}>
      [authentication]
      Expires: 3600
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="{expect}"/>
"#
    )])
}

/// Registers agent `n` as `user` and waits for the answer SIPp expects.
pub(super) fn register_agent(
    server: &Server,
    ports: &AgentPorts,
    n: u16,
    user: &str,
    password: &str,
    expect: &str,
) {
    let name = format!("register_{user}");
    let child = sipp_at(
        server,
        &name,
        &register(ports.phone(n), expect),
        ports.register(n),
        ports.media(n) + 4,
        &["-s", user, "-au", user, "-ap", password, "-m", "1"],
    );
    let r = finish(server, &name, child);
    assert!(r.ok, "{}", r.text);
}

/// The agent's phone rings; the INVITE must carry the caller's context.
const AGENT_RINGS: &str = r#"  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="X-Hotline-Var-account: 7" search_in="msg" check_it="true" assign_to="account"/>
      <ereg regexp="X-Hotline-Path: [^\r\n]*agentline.account[^\r\n]*agentline.agents" search_in="msg" check_it="true" assign_to="path"/>
      <ereg regexp="X-Hotline-Waited: [0-9]+" search_in="msg" check_it="true" assign_to="waited"/>
      <ereg regexp="From: &quot;Test Caller&quot; &lt;sip:caller@127.0.0.1:[0-9]+&gt;;tag=" search_in="msg" check_it="true" assign_to="from"/>
      <ereg regexp="P-Asserted-Identity: &quot;Test Caller&quot; &lt;sip:caller@127.0.0.1:[0-9]+&gt;" search_in="msg" check_it="true" assign_to="pai"/>
    </action>
  </recv>
  <Reference variables="account,path,waited,from,pai"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]A[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:agent@[local_ip]:[local_port]>
      Content-Length: 0
    ]]>
  </send>
"#;

/// The agent answers with PCMA, its media at `rtp` (the test listens there).
pub(super) fn agent_answers(rtp: u16) -> String {
    let ack = r#"  <recv request="ACK" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to"/>
    </action>
  </recv>
  <Reference variables="from,to"/>
"#;
    format!(
        r#"  <pause milliseconds="200"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]A[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:agent@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=agent 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio {rtp} RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=sendrecv
    ]]>
  </send>
{ack}"#
    )
}

/// The phone refuses the INVITE with `status` (e.g. "486 Busy Here") and takes the ACK.
pub(super) fn refuses(status: &str) -> String {
    format!(
        r#"  <send>
    <![CDATA[
      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]A[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
"#
    )
}

/// The phone answers with media at `rtp` and talks until the other side's BYE.
pub(super) fn answers_until_bye(rtp: u16) -> String {
    format!("{}{AGENT_GETS_BYE}", agent_answers(rtp))
}

/// The agent hears a BYE (the caller hung up) and answers it.
const AGENT_GETS_BYE: &str = r#"  <recv request="BYE"/>
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

/// The agent hangs up, unless the caller has within `ms`.
pub(super) fn agent_hangs_up_after(ms: u32) -> String {
    format!(
        r#"  <recv request="BYE" timeout="{ms}" ontimeout="1"/>
  <send next="2">
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
  <label id="1"/>
{AGENT_HANGS_UP}  <label id="2"/>
"#
    )
}

/// The agent hangs up.
const AGENT_HANGS_UP: &str = r#"  <send retrans="500">
    <![CDATA[
      BYE sip:hotline@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$to]
      To: [$from]
      Call-ID: [call_id]
      CSeq: 1 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
"#;

/// The phone keeps ringing until the ring is cancelled: 200 to the CANCEL, 487 to the INVITE.
const AGENT_CANCELLED: &str = r#"  <recv request="CANCEL"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]A[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <send>
    <![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]A[call_number]
      [last_Call-ID:]
      CSeq: 1 INVITE
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
"#;

/// The ring is cancelled because another phone answered, and the CANCEL says so (RFC 3326),
/// so the phone does not list a missed call.
fn cancelled_elsewhere() -> String {
    AGENT_CANCELLED.replacen(
        r#"<recv request="CANCEL"/>"#,
        r#"<recv request="CANCEL">
    <action>
      <ereg regexp="Reason: SIP;cause=200;text=&quot;Call completed elsewhere&quot;" search_in="msg" check_it="true" assign_to="reason"/>
    </action>
  </recv>
  <Reference variables="reason"/>"#,
        1,
    )
}

/// A test media endpoint: it records the RTP payloads arriving (in order, with their payload
/// types) and, when `talks`, answers the first packet by playing SIPp's 7 s A-law recording
/// back to where it came from, in a loop at its 30 ms pacing, from the same socket (symmetric
/// RTP, as a phone does).
/// A payload type and its payload.
pub(super) type Packet = (u8, Vec<u8>);

pub(super) struct Listener {
    got: Arc<Mutex<Vec<Packet>>>,
    thread: Option<JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    socket: UdpSocket,
    peer: Arc<Mutex<Option<std::net::SocketAddr>>>,
}

impl Listener {
    pub(super) fn bind(port: u16, talks: bool) -> Listener {
        Listener::bind_on("127.0.0.1", port, talks)
    }

    /// The same on another loopback address (a phone elsewhere on the network).
    pub(super) fn bind_on(ip: &str, port: u16, talks: bool) -> Listener {
        let s = UdpSocket::bind((ip, port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (g, st) = (Arc::clone(&got), Arc::clone(&stop));
        let speech = pcap_packets();
        let socket = s.try_clone().unwrap();
        let shared_peer = Arc::new(Mutex::new(None));
        let sp = Arc::clone(&shared_peer);
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut peer = None;
            let mut next = Instant::now();
            let mut i = 0;
            while !st.load(Ordering::Relaxed) {
                if let Ok((n, from)) = s.recv_from(&mut buf)
                    && n > 12
                {
                    g.lock().unwrap().push((buf[1] & 0x7f, buf[12..n].to_vec()));
                    peer.get_or_insert(from);
                    sp.lock().unwrap().get_or_insert(from);
                }
                if let Some(to) = peer.filter(|_| talks && Instant::now() >= next) {
                    s.send_to(&speech[i % speech.len()], to).unwrap();
                    i += 1;
                    next += Duration::from_millis(30);
                }
            }
        });
        Listener {
            got,
            thread: Some(thread),
            stop,
            socket,
            peer: shared_peer,
        }
    }

    /// Presses a key from this endpoint, as a phone does: RFC 4733 events (payload type
    /// 101) to where the server's audio comes from, three of them marking the end. Each
    /// press is a new event (its own timestamp), as a phone's next key is.
    pub(super) fn press(&self, digit: char) {
        static PRESSES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = PRESSES.fetch_add(1, Ordering::Relaxed);
        let event = digit.to_digit(10).expect("a digit key") as u8;
        let to = self
            .peer
            .lock()
            .unwrap()
            .expect("the server's audio arrived");
        for (i, end) in [false, false, true, true, true].into_iter().enumerate() {
            let duration: u16 = 400 * (i as u16 + 1);
            let mut p = vec![0x80, if i == 0 { 0x80 | 101 } else { 101 }];
            p.extend_from_slice(&(1000 + (n as u16).wrapping_mul(8) + i as u16).to_be_bytes());
            p.extend_from_slice(&(160_000 + n.wrapping_mul(16_000)).to_be_bytes());
            p.extend_from_slice(&0x7e57_u32.to_be_bytes());
            p.extend_from_slice(&[event, if end { 0x8a } else { 0x0a }]);
            p.extend_from_slice(&duration.to_be_bytes());
            self.socket.send_to(&p, to).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(super) fn stop(mut self) -> Vec<Packet> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

/// The audio of the PCMU packets a listener got, decoded.
pub(super) fn pcmu_samples(packets: &[Packet]) -> Vec<i16> {
    packets
        .iter()
        .filter(|(pt, _)| *pt == 0)
        .flat_map(|(_, p)| p.iter().map(|&b| Law::Pcmu.decode(b)))
        .collect()
}

/// The RTP packets of SIPp's g711a.pcap (Ethernet, IPv4, UDP): 30 ms of A-law each.
fn pcap_packets() -> Vec<Vec<u8>> {
    let d = std::fs::read(format!("{PCAPS}/g711a.pcap")).unwrap();
    let mut out = Vec::new();
    let mut o = 24;
    while o + 16 <= d.len() {
        let incl = u32::from_le_bytes(d[o + 8..o + 12].try_into().unwrap()) as usize;
        let pkt = &d[o + 16..o + 16 + incl];
        o += 16 + incl;
        let ihl = usize::from(pkt[14] & 0x0f) * 4;
        out.push(pkt[14 + ihl + 8..].to_vec());
    }
    out
}

/// The A-law audio of the recording, all payloads in order.
pub(super) fn pcap_audio() -> Vec<u8> {
    pcap_packets()
        .iter()
        .flat_map(|rtp| rtp[12 + usize::from(rtp[0] & 0x0f) * 4..].to_vec())
        .collect()
}

/// How much of `heard` is `said`, exactly, in runs of at least 100 ms (a scheduling hiccup
/// on a loaded test machine may put a frame of silence between runs).
pub(super) fn matched_speech(heard: &[u8], said: &[u8]) -> usize {
    // Anchor on windows of the heard audio, then extend.
    let mut total = 0;
    let mut i = 0;
    while i + 160 <= heard.len() {
        let w = &heard[i..i + 160];
        if let Some(j) = said.windows(160).position(|x| x == w) {
            let run = heard[i..]
                .iter()
                .zip(&said[j..])
                .take_while(|(a, b)| a == b)
                .count();
            if run >= 800 {
                total += run;
            }
            i += run.max(160);
        } else {
            i += 160;
        }
    }
    total
}

/// The caller presses 7 (collected as `account`), waits for an agent, talks, and
/// hangs up: the registered agent's phone rings with the caller's context, answers, and
/// each side hears exactly what the other said, at least 5 s of it (the caller's PCMU leg
/// transcoded to the agent's PCMA one); the caller's BYE reaches the agent.
#[test]
fn a_caller_reaches_a_registered_agent_and_they_hear_each_other() {
    let server = server();
    let ports = AgentPorts::take();
    let agent_hears = Listener::bind(ports.listen(0), true);
    let caller_hears = Listener::bind(ports.listen(1), true);
    let phone = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[AGENT_RINGS.to_string(), answers_until_bye(ports.listen(0))]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let caller = server.sipp(
        "caller",
        &call(
            "PCMU",
            Some(ports.listen(1)),
            &[pause(500), key('7'), pause(9000)],
            CALLER_BYE,
        ),
        "agent",
        &[],
    );
    assert!(caller.ok, "{}", caller.text);
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "{}", phone.text);
    std::thread::sleep(Duration::from_millis(200));
    let to_agent = agent_hears.stop();
    let to_caller = caller_hears.stop();

    let said = pcap_audio();
    // The agent's leg is PCMA: the caller's A-law audio arrives byte for byte.
    assert!(
        to_agent.iter().all(|(pt, _)| *pt == 8),
        "PCMA towards the agent"
    );
    let heard: Vec<u8> = to_agent.iter().flat_map(|(_, p)| p.clone()).collect();
    let run = matched_speech(&heard, &said);
    assert!(
        run >= 8000 * 5,
        "the agent heard {run} samples of the caller's speech ({} packets)\n{}",
        to_agent.len(),
        server.log()
    );
    // The caller's leg is PCMU: the agent's A-law audio arrives transcoded.
    let said_mu: Vec<u8> = said
        .iter()
        .map(|&b| Law::Pcmu.encode(Law::Pcma.decode(b)))
        .collect();
    let heard: Vec<u8> = to_caller
        .iter()
        .filter(|(pt, _)| *pt == 0)
        .flat_map(|(_, p)| p.clone())
        .collect();
    let run = matched_speech(&heard, &said_mu);
    assert!(
        run >= 8000 * 5,
        "the caller heard {run} samples of the agent's speech\n{}",
        server.log()
    );
}

/// The caller presses the escape digit during the first prompt: the agent's phone rings with
/// the path showing the escape, answers, and the two hear each other; the call is on record
/// as escaped to a human.
#[test]
fn the_escape_digit_puts_the_caller_through_to_an_agent() {
    let server = server();
    let ports = AgentPorts::take();
    let agent_hears = Listener::bind(ports.listen(0), true);
    let caller_hears = Listener::bind(ports.listen(1), true);
    let rings = r#"  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="X-Hotline-Path: agentline.account 0 agentline.agents" search_in="msg" check_it="true" assign_to="path"/>
    </action>
  </recv>
  <Reference variables="path"/>
"#;
    let phone = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[rings.to_string(), answers_until_bye(ports.listen(0))]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let caller = server.sipp(
        "caller",
        &call(
            "PCMU",
            Some(ports.listen(1)),
            &[pause(300), key('0'), pause(4000)],
            CALLER_BYE,
        ),
        "agent",
        &[],
    );
    assert!(caller.ok, "{}", caller.text);
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "{}", phone.text);
    std::thread::sleep(Duration::from_millis(200));
    let said = pcap_audio();
    let log = server.log();
    let heard: Vec<u8> = agent_hears.stop().into_iter().flat_map(|p| p.1).collect();
    assert!(
        matched_speech(&heard, &said) >= 8000 * 2,
        "the agent heard the caller\n{log}"
    );
    let said_mu: Vec<u8> = said
        .iter()
        .map(|&b| Law::Pcmu.encode(Law::Pcma.decode(b)))
        .collect();
    let heard: Vec<u8> = caller_hears
        .stop()
        .into_iter()
        .filter(|(pt, _)| *pt == 0)
        .flat_map(|p| p.1)
        .collect();
    assert!(
        matched_speech(&heard, &said_mu) >= 8000 * 2,
        "the caller heard the agent\n{log}"
    );
    eventually("the call is on record as ended", || {
        json(&server, "/api/calls?limit=5")[0]["ended"].is_string()
    });
    let c = &json(&server, "/api/calls?limit=5")[0];
    assert_eq!(c["escape_used"], true);
    assert_eq!(c["agent"], "alice");
    assert_eq!(c["steps_to_human"], 1);
}

/// The agent's phone moves its media mid-call with a re-INVITE (as a phone does on hold and
/// resume, or when it changes network): hotline answers keeping the call's codec (PCMA,
/// though the new offer lists PCMU first) and the caller's voice follows to the new address.
#[test]
fn an_agent_phone_moving_its_media_by_re_invite_keeps_hearing_the_caller() {
    let server = server();
    let ports = AgentPorts::take();
    let first_address = Listener::bind(ports.listen(0), false);
    let moved_to = Listener::bind(ports.listen(2), false);
    let caller_hears = Listener::bind(ports.listen(1), true);
    let reinvite = format!(
        r#"  <pause milliseconds="1500"/>
  <send retrans="500">
    <![CDATA[
      INVITE sip:hotline@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$to]
      To: [$from]
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:agent@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=agent 1 2 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio {} RTP/AVP 0 8 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=sendrecv
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200" crlf="true">
    <action>
      <ereg regexp="m=audio [0-9]+ RTP/AVP 8 " search_in="body" check_it="true" assign_to="kept"/>
    </action>
  </recv>
  <Reference variables="kept"/>
  <send>
    <![CDATA[
      ACK sip:hotline@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$to]
      To: [$from]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"#,
        ports.listen(2)
    );
    let phone = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[
            AGENT_RINGS.to_string(),
            agent_answers(ports.listen(0)),
            reinvite,
            AGENT_GETS_BYE.to_string(),
        ]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let caller = server.sipp(
        "caller",
        &call(
            "PCMU",
            Some(ports.listen(1)),
            &[pause(500), key('7'), pause(6000)],
            CALLER_BYE,
        ),
        "agent",
        &[],
    );
    assert!(caller.ok, "{}", caller.text);
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "the re-INVITE was answered: {}", phone.text);
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log();
    let said = pcap_audio();
    let before = first_address.stop();
    let after = moved_to.stop();
    caller_hears.stop();
    assert!(
        !before.is_empty(),
        "the agent heard the caller at first\n{log}"
    );
    assert!(after.iter().all(|(pt, _)| *pt == 8), "still PCMA");
    let heard: Vec<u8> = after.into_iter().flat_map(|p| p.1).collect();
    assert!(
        matched_speech(&heard, &said) >= 8000 * 2,
        "the caller's voice followed the agent's media ({} bytes)\n{log}",
        heard.len()
    );
    // The phone's ACK confirmed our 200: it was sent once, never retransmitted.
    let (_, body) = http(&server, "GET", "/metrics", None, "");
    let retransmitted = samples(&body)
        .into_iter()
        .find(|(n, _)| n == "hotline_sip_retransmissions_total")
        .map(|(_, v)| v);
    assert_eq!(retransmitted, Some(0.0), "{log}");
}

/// The first agent rung lets it ring: after `ring_timeout_s` the ring is cancelled, that
/// agent goes not-ready, and the next agent gets the call.
#[test]
fn ring_no_answer_goes_to_the_next_agent() {
    let server = server();
    let ports = AgentPorts::take();
    let alice = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[AGENT_RINGS.to_string(), AGENT_CANCELLED.to_string()]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let bob = sipp_at(
        &server,
        "bob_phone",
        &scenario(&[AGENT_RINGS.to_string(), answers_until_bye(ports.listen(0))]),
        ports.phone(1),
        ports.media(1),
        &["-m", "1"],
    );
    // Alice registers first: she has been idle longest and is rung first.
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    std::thread::sleep(Duration::from_millis(50));
    register_agent(&server, &ports, 1, "bob", "bob-pw", "200");
    let caller = server.sipp(
        "caller",
        &call(
            "PCMU",
            None,
            &[pause(500), key('7'), pause(5000)],
            CALLER_BYE,
        ),
        "agent",
        &[],
    );
    assert!(caller.ok, "{}", caller.text);
    let alice = finish(&server, "alice_phone", alice);
    assert!(
        alice.ok,
        "alice's phone was rung, then cancelled: {}",
        alice.text
    );
    let bob = finish(&server, "bob_phone", bob);
    assert!(bob.ok, "bob took the call: {}", bob.text);
    let log = server.log();
    let answered: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("agent answered"))
        .collect();
    assert!(answered.len() == 1 && answered[0].contains("bob"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("did not answer") && l.contains("alice")),
        "alice was set not-ready:\n{log}"
    );
}

/// With the only agent busy, the next caller waits on hold and is connected as soon as the
/// agent is free; the agent hanging up ends the caller's call.
#[test]
fn a_waiting_caller_gets_the_agent_when_they_are_free() {
    let server = server();
    let ports = AgentPorts::take();
    // Two calls on alice's phone: the first caller hangs up after about 1.5 s; alice ends
    // the second after 3 s.
    let phone = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[
            AGENT_RINGS.to_string(),
            agent_answers(ports.listen(0)),
            agent_hangs_up_after(3000),
        ]),
        ports.phone(0),
        ports.media(0),
        &["-m", "2"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let file = server.path().join("first.xml");
    std::fs::write(
        &file,
        call(
            "PCMU",
            None,
            &[pause(500), key('7'), pause(2000)],
            CALLER_BYE,
        ),
    )
    .unwrap();
    let first = sipp_command(&server, &file, "agent", &[], 0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let file = server.path().join("second.xml");
    std::fs::write(
        &file,
        scenario(&[
            invite("PCMU", None),
            ANSWERED.to_string(),
            pause(300),
            key('7'),
            SERVER_BYE.to_string(),
        ]),
    )
    .unwrap();
    let second = sipp_command(&server, &file, "agent", &[], 4)
        .output()
        .unwrap();
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", server.log());
    let second = Sipp {
        ok: second.status.success(),
        text: format!(
            "{}\n{}",
            String::from_utf8_lossy(&second.stdout),
            server.log()
        ),
    };
    assert!(
        second.ok,
        "the second caller was connected, then alice hung up: {}",
        second.text
    );
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "{}", phone.text);
    assert!(
        server.voicemails("support").is_empty(),
        "nobody ended in voicemail"
    );
}

/// A caller whose wait runs out goes to `on_timeout` (voicemail) and the ringing phone is
/// cancelled; an agent with the wrong password is refused and never rung, and a queue nobody
/// is logged in to sends the caller on at once.
#[test]
fn max_wait_cancels_the_ring_and_wrong_passwords_get_no_calls() {
    let server = server();
    let ports = AgentPorts::take();
    register_agent(&server, &ports, 1, "bob", "not-bobs-password", "403");
    // Nobody is logged in: straight to voicemail, no waiting.
    let r = server.sipp(
        "nobody",
        &call(
            "PCMU",
            None,
            &[pause(500), key('7'), pause(1500)],
            CALLER_BYE,
        ),
        "agent",
        &[],
    );
    assert!(r.ok, "{}", r.text);
    let vm = server.voicemails_when("support", 1);
    assert_eq!(vm.len(), 1, "{}", r.text);
    assert_eq!(
        path_of(&vm[0].0),
        [
            "agentline.account",
            "digits",
            "agentline.agents",
            "timeout",
            "agentline.messages"
        ]
    );
    assert_eq!(vm[0].0["variables"]["account"], "7");

    // Alice's phone rings but is never answered within max_wait_s (her ring timeout is
    // longer than the wait here), so the caller's wait ends and the ring is cancelled.
    let server = Server::start_full(
        "answer_after_ms = 100",
        &AGENTS.replace("ring_timeout_s = 2", "ring_timeout_s = 30"),
    );
    let alice = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[AGENT_RINGS.to_string(), AGENT_CANCELLED.to_string()]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let r = server.sipp(
        "waits",
        &call(
            "PCMU",
            None,
            &[pause(500), key('7'), pause(8000)],
            CALLER_BYE,
        ),
        "agent",
        &[],
    );
    assert!(r.ok, "{}", r.text);
    let alice = finish(&server, "alice_phone", alice);
    assert!(alice.ok, "the ring was cancelled: {}", alice.text);
    let vm = server.voicemails_when("support", 1);
    assert_eq!(vm.len(), 1, "{}", server.log());
}

/// The caller hangs up while the agent's phone rings: the ring is cancelled.
#[test]
fn a_caller_hanging_up_cancels_the_ringing_agent() {
    let server = Server::start_full(
        "answer_after_ms = 100",
        &AGENTS.replace("ring_timeout_s = 2", "ring_timeout_s = 30"),
    );
    let ports = AgentPorts::take();
    let alice = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[AGENT_RINGS.to_string(), AGENT_CANCELLED.to_string()]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let r = server.sipp(
        "hangs_up",
        &call(
            "PCMU",
            None,
            &[pause(500), key('7'), pause(1500)],
            CALLER_BYE,
        ),
        "agent",
        &[],
    );
    assert!(r.ok, "{}", r.text);
    let alice = finish(&server, "alice_phone", alice);
    assert!(alice.ok, "the ring was cancelled: {}", alice.text);
}

/// Alice has three phones registered: all ring at once. The newest is busy (486), which
/// leaves the others ringing; the oldest answers and takes the call; the third is cancelled.
#[test]
fn every_phone_of_an_agent_rings_and_the_first_to_answer_takes_the_call() {
    let server = server();
    let ports = AgentPorts::take();
    let answers = sipp_at(
        &server,
        "alice_desk",
        &scenario(&[AGENT_RINGS.to_string(), answers_until_bye(ports.listen(0))]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let cancelled = sipp_at(
        &server,
        "alice_softphone",
        &scenario(&[AGENT_RINGS.to_string(), cancelled_elsewhere()]),
        ports.phone(1),
        ports.media(1),
        &["-m", "1"],
    );
    let busy = sipp_at(
        &server,
        "alice_mobile",
        &scenario(&[AGENT_RINGS.to_string(), refuses("486 Busy Here")]),
        ports.phone(2),
        ports.media(2),
        &["-m", "1"],
    );
    for n in 0..3 {
        register_agent(&server, &ports, n, "alice", "alice-pw", "200");
        std::thread::sleep(Duration::from_millis(20));
    }
    let caller = server.sipp(
        "caller",
        &call(
            "PCMU",
            None,
            &[pause(500), key('7'), pause(3000)],
            CALLER_BYE,
        ),
        "agent",
        &[],
    );
    assert!(caller.ok, "{}", caller.text);
    let busy = finish(&server, "alice_mobile", busy);
    assert!(busy.ok, "the newest phone rang and was busy: {}", busy.text);
    let cancelled = finish(&server, "alice_softphone", cancelled);
    assert!(
        cancelled.ok,
        "the second phone rang, then was cancelled: {}",
        cancelled.text
    );
    let answers = finish(&server, "alice_desk", answers);
    assert!(
        answers.ok,
        "the oldest phone rang and took the call: {}",
        answers.text
    );
    let log = server.log();
    let answered = log.lines().filter(|l| l.contains("agent answered")).count();
    assert_eq!(answered, 1, "{log}");
    assert!(
        !log.lines().any(|l| l.contains("did not answer")),
        "alice answered on one phone; she stays in service:\n{log}"
    );
}

/// Alice declines on one of her two phones (603, "decline everywhere"): her other phone stops
/// ringing at once, and the caller goes to the next agent, Bob.
#[test]
fn a_decline_on_one_phone_stops_the_agents_other_phones() {
    let server = Server::start_full(
        "answer_after_ms = 100",
        &AGENTS.replace("ring_timeout_s = 2", "ring_timeout_s = 30"),
    );
    let ports = AgentPorts::take();
    let desk = sipp_at(
        &server,
        "alice_desk",
        &scenario(&[AGENT_RINGS.to_string(), AGENT_CANCELLED.to_string()]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let mobile = sipp_at(
        &server,
        "alice_mobile",
        &scenario(&[
            AGENT_RINGS.to_string(),
            format!(
                "  <pause milliseconds=\"300\"/>\n{}",
                refuses("603 Decline")
            ),
        ]),
        ports.phone(1),
        ports.media(1),
        &["-m", "1"],
    );
    let bob = sipp_at(
        &server,
        "bob_phone",
        &scenario(&[AGENT_RINGS.to_string(), answers_until_bye(ports.listen(0))]),
        ports.phone(2),
        ports.media(2),
        &["-m", "1"],
    );
    // Alice's two phones first (she is idle longest), then Bob's.
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    register_agent(&server, &ports, 1, "alice", "alice-pw", "200");
    std::thread::sleep(Duration::from_millis(50));
    register_agent(&server, &ports, 2, "bob", "bob-pw", "200");
    let caller = server.sipp(
        "caller",
        &call(
            "PCMU",
            None,
            &[pause(500), key('7'), pause(3000)],
            CALLER_BYE,
        ),
        "agent",
        &[],
    );
    assert!(caller.ok, "{}", caller.text);
    let mobile = finish(&server, "alice_mobile", mobile);
    assert!(mobile.ok, "alice declined on her mobile: {}", mobile.text);
    let desk = finish(&server, "alice_desk", desk);
    assert!(desk.ok, "her desk phone stopped ringing: {}", desk.text);
    let bob = finish(&server, "bob_phone", bob);
    assert!(bob.ok, "bob took the call: {}", bob.text);
    let log = server.log();
    let answered: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("agent answered"))
        .collect();
    assert!(answered.len() == 1 && answered[0].contains("bob"), "{log}");
}

/// A bare HTTP/1.1 request to the server's API; (status, body).
pub(super) fn http(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    http_with(server, method, path, &auth, body)
}

/// The same with any extra request headers (each ending in CRLF): a cookie, a page's token.
pub(super) fn http_with(
    server: &Server,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.ports.http)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
    (status, body)
}

pub(super) fn json(server: &Server, path: &str) -> Value {
    let (status, body) = http(server, "GET", path, None, "");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn agent<'a>(agents: &'a Value, id: &str) -> &'a Value {
    agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap()
}

/// Polls `f` for up to 10 s.
/// The newest call record once `n` calls have ended (the API lists the newest first).
pub(super) fn ended_record(server: &Server, n: usize) -> Value {
    let mut record = Value::Null;
    eventually("the call is on record as ended", || {
        let calls = json(server, "/api/calls?limit=50");
        let ended: Vec<Value> = calls
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c["ended"].is_string())
            .collect();
        match ended.first() {
            Some(newest) if ended.len() >= n => {
                record = newest.clone();
                true
            }
            _ => false,
        }
    });
    record
}

pub(super) fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("never: {what}");
}

/// Metric samples from Prometheus text: every line either a comment or `name{labels} value`.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.is_empty())
        .filter(|l| {
            assert!(
                !l.starts_with('#') || l.starts_with("# HELP ") || l.starts_with("# TYPE "),
                "{l}"
            );
            !l.starts_with('#')
        })
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (
                name.to_string(),
                value.parse().unwrap_or_else(|_| panic!("{l}")),
            )
        })
        .collect()
}

/// What an ops team sees through the API while a call goes through: agents and their
/// states, a supervisor making an agent not-ready and available again (with the token only),
/// the queue's live figures, the finished call's record, and the metrics.
#[test]
fn the_api_shows_agents_queues_calls_and_metrics() {
    let server = server();
    let ports = AgentPorts::take();
    let agents = json(&server, "/api/agents");
    assert_eq!(agent(&agents, "alice")["state"], "offline");
    assert_eq!(agent(&agents, "alice")["reason"], "no-phone");
    assert_eq!(agent(&agents, "alice")["registered"], false);
    assert_eq!(agent(&agents, "bob")["name"], "Bob");

    let phone = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[AGENT_RINGS.to_string(), answers_until_bye(ports.listen(0))]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let agents = json(&server, "/api/agents");
    assert_eq!(agent(&agents, "alice")["state"], "available");
    assert_eq!(agent(&agents, "alice")["reason"], Value::Null);
    assert_eq!(agent(&agents, "alice")["registered"], true);

    // Changing a state needs the token.
    let not_ready = r#"{"state": "not-ready", "reason": "lunch"}"#;
    assert_eq!(
        http(&server, "POST", "/api/agents/alice/state", None, not_ready).0,
        401
    );
    assert_eq!(
        http(
            &server,
            "POST",
            "/api/agents/alice/state",
            Some("wrong"),
            not_ready
        )
        .0,
        401
    );
    assert_eq!(
        http(
            &server,
            "POST",
            "/api/agents/alice/state",
            Some("test-token"),
            r#"{"state": "asleep"}"#
        )
        .0,
        400
    );
    assert_eq!(
        http(
            &server,
            "POST",
            "/api/agents/nobody/state",
            Some("test-token"),
            not_ready
        )
        .0,
        404
    );
    // Bob has no phone: making him available would promise callers a human nobody can ring.
    let (status, body) = http(
        &server,
        "POST",
        "/api/agents/bob/state",
        Some("test-token"),
        r#"{"state": "available"}"#,
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("no registered phone"), "{body}");
    assert_eq!(
        agent(&json(&server, "/api/agents"), "bob")["state"],
        "offline"
    );
    let (status, body) = http(
        &server,
        "POST",
        "/api/agents/alice/state",
        Some("test-token"),
        not_ready,
    );
    assert_eq!(status, 200, "{body}");
    let alice = agent(&json(&server, "/api/agents"), "alice").clone();
    assert_eq!(alice["state"], "not-ready");
    assert_eq!(alice["reason"], "lunch");

    // A caller waits: alice is logged in but not ready.
    let file = server.path().join("caller.xml");
    std::fs::write(
        &file,
        call(
            "PCMU",
            None,
            &[pause(300), key('7'), pause(5000)],
            CALLER_BYE,
        ),
    )
    .unwrap();
    let caller = sipp_command(&server, &file, "agent", &[], 0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("the caller waits in the queue", || {
        json(&server, "/api/queues")[0]["waiting"] == 1
    });
    let q = json(&server, "/api/queues");
    assert_eq!(q[0]["name"], "support");
    assert_eq!(q[0]["agents_available"], 0);
    assert_eq!(q[0]["agents_logged_in"], 1);

    // The supervisor makes alice available: she is rung and answers.
    let (status, _) = http(
        &server,
        "POST",
        "/api/agents/alice/state",
        Some("test-token"),
        "available",
    );
    assert_eq!(status, 200);
    eventually("alice talks to the caller", || {
        agent(&json(&server, "/api/agents"), "alice")["state"] == "busy"
    });
    let agents = json(&server, "/api/agents");
    assert!(
        agent(&agents, "alice")["call"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    let metrics = {
        let (status, body) = http(&server, "GET", "/metrics", None, "");
        assert_eq!(status, 200);
        samples(&body)
    };
    let metric = |name: &str| metrics.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    assert_eq!(metric("hotline_active_calls"), Some(1.0));
    assert_eq!(metric("hotline_agents{state=\"busy\"}"), Some(1.0));
    assert_eq!(
        metric("hotline_queue_waiting{queue=\"support\"}"),
        Some(0.0)
    );
    assert!(metric("hotline_rtp_packets_sent_total").unwrap() > 0.0);

    let caller = caller.wait_with_output().unwrap();
    assert!(caller.status.success(), "{}", server.log());
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "{}", phone.text);

    // On record from the answer, live until the end is written.
    eventually("the call is on record as ended", || {
        json(&server, "/api/calls?limit=5")[0]["ended"].is_string()
    });
    let calls = json(&server, "/api/calls?limit=5");
    let c = &calls[0];
    assert_eq!(c["outcome"], "queue");
    assert_eq!(c["end_reason"], "caller");
    assert_eq!(c["flow"], "agentline");
    assert_eq!(c["flow_version"].as_str().map(str::len), Some(12));
    assert!(c["agent_answered_at"].as_str().unwrap() > c["human_offered_at"].as_str().unwrap());
    assert_eq!(c["escape_used"], false);
    assert_eq!(c["agent"], "alice");
    assert_eq!(c["line"], "agent", "the line dialled");
    assert_eq!(c["steps_to_human"], 1);
    assert!(
        c["seconds_to_human"]
            .as_f64()
            .is_some_and(|s| s > 0.0 && s < 5.0)
    );
    assert!(c["from"].as_str().unwrap().contains("caller@"));
    assert_eq!(c["path"][0], "agentline.account");
    assert!(c["ended"].as_str().unwrap() > c["started"].as_str().unwrap());
    let q = json(&server, "/api/queues");
    assert_eq!(q[0]["service_level"], 1.0, "answered within 20 s");
}

/// The callback's call reaches the caller's phone (where the caller called from): it rings,
/// answers with PCMA media at `rtp`, talks, and hangs up after 3 s.
pub(super) fn caller_phone_answers_callback(rtp: u16) -> String {
    scenario(&[
        r#"  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]A[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:caller@[local_ip]:[local_port]>
      Content-Length: 0
    ]]>
  </send>
"#
        .to_string(),
        agent_answers(rtp),
        agent_hangs_up_after(3000),
    ])
}

/// The agent's phone rings for a callback: the INVITE says whom to call back.
fn agent_rings_for_callback(caller_port: u16) -> String {
    format!(
        r#"  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="X-Hotline-Callback: sip:caller@127.0.0.1:{caller_port}" search_in="msg" check_it="true" assign_to="cb"/>
      <ereg regexp="X-Hotline-Path: [^\r\n]*waitline.agents[^\r\n]*callback" search_in="msg" check_it="true" assign_to="path"/>
    </action>
  </recv>
  <Reference variables="cb,path"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]A[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:agent@[local_ip]:[local_port]>
      Content-Length: 0
    ]]>
  </send>
"#
    )
}

/// Two callers wait while the only agent is not ready: each hears their own place in line
/// ("you are number 1/2 in line"), the first is offered a callback and presses 1, hears the
/// confirmation and is hung up on, keeping their place. When the agent is made available,
/// their phone rings first for the callback (with the caller's number and path), hears
/// ringback, and then the caller's phone rings; once it answers they hear each other, and the
/// caller hanging up ends the agent's side too. The callback is marked done in SQLite.
/// Alice's phone registered (as agent 0 of `ports`), and alice not ready: callers wait in line
/// and hear their place.
pub(super) fn alice_logged_in_not_ready(server: &Server, ports: &AgentPorts, password: &str) {
    register_agent(server, ports, 0, "alice", password, "200");
    let (status, body) = http(
        server,
        "POST",
        "/api/agents/alice/state",
        Some("test-token"),
        r#"{"state":"not-ready"}"#,
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_waiting_caller_hears_their_place_and_is_called_back() {
    let server = server();
    let ports = AgentPorts::take();
    alice_logged_in_not_ready(&server, &ports, "alice-pw");

    // Caller 1 waits, presses 1 once offered, and is hung up on after the confirmation.
    let caller_port = ports.register(2);
    let first_hears = Listener::bind(ports.listen(1), false);
    let first = sipp_at(
        &server,
        "first_caller",
        &call("PCMU", Some(ports.listen(1)), &[], SERVER_BYE),
        caller_port,
        ports.media(2),
        &["-s", "wait", "-m", "1"],
    );
    let entered = Instant::now();
    std::thread::sleep(Duration::from_millis(400));
    // Caller 2 comes in behind and hangs up after hearing their place.
    let second_hears = Listener::bind(ports.listen(2), false);
    let second = server.sipp(
        "second_caller",
        &call("PCMU", Some(ports.listen(2)), &[pause(2500)], CALLER_BYE),
        "wait",
        &[],
    );
    assert!(second.ok, "{}", second.text);
    // Offered at 2 s, again with the place at 4 s: the caller takes it.
    std::thread::sleep(Duration::from_millis(4700).saturating_sub(entered.elapsed()));
    first_hears.press('1');
    let first = finish(&server, "first_caller", first);
    assert!(first.ok, "{}", first.text);
    let heard_first: Vec<u8> = first_hears.stop().into_iter().flat_map(|p| p.1).collect();
    let heard_second: Vec<u8> = second_hears.stop().into_iter().flat_map(|p| p.1).collect();
    let dir = server.path();
    let log = server.log();
    for (who, heard, place) in [
        ("the first caller", &heard_first, "digits/1"),
        ("the second caller", &heard_second, "digits/2"),
    ] {
        let announced = queue_prompts_audio(dir, &["queue/you_are_number", place, "queue/in_line"]);
        assert!(
            contains(heard, &announced),
            "{who} heard their place ({place}) in line\n{log}"
        );
    }
    for prompt in ["queue/callback_offer", "queue/callback_kept"] {
        assert!(
            contains(&heard_first, &queue_prompts_audio(dir, &[prompt])),
            "the first caller heard {prompt}\n{log}"
        );
    }
    assert!(
        !contains(
            &heard_second,
            &queue_prompts_audio(dir, &["queue/callback_kept"])
        ),
        "the second caller took no callback"
    );
    let db = rusqlite::Connection::open(dir.join("data/hotline.db")).unwrap();
    let state = |db: &rusqlite::Connection| -> Vec<(String, String)> {
        db.prepare("SELECT caller, state FROM callbacks")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let caller_uri = format!("sip:caller@127.0.0.1:{caller_port}");
    assert_eq!(
        state(&db),
        vec![(caller_uri.clone(), "pending".to_string())],
        "stored before the confirmation"
    );

    // The callback: alice's phone rings first, then the caller's (where they called from).
    let agent_hears = Listener::bind(ports.listen(0), true);
    let caller_hears = Listener::bind(ports.listen(3), true);
    let phone = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[
            agent_rings_for_callback(caller_port),
            answers_until_bye(ports.listen(0)),
        ]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let callee = sipp_at(
        &server,
        "caller_phone",
        &caller_phone_answers_callback(ports.listen(3)),
        caller_port,
        ports.media(3),
        &["-m", "1"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = http(
        &server,
        "POST",
        "/api/agents/alice/state",
        Some("test-token"),
        r#"{"state":"available"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "{}", phone.text);
    let callee = finish(&server, "caller_phone", callee);
    assert!(callee.ok, "{}", callee.text);
    std::thread::sleep(Duration::from_millis(200));
    let to_agent = agent_hears.stop();
    let to_caller = caller_hears.stop();
    let log = server.log();

    // Before the caller answered, the agent heard ringback (A-law, their leg's codec).
    let ringback: Vec<u8> = read_wav(&dir.join("prompts/queue/ringback.wav"))
        .iter()
        .map(|&s| Law::Pcma.encode(s))
        .collect();
    let heard: Vec<u8> = to_agent.iter().flat_map(|(_, p)| p.clone()).collect();
    assert!(contains(&heard, &ringback), "ringback to the agent\n{log}");
    // Then both legs (PCMA both) carry each other's speech.
    let said = pcap_audio();
    let run = matched_speech(&heard, &said);
    assert!(
        run >= 8000,
        "the agent heard {run} samples of the caller\n{log}"
    );
    let heard: Vec<u8> = to_caller.iter().flat_map(|(_, p)| p.clone()).collect();
    let run = matched_speech(&heard, &said);
    assert!(
        run >= 8000,
        "the caller heard {run} samples of the agent\n{log}"
    );
    eventually("the callback is marked done", || {
        state(&db) == vec![(caller_uri.clone(), "done".to_string())]
    });
}

/// A callback asked for at a flow's callback node is in SQLite before the confirmation; the
/// server crashes (SIGKILL) and comes back; the request is back in line, and the first agent
/// to log in is rung for it, then the caller's phone, and they are bridged.
#[test]
fn a_stored_callback_survives_a_crash_and_is_dialled_when_an_agent_logs_in() {
    let mut server = server();
    let ports = AgentPorts::take();
    let caller_port = ports.register(2);
    let caller = sipp_at(
        &server,
        "caller",
        &call("PCMU", None, &[pause(2400), key('2')], SERVER_BYE),
        caller_port,
        ports.media(2),
        &["-s", "main", "-m", "1"],
    );
    let caller = finish(&server, "caller", caller);
    assert!(caller.ok, "{}", caller.text);
    server.crash_and_restart();
    let log = server.log_with("stored callbacks back in line");
    assert!(
        log.contains("stored callbacks back in line callbacks=1"),
        "{log}"
    );

    let agent_hears = Listener::bind(ports.listen(0), true);
    let caller_hears = Listener::bind(ports.listen(3), true);
    let phone = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[
            format!(
                r#"  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="X-Hotline-Callback: sip:caller@127.0.0.1:{caller_port}" search_in="msg" check_it="true" assign_to="cb"/>
      <ereg regexp="X-Hotline-Path: main.welcome done main.menu 2 main.call_me" search_in="msg" check_it="true" assign_to="path"/>
    </action>
  </recv>
  <Reference variables="cb,path"/>
"#
            ),
            answers_until_bye(ports.listen(0)),
        ]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let callee = sipp_at(
        &server,
        "caller_phone",
        &caller_phone_answers_callback(ports.listen(3)),
        caller_port,
        ports.media(3),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "{}", phone.text);
    let callee = finish(&server, "caller_phone", callee);
    assert!(callee.ok, "{}", callee.text);
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log();
    let said = pcap_audio();
    let heard: Vec<u8> = agent_hears.stop().into_iter().flat_map(|p| p.1).collect();
    assert!(
        matched_speech(&heard, &said) >= 8000,
        "agent heard the caller\n{log}"
    );
    let heard: Vec<u8> = caller_hears.stop().into_iter().flat_map(|p| p.1).collect();
    assert!(
        matched_speech(&heard, &said) >= 8000,
        "caller heard the agent\n{log}"
    );
    let db = rusqlite::Connection::open(server.path().join("data/hotline.db")).unwrap();
    eventually("the callback is marked done", || {
        db.query_row("SELECT state FROM callbacks", [], |r| r.get::<_, String>(0))
            .is_ok_and(|s| s == "done")
    });
}

/// A callback's call is live (the agent and the caller it dialled are talking; no caller's
/// call holds it) when the server is told to stop: both phones get a BYE after the grace
/// period and the server exits cleanly.
#[test]
fn shutdown_hangs_up_a_callback_in_progress_on_both_phones() {
    let mut server = server();
    let ports = AgentPorts::take();
    let caller_port = ports.register(2);
    let caller = sipp_at(
        &server,
        "caller",
        &call("PCMU", None, &[pause(2400), key('2')], SERVER_BYE),
        caller_port,
        ports.media(2),
        &["-s", "main", "-m", "1"],
    );
    let caller = finish(&server, "caller", caller);
    assert!(caller.ok, "{}", caller.text);
    let rings = r#"  <recv request="INVITE" crlf="true"/>
"#;
    let phone = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[rings.to_string(), answers_until_bye(ports.listen(0))]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let callee = sipp_at(
        &server,
        "caller_phone",
        &scenario(&[rings.to_string(), answers_until_bye(ports.listen(3))]),
        caller_port,
        ports.media(3),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    eventually("the caller answered the callback", || {
        server.log().contains("the caller answered the callback")
    });
    server.signal("-TERM");
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "the agent's phone got a BYE: {}", phone.text);
    let callee = finish(&server, "caller_phone", callee);
    assert!(callee.ok, "the caller's phone got a BYE: {}", callee.text);
    assert_eq!(
        server.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        server.log()
    );
}

/// The caller's phone is busy when the callback dials it: the agent's leg is hung up (the
/// agent is free again) and the callback stays pending with one attempt counted, to be tried
/// again later.
#[test]
fn a_busy_caller_leaves_the_callback_pending_for_another_attempt() {
    let server = server();
    let ports = AgentPorts::take();
    let caller_port = ports.register(2);
    let caller = sipp_at(
        &server,
        "caller",
        &call("PCMU", None, &[pause(2400), key('2')], SERVER_BYE),
        caller_port,
        ports.media(2),
        &["-s", "main", "-m", "1"],
    );
    let caller = finish(&server, "caller", caller);
    assert!(caller.ok, "{}", caller.text);
    let phone = sipp_at(
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
    let busy = sipp_at(
        &server,
        "caller_phone",
        &scenario(&[format!(
            "  <recv request=\"INVITE\"/>\n{}",
            refuses("486 Busy Here")
        )]),
        caller_port,
        ports.media(3),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let busy = finish(&server, "caller_phone", busy);
    assert!(busy.ok, "{}", busy.text);
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "the agent's leg was hung up: {}", phone.text);
    let db = rusqlite::Connection::open(server.path().join("data/hotline.db")).unwrap();
    eventually("one attempt counted, still pending", || {
        db.query_row("SELECT state, attempts FROM callbacks", [], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))
        })
        .is_ok_and(|s| s == ("pending".to_string(), 1))
    });
    eventually("alice is no longer on the call", || {
        let state = agent(&json(&server, "/api/agents"), "alice")["state"].clone();
        state == "available" || state == "wrap-up"
    });
}

/// The agent's phone rings (any call) and says so.
pub(super) const AGENT_RINGS_ANY: &str = r#"  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]A[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:agent@[local_ip]:[local_port]>
      Content-Length: 0
    ]]>
  </send>
"#;

/// A transfer node puts the caller through to its SIP target: the target's phone rings with
/// the caller's context, answers, the two hear each other, and the caller's BYE reaches it.
#[test]
fn a_transfer_puts_the_caller_through_to_its_target() {
    let server = server();
    let ports = AgentPorts::take();
    let target_hears = Listener::bind(ports.listen(0), true);
    let caller_hears = Listener::bind(ports.listen(1), true);
    let target = sipp_at(
        &server,
        "front_desk",
        &scenario(&[
            r#"  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="INVITE sip:frontdesk@127.0.0.1" search_in="msg" check_it="true" assign_to="uri"/>
      <ereg regexp="X-Hotline-Path: transferline.front" search_in="msg" check_it="true" assign_to="path"/>
    </action>
  </recv>
  <Reference variables="uri,path"/>
"#
            .to_string(),
            answers_until_bye(ports.listen(0)),
        ]),
        server.ports.transfer_target,
        server.ports.transfer_media,
        &["-m", "1"],
    );
    std::thread::sleep(Duration::from_millis(200));
    let caller = server.sipp(
        "caller",
        &call("PCMU", Some(ports.listen(1)), &[pause(5000)], CALLER_BYE),
        "front",
        &[],
    );
    assert!(caller.ok, "{}", caller.text);
    let target = finish(&server, "front_desk", target);
    assert!(target.ok, "{}", target.text);
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log();
    let said = pcap_audio();
    let heard: Vec<u8> = target_hears.stop().into_iter().flat_map(|p| p.1).collect();
    assert!(
        matched_speech(&heard, &said) >= 8000 * 2,
        "the target heard the caller\n{log}"
    );
    let said_mu: Vec<u8> = said
        .iter()
        .map(|&b| Law::Pcmu.encode(Law::Pcma.decode(b)))
        .collect();
    let heard: Vec<u8> = caller_hears
        .stop()
        .into_iter()
        .filter(|p| p.0 == 0)
        .flat_map(|p| p.1)
        .collect();
    assert!(
        matched_speech(&heard, &said_mu) >= 8000 * 2,
        "the caller heard the target\n{log}"
    );
}

/// A transfer target that declines sends the caller to the node's `on_failure` (a mailbox).
#[test]
fn a_declined_transfer_takes_on_failure() {
    let server = server();
    let target = sipp_at(
        &server,
        "front_desk",
        &scenario(&[format!(
            "  <recv request=\"INVITE\"/>\n{}",
            refuses("486 Busy Here")
        )]),
        server.ports.transfer_target,
        server.ports.transfer_media,
        &["-m", "1"],
    );
    std::thread::sleep(Duration::from_millis(200));
    let caller = server.sipp(
        "caller",
        &call(
            "PCMU",
            None,
            &[pause(1500), speak(), pause(3000)],
            CALLER_BYE,
        ),
        "front",
        &[],
    );
    assert!(caller.ok, "{}", caller.text);
    let target = finish(&server, "front_desk", target);
    assert!(target.ok, "{}", target.text);
    let vm = server.voicemails_when("front", 1);
    assert_eq!(
        vm.len(),
        1,
        "a message in the front mailbox\n{}",
        server.log()
    );
    assert_eq!(
        path_of(&vm[0].0),
        ["transferline.front", "failure", "transferline.messages"]
    );
}

/// The repro of a caller stranded beside an idle agent: alice lets the ring run out, then
/// makes herself available again. The caller, still waiting, must be put through to her
/// within the queue's retry time (5 s by default) plus 2 s, and not counted as abandoned.
#[test]
fn a_missed_ring_never_strands_the_caller_beside_the_agent() {
    let server = server();
    let ports = AgentPorts::take();
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let first_ring = sipp_at(
        &server,
        "alice_misses",
        &scenario(&[AGENT_RINGS_ANY.to_string(), AGENT_CANCELLED.to_string()]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let file = server.path().join("caller.xml");
    std::fs::write(&file, call("PCMU", None, &[pause(16_000)], CALLER_BYE)).unwrap();
    let caller = sipp_command(&server, &file, "hold", &[], 0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let missed = finish(&server, "alice_misses", first_ring);
    assert!(missed.ok, "alice's phone rang out: {}", missed.text);
    let agents = json(&server, "/api/agents");
    assert_eq!(agent(&agents, "alice")["state"], "not-ready");
    assert_eq!(agent(&agents, "alice")["reason"], "ring-no-answer");
    assert_eq!(json(&server, "/api/queues")[0]["waiting"], 1);

    let answers = sipp_at(
        &server,
        "alice_answers",
        &scenario(&[
            AGENT_RINGS_ANY.to_string(),
            answers_until_bye(ports.listen(0)),
        ]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let back = Instant::now();
    let (status, body) = http(
        &server,
        "POST",
        "/api/agents/alice/state",
        Some("test-token"),
        r#"{"state": "available"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let deadline = back + Duration::from_secs(5 + 2);
    loop {
        let agents = json(&server, "/api/agents");
        if agent(&agents, "alice")["state"] == "busy" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the caller still waits beside alice: {agents}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(json(&server, "/api/queues")[0]["waiting"], 0);
    // While they talk, the live call's record already names the agent.
    eventually("the live call shows its agent", || {
        let calls = json(&server, "/api/calls?flow=hold");
        calls[0]["outcome"] == "live"
            && calls[0]["agent"] == "alice"
            && calls[0]["agent_answered_at"].is_string()
    });
    let caller = caller.wait_with_output().unwrap();
    assert!(caller.status.success(), "{}", server.log());
    let answers = finish(&server, "alice_answers", answers);
    assert!(answers.ok, "alice took the caller: {}", answers.text);
    let calls = json(&server, "/api/calls?flow=hold");
    assert_eq!(calls[0]["agent"], "alice", "{calls}");
    assert_ne!(calls[0]["outcome"], "abandoned", "{calls}");
}

/// Behind one address (as behind an office's NAT), one phone's wrong password locks out only
/// that username: after five failures alice's pair is refused at once, bob's phone from the
/// same address still registers, and each refusal is a log line fail2ban can match, counted
/// in the metrics and shown with the agent.
#[test]
fn one_phones_typo_does_not_lock_out_the_office() {
    let server = server();
    let ports = AgentPorts::take();
    for _ in 0..5 {
        register_agent(&server, &ports, 0, "alice", "typo", "403");
    }
    let locked = scenario(&[r#"  <send retrans="500">
    <![CDATA[
      REGISTER sip:hotline.local SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:alice@hotline.local>;tag=[pid]L[call_number]
      To: <sip:alice@hotline.local>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:alice@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="403"/>
"#
    .to_string()]);
    let child = sipp_at(
        &server,
        "alice_locked",
        &locked,
        ports.register(0),
        ports.media(0),
        &["-m", "1"],
    );
    let r = finish(&server, "alice_locked", child);
    assert!(
        r.ok,
        "alice's sixth try is refused without a challenge: {}",
        r.text
    );
    register_agent(&server, &ports, 1, "bob", "bob-pw", "200");
    let agents = json(&server, "/api/agents");
    assert_eq!(agent(&agents, "bob")["state"], "available");
    assert_eq!(agent(&agents, "alice")["auth_failures"], 5);
    assert_eq!(
        agent(&agents, "alice")["locked_out"],
        serde_json::json!(["127.0.0.1"])
    );
    assert_eq!(agent(&agents, "bob")["auth_failures"], 0);

    let log = server.log();
    let failed = log
        .lines()
        .filter(|l| {
            l.contains("SIP auth failed")
                && l.contains("user=\"alice\"")
                && l.contains("source=127.0.0.1")
        })
        .count();
    assert_eq!(failed, 5, "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("SIP auth lockout") && l.contains("user=\"alice\"")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("SIP auth refused: locked out") && l.contains("source=127.0.0.1")),
        "{log}"
    );
    let (_, text) = http(&server, "GET", "/metrics", None, "");
    let m = samples(&text);
    assert!(
        m.contains(&("hotline_sip_auth_failures_total".to_string(), 5.0)),
        "{text}"
    );
    assert!(
        m.contains(&("hotline_sip_auth_lockouts_total".to_string(), 1.0)),
        "{text}"
    );
}

/// A restart (here a crash) does not log the agents out: their phones' registrations are
/// stored with their expiry, so alice is available at once and her phone rings for the next
/// caller, without waiting for its next refresh.
#[test]
fn registrations_survive_a_restart() {
    let mut server = server();
    let ports = AgentPorts::take();
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let data = server.path().join("data");
    eventually("the registration is stored", || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        hotline::store::Store::open(&data)
            .and_then(|s| s.registrations(now))
            .is_ok_and(|r| r.len() == 1 && r[0].0 == "alice")
    });
    server.crash_and_restart();
    let agents = json(&server, "/api/agents");
    assert_eq!(agent(&agents, "alice")["registered"], true, "{agents}");
    assert_eq!(agent(&agents, "alice")["state"], "available", "{agents}");
    let phone = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[AGENT_RINGS.to_string(), answers_until_bye(ports.listen(0))]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let caller = server.sipp(
        "caller",
        &call(
            "PCMU",
            None,
            &[pause(500), key('7'), pause(3000)],
            CALLER_BYE,
        ),
        "agent",
        &[],
    );
    assert!(caller.ok, "{}", caller.text);
    let phone = finish(&server, "alice_phone", phone);
    assert!(
        phone.ok,
        "alice's phone rang after the restart: {}",
        phone.text
    );
}

/// The agent's phone re-INVITEs with `direction` (hold: `sendonly`; resume: `sendrecv`),
/// its media at `rtp`, after `pause_ms`.
fn agent_reinvites(direction: &str, rtp: u16, cseq: u32, pause_ms: u32) -> String {
    format!(
        r#"  <pause milliseconds="{pause_ms}"/>
  <send retrans="500">
    <![CDATA[
      INVITE sip:hotline@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$to]
      To: [$from]
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:agent@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=agent 1 {cseq} IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio {rtp} RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a={direction}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send>
    <![CDATA[
      ACK sip:hotline@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$to]
      To: [$from]
      Call-ID: [call_id]
      CSeq: {cseq} ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"#
    )
}

/// The agent puts the caller on hold (re-INVITE `sendonly`) for 3 s, then resumes: the caller
/// hears the line's hold music meanwhile, not silence, and the agent's voice again after.
#[test]
fn a_caller_put_on_hold_by_the_agent_hears_hold_music() {
    caller_on_hold_hears(AGENTS, 300.0);
}

/// The same with the queue's own hold music (`hold_music = "short"`, a 500 Hz tone here):
/// that is what the caller hears, not `prompts/hold.wav`.
#[test]
fn a_queue_plays_its_own_hold_music() {
    let config = AGENTS.replace(
        "ring_timeout_s = 2\n",
        "ring_timeout_s = 2\nhold_music = \"short\"\n",
    );
    caller_on_hold_hears(&config, 500.0);
}

fn caller_on_hold_hears(config: &str, music_hz: f64) {
    let server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", config);
    let ports = AgentPorts::take();
    let agent_hears = Listener::bind(ports.listen(0), true);
    let caller_hears = Listener::bind(ports.listen(1), true);
    let phone = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[
            AGENT_RINGS.to_string(),
            agent_answers(ports.listen(0)),
            agent_reinvites("sendonly", ports.listen(0), 2, 1000),
            agent_reinvites("sendrecv", ports.listen(0), 3, 3000),
            AGENT_GETS_BYE.to_string(),
        ]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let caller = server.sipp(
        "caller",
        &call(
            "PCMU",
            Some(ports.listen(1)),
            &[pause(500), key('7'), pause(8000)],
            CALLER_BYE,
        ),
        "agent",
        &[],
    );
    assert!(caller.ok, "{}", caller.text);
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "{}", phone.text);
    std::thread::sleep(Duration::from_millis(200));
    agent_hears.stop();
    let heard = pcmu_samples(&caller_hears.stop());
    // prompts/hold.wav is a 300 Hz tone here; the caller waited under a second before the
    // agent answered, so most of what they heard of it is the 3 s on hold.
    let music = super::phones::tone_blocks(&heard, music_hz);
    assert!(
        music >= 20,
        "the caller heard {music} blocks of hold music\n{}",
        server.log()
    );
    if music_hz != 300.0 {
        let default = super::phones::tone_blocks(&heard, 300.0);
        assert!(default <= 2, "{default} blocks of prompts/hold.wav");
    }
    let said_mu: Vec<u8> = pcap_audio()
        .iter()
        .map(|&b| Law::Pcmu.encode(Law::Pcma.decode(b)))
        .collect();
    let heard_mu: Vec<u8> = heard.iter().map(|&s| Law::Pcmu.encode(s)).collect();
    assert!(
        matched_speech(&heard_mu, &said_mu) >= 8000 * 2,
        "the caller hears the agent again after the hold\n{}",
        server.log()
    );
}

/// A From header is the caller's to write: a caller claiming a premium number on a host of
/// their choosing is never dialled back. The flow's callback node leaves their request to a
/// human (state `manual`), and a waiting caller is not offered a callback at all.
#[test]
fn a_forged_from_is_never_dialled_back() {
    let forge = |xml: String| {
        xml.replace(
            "<sip:caller@[local_ip]:[local_port]>;tag",
            "<sip:+19005550100@evil.example:5099>;tag",
        )
    };
    let server = server();
    let ports = AgentPorts::take();
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let (status, _) = http(
        &server,
        "POST",
        "/api/agents/alice/state",
        Some("test-token"),
        "not-ready",
    );
    assert_eq!(status, 200);
    // The flow's callback node (main: key 2).
    let xml = forge(call("PCMU", None, &[pause(2400), key('2')], SERVER_BYE));
    assert!(xml.contains("evil.example"));
    let r = server.sipp("forged_node", &xml, "main", &[]);
    assert!(r.ok, "{}", r.text);
    // A waiting caller pressing 1 after the offer would have come (2 s).
    let xml = forge(call(
        "PCMU",
        None,
        &[pause(3500), key('1'), pause(1000)],
        CALLER_BYE,
    ));
    let r = server.sipp("forged_wait", &xml, "wait", &[]);
    assert!(r.ok, "{}", r.text);

    let db = rusqlite::Connection::open(server.path().join("data/hotline.db")).unwrap();
    let rows: Vec<(String, String)> = db
        .prepare("SELECT caller, state FROM callbacks")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 1, "only the node's request is stored: {rows:?}");
    assert!(rows[0].0.contains("+19005550100"), "{rows:?}");
    assert_eq!(rows[0].1, "manual", "left to a human, not dialled");
    let log = server.log();
    assert!(log.contains("left for a human"), "{log}");
    assert!(log.contains("no callback offer"), "{log}");
    assert!(!log.contains("calling the caller back"), "{log}");
    assert!(!log.contains("agent answered a callback"), "{log}");
}

/// Alice's phone dials the ready toggle code `code`: challenged (401) like a REGISTER,
/// answered with `expect` once authenticated; on 200 it hears the confirmation until
/// hotline's BYE.
/// An anonymous caller (RFC 3323: `anonymous@anonymous.invalid`) at the flow's callback node
/// is not promised a callback nobody could make: told it could not be kept and put through
/// to the line's humans instead; nothing is stored to be called back.
#[test]
fn an_anonymous_caller_is_not_promised_a_callback() {
    let server = server();
    let xml = call(
        "PCMU",
        None,
        &[pause(2400), key('2'), pause(1500)],
        CALLER_BYE,
    )
    .replace(
        "\"Test Caller\" <sip:caller@[local_ip]:[local_port]>;tag",
        "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag",
    );
    assert!(xml.contains("anonymous.invalid"));
    let r = server.sipp("anonymous", &xml, "main", &[]);
    assert!(r.ok, "{}", r.text);
    let db = rusqlite::Connection::open(server.path().join("data/hotline.db")).unwrap();
    let stored: i64 = db
        .query_row("SELECT COUNT(*) FROM callbacks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 0, "no callback to nobody");
    let log = server.log();
    assert!(
        log.contains("an anonymous caller cannot be called back"),
        "{log}"
    );
    eventually("the call is on record as ended", || {
        json(&server, "/api/calls?limit=1")[0]["ended"].is_string()
    });
    let c = &json(&server, "/api/calls?limit=1")[0];
    let path = c["path"].to_string();
    assert!(
        path.contains("main.call_me") && path.contains("main.agents"),
        "from the callback node on to the humans: {path}"
    );
}

fn dials_code(code: &str, expect: &str) -> String {
    let invite = |cseq: u32, auth: &str| {
        format!(
            r#"  <send retrans="500">
    <![CDATA[
      INVITE sip:{code}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:alice@hotline.local>;tag=[pid]F[call_number]
      To: <sip:{code}@hotline.local>
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:alice@[local_ip]:[local_port]>
      {auth}
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=alice 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
"#
        )
    };
    let ack_failure = r#"  <recv response="401" auth="true"/>
  <send>
    <![CDATA[
      ACK sip:*45@[remote_ip]:[remote_port] SIP/2.0
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
    .replace("*45", code);
    let end = if expect == "200" {
        format!(
            r#"  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
{}"#,
            super::SERVER_BYE
        )
    } else {
        format!("  <recv response=\"{expect}\"/>\n")
    };
    scenario(&[
        invite(1, ""),
        ack_failure,
        invite(2, "[authentication]"),
        end,
    ])
}

/// An agent changes state from the phone: `*45` (digest-authenticated) toggles alice between
/// available and not ready, each time answered with a short confirmation and hung up; a
/// wrong password changes nothing.
#[test]
fn an_agent_toggles_ready_from_the_phone() {
    let server = server();
    let ports = AgentPorts::take();
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let state = |s: &Server| agent(&json(s, "/api/agents"), "alice")["state"].clone();
    assert_eq!(state(&server), "available");
    let dial = |name: &str, password: &str, expect: &str| {
        let child = sipp_at(
            &server,
            name,
            &dials_code("*45", expect),
            ports.register(0),
            ports.media(0),
            &["-s", "alice", "-au", "alice", "-ap", password, "-m", "1"],
        );
        finish(&server, name, child)
    };
    let r = dial("toggle_off", "alice-pw", "200");
    assert!(r.ok, "answered, confirmed, hung up: {}", r.text);
    assert_eq!(state(&server), "not-ready");
    let r = dial("wrong_password", "guess", "403");
    assert!(r.ok, "{}", r.text);
    assert_eq!(state(&server), "not-ready");
    let r = dial("toggle_on", "alice-pw", "200");
    assert!(r.ok, "{}", r.text);
    assert_eq!(state(&server), "available");
    // No call was recorded for the feature code: it is not a call to a line.
    assert_eq!(
        json(&server, "/api/calls").as_array().map(Vec::len),
        Some(0)
    );
}

/// hotline.toml reloads on SIGHUP, validated whole with the flows: a new agent can register
/// at once, an agent removed while on a call finishes it (both sides hear the BYE as usual)
/// and is then gone, a new line answers; a broken config is refused whole, and what ran
/// before keeps running.
#[test]
fn hotline_toml_reloads_without_disturbing_a_call() {
    let server = server();
    let ports = AgentPorts::take();
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let phone = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[AGENT_RINGS.to_string(), answers_until_bye(ports.listen(0))]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let file = server.path().join("caller.xml");
    std::fs::write(
        &file,
        call(
            "PCMU",
            None,
            &[pause(500), key('7'), pause(5000)],
            CALLER_BYE,
        ),
    )
    .unwrap();
    let caller = sipp_command(&server, &file, "agent", &[], 0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("alice takes the call", || {
        agent(&json(&server, "/api/agents"), "alice")["state"] == "busy"
    });
    let reloads = |s: &Server| json(s, "/api/flows")["last_reload"]["at"].clone();
    let config = std::fs::read_to_string(server.path().join("hotline.toml")).unwrap();
    let changed = config
        .replace(
            "[[agents]]\nid = \"alice\"\npassword = \"alice-pw\"\nname = \"Alice\"\nskills = { support = 5 }\n",
            "[[agents]]\nid = \"carol\"\npassword = \"carol-pw\"\nname = \"Carol\"\nskills = { support = 1 }\n",
        )
        .replace("[lines]\n", "[lines]\nnewline = \"hold\"\n");
    assert_ne!(changed, config);
    std::fs::write(server.path().join("hotline.toml"), &changed).unwrap();
    let before = reloads(&server);
    server.signal("-HUP");
    eventually("the config is reloaded", || reloads(&server) != before);
    assert_eq!(json(&server, "/api/flows")["last_reload"]["ok"], true);
    // Alice is still on her call; carol exists now and can log in.
    let agents = json(&server, "/api/agents");
    assert_eq!(agent(&agents, "alice")["state"], "busy", "{agents}");
    register_agent(&server, &ports, 1, "carol", "carol-pw", "200");
    assert_eq!(
        agent(&json(&server, "/api/agents"), "carol")["state"],
        "available"
    );
    let caller = caller.wait_with_output().unwrap();
    assert!(
        caller.status.success(),
        "the call went on to its end\n{}",
        server.log()
    );
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "{}", phone.text);
    eventually("alice is gone once her call ended", || {
        json(&server, "/api/agents")
            .as_array()
            .is_some_and(|a| !a.iter().any(|a| a["id"] == "alice"))
    });
    register_agent(&server, &ports, 0, "alice", "alice-pw", "403");
    // The new line answers with its flow.
    let r = server.sipp(
        "newline",
        &call("PCMU", None, &[pause(300)], CALLER_BYE),
        "newline",
        &[],
    );
    assert!(r.ok, "{}", r.text);
    eventually("the new line's call is on record, ended", || {
        let record = &json(&server, "/api/calls?line=newline")[0];
        record["flow"] == "hold" && record["ended"].is_string()
    });
    // Carol was rung for that caller: she is free again once the ring is cancelled.
    eventually("carol is available again", || {
        agent(&json(&server, "/api/agents"), "carol")["state"] == "available"
    });

    // A duplicate agent id: refused whole, carol still serves.
    std::fs::write(
        server.path().join("hotline.toml"),
        changed.replace("id = \"bob\"", "id = \"carol\""),
    )
    .unwrap();
    let before = reloads(&server);
    server.signal("-HUP");
    eventually("the reload is refused", || reloads(&server) != before);
    let status = json(&server, "/api/flows");
    assert_eq!(status["last_reload"]["ok"], false, "{status}");
    assert!(
        status["last_reload"]["message"]
            .as_str()
            .unwrap()
            .contains("given twice"),
        "{status}"
    );
    let agents = json(&server, "/api/agents");
    assert_eq!(agent(&agents, "carol")["state"], "available");
    assert_eq!(agent(&agents, "bob")["state"], "offline");
}

/// RTP from a stranger: an attacker on another address sprays every port of the media range
/// with loud audio through a whole call. It gets none of the call's audio back, its audio is
/// not in the caller's message, and every packet of it is refused (and counted).
#[test]
fn a_stranger_cannot_take_or_join_a_calls_audio() {
    let server = Server::start_with("answer_after_ms = 0\nshutdown_grace_s = 2");
    let (lo, hi) = server.ports.rtp;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let s = UdpSocket::bind("127.0.0.2:0").unwrap();
            s.set_nonblocking(true).unwrap();
            let tone: Vec<u8> = (0..160)
                .map(|i| {
                    let t = f64::from(i) / 8000.0;
                    Law::Pcmu
                        .encode((12000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16)
                })
                .collect();
            let (mut got, mut seq) = (0usize, 0u16);
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                seq = seq.wrapping_add(1);
                let mut p = vec![0x80, 0];
                p.extend_from_slice(&seq.to_be_bytes());
                p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                p.extend_from_slice(&0xbad_u32.to_be_bytes());
                p.extend_from_slice(&tone);
                for port in (lo..=hi).step_by(2) {
                    let _ = s.send_to(&p, ("127.0.0.1", port));
                }
                while s.recv_from(&mut buf).is_ok() {
                    got += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            got
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let xml = call(
        "PCMU",
        None,
        &[pause(2500), key('4'), pause(800), speak()],
        SERVER_BYE,
    );
    let r = server.sipp("victim", &xml, "main", &[]);
    stop.store(true, Ordering::Relaxed);
    let got = attacker.join().unwrap();
    assert!(r.ok, "the victim's call went its way: {}", r.text);
    assert_eq!(got, 0, "the attacker received the call's audio");
    let vm = server.voicemails_when("brief", 1);
    let samples = read_wav(&vm[0].1);
    assert!(
        loud_blocks(&samples) >= 5,
        "the caller's own message was recorded"
    );
    let injected = super::phones::tone_blocks(&samples, 1000.0);
    assert_eq!(
        injected, 0,
        "{injected} blocks of the attacker's tone in the message"
    );
    let (_, text) = http(&server, "GET", "/metrics", None, "");
    let refused = samples_of(&text, "hotline_rtp_packets_refused_total");
    assert!(refused > 50.0, "refused {refused}\n{text}");
}

fn samples_of(text: &str, name: &str) -> f64 {
    samples(text)
        .into_iter()
        .find(|(n, _)| n == name)
        .map_or(0.0, |(_, v)| v)
}

/// The other way round: the caller holds (re-INVITE `sendonly`) for 3 s; meanwhile the agent
/// hears the line's hold music (in the agent leg's own codec, PCMA), not silence.
#[test]
fn an_agent_whose_caller_holds_hears_hold_music() {
    let server = server();
    let ports = AgentPorts::take();
    let agent_hears = Listener::bind(ports.listen(0), true);
    let caller_hears = Listener::bind(ports.listen(1), true);
    let phone = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[AGENT_RINGS.to_string(), answers_until_bye(ports.listen(0))]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let rtp = ports.listen(1);
    let caller = server.sipp(
        "caller",
        &call(
            "PCMU",
            Some(rtp),
            &[
                pause(500),
                key('7'),
                pause(1500),
                super::reinvite(2, "sendonly", rtp, "recvonly"),
                pause(3000),
                super::reinvite(3, "sendrecv", rtp, "sendrecv"),
                pause(1000),
            ],
            CALLER_BYE,
        ),
        "agent",
        &[],
    );
    assert!(caller.ok, "{}", caller.text);
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "{}", phone.text);
    std::thread::sleep(Duration::from_millis(200));
    caller_hears.stop();
    let heard: Vec<i16> = agent_hears
        .stop()
        .iter()
        .filter(|(pt, _)| *pt == 8)
        .flat_map(|(_, p)| p.iter().map(|&b| Law::Pcma.decode(b)))
        .collect();
    let music = super::phones::tone_blocks(&heard, 300.0);
    assert!(
        music >= 20,
        "the agent heard {music} blocks of hold music\n{}",
        server.log()
    );
}

/// Every wait a caller is told is scored against the wait they then had: alice takes one short
/// call (the queue learns a handle time of about a second), goes not ready, and the next caller
/// hears "less than a minute" (told 60 s) but is answered about 4 s later. `/metrics`, the call
/// record and `hotline report` all show the estimate and its error.
#[test]
fn the_wait_a_caller_is_told_is_audited_against_the_wait_they_had() {
    let server = server();
    let ports = AgentPorts::take();
    let phone = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[
            waitline_rings(),
            agent_answers(ports.listen(0)),
            agent_hangs_up_after(1000),
        ]),
        ports.phone(0),
        ports.media(0),
        &["-m", "2"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    let first = server.sipp(
        "first_caller",
        &call("PCMU", None, &[], SERVER_BYE),
        "wait",
        &[],
    );
    assert!(first.ok, "{}", first.text);
    let (status, body) = http(
        &server,
        "POST",
        "/api/agents/alice/state",
        Some("test-token"),
        r#"{"state":"not-ready"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let second = sipp_at(
        &server,
        "second_caller",
        &call("PCMU", None, &[], SERVER_BYE),
        ports.register(2),
        ports.media(2),
        &["-s", "wait", "-m", "1"],
    );
    // Announced at 1 s; alice is back at about 4 s.
    eventually("the second caller waits", || {
        json(&server, "/api/queues")[0]["waiting"] == 1
    });
    std::thread::sleep(Duration::from_millis(4000));
    let (status, body) = http(
        &server,
        "POST",
        "/api/agents/alice/state",
        Some("test-token"),
        r#"{"state":"available"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let second = finish(&server, "second_caller", second);
    assert!(second.ok, "{}", second.text);
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "{}", phone.text);
    let log = server.log();

    let (_, metrics) = http(&server, "GET", "/metrics", None, "");
    let sample = |name: &str| -> f64 {
        samples(&metrics)
            .into_iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("{name} in\n{metrics}"))
            .1
    };
    let told = sample("hotline_wait_estimate_error_seconds_count{queue=\"support\"}");
    assert!(told >= 1.0, "at least one announcement scored\n{log}");
    // Told 60 s, answered within seconds: every error is negative, none above -30 s.
    assert_eq!(
        sample("hotline_wait_estimate_error_seconds_bucket{queue=\"support\",le=\"-30\"}"),
        told
    );
    assert_eq!(
        sample("hotline_wait_estimate_overruns_total{queue=\"support\"}"),
        0.0
    );
    let queues = json(&server, "/api/queues");
    assert_eq!(
        queues[0]["wait_estimates"]["scored"], told as u64,
        "{queues}"
    );

    let calls = json(&server, "/api/calls");
    let waited = calls
        .as_array()
        .unwrap()
        .iter()
        .find(|c| !c["waits_told"].as_array().unwrap().is_empty())
        .unwrap_or_else(|| panic!("a call with its told waits: {calls}"));
    let t = &waited["waits_told"][0];
    assert_eq!(t["queue"], "support", "{waited}");
    assert_eq!(t["told_s"], 60, "{waited}");
    // The first caller's wait (well under a second) is the queue's recent average.
    assert_eq!(t["baseline_s"], 0, "{waited}");

    let out = Command::new(common::bin())
        .args(["report", "--format", "json"])
        .current_dir(server.path())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let w = &report["wait_estimates"][0];
    assert_eq!(w["queue"], "support", "{report}");
    assert_eq!(w["announcements"], told as u64, "{report}");
    assert!(w["mean_error_s"].as_f64().unwrap() < -30.0, "{report}");
    assert_eq!(w["waited_over_1_5x"], 0, "{report}");
    let text = Command::new(common::bin())
        .arg("report")
        .current_dir(server.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("support: ") && text.contains("waited more than 1.5x"),
        "{text}"
    );
}

/// The agent's phone rings for a caller of the waiting line (no variables, its own path).
fn waitline_rings() -> String {
    AGENT_RINGS
        .replace(
            r#"      <ereg regexp="X-Hotline-Var-account: 7" search_in="msg" check_it="true" assign_to="account"/>
"#,
            "",
        )
        .replace("agentline.account[^\\r\\n]*agentline.agents", "waitline.agents")
        .replace("variables=\"account,", "variables=\"")
}
