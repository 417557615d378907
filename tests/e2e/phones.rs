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

impl Baresip {
    pub(super) fn start(server: &Server, user: &str, password: &str, base: u16) -> Baresip {
        let dir = server.path().join(format!("baresip-{user}"));
        std::fs::create_dir_all(dir.join("snd")).unwrap();
        write_prompt(&dir.join("mic.wav"), 30.0, 1000.0);
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
                 module account.so\n\
                 module_app menu.so\n\
                 module_app ctrl_tcp.so\n\
                 ctrl_tcp_listen 127.0.0.1:{ctrl}\n\
                 snd_path {snd}\n",
                mic = dir.join("mic.wav").display(),
                rtp_hi = rtp + 7,
                snd = dir.join("snd").display(),
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{user}@hotline.local>;auth_pass={password};outbound=\"sip:127.0.0.1:{port}\";regint=600;answermode=manual\n",
                port = server.ports.sip
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
