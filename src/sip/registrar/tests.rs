use super::*;
use crate::sip::wire::parse_datagram;

const REALM: &str = "hotline.local";

fn registrar() -> Registrar {
    Registrar::new(
        REALM,
        &[],
        vec![
            User {
                id: "alice".into(),
                password: "change-me".into(),
            },
            User {
                id: "bob".into(),
                password: "s3cret".into(),
            },
        ],
        [7; 16],
    )
}

fn source() -> SocketAddr {
    "127.0.0.1:5070".parse().unwrap()
}

/// A REGISTER as a phone sends it, with `extra` header lines.
fn register(extra: &str) -> Message {
    let text = format!(
        "REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nFrom: <sip:alice@{REALM}>;tag=1\r\nTo: <sip:alice@{REALM}>\r\nCall-ID: reg1\r\nCSeq: 1 REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    parse_datagram(text.as_bytes()).unwrap()
}

fn nonce_of(a: &Answer, alg: &str) -> String {
    let h = a
        .headers
        .iter()
        .find(|(k, v)| k == "WWW-Authenticate" && v.contains(&format!("algorithm={alg}")))
        .map(|(_, v)| v.clone())
        .expect("a challenge for the algorithm");
    let start = h.find("nonce=\"").unwrap() + 7;
    h[start..][..h[start..].find('"').unwrap()].to_string()
}

/// What a phone answers a challenge with.
fn authorization(user: &str, password: &str, alg: Algorithm, nonce: &str, nc: u32) -> String {
    let uri = format!("sip:{REALM}");
    let cnonce = "0a4f113b";
    let nc = format!("{nc:08x}");
    let ha1 = alg.hash(&format!("{user}:{REALM}:{password}"));
    let ha2 = alg.hash(&format!("REGISTER:{uri}"));
    let response = alg.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={}, cnonce=\"{cnonce}\", qop=auth, nc={nc}\r\n",
        alg.name()
    )
}

#[allow(clippy::disallowed_methods)] // an origin only: the registrar is given every time
fn now() -> Instant {
    Instant::now()
}

const CONTACT: &str = "Contact: <sip:alice@127.0.0.1:5070>\r\n";

#[test]
fn the_digest_matches_the_rfc_7616_examples() {
    let (user, realm, pass) = ("Mufasa", "http-auth@example.org", "Circle of Life");
    let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    for (alg, expected) in [
        (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
        (
            Algorithm::Sha256,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ] {
        let ha1 = alg.hash(&format!("{user}:{realm}:{pass}"));
        let ha2 = alg.hash("GET:/dir/index.html");
        let r = alg.hash(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
        assert_eq!(r, expected, "{alg:?}");
    }
}

#[test]
fn a_phone_is_challenged_then_registered_with_either_algorithm() {
    let t = now();
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let mut r = registrar();
        let a = r.register(&register(CONTACT), source(), Link::Udp, t);
        assert_eq!(a.status, 401);
        let challenges: Vec<&String> = a
            .headers
            .iter()
            .filter(|(k, _)| k == "WWW-Authenticate")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(challenges.len(), 2);
        assert!(
            challenges[0].contains("algorithm=SHA-256"),
            "preferred first"
        );
        assert!(challenges[1].contains("algorithm=MD5"));
        assert!(challenges.iter().all(|c| c.contains("qop=\"auth\"")));
        assert!(!r.is_registered(0));

        let nonce = nonce_of(&a, alg.name());
        let auth = authorization("alice", "change-me", alg, &nonce, 1);
        let ok = r.register(
            &register(&format!("{auth}{CONTACT}")),
            source(),
            Link::Udp,
            t,
        );
        assert_eq!(ok.status, 200, "{alg:?}");
        assert_eq!(ok.agent, Some(0));
        assert_eq!(ok.change, Some(Change::Registered(0)));
        assert!(ok.headers.contains(&(
            "Contact".into(),
            "<sip:alice@127.0.0.1:5070>;expires=3600".into()
        )));
        let b = r.bindings(0);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].source, source());
        assert_eq!(b[0].target, source());
    }
}

