//! Linphone as an agent's phone: Debian's `linphone-daemon` (package `linphone-cli`, the
//! same liblinphone as the Linphone apps), driven through its command socket. It does what
//! the other phones here cannot: an attended transfer (`call-transfer 1 2`: a REFER with
//! `Replaces`, RFC 3891).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(super) struct Linphone {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    _home: tempfile::TempDir,
}

impl Linphone {
    /// A phone taking calls on UDP `sip_port`, its audio on `rtp_port` (and the next); it
    /// answers incoming calls itself.
    pub(super) fn start(sip_port: u16, rtp_port: u16) -> Linphone {
        let home = tempfile::tempdir().unwrap();
        // Its call history lives there; without the folder the core never starts listening.
        std::fs::create_dir_all(home.path().join(".local/share/linphone")).unwrap();
        let config = home.path().join("linphonerc");
        std::fs::write(
            &config,
            format!(
                "[sip]\nsip_port={sip_port}\nsip_tcp_port=0\nsip_tls_port=0\n\
                 [rtp]\naudio_rtp_port={rtp_port}\nvideo_rtp_port={}\n\
                 [video]\nenabled=0\n[sound]\necho_cancellation=0\n",
                rtp_port + 2
            ),
        )
        .unwrap();
        let name = format!("hotline-linphone-{}-{sip_port}", std::process::id());
        let socket = PathBuf::from("/tmp").join(&name);
        let _ = std::fs::remove_file(&socket);
        let log = home.path().join("linphone.log");
        let child = Command::new("timeout")
            .args(["-k", "5", "120", "linphone-daemon", "--auto-answer"])
            .arg("--config")
            .arg(&config)
            .args(["--pipe", &name, "--log"])
            .arg(&log)
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("linphone-daemon (Debian package linphone-cli) must be installed");
        let phone = Linphone {
            child,
            socket,
            log,
            _home: home,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while phone.try_command("version").is_none() {
            assert!(Instant::now() < deadline, "linphone-daemon did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        phone
    }

    /// One command, and its answer (`Status: Ok` first when it worked).
    pub(super) fn command(&self, cmd: &str) -> String {
        // The daemon resets the connection after the one before it closed, now and then,
        // before reading the command: asked again.
        for _ in 0..10 {
            if let Some(answer) = self.try_command(cmd) {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("linphone-daemon does not answer {cmd:?}");
    }

    fn try_command(&self, cmd: &str) -> Option<String> {
        let mut s = UnixStream::connect(&self.socket).ok()?;
        s.write_all(format!("{cmd}\n").as_bytes()).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(3);
        // The answer has no length: it is over once something came and then nothing more.
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(_) if !out.is_empty() || Instant::now() > deadline => break,
                Err(_) => {}
            }
        }
        let answer = String::from_utf8_lossy(&out).to_string();
        answer.contains("Status:").then_some(answer)
    }

    /// Registers as `user` with hotline at `registrar` (`127.0.0.1:5060`).
    pub(super) fn register(&self, user: &str, password: &str, registrar: &str) {
        let answer = self.command(&format!(
            "register sip:{user}@127.0.0.1 sip:{registrar} {password}"
        ));
        assert!(answer.contains("Status: Ok"), "{answer}");
        self.wait_for("register-status ALL", "LinphoneRegistrationOk");
    }

    /// Asks `cmd` again until its answer contains `want`, for up to 15 s.
    pub(super) fn wait_for(&self, cmd: &str, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let answer = self.command(cmd);
            if answer.contains(want) {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "{cmd}: no {want:?} in {answer}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The SIP it sent and received, for a failing test's message.
    pub(super) fn log(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("belle-sip-message") && l.contains("SIP/2.0"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        // `timeout` passes a TERM on to the phone (a KILL would leave it running).
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        std::thread::sleep(Duration::from_millis(100));
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}
