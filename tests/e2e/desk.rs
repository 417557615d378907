//! The agent desk and the supervisor wall, in a real headless Chromium driven through
//! chromedriver (WebDriver), against `hotline serve` with SIPp as the caller and the agent's
//! phone. The tests read what a person sees: the visible text of the pages.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use super::agents::{AgentPorts, finish, http, json, register_agent, sipp_at};
use super::{ANSWERED, Server, invite, pause, scenario};

/// An agent who takes support calls, and a supervisor who takes none.
const DESK_AGENTS: &str = r#"
[desk]
not_ready_reasons = ["lunch", "training"]

[[agents]]
id = "alice"
password = "alice-pw"
name = "Alice"
skills = { support = 5 }

[[agents]]
id = "sam"
password = "sam-pw"
name = "Sam Supervisor"
role = "supervisor"

[[queues]]
name = "support"
skills = ["support"]
strategy = "longest-idle"
ring_timeout_s = 5
wrap_up_s = 0
service_level_s = 2
"#;

/// Headless Chromium under its own chromedriver, closed when dropped.
pub(super) struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub(super) fn open(http_port: u16) -> Browser {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1200,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let client = rt
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .expect("a Chromium session through chromedriver");
        Browser {
            rt,
            client: Some(client),
            driver,
            base: format!("http://127.0.0.1:{http_port}"),
            _profile: profile,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub(super) fn goto(&self, path: &str) {
        self.rt
            .block_on(self.client().goto(&format!("{}{path}", self.base)))
            .unwrap();
    }

    /// The page's path once it is `want` (a form's navigation may still be under way), or
    /// whatever it is after 10 s.
    pub(super) fn path_after(&self, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let p = self.path();
            if p == want || Instant::now() > deadline {
                return p;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(super) fn path(&self) -> String {
        self.rt
            .block_on(self.client().current_url())
            .unwrap()
            .path()
            .to_string()
    }

    /// The visible text of the first element `css` finds, or "" if none.
    pub(super) fn text(&self, css: &str) -> String {
        self.rt.block_on(async {
            match self.client().find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        })
    }

    /// Waits up to 10 s for the text of `css` to contain `want`; what it says then.
    pub(super) fn wait_text(&self, css: &str, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let t = self.text(css);
            if t.contains(want) || Instant::now() > deadline {
                return t;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn fill(&self, css: &str, value: &str) {
        self.rt.block_on(async {
            let e = self.client().find(Locator::Css(css)).await.unwrap();
            e.clear().await.unwrap();
            e.send_keys(value).await.unwrap();
        })
    }

    fn click(&self, css: &str) {
        self.rt.block_on(async {
            let e = self.client().find(Locator::Css(css)).await.unwrap();
            e.click().await.unwrap();
        })
    }

    /// Clicks the button that says `label` inside the first element `css` finds.
    fn press(&self, css: &str, label: &str) {
        self.rt.block_on(async {
            let within = self.client().find(Locator::Css(css)).await.unwrap();
            let path = format!(".//button[normalize-space()='{label}']");
            let b = within.find(Locator::XPath(&path)).await.unwrap();
            b.click().await.unwrap();
        })
    }

    fn select(&self, css: &str, value: &str) {
        self.rt.block_on(async {
            let e = self.client().find(Locator::Css(css)).await.unwrap();
            e.select_by_value(value).await.unwrap();
        })
    }

    /// Logs in through the form, from wherever the browser is.
    pub(super) fn log_in(&self, agent: &str, password: &str) {
        self.goto("/login");
        self.fill("input[name=agent]", agent);
        self.fill("input[name=password]", password);
        self.click("button[type=submit]");
    }

    /// Saves a screenshot of the page under target/ (a test artefact).
    pub(super) fn screenshot(&self, name: &str) {
        let png = self.rt.block_on(self.client().screenshot()).unwrap();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn agent_row(server: &Server, id: &str) -> serde_json::Value {
    json(server, "/api/agents")
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .unwrap()
}

/// A newcomer opening the server lands on the login; a wrong password is refused; alice's desk
/// follows her phone registering and her state live; Not ready with a reason holds a caller
/// back from her (he waits, her phone is not rung); the supervisor's wall shows him waiting
/// without a reload, sets her Ready from the wall, and shows the queue empty once she answers.
#[test]
fn the_desk_and_the_wall_follow_an_agent_and_a_waiting_caller_live() {
    let server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", DESK_AGENTS);
    let ports = AgentPorts::take();
    let browser = Browser::open(server.ports.http);

    browser.goto("/");
    assert_eq!(
        browser.path(),
        "/login",
        "/ leads to the desk, which needs a login"
    );
    browser.log_in("alice", "wrong");
    assert!(
        browser
            .wait_text(".error", "Wrong")
            .contains("Wrong agent id or password"),
        "{}",
        server.log()
    );
    browser.screenshot("login");
    browser.goto("/desk");
    assert_eq!(browser.path(), "/login", "still no session");
    browser.log_in("alice", "alice-pw");
    assert_eq!(browser.path_after("/desk"), "/desk");
    assert_eq!(browser.text("h1"), "Alice");
    assert_eq!(browser.text("#state"), "Offline");

    // Her phone registers: the desk says Ready without a reload.
    let phone = alice_phone_takes_one_call(&server, &ports);
    assert_eq!(browser.wait_text("#state", "Ready"), "Ready");
    assert!(browser.text("#phone").contains("registered"));

    // Not ready, for lunch: the API says so.
    browser.select("#reason-choice", "lunch");
    browser.click("#not-ready");
    assert_eq!(browser.wait_text("#state", "Not ready"), "Not ready");
    assert_eq!(browser.text("#reason"), "(lunch)");
    let row = agent_row(&server, "alice");
    assert_eq!(
        (row["state"].as_str(), row["reason"].as_str()),
        (Some("not-ready"), Some("lunch"))
    );
    browser.screenshot("desk");

    // An agent may not open the wall.
    browser.goto("/wall");
    assert!(browser.text(".error").contains("supervisors"));

    // The supervisor logs in on the same browser after alice logs out.
    browser.goto("/desk");
    browser.click("form.logout button");
    assert_eq!(browser.path_after("/login"), "/login");
    browser.goto("/desk");
    assert_eq!(browser.path(), "/login", "logged out");
    browser.log_in("sam", "sam-pw");
    assert_eq!(browser.path_after("/desk"), "/desk");
    assert_eq!(browser.text("header .who"), "Sam Supervisor");
    browser.goto("/wall");
    assert_eq!(browser.path(), "/wall");
    let waiting = "#queues tr[data-queue=support] td.waiting";
    assert_eq!(browser.text(waiting), "0");
    let alice_state = "#agents tr[data-agent=alice] .state";
    assert_eq!(browser.text(alice_state), "Not ready");

    // A caller holds for support; alice is not ready, so he waits and her phone stays quiet.
    let file = server.path().join("caller.xml");
    std::fs::write(
        &file,
        scenario(&[
            invite("PCMU", None),
            ANSWERED.to_string(),
            pause(8000),
            super::CALLER_BYE.to_string(),
        ]),
    )
    .unwrap();
    let caller = super::sipp_command(&server, &file, "hold", &[], 0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(browser.wait_text(waiting, "1"), "1", "{}", server.log());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        browser.text(waiting),
        "1",
        "nobody took him while alice was not ready"
    );
    assert!(!server.log().contains("agent answered"), "{}", server.log());
    assert_eq!(
        browser.text("#queues tr[data-queue=support] td.not-ready"),
        "1"
    );
    let live = browser.wait_text("#calls tbody", "waiting");
    assert!(
        live.contains("support") && live.contains("hold.agents: reached"),
        "{live}"
    );
    browser.screenshot("wall");

    // The supervisor sets her Ready from the wall: her phone rings, she answers, the queue
    // empties on the wall.
    browser.select("#agents tr[data-agent=alice] td.set select", "available");
    browser.click("#agents tr[data-agent=alice] td.set button");
    assert_eq!(browser.wait_text(waiting, "0"), "0", "{}", server.log());
    assert_eq!(browser.wait_text(alice_state, "On a call"), "On a call");
    assert_eq!(browser.wait_text("#calls td.state", "talking"), "talking");
    assert_eq!(browser.text("#calls td.agent"), "Alice");
    assert_eq!(browser.text("#queues tr[data-queue=support] td.busy"), "1");
    // He waited longer than the queue's 2 s: not answered in time.
    assert_eq!(
        browser.wait_text("#queues tr[data-queue=support] td.sl", "0% within 2 s"),
        "0% within 2 s"
    );

    let caller = caller.wait_with_output().unwrap();
    assert!(caller.status.success(), "{}", server.log());
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "{}", phone.text);
    assert_eq!(browser.wait_text(alice_state, "Ready"), "Ready");
    // Today's figures count the call once it is over.
    browser.goto("/wall");
    assert_eq!(browser.wait_text("#compliance dd.calls", "1"), "1");
    assert!(browser.text("#compliance dd.answered").contains("100.0%"));
}

/// The page's token is needed for a change, an agent can change no one else's state, the
/// events need a login, and every answer carries the Content-Security-Policy.
#[test]
fn changes_need_the_pages_token_and_the_stream_needs_a_login() {
    let server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", DESK_AGENTS);
    let (status, _) = http(&server, "GET", "/api/events", None, "");
    assert_eq!(status, 401);
    let (status, body) = http(
        &server,
        "POST",
        "/desk/state",
        None,
        r#"{"state":"available"}"#,
    );
    assert_eq!(status, 401, "{body}");
    let (status, body) = http(&server, "GET", "/api/nothing", None, "");
    assert_eq!(status, 404);
    assert!(
        serde_json::from_str::<serde_json::Value>(&body).is_ok(),
        "JSON errors: {body}"
    );
    // The framework's own refusals are JSON too.
    for (method, path) in [
        ("GET", "/api/calls?limit=abc"),
        ("POST", "/api/followups/abc"),
        ("GET", "/desk/history"),
        ("GET", "/api/followups/abc/audio"),
    ] {
        let (status, body) = http(&server, method, path, Some("test-token"), "");
        assert!((400..500).contains(&status), "{path}: {status}");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert!(v["error"].is_string(), "{path}: {v}");
    }
    let browser = Browser::open(server.ports.http);
    browser.log_in("alice", "alice-pw");
    assert_eq!(browser.path_after("/desk"), "/desk");
    // From the page itself, a change without the token, and one for bob, are refused.
    let answers = browser
        .rt
        .block_on(browser.client().execute_async(
            r#"const done = arguments[arguments.length - 1];
            const post = (headers, body) => fetch("/desk/state", { method: "POST",
                headers: Object.assign({ "Content-Type": "application/json" }, headers),
                body: JSON.stringify(body) }).then((r) => r.status);
            Promise.all([
                post({}, { state: "not-ready" }),
                post({ "X-CSRF-Token": document.body.dataset.csrf }, { agent: "sam", state: "offline" }),
                post({ "X-CSRF-Token": document.body.dataset.csrf }, { state: "not-ready", reason: "training" }),
                fetch("/desk").then((r) => r.headers.get("content-security-policy")),
            ]).then(done);"#,
            vec![],
        ))
        .unwrap();
    assert_eq!(answers[0], 403, "no token: {answers}");
    assert_eq!(answers[1], 403, "another agent's state: {answers}");
    assert_eq!(answers[2], 200, "her own, with the token: {answers}");
    assert!(
        answers[3].as_str().unwrap().contains("default-src 'self'"),
        "{answers}"
    );
    assert_eq!(agent_row(&server, "alice")["reason"], "training");
    // A stream that comes back with Last-Event-ID gets what it missed: here everything
    // since the start, alice's change among it (the bearer token sees every agent).
    let missed = sse_until(&server, "Last-Event-ID: 0\r\n", "\"reason\":\"training\"");
    assert!(
        missed.contains("event: agent\n") && missed.contains("id: "),
        "{missed}"
    );
}

/// Reads `GET /api/events` with the bearer token and `extra` headers until `needle` comes
/// (or 5 s pass); what was read.
fn sse_until(server: &Server, extra: &str, needle: &str) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", server.ports.http)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        s,
        "GET /api/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer test-token\r\n{extra}\r\n"
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !String::from_utf8_lossy(&got).contains(needle) {
        if let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// A caller whose phone calls itself `<img src=x onerror=alert(1)>` types 7 and reaches
/// alice: within moments of her phone ringing her desk shows the card (the name as text, the
/// queue, the way through the line, what was typed); after the call she picks a wrap-up code
/// and writes a note, which the call's record then has; the same caller's next call shows
/// the first, with its note, among their earlier calls.
#[test]
fn the_caller_card_shows_who_calls_and_the_wrap_up_is_kept_for_the_next_call() {
    // Support records its calls: the earlier one plays on the card.
    let recorded = DESK_AGENTS.replacen("wrap_up_s = 0\n", "wrap_up_s = 0\nrecord = \"on\"\n", 1);
    let server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", &recorded);
    let ports = AgentPorts::take();
    let browser = Browser::open(server.ports.http);
    browser.log_in("alice", "alice-pw");
    assert_eq!(browser.path_after("/desk"), "/desk");
    // Her phone takes two calls, each for about 3 s, then hangs up.
    let phone = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[
            super::agents::AGENT_RINGS_ANY.to_string(),
            super::agents::agent_answers(ports.listen(0)),
            super::agents::agent_hangs_up_after(3000),
        ]),
        ports.phone(0),
        ports.media(0),
        &["-m", "2"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    assert_eq!(browser.wait_text("#state", "Ready"), "Ready");
    // A break, and back: the buttons are hers.
    browser.click("#not-ready");
    assert_eq!(browser.wait_text("#state", "Not ready"), "Not ready");
    assert_eq!(agent_row(&server, "alice")["state"], "not-ready");
    browser.click("#ready");
    assert_eq!(browser.wait_text("#state", "Ready"), "Ready");
    assert_eq!(agent_row(&server, "alice")["state"], "available");
    let xss = "<img src=x onerror=alert(1)>";
    let caller_xml = scenario(&[
        invite("PCMU", None).replace("\"Test Caller\"", &format!("\"{xss}\"")),
        ANSWERED.to_string(),
        pause(500),
        super::key('7'),
        super::SERVER_BYE.to_string(),
    ]);
    let file = server.path().join("caller.xml");
    std::fs::write(&file, &caller_xml).unwrap();
    let first = super::sipp_command(&server, &file, "agent", &[], 0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(
        browser.wait_text("#caller-name", xss),
        xss,
        "{}",
        server.log()
    );
    assert_eq!(browser.text("#caller-queue"), "support");
    // The API shows the card to the token holder, not to an anonymous reader.
    let (_, body) = http(&server, "GET", "/api/agents/alice", Some("test-token"), "");
    let row: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(row["caller"]["variables"][0]["value"], "7", "{row}");
    assert!(json(&server, "/api/agents/alice")["caller"].is_null());
    let steps = browser.text("#caller-steps");
    assert!(
        steps.contains("agentline.account: typed their digits")
            && steps.contains("agentline.agents"),
        "{steps}"
    );
    let typed = browser.text("#caller-variables");
    assert!(typed.contains("account") && typed.contains('7'), "{typed}");
    assert!(
        browser
            .wait_text("#caller-history", "No earlier call")
            .contains("No earlier call")
    );
    let images = browser
        .rt
        .block_on(browser.client().find_all(Locator::Css("img")))
        .unwrap();
    assert!(images.is_empty(), "the caller's name became an element");
    browser.screenshot("desk-caller");

    // The call ends: the wrap-up.
    assert!(
        browser
            .wait_text("#wrap-up-for", "Your call with")
            .contains(xss),
        "{}",
        server.log()
    );
    assert!(
        first.wait_with_output().unwrap().status.success(),
        "{}",
        server.log()
    );
    browser.select("#wrap-up-code", "follow-up needed");
    browser.fill("#wrap-up-note", "New card sent; call back Friday");
    browser.click("#wrap-up-save");
    assert_eq!(browser.wait_text("#wrap-up-message", "Saved"), "Saved.");
    let calls = {
        let (status, body) = http(&server, "GET", "/api/calls?limit=1", Some("test-token"), "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let id = calls[0]["id"].as_str().unwrap().to_string();
    let (_, body) = http(
        &server,
        "GET",
        &format!("/api/calls/{id}"),
        Some("test-token"),
        "",
    );
    let record: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(record["agent"], "alice", "{record}");
    assert_eq!(record["wrap_up"]["code"], "follow-up needed", "{record}");
    assert_eq!(record["wrap_up"]["note"], "New card sent; call back Friday");
    // Without the token or her login, the note is not shown.
    let (_, body) = http(&server, "GET", &format!("/api/calls/{id}"), None, "");
    let anonymous: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(anonymous["wrap_up"].is_null(), "{anonymous}");
    let (status, _) = http(&server, "GET", "/api/calls/no-such-call", None, "");
    assert_eq!(status, 404);

    // The same caller again (their phone now gives a plain name): the first call and its
    // note are on the card.
    std::fs::write(&file, caller_xml.replace(xss, "Ana Garcia")).unwrap();
    let second = super::sipp_command(&server, &file, "agent", &[], 0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let history = browser.wait_text("#caller-history", "call back Friday");
    assert!(
        history.contains("follow-up needed") && history.contains("with alice"),
        "{history}\n{}",
        server.log()
    );
    // Its recording plays in the page: the player fetches the WAV with her login.
    let played = run_js(
        &browser,
        r##"const a = document.querySelector("#caller-history audio");
        if (!a) { done(null); } else {
            fetch(a.src, { credentials: "same-origin" })
                .then((r) => done([a.getAttribute("src"), r.status, r.headers.get("content-type")]));
        }"##,
    );
    assert_eq!(
        played,
        serde_json::json!([
            format!("/api/calls/{}/recording", id.replace('@', "%40")),
            200,
            "audio/wav"
        ]),
        "{}",
        server.log()
    );
    browser.screenshot("desk-returning-caller");
    assert!(
        second.wait_with_output().unwrap().status.success(),
        "{}",
        server.log()
    );
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "{}", phone.text);
}

/// Alice's phone registers, then rings once, answers and talks until the other side hangs
/// up; `finish` it to know it did.
fn alice_phone_takes_one_call(server: &Server, ports: &AgentPorts) -> std::process::Child {
    let phone = sipp_at(
        server,
        "alice_phone",
        &scenario(&[
            super::agents::AGENT_RINGS_ANY.to_string(),
            super::agents::answers_until_bye(ports.listen(0)),
        ]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    register_agent(server, ports, 0, "alice", "alice-pw", "200");
    phone
}

/// A caller on the agent line types 7 and, with nobody serving support, speaks for `ms`
/// after the beep into its mailbox, then hangs up.
fn leave_message_for_support(server: &Server, name: &str, ms: u32) {
    let message = super::call(
        "PCMA",
        None,
        &[
            pause(500),
            super::key('7'),
            pause(800),
            super::speak(),
            pause(ms),
        ],
        super::CALLER_BYE,
    );
    let r = server.sipp(name, &message, "agent", &[]);
    assert!(r.ok, "{}", r.text);
}

/// Runs a script in the page that calls back with its answer (`done(value)`).
fn run_js(browser: &Browser, script: &str) -> serde_json::Value {
    browser
        .rt
        .block_on(browser.client().execute_async(
            &format!("const done = arguments[arguments.length - 1];\n{script}"),
            vec![],
        ))
        .unwrap()
}

/// Voicemails never vanish: a message left for support (nobody was logged in) and one left in
/// a mailbox no queue serves appear on the wall without a reload; alice's desk shows support's
/// only, plays it (its audio's duration is the recording's), refuses her the other (403), and
/// she takes it and marks it done.
#[test]
fn a_voicemail_is_a_follow_up_played_taken_and_done_on_the_desk() {
    let server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", DESK_AGENTS);
    let browser = Browser::open(server.ports.http);
    browser.log_in("sam", "sam-pw");
    assert_eq!(browser.path_after("/desk"), "/desk");
    browser.goto("/wall");
    assert_eq!(
        browser.wait_text("#followup-none", "Nothing"),
        "Nothing to follow up."
    );

    // Nobody serves support: the caller who typed 7 leaves a message there. Another caller
    // presses 1 on the main line: mailbox "one", which no queue serves.
    leave_message_for_support(&server, "support_vm", 4000);
    assert!(
        browser
            .wait_text("#followup-list", "support")
            .contains("Voicemail"),
        "{}",
        server.log()
    );
    let other = super::call(
        "PCMA",
        None,
        &[
            pause(2500),
            super::key('1'),
            pause(1500),
            super::speak(),
            pause(3000),
        ],
        super::CALLER_BYE,
    );
    let r = server.sipp(
        "one_vm",
        &other,
        "main",
        &["-p", &(server.ports.sipp + 4).to_string()],
    );
    assert!(r.ok, "{}", r.text);
    let listed = browser.wait_text("#followup-list tbody tr:nth-child(2)", "one");
    assert!(listed.contains("new"), "{listed}");
    browser.screenshot("wall-follow-ups");

    let all: serde_json::Value = {
        let (status, body) = http(&server, "GET", "/api/followups", Some("test-token"), "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let item = |queue: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|f| f["queue"] == queue)
            .cloned()
            .unwrap_or_else(|| panic!("no {queue} follow-up in {all}"))
    };
    let (support, one) = (item("support"), item("one"));
    assert_eq!(
        (support["state"].as_str(), support["overdue"].as_bool()),
        (Some("new"), Some(false))
    );
    let seconds = support["duration_s"].as_f64().unwrap();
    assert!(seconds > 2.0, "{support}");

    browser.goto("/desk");
    browser.click("form.logout button");
    assert_eq!(browser.path_after("/login"), "/login");
    browser.log_in("alice", "alice-pw");
    assert_eq!(browser.path_after("/desk"), "/desk");
    browser.wait_text("#followup-list", "support");
    let queues = run_js(
        &browser,
        "done([...document.querySelectorAll('#followup-list td.queue')].map((td) => td.textContent));",
    );
    assert_eq!(
        queues,
        json!(["support"]),
        "alice sees only her queues' follow-ups"
    );
    // The message plays in the page: its length is the recording's.
    let duration = run_js(
        &browser,
        r##"const audio = document.querySelector("#followup-list audio");
        const report = () => done(audio.duration);
        if (audio.readyState >= 1) report(); else {
          audio.addEventListener("loadedmetadata", report);
          audio.addEventListener("error", () => done("error"));
        }"##,
    );
    let duration = duration.as_f64().unwrap_or_else(|| panic!("{duration}"));
    assert!(
        (duration - seconds).abs() < 0.1,
        "{duration} s played, {seconds} s recorded"
    );
    // Another mailbox's recording is not hers.
    let status = run_js(
        &browser,
        &format!(
            "fetch('/api/followups/{}/audio').then((r) => done(r.status));",
            one["id"]
        ),
    );
    assert_eq!(status, 403);
    browser.press("#followup-list td.actions", "Take");
    assert!(
        browser
            .wait_text("#followup-list td.state", "taken by alice")
            .contains("taken by alice")
    );
    browser.press("#followup-list td.actions", "Done");
    assert!(
        browser
            .wait_text("#followup-list td.state", "done")
            .starts_with("done"),
        "{}",
        browser.text("#followup-message")
    );
    let (_, body) = http(&server, "GET", "/api/followups", Some("test-token"), "");
    let after: serde_json::Value = serde_json::from_str(&body).unwrap();
    let done = after
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == support["id"])
        .unwrap();
    assert_eq!(
        (done["state"].as_str(), done["owner"].as_str()),
        (Some("done"), Some("alice"))
    );
    // hotline report counts it done in time, and the other still open.
    let report = super::common::run_in(server.path(), &["report", "--format", "json"]).json();
    let f = &report["follow_ups"];
    assert_eq!(
        (
            f["total"].as_u64(),
            f["done_in_time"].as_u64(),
            f["open"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{report}"
    );
}

/// "Call back now" on a voicemail: alice's phone rings first, she answers, then the phone the
/// message came from rings and answers, and they talk; the follow-up is hers, and she marks it
/// done.
#[test]
fn call_back_now_rings_the_agent_then_the_caller_who_left_a_message() {
    let server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", DESK_AGENTS);
    let ports = AgentPorts::take();
    // Nobody is logged in: the caller leaves a message for support.
    leave_message_for_support(&server, "message", 3000);
    // The phone the message came from now waits to be called back.
    let callee = sipp_at(
        &server,
        "caller_phone",
        &super::agents::caller_phone_answers_callback(ports.listen(3)),
        server.ports.sipp,
        ports.media(2),
        &["-m", "1"],
    );
    let phone = alice_phone_takes_one_call(&server, &ports);
    let browser = Browser::open(server.ports.http);
    browser.log_in("alice", "alice-pw");
    assert_eq!(browser.path_after("/desk"), "/desk");
    assert_eq!(browser.wait_text("#state", "Ready"), "Ready");
    assert!(
        browser
            .wait_text("#followup-list", "support")
            .contains("Voicemail")
    );
    browser.press("#followup-list td.actions", "Call back now");
    assert!(
        browser
            .wait_text("#followup-list td.state", "taken by alice")
            .contains("taken by alice"),
        "{}",
        browser.text("#followup-message")
    );
    let callee = finish(&server, "caller_phone", callee);
    assert!(
        callee.ok,
        "the caller's phone rang and answered: {}",
        callee.text
    );
    let phone = finish(&server, "alice_phone", phone);
    assert!(phone.ok, "{}", phone.text);
    browser.press("#followup-list td.actions", "Done");
    assert!(
        browser
            .wait_text("#followup-list td.state", "done")
            .starts_with("done")
    );
}

/// With `[http] open_reads = false` the API's reads need the token or a login; `/health`
/// stays open for a load balancer.
#[test]
fn reads_can_be_closed_to_strangers() {
    let mut server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", DESK_AGENTS);
    server.kill();
    let file = server.path().join("hotline.toml");
    let config = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        config.replace("[http]\n", "[http]\nopen_reads = false\n"),
    )
    .unwrap();
    server.spawn();
    for path in [
        "/api/agents",
        "/api/queues",
        "/api/calls",
        "/api/flows",
        "/metrics",
    ] {
        let (status, body) = http(&server, "GET", path, None, "");
        assert_eq!(status, 401, "{path}: {body}");
        let (status, _) = http(&server, "GET", path, Some("test-token"), "");
        assert_eq!(status, 200, "{path} with the token");
    }
    assert_eq!(http(&server, "GET", "/health", None, "").0, 200);
    let browser = Browser::open(server.ports.http);
    browser.log_in("alice", "alice-pw");
    assert_eq!(browser.path_after("/desk"), "/desk");
    let status = run_js(
        &browser,
        "fetch('/api/agents').then((r) => done(r.status));",
    );
    assert_eq!(status, 200, "her login reads the API");
}

const DESK_TRANSFER: &str = r#"
[[agents]]
id = "alice"
password = "alice-pw"
skills = { support = 5 }

[[agents]]
id = "bob"
password = "bob-pw"
skills = { billing = 5 }

[[queues]]
name = "support"
skills = ["support"]
ring_timeout_s = 5
wrap_up_s = 0
record = "on-demand"

[[queues]]
name = "billing"
skills = ["billing"]
ring_timeout_s = 5
wrap_up_s = 0
"#;

/// Alice records her call from the desk (its queue records on demand), then passes her
/// caller on to Bob: the transfer controls show while she talks, Bob's phone rings with who
/// passed the caller on, he answers, her phone is hung up; the record names Bob and the
/// transfer, and that the call was recorded. A name nobody has is refused on the page.
#[test]
fn the_desk_passes_a_caller_on_to_another_agent() {
    let server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", DESK_TRANSFER);
    let ports = AgentPorts::take();
    let browser = Browser::open(server.ports.http);
    browser.log_in("alice", "alice-pw");
    assert_eq!(browser.path_after("/desk"), "/desk");
    let alice = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[
            super::agents::AGENT_RINGS_ANY.to_string(),
            super::agents::answers_until_bye(ports.listen(0)),
        ]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    let bob = sipp_at(
        &server,
        "bob_phone",
        &scenario(&[
            r#"  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="X-Hotline-Transferred-By: alice" search_in="msg" check_it="true" assign_to="by"/>
      <ereg regexp="X-Hotline-Transfer-Note: wants a refund <b>now</b>" search_in="msg" check_it="true" assign_to="note"/>
    </action>
  </recv>
  <Reference variables="by,note"/>
"#
            .to_string(),
            super::agents::answers_until_bye(ports.listen(2)),
        ]),
        ports.phone(1),
        ports.media(1),
        &["-m", "1"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    register_agent(&server, &ports, 1, "bob", "bob-pw", "200");
    assert_eq!(browser.wait_text("#state", "Ready"), "Ready");
    let file = server.path().join("caller.xml");
    std::fs::write(
        &file,
        scenario(&[
            invite("PCMU", None),
            ANSWERED.to_string(),
            pause(500),
            super::key('7'),
            pause(8000),
            super::CALLER_BYE.to_string(),
        ]),
    )
    .unwrap();
    let caller = super::sipp_command(&server, &file, "agent", &[], 0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(
        browser.wait_text("#state", "On a call"),
        "On a call",
        "{}",
        server.log()
    );
    browser.click("#recording");
    assert_eq!(
        browser.wait_text("#recording-message", "Recording."),
        "Recording.",
        "{}",
        server.log()
    );
    assert_eq!(
        browser.wait_text("#recording", "Pause recording"),
        "Pause recording"
    );
    browser.select("#transfer-to", "bob");
    browser.fill("#transfer-note", "wants a refund <b>now</b>");
    browser.click("#transfer");
    let said = browser.wait_text("#transfer-message", "Ringing bob");
    assert!(said.starts_with("Ringing bob"), "{said}\n{}", server.log());
    // Bob's desk shows who passed the caller on, and her note.
    super::agents::eventually("Bob's caller card says who passed the caller on", || {
        let (_, body) = http(&server, "GET", "/api/agents", Some("test-token"), "");
        let agents: serde_json::Value = serde_json::from_str(&body).unwrap();
        agents.as_array().unwrap().iter().any(|a| {
            a["id"] == "bob"
                && a["caller"]["transferred_by"] == "alice"
                && a["caller"]["note"] == "wants a refund <b>now</b>"
        })
    });
    let alice = finish(&server, "alice_phone", alice);
    assert!(
        alice.ok,
        "her phone is hung up once Bob has the caller: {}",
        alice.text
    );
    assert!(
        caller.wait_with_output().unwrap().status.success(),
        "{}",
        server.log()
    );
    let bob = finish(&server, "bob_phone", bob);
    assert!(bob.ok, "{}", bob.text);
    let (_, body) = http(&server, "GET", "/api/calls?limit=1", Some("test-token"), "");
    let calls: serde_json::Value = serde_json::from_str(&body).unwrap();
    let record = &calls[0];
    assert_eq!(record["agent"], "bob", "{record}");
    assert_eq!(record["transfers"][0]["by"], "alice", "{record}");
    assert_eq!(record["transfers"][0]["to"], "agent:bob", "{record}");
    assert_eq!(
        record["transfers"][0]["note"], "wants a refund <b>now</b>",
        "{record}"
    );
    // What she wrote is not for an anonymous reader of the API.
    let (_, body) = http(&server, "GET", "/api/calls?limit=1", None, "");
    let anonymous: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(anonymous[0]["transfers"][0]["by"], "alice", "{anonymous}");
    assert!(
        anonymous[0]["transfers"][0]["note"].is_null(),
        "{anonymous}"
    );
    // (Its audio is checked with real phones in phones.rs: these send none.)
    assert!(
        record["recording"]["file"].is_string() && record["recording"]["complete"] == true,
        "recorded from her click: {record}"
    );
    // Not on a call any more: the desk's transfer is refused with why.
    let refused = run_js(
        &browser,
        r#"fetch("/desk/transfer", {
            method: "POST",
            headers: { "Content-Type": "application/json", "X-CSRF-Token": hotline.csrf },
            body: JSON.stringify({ to: "nobody" }),
            credentials: "same-origin",
        }).then(async (r) => done([r.status, (await r.json()).error]));"#,
    );
    assert_eq!(refused[0], 409, "{refused}");
    assert_eq!(refused[1], "you are not talking to a caller", "{refused}");
}

/// Bob's phone rings for Alice's call about her caller: it shows her, and carries who asked.
const CONSULTED_FROM_THE_DESK: &str = r#"  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="From: [^\r\n]*sip:alice@" search_in="msg" check_it="true" assign_to="from"/>
      <ereg regexp="X-Hotline-Transferred-By: alice" search_in="msg" check_it="true" assign_to="by"/>
    </action>
  </recv>
  <Reference variables="from,by"/>
"#;

/// An attended transfer from the desk: Alice, on a call, talks to Bob first ("Talk to them
/// first"): the caller holds, Bob's phone rings showing her, and once he answers her phone
/// is put through to him. "Back to the caller" ends his call and she has the caller again;
/// a second time she hands the caller over: her phone is hung up, Bob has the caller, the
/// record says so.
#[test]
fn the_desk_talks_to_a_colleague_first_then_hands_the_caller_over() {
    let server = Server::start_full("answer_after_ms = 100\nshutdown_grace_s = 2", DESK_TRANSFER);
    let ports = AgentPorts::take();
    let browser = Browser::open(server.ports.http);
    browser.log_in("alice", "alice-pw");
    assert_eq!(browser.path_after("/desk"), "/desk");
    let alice = sipp_at(
        &server,
        "alice_phone",
        &scenario(&[
            super::agents::AGENT_RINGS_ANY.to_string(),
            super::agents::answers_until_bye(ports.listen(0)),
        ]),
        ports.phone(0),
        ports.media(0),
        &["-m", "1"],
    );
    // Bob takes both of her calls; the first ends when she goes back to the caller, the
    // second when the caller hangs up.
    let bob = sipp_at(
        &server,
        "bob_phone",
        &scenario(&[
            CONSULTED_FROM_THE_DESK.to_string(),
            super::agents::answers_until_bye(ports.listen(2)),
        ]),
        ports.phone(1),
        ports.media(1),
        &["-m", "2"],
    );
    register_agent(&server, &ports, 0, "alice", "alice-pw", "200");
    register_agent(&server, &ports, 1, "bob", "bob-pw", "200");
    assert_eq!(browser.wait_text("#state", "Ready"), "Ready");
    let file = server.path().join("caller.xml");
    std::fs::write(
        &file,
        scenario(&[
            invite("PCMU", None),
            ANSWERED.to_string(),
            pause(500),
            super::key('7'),
            pause(16000),
            super::CALLER_BYE.to_string(),
        ]),
    )
    .unwrap();
    let caller = super::sipp_command(&server, &file, "agent", &[], 0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(
        browser.wait_text("#state", "On a call"),
        "On a call",
        "{}",
        server.log()
    );
    let state_of = |id: &str| {
        let (_, body) = http(&server, "GET", "/api/agents", Some("test-token"), "");
        let agents: serde_json::Value = serde_json::from_str(&body).unwrap();
        agents
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .map(|a| a["state"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    for complete in [false, true] {
        browser.select("#transfer-to", "bob");
        browser.click("#consult");
        let talking = browser.wait_text("#consulting-who", "Talking to bob");
        assert!(
            talking.starts_with("Talking to bob"),
            "{talking}\n{}",
            server.log()
        );
        assert_eq!(state_of("bob"), "busy");
        assert_eq!(state_of("alice"), "busy");
        if complete {
            browser.click("#consult-complete");
            // The caller is Bob's: she is off the call (her desk's call controls go).
            assert_eq!(
                browser.wait_text("#state", "Ready"),
                "Ready",
                "{}",
                server.log()
            );
        } else {
            browser.click("#consult-cancel");
            let said = browser.wait_text("#transfer-message", "The caller is yours again.");
            assert_eq!(said, "The caller is yours again.", "{}", server.log());
            super::agents::eventually("Bob is free again", || state_of("bob") == "available");
            assert_eq!(state_of("alice"), "busy");
        }
    }
    let alice = finish(&server, "alice_phone", alice);
    assert!(
        alice.ok,
        "her phone is hung up once Bob has the caller: {}",
        alice.text
    );
    assert!(
        caller.wait_with_output().unwrap().status.success(),
        "{}",
        server.log()
    );
    let bob = finish(&server, "bob_phone", bob);
    assert!(bob.ok, "{}", bob.text);
    let (_, body) = http(&server, "GET", "/api/calls?limit=5", Some("test-token"), "");
    let calls: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(calls.as_array().unwrap().len(), 1, "{calls}");
    let record = &calls[0];
    assert_eq!(record["agent"], "bob", "{record}");
    assert_eq!(record["transfers"].as_array().unwrap().len(), 1, "{record}");
    assert_eq!(record["transfers"][0]["by"], "alice", "{record}");
    assert_eq!(record["transfers"][0]["to"], "agent:bob", "{record}");
}

/// A supervisor turns a switch on from the wall, for an hour: the row says so at once and
/// the API has her flip; then off again until flipped back.
#[test]
fn the_wall_flips_a_switch_for_an_hour() {
    let server = Server::start_full(
        "answer_after_ms = 100",
        &format!("{DESK_AGENTS}\n[switches.outage]\ndescription = \"<b>Storm</b> message\"\n"),
    );
    let browser = Browser::open(server.ports.http);
    browser.log_in("sam", "sam-pw");
    assert_eq!(browser.path_after("/desk"), "/desk");
    browser.goto("/wall");
    let row = "#switches tr[data-switch=outage]";
    assert_eq!(browser.text(&format!("{row} td.position")), "off");
    // What the config wrote is shown as the text it is.
    assert_eq!(
        browser.text(&format!("{row} td.description")),
        "<b>Storm</b> message"
    );
    browser.select(&format!("{row} select.for"), "3600");
    browser.press(row, "Turn on");
    let now = browser.wait_text(&format!("{row} td.position"), "(sam)");
    assert!(
        now.starts_with("on until ") && now.ends_with("(sam)"),
        "{now}"
    );
    browser.screenshot("wall-switches");
    let s = &json(&server, "/api/switches")[0];
    assert_eq!(
        (s["on"].as_bool(), s["flip"]["by"].as_str()),
        (Some(true), Some("sam"))
    );
    assert!(server.log().contains("switch flipped"));
    // Turned off again, until flipped back.
    browser.select(&format!("{row} select.for"), "");
    browser.press(row, "Turn off");
    assert_eq!(
        browser.wait_text(&format!("{row} td.position"), "off until"),
        "off until flipped back (sam)"
    );
    // Without a login or the token: refused.
    let (status, _) = http(
        &server,
        "POST",
        "/api/switches/outage",
        None,
        r#"{"on": true}"#,
    );
    assert_eq!(status, 401);
}