#[test]
fn unknown_users_and_wrong_passwords_get_the_same_answer_and_no_binding() {
    let t = now();
    let mut r = registrar();
    let mut answers = Vec::new();
    for (user, pass) in [("alice", "wrong"), ("mallory", "change-me")] {
        let a = r.register(&register(CONTACT), source(), Link::Udp, t);
        let nonce = nonce_of(&a, "MD5");
        let auth = authorization(user, pass, Algorithm::Md5, &nonce, 1);
        let refused = r.register(
            &register(&format!("{auth}{CONTACT}")),
            source(),
            Link::Udp,
            t,
        );
        answers.push((
            refused.status,
            refused.reason,
            refused.headers,
            refused.agent,
        ));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 403);
    assert_eq!(answers[0].3, None);
    assert!(!r.is_registered(0) && !r.is_registered(1));
}

#[test]
fn a_replayed_request_is_refused_and_a_rising_nonce_count_accepted() {
    let t = now();
    let mut r = registrar();
    let a = r.register(&register(CONTACT), source(), Link::Udp, t);
    let nonce = nonce_of(&a, "SHA-256");
    let first = format!(
        "{}{CONTACT}",
        authorization("alice", "change-me", Algorithm::Sha256, &nonce, 1)
    );
    assert_eq!(
        r.register(&register(&first), source(), Link::Udp, t).status,
        200
    );
    let replay = r.register(&register(&first), source(), Link::Udp, t);
    assert_eq!(replay.status, 403);
    let next = format!(
        "{}{CONTACT}",
        authorization("alice", "change-me", Algorithm::Sha256, &nonce, 2)
    );
    let refresh = r.register(&register(&next), source(), Link::Udp, t);
    assert_eq!(refresh.status, 200);
    assert_eq!(
        refresh.change, None,
        "a refresh changes nothing for the router"
    );
}

#[test]
fn an_old_or_unknown_nonce_is_stale_not_forbidden() {
    let t = now();
    let mut r = registrar();
    let a = r.register(&register(CONTACT), source(), Link::Udp, t);
    let nonce = nonce_of(&a, "MD5");
    let auth = authorization("alice", "change-me", Algorithm::Md5, &nonce, 1);
    let late = t + NONCE_LIFETIME + Duration::from_secs(1);
    let stale = r.register(
        &register(&format!("{auth}{CONTACT}")),
        source(),
        Link::Udp,
        late,
    );
    assert_eq!(stale.status, 401);
    assert!(stale.headers.iter().all(|(_, v)| v.contains("stale=true")));
    let made_up = authorization("alice", "change-me", Algorithm::Md5, "feedface", 1);
    let a = r.register(
        &register(&format!("{made_up}{CONTACT}")),
        source(),
        Link::Udp,
        t,
    );
    assert_eq!(a.status, 401);
    assert!(!r.is_registered(0));
}

#[test]
fn tampered_credentials_or_no_qop_are_refused() {
    let t = now();
    let mut r = registrar();
    let a = r.register(&register(CONTACT), source(), Link::Udp, t);
    let nonce = nonce_of(&a, "MD5");
    // The response was computed for one URI; naming another breaks it.
    let other_uri = authorization("alice", "change-me", Algorithm::Md5, &nonce, 1)
        .replace(&format!("uri=\"sip:{REALM}\""), "uri=\"sip:elsewhere\"");
    let a1 = r.register(
        &register(&format!("{other_uri}{CONTACT}")),
        source(),
        Link::Udp,
        t,
    );
    assert_eq!(a1.status, 403);
    let no_qop =
        authorization("alice", "change-me", Algorithm::Md5, &nonce, 2).replace(", qop=auth", "");
    let a2 = r.register(
        &register(&format!("{no_qop}{CONTACT}")),
        source(),
        Link::Udp,
        t,
    );
    assert_eq!(a2.status, 403);
    assert!(!r.is_registered(0));
}

#[test]
fn failed_attempts_lock_out_the_address_for_a_while() {
    let t = now();
    let mut r = registrar();
    for i in 1..=MAX_FAILURES {
        let a = r.register(&register(CONTACT), source(), Link::Udp, t);
        let nonce = nonce_of(&a, "MD5");
        let bad = authorization("alice", "guess", Algorithm::Md5, &nonce, 1);
        let refused = r.register(
            &register(&format!("{bad}{CONTACT}")),
            source(),
            Link::Udp,
            t,
        );
        assert_eq!(refused.status, 403);
        let refusal = refused.refusal.expect("a refusal to log");
        assert_eq!(
            (refusal.user.as_str(), refusal.source),
            ("alice", source().ip())
        );
        assert_eq!(refusal.locked_now, i == MAX_FAILURES);
    }
    // Even the right password is refused now, without a challenge to work on.
    let locked = r.register(&register(CONTACT), source(), Link::Udp, t);
    assert_eq!(
        (locked.status, locked.reason),
        (403, "Too Many Failed Attempts")
    );
    // The last failure said it locked the pair out; the refusal after it says it was locked.
    assert_eq!(
        locked.refusal,
        Some(Refusal {
            user: "alice".into(),
            source: source().ip(),
            locked_now: false,
            user_locked_now: false,
            locked: true
        })
    );
    // Another agent's phone behind the same address is not affected.
    let bob = |extra: &str| {
        let text = format!(
            "REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK2\r\nMax-Forwards: 70\r\nFrom: <sip:bob@{REALM}>;tag=2\r\nTo: <sip:bob@{REALM}>\r\nCall-ID: reg2\r\nCSeq: 1 REGISTER\r\n{extra}Contact: <sip:bob@127.0.0.1:5072>\r\nContent-Length: 0\r\n\r\n"
        );
        parse_datagram(text.as_bytes()).unwrap()
    };
    let a = r.register(&bob(""), source(), Link::Udp, t);
    assert_eq!(a.status, 401);
    let good = authorization("bob", "s3cret", Algorithm::Md5, &nonce_of(&a, "MD5"), 1);
    assert_eq!(r.register(&bob(&good), source(), Link::Udp, t).status, 200);
    assert_eq!(r.failures(0, t), (MAX_FAILURES, vec![source().ip()]));
    assert_eq!(r.failures(1, t), (0, vec![]));
    // Another address is not affected.
    let other: SocketAddr = "127.0.0.2:5070".parse().unwrap();
    assert_eq!(
        r.register(&register(CONTACT), other, Link::Udp, t).status,
        401
    );
    // After the window the phone may try again.
    let later = t + FAILURE_WINDOW;
    let a = r.register(&register(CONTACT), source(), Link::Udp, later);
    assert_eq!(a.status, 401);
    let nonce = nonce_of(&a, "MD5");
    let good = authorization("alice", "change-me", Algorithm::Md5, &nonce, 1);
    let ok = r.register(
        &register(&format!("{good}{CONTACT}")),
        source(),
        Link::Udp,
        later,
    );
    assert_eq!(ok.status, 200);
}

/// Registers alice with `contact_lines`, answering the challenge.
fn registered(r: &mut Registrar, contact_lines: &str, t: Instant) -> Answer {
    registered_via(r, contact_lines, "", t)
}

/// The same, with `via_params` after the Via's branch (`;rport`).
fn registered_via(r: &mut Registrar, contact_lines: &str, via_params: &str, t: Instant) -> Answer {
    let with = |m: Message| {
        let mut m = m;
        for h in &mut m.headers {
            if h.name == "Via" {
                h.value.push_str(via_params);
            }
        }
        m
    };
    let a = r.register(&with(register(contact_lines)), source(), Link::Udp, t);
    let nonce = nonce_of(&a, "MD5");
    let auth = authorization("alice", "change-me", Algorithm::Md5, &nonce, 1);
    r.register(
        &with(register(&format!("{auth}{contact_lines}"))),
        source(),
        Link::Udp,
        t,
    )
}

#[test]
fn a_phone_behind_a_nat_is_called_where_it_registered_from() {
    let t = now();
    let elsewhere = "Contact: <sip:alice@127.0.0.1:6000>\r\n";
    // It asked for answers where it sends from (rport), and its Contact is elsewhere: the
    // NAT's mapping is where it listens.
    let mut r = registrar();
    registered_via(&mut r, elsewhere, ";rport", t);
    assert_eq!(r.bindings(0)[0].target, source());
    // Without rport, its Contact, as before.
    let mut r = registrar();
    registered(&mut r, elsewhere, t);
    assert_eq!(r.bindings(0)[0].target, "127.0.0.1:6000".parse().unwrap());
    // always: where it registered from; never: its Contact, even a private one.
    let mut r = registrar().with_nat(Nat::Always, 3600);
    registered(&mut r, elsewhere, t);
    assert_eq!(r.bindings(0)[0].target, source());
    let mut r = registrar().with_nat(Nat::Never, 3600);
    registered(&mut r, "Contact: <sip:alice@192.168.1.5:5062>\r\n", t);
    assert_eq!(r.bindings(0)[0].target, "192.168.1.5:5062".parse().unwrap());
    // The longest registration is configurable: a phone asking an hour gets five minutes.
    let mut r = registrar().with_nat(Nat::Auto, 300);
    let a = registered(
        &mut r,
        "Contact: <sip:alice@127.0.0.1:6000>;expires=3600\r\n",
        t,
    );
    assert!(
        a.headers
            .iter()
            .any(|(k, v)| k == "Contact" && v.ends_with(";expires=300")),
        "{:?}",
        a.headers
    );
}

#[test]
fn bindings_expire_refresh_and_unregister() {
    let t = now();
    let mut r = registrar();
    let a = registered(&mut r, "Contact: <sip:alice@10.0.0.1>;expires=120\r\n", t);
    assert_eq!(a.change, Some(Change::Registered(0)));
    let b = registered(
        &mut r,
        "Contact: <sip:alice@10.0.0.2>\r\nExpires: 600\r\n",
        t + Duration::from_secs(1),
    );
    assert_eq!(b.change, None);
    assert_eq!(b.headers.iter().filter(|(k, _)| k == "Contact").count(), 2);
    assert_eq!(r.bindings(0)[0].uri, "sip:alice@10.0.0.2", "newest first");
    assert_eq!(r.poll_timeout(), Some(t + Duration::from_secs(120)));
    assert!(r.expire(t + Duration::from_secs(119)).is_empty());
    assert!(
        r.expire(t + Duration::from_secs(120)).is_empty(),
        "one contact is left"
    );
    assert_eq!(r.bindings(0).len(), 1);
    let gone = r.expire(t + Duration::from_secs(601));
    assert_eq!(gone, vec![Change::Unregistered(0)]);

    let c = registered(&mut r, CONTACT, t);
    assert_eq!(c.change, Some(Change::Registered(0)));
    let off = registered(&mut r, "Contact: *\r\nExpires: 0\r\n", t);
    assert_eq!(
        (off.status, off.change),
        (200, Some(Change::Unregistered(0)))
    );
    assert!(r.poll_timeout().is_none());

    registered(&mut r, CONTACT, t);
    let off = registered(
        &mut r,
        "Contact: <sip:alice@127.0.0.1:5070>;expires=0\r\n",
        t,
    );
    assert_eq!(off.change, Some(Change::Unregistered(0)));
}

#[test]
fn bad_register_requests_get_a_clear_status() {
    let t = now();
    let mut r = registrar();
    assert_eq!(
        registered(&mut r, "Contact: <sip:a@h>;expires=10\r\n", t).status,
        423
    );
    assert_eq!(registered(&mut r, "Contact: *\r\n", t).status, 400);
    assert_eq!(
        registered(&mut r, "Contact: <sip:a@h>\r\nExpires: soon\r\n", t).status,
        400
    );
    let huge = registered(&mut r, "Contact: <sip:a@h>;expires=999999\r\n", t);
    assert_eq!(huge.status, 200);
    assert!(
        huge.headers
            .iter()
            .any(|(_, v)| v.ends_with("expires=3600"))
    );
    assert!(Credentials::parse("Digest username=\"unterminated").is_none());
    assert!(Credentials::parse("Basic YWxhZGRpbjpvcGVuc2VzYW1l").is_none());
    let c = Credentials::parse("Digest username=\"a\\\"b\", nc=00000001,qop=auth").unwrap();
    assert_eq!(c.get("username"), Some("a\"b"));
    assert_eq!(c.get("NC"), Some("00000001"));
}

#[test]
fn nonces_are_bounded() {
    let t = now();
    let mut r = registrar();
    for _ in 0..MAX_NONCES + 10 {
        r.register(&register(CONTACT), source(), Link::Udp, t);
    }
    assert_eq!(r.nonces.len(), MAX_NONCES);
    assert_eq!(r.nonce_order.len(), MAX_NONCES);
}

#[test]
fn calls_go_to_the_contact_address_when_it_is_one() {
    let t = now();
    let mut r = registrar();
    registered(
        &mut r,
        "Contact: <sip:alice@127.0.0.1:6000;transport=udp>\r\n",
        t,
    );
    assert_eq!(r.bindings(0)[0].target, "127.0.0.1:6000".parse().unwrap());
    assert_eq!(
        contact_address("sip:a@[::1]:5070"),
        Some("[::1]:5070".parse().unwrap())
    );
    assert_eq!(
        contact_address("sip:10.1.2.3"),
        Some("10.1.2.3:5060".parse().unwrap())
    );
    assert_eq!(contact_address("sip:alice@phone.example.com"), None);
    assert_eq!(contact_address("sip:alice@1.2.3.4:notaport"), None);
}

#[test]
fn only_the_configured_algorithms_are_offered_and_accepted() {
    let t = now();
    let users = || {
        vec![User {
            id: "alice".into(),
            password: "change-me".into(),
        }]
    };
    let mut r = Registrar::new(
        REALM,
        &[Algorithm::Md5, Algorithm::Sha256],
        users(),
        [1; 16],
    );
    let a = r.register(&register(CONTACT), source(), Link::Udp, t);
    let order: Vec<bool> = a.headers.iter().map(|(_, v)| v.contains("MD5")).collect();
    assert_eq!(order, [true, false], "MD5 first, as configured");

    let mut r = Registrar::new(REALM, &[Algorithm::Sha256], users(), [1; 16]);
    let a = r.register(&register(CONTACT), source(), Link::Udp, t);
    assert_eq!(a.headers.len(), 1);
    let nonce = nonce_of(&a, "SHA-256");
    let md5 = authorization("alice", "change-me", Algorithm::Md5, &nonce, 1);
    let refused = r.register(
        &register(&format!("{md5}{CONTACT}")),
        source(),
        Link::Udp,
        t,
    );
    assert_eq!(refused.status, 403, "MD5 is not accepted when not offered");
}

#[test]
fn an_outbound_contact_with_instance_and_reg_id_registers_its_uri() {
    // How pjsua, baresip and Linphone register (RFC 5626): the instance id is a quoted URN
    // in angle brackets, after the Contact's own.
    let t = now();
    let mut r = registrar();
    let a = registered(
        &mut r,
        "Contact: <sip:alice@10.0.0.9:5062;transport=udp;ob>;reg-id=1;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-00000000abcd>\";expires=300\r\n",
        t,
    );
    assert_eq!(a.status, 200);
    let b = r.bindings(0);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].uri, "sip:alice@10.0.0.9:5062;transport=udp;ob");
    assert_eq!(
        contact_address(&b[0].uri),
        Some("10.0.0.9:5062".parse().unwrap())
    );
    assert_eq!(b[0].expires, t + Duration::from_secs(300));
    // Two contacts in one header, one with a comma inside its quoted display name.
    let c = registered(
        &mut r,
        "Contact: \"Alice, desk\" <sip:alice@10.0.0.10>, <sip:alice@10.0.0.11>;expires=60\r\n",
        t,
    );
    assert_eq!(c.status, 200);
    let uris: Vec<&str> = r.bindings(0).iter().map(|b| b.uri.as_str()).collect();
    assert!(uris.contains(&"sip:alice@10.0.0.10"), "{uris:?}");
    assert!(uris.contains(&"sip:alice@10.0.0.11"), "{uris:?}");
}

#[test]
fn a_phone_behind_nat_is_called_where_its_register_came_from() {
    let t = now();
    let register_from = |r: &mut Registrar, contact: &str, from: &str| {
        let from: SocketAddr = from.parse().unwrap();
        let line = format!("Contact: <{contact}>\r\n");
        let a = r.register(&register(&line), from, Link::Udp, t);
        let nonce = nonce_of(&a, "MD5");
        let auth = authorization("alice", "change-me", Algorithm::Md5, &nonce, 1);
        let a = r.register(&register(&format!("{auth}{line}")), from, Link::Udp, t);
        assert_eq!(a.status, 200);
        r.bindings(0)
            .iter()
            .find(|b| b.uri == contact)
            .unwrap()
            .target
    };
    let mut r = registrar();
    // A home softphone: private Contact, REGISTER from the NAT's public address.
    assert_eq!(
        register_from(&mut r, "sip:alice@192.168.1.20:5060", "203.0.113.7:40312"),
        "203.0.113.7:40312".parse().unwrap()
    );
    // On the same network: the Contact, as written (its port may differ from the source's).
    assert_eq!(
        register_from(&mut r, "sip:alice@10.0.0.2:5062", "10.0.0.2:5070"),
        "10.0.0.2:5062".parse().unwrap()
    );
    // A public Contact is trusted even when the REGISTER came from elsewhere.
    assert_eq!(
        register_from(&mut r, "sip:alice@198.51.100.9:5060", "203.0.113.8:5060"),
        "198.51.100.9:5060".parse().unwrap()
    );
    // CGNAT and IPv6 unique-local Contacts are private too.
    assert_eq!(
        register_from(&mut r, "sip:alice@100.72.1.1", "203.0.113.9:6000"),
        "203.0.113.9:6000".parse().unwrap()
    );
    assert_eq!(
        register_from(&mut r, "sip:alice@[fd00::5]:5060", "[2001:db8::1]:7000"),
        "[2001:db8::1]:7000".parse().unwrap()
    );
}

#[test]
fn the_lockout_is_configurable_and_its_table_never_stops_counting() {
    let t = now();
    let mut r = registrar().with_lockout(Lockout {
        max_failures: 2,
        max_failures_per_user: 20,
        window: Duration::from_secs(10),
    });
    // A username nobody has: only the (address, username) pairs count it.
    let guess = |r: &mut Registrar, from: SocketAddr, t: Instant| {
        let req = |extra: &str| {
            let text = format!(
                "REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK9\r\nMax-Forwards: 70\r\nFrom: <sip:mallory@{REALM}>;tag=9\r\nTo: <sip:mallory@{REALM}>\r\nCall-ID: reg9\r\nCSeq: 1 REGISTER\r\n{extra}Contact: <sip:mallory@10.9.9.9>\r\nContent-Length: 0\r\n\r\n"
            );
            parse_datagram(text.as_bytes()).unwrap()
        };
        let a = r.register(&req(""), from, Link::Udp, t);
        if a.status != 401 {
            return a;
        }
        let bad = authorization("mallory", "guess", Algorithm::Md5, &nonce_of(&a, "MD5"), 1);
        r.register(&req(&bad), from, Link::Udp, t)
    };
    // Fill the table from many addresses: the newest are still counted and locked out.
    for i in 0..(MAX_TRACKED_SOURCES as u32 + 50) {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        guess(&mut r, SocketAddr::new(ip.into(), 5060), t);
    }
    let fresh: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    assert!(!guess(&mut r, fresh, t).refusal.unwrap().locked_now);
    assert!(guess(&mut r, fresh, t).refusal.unwrap().locked_now);
    assert_eq!(guess(&mut r, fresh, t).reason, "Too Many Failed Attempts");
    assert!(r.failures.len() <= MAX_TRACKED_SOURCES);
    // The window is the configured one.
    let later = guess(&mut r, fresh, t + Duration::from_secs(10));
    assert!(!later.refusal.unwrap().locked);
}

#[test]
fn a_challenge_nobody_answered_is_reported_once() {
    let t = now();
    let mut r = registrar();
    let a = r.register(&register(CONTACT), source(), Link::Udp, t);
    assert_eq!(a.status, 401);
    // A phone that answers its challenge is not reported.
    let other: SocketAddr = "127.0.0.2:5070".parse().unwrap();
    let b = r.register(&register(CONTACT), other, Link::Udp, t);
    let good = authorization(
        "alice",
        "change-me",
        Algorithm::Md5,
        &nonce_of(&b, "MD5"),
        1,
    );
    assert_eq!(
        r.register(&register(&format!("{good}{CONTACT}")), other, Link::Udp, t)
            .status,
        200
    );
    assert_eq!(r.poll_timeout(), Some(t + UNANSWERED_AFTER));
    assert!(r.unanswered(t + Duration::from_secs(1)).is_empty());
    assert_eq!(
        r.unanswered(t + UNANSWERED_AFTER),
        vec![Unanswered {
            user: "alice".into(),
            source: source()
        }]
    );
    assert!(r.unanswered(t + UNANSWERED_AFTER * 2).is_empty());
}

#[test]
fn a_wrong_answer_spends_its_nonce() {
    let t = now();
    let mut r = registrar();
    let a = r.register(&register(CONTACT), source(), Link::Udp, t);
    let nonce = nonce_of(&a, "MD5");
    let bad = authorization("alice", "guess", Algorithm::Md5, &nonce, 1);
    let refused = r.register(
        &register(&format!("{bad}{CONTACT}")),
        source(),
        Link::Udp,
        t,
    );
    assert_eq!(refused.status, 403);
    // The right password on the spent nonce gets a fresh challenge, not a registration.
    let good = authorization("alice", "change-me", Algorithm::Md5, &nonce, 2);
    let again = r.register(
        &register(&format!("{good}{CONTACT}")),
        source(),
        Link::Udp,
        t,
    );
    assert_eq!(again.status, 401);
    assert!(again.headers.iter().any(|(_, v)| v.contains("stale=true")));
    let fresh = nonce_of(&again, "MD5");
    let good = authorization("alice", "change-me", Algorithm::Md5, &fresh, 1);
    assert_eq!(
        r.register(
            &register(&format!("{good}{CONTACT}")),
            source(),
            Link::Udp,
            t
        )
        .status,
        200
    );
}

/// Registers alice's phone with this Call-ID from `from` with `password`; the answer.
fn alice_from(
    r: &mut Registrar,
    from: SocketAddr,
    call_id: &str,
    password: &str,
    t: Instant,
) -> Answer {
    let req = |extra: &str| {
        let text = format!(
            "REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:alice@{REALM}>;tag=1\r\nTo: <sip:alice@{REALM}>\r\nCall-ID: {call_id}\r\nCSeq: 1 REGISTER\r\n{extra}Contact: <sip:alice@{from}>\r\nContent-Length: 0\r\n\r\n"
        );
        parse_datagram(text.as_bytes()).unwrap()
    };
    let a = r.register(&req(""), from, Link::Udp, t);
    if a.status != 401 {
        return a;
    }
    let creds = authorization("alice", password, Algorithm::Md5, &nonce_of(&a, "MD5"), 1);
    r.register(&req(&creds), from, Link::Udp, t)
}

#[test]
fn a_guesser_from_many_addresses_is_stopped_and_a_known_phone_still_gets_in() {
    let t = now();
    let mut r = registrar();
    let office: SocketAddr = "198.51.100.7:5060".parse().unwrap();
    // Alice's desk phone registered this morning from the office's address.
    assert_eq!(
        alice_from(&mut r, office, "desk-phone-1", "change-me", t).status,
        200
    );
    // A guesser tries from fresh addresses, four guesses each (under the pair limit).
    let mut user_lock = 0;
    for i in 0..MAX_FAILURES_PER_USER {
        let ip = std::net::Ipv4Addr::from(0xcb00_7100 + i / 4);
        let a = alice_from(
            &mut r,
            SocketAddr::new(ip.into(), 5060),
            "guess",
            "password1",
            t,
        );
        assert_eq!(a.status, 403);
        if a.refusal.is_some_and(|f| f.user_locked_now) {
            user_lock += 1;
        }
    }
    assert_eq!(user_lock, 1, "the username is locked out at the limit");
    // Now the right password from a fresh address is refused too: guessing stopped.
    let fresh: SocketAddr = "203.0.113.250:5060".parse().unwrap();
    let a = alice_from(&mut r, fresh, "guess", "change-me", t);
    assert_eq!((a.status, a.reason), (403, "Too Many Failed Attempts"));
    // The guesser moves behind the office's address and locks out that pair as well.
    for _ in 0..MAX_FAILURES {
        alice_from(&mut r, office, "guess-2", "password2", t);
    }
    assert_eq!(
        alice_from(&mut r, office, "guess-2", "change-me", t).status,
        403
    );
    // Alice's known phone refreshes from the same address: it gets in.
    assert_eq!(
        alice_from(&mut r, office, "desk-phone-1", "change-me", t).status,
        200
    );
    // After the window everyone may try again.
    let later = t + FAILURE_WINDOW;
    assert_eq!(
        alice_from(&mut r, fresh, "new-phone", "change-me", later).status,
        200
    );
}

#[test]
fn a_phone_whose_connection_closed_is_dropped_and_its_agent_unregistered() {
    let t = now();
    let mut r = registrar();
    let tls = Link::Tls(7);
    let a = r.register(&register(CONTACT), source(), tls, t);
    let nonce = nonce_of(&a, "MD5");
    let auth = authorization("alice", "change-me", Algorithm::Md5, &nonce, 1);
    let ok = r.register(&register(&format!("{auth}{CONTACT}")), source(), tls, t);
    assert_eq!(ok.status, 200);
    assert_eq!(r.bindings(0)[0].link, tls);
    assert_eq!(r.drop_link(0, Link::Tls(8)), None, "another connection");
    assert!(r.is_registered(0));
    assert_eq!(r.drop_link(0, tls), Some(Change::Unregistered(0)));
    assert!(!r.is_registered(0));
    // Nothing is left to expire later.
    assert!(r.expire(t + Duration::from_secs(7200)).is_empty());
}

/// The desk's login counts towards the same lockout as digest authentication: a guesser
/// locked out over SIP is locked out of the web too, and the right password then waits for
/// the window to pass.
#[test]
fn a_desk_login_shares_the_sip_lockout() {
    let mut r = registrar();
    let now = now();
    let ip = source().ip();
    assert_eq!(r.login("alice", "change-me", ip, now), Ok(0));
    assert_eq!(r.login("bob", "s3cret", ip, now), Ok(1));
    let wrong = r.login("alice", "guess", ip, now).unwrap_err();
    assert!(!wrong.locked && !wrong.locked_now);
    assert!(r.login("nobody", "x", ip, now).is_err());
    for _ in 1..MAX_FAILURES - 1 {
        r.login("alice", "guess", ip, now).unwrap_err();
    }
    assert!(r.login("alice", "guess", ip, now).unwrap_err().locked_now);
    let locked = r.login("alice", "change-me", ip, now).unwrap_err();
    assert!(locked.locked, "refused unchecked while locked out");
    // The same counters: a REGISTER from that address for alice is refused too.
    let a = r.authenticate(&register(""), source(), now).unwrap_err();
    assert_eq!(a.status, 403);
    // Another address is not locked out, and the window passing frees this one.
    let other: IpAddr = "127.0.0.9".parse().unwrap();
    assert_eq!(r.login("alice", "change-me", other, now), Ok(0));
    let later = now + FAILURE_WINDOW + Duration::from_secs(1);
    assert_eq!(r.login("alice", "change-me", ip, later), Ok(0));
}
