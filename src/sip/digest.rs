//! HTTP digest authentication as SIP uses it (RFC 3261 §22, RFC 7616, RFC 8760): the one
//! algorithm list, the parameter parser, and both sides — the registrar checks phones'
//! answers (`registrar.rs`); here the client answers a `401`/`407` a carrier or a target
//! sends to a call hotline places, or to its REGISTER. Pure: the client nonce is given.

use md5::Md5;
use sha2::{Digest, Sha256};

use super::wire::{self, Header, Message, Start};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Md5,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Md5 => "MD5",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else {
            None
        }
    }

    pub fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The parameters of a `Digest` header (a challenge or an answer to one).
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Digest a="b", c=d`: the parameters, `None` when malformed or too many or long.
    pub fn parse(value: &str) -> Option<Params> {
        let v = value.trim();
        let (scheme, rest) = v.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut params = Vec::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c == '=' || c.is_whitespace() {
                    break;
                }
                name.push(c);
                chars.next();
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.next() != Some('=') {
                return None;
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let mut val = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => val.push(chars.next()?),
                        '"' => {
                            closed = true;
                            break;
                        }
                        _ => val.push(c),
                    }
                }
                if !closed {
                    return None;
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' || c.is_whitespace() {
                        break;
                    }
                    val.push(c);
                    chars.next();
                }
            }
            if name.is_empty() || params.len() >= 32 || val.len() > 1024 {
                return None;
            }
            params.push((name, val));
        }
        Some(Params(params))
    }
}

/// A `Digest` challenge (a `WWW-Authenticate` on a 401, a `Proxy-Authenticate` on a 407).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// `qop="auth"` was offered (`auth-int` alone is not answered: we do not sign bodies).
    pub qop_auth: bool,
    /// The server says our last nonce went stale: the same password, tried again.
    pub stale: bool,
}

impl Challenge {
    /// One challenge header's value; `None` for another scheme, an algorithm we do not
    /// answer (the `-sess` variants, AKA), a `qop` without `auth`, or values that could not
    /// be copied into our answer safely.
    pub fn parse(value: &str) -> Option<Challenge> {
        let p = Params::parse(value)?;
        let safe = |v: &str| !v.chars().any(|c| c.is_control() || c == '"' || c == '\\');
        let realm = p.get("realm").filter(|v| safe(v))?.to_string();
        let nonce = p
            .get("nonce")
            .filter(|v| !v.is_empty() && safe(v))?
            .to_string();
        let opaque = match p.get("opaque") {
            Some(o) if safe(o) => Some(o.to_string()),
            Some(_) => return None,
            None => None,
        };
        let algorithm = Algorithm::parse(p.get("algorithm").unwrap_or("MD5"))?;
        let qop_auth = match p.get("qop") {
            None => false,
            Some(q) => {
                if !q.split(',').any(|o| o.trim().eq_ignore_ascii_case("auth")) {
                    return None;
                }
                true
            }
        };
        let stale = p
            .get("stale")
            .is_some_and(|s| s.eq_ignore_ascii_case("true"));
        Some(Challenge {
            realm,
            nonce,
            opaque,
            algorithm,
            qop_auth,
            stale,
        })
    }

    /// The challenge to answer among a response's headers: SHA-256 before MD5 (RFC 8760
    /// §2.4: the strongest one we support).
    pub fn pick<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        values
            .into_iter()
            .filter_map(Challenge::parse)
            .min_by_key(|c| match c.algorithm {
                Algorithm::Sha256 => 0,
                Algorithm::Md5 => 1,
            })
    }
}

/// A username and password hotline answers challenges with (a trunk's, a target's).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({}, ***)", self.username)
    }
}

/// The `Authorization` (or `Proxy-Authorization`) value answering `ch` for a request with
/// `method` to `uri`: the `nc`-th use of the nonce, with client nonce `cnonce` when the
/// server asked for `qop=auth` (RFC 7616 §3.4.1).
pub fn answer(
    ch: &Challenge,
    secret: &Secret,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> String {
    let a = ch.algorithm;
    let ha1 = a.hash(&format!(
        "{}:{}:{}",
        secret.username, ch.realm, secret.password
    ));
    let ha2 = a.hash(&format!("{method}:{uri}"));
    let quoted = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut v = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\"",
        quoted(&secret.username),
        ch.realm,
        ch.nonce,
        quoted(uri)
    );
    let response = if ch.qop_auth {
        let nc = format!("{nc:08x}");
        let r = a.hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", ch.nonce));
        v.push_str(&format!(
            ", response=\"{r}\", algorithm={}, cnonce=\"{cnonce}\", qop=auth, nc={nc}",
            a.name()
        ));
        r
    } else {
        let r = a.hash(&format!("{ha1}:{}:{ha2}", ch.nonce));
        v.push_str(&format!(", response=\"{r}\", algorithm={}", a.name()));
        r
    };
    debug_assert!(!response.is_empty());
    if let Some(o) = &ch.opaque {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    v
}

/// The challenges one request has answered (`401`/`407` and realm): each is answered once
/// (a second challenge for it means the password is wrong: never a loop), again only when
/// its nonce went stale, and three at most (a proxy's, the far end's, and a stale nonce).
#[derive(Debug, Clone, Default)]
pub struct Answered(Vec<(u16, String)>);

impl Answered {
    const MAX: usize = 3;

    /// Whether `ch`, sent with `code`, may be answered; if so it is counted.
    pub fn may_answer(&mut self, code: u16, ch: &Challenge) -> bool {
        let realm = (code, ch.realm.clone());
        if (self.0.contains(&realm) && !ch.stale) || self.0.len() >= Self::MAX {
            return false;
        }
        self.0.push(realm);
        true
    }
}

/// The challenge in a `401`/`407`: `WWW-Authenticate` or `Proxy-Authenticate`.
pub fn challenge_in(resp: &Message, code: u16) -> Option<Challenge> {
    let name = if code == 407 {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    Challenge::pick(resp.all(name))
}

/// `req` again, answering a `401`/`407` (RFC 3261 §22.2): the same Call-ID, From and To,
/// the next CSeq, the top Via given (a fresh branch), and the credentials for the
/// challenge's realm beside any given to another realm before. `None` for no request.
pub fn authorized(
    req: &Message,
    code: u16,
    ch: &Challenge,
    secret: &Secret,
    via: &str,
    cnonce: &str,
) -> Option<Message> {
    let Start::Request { method, uri } = &req.start else {
        return None;
    };
    let name = if code == 407 {
        "Proxy-Authorization"
    } else {
        "Authorization"
    };
    let (n, _) = req.get("CSeq").and_then(wire::parse_cseq)?;
    let value = answer(ch, secret, method, uri, cnonce, 1);
    let mut again = req.clone();
    let same_realm =
        |v: &str| Params::parse(v).is_some_and(|p| p.get("realm") == Some(ch.realm.as_str()));
    again
        .headers
        .retain(|h| !(h.name.eq_ignore_ascii_case(name) && same_realm(&h.value)));
    for h in &mut again.headers {
        if h.name.eq_ignore_ascii_case("Via") {
            h.value = via.to_string();
        } else if h.name.eq_ignore_ascii_case("CSeq") {
            h.value = format!("{} {method}", n.saturating_add(1));
        }
    }
    let at = again
        .headers
        .iter()
        .position(|h| h.name.eq_ignore_ascii_case("Content-Type"))
        .unwrap_or(again.headers.len());
    again.headers.insert(
        at,
        Header {
            name: name.to_string(),
            value,
        },
    );
    Some(again)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mufasa() -> Secret {
        Secret {
            username: "Mufasa".into(),
            password: "Circle of Life".into(),
        }
    }

    /// RFC 7616 §3.9.1: the same request answered with MD5 and with SHA-256.
    #[test]
    fn rfc_7616_vectors() {
        for (algorithm, expected) in [
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let ch = Challenge::parse(&format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={algorithm}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            ))
            .unwrap();
            let v = answer(
                &ch,
                &mufasa(),
                "GET",
                "/dir/index.html",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                1,
            );
            let p = Params::parse(&v).unwrap();
            assert_eq!(p.get("response"), Some(expected), "{algorithm}: {v}");
            assert_eq!(p.get("nc"), Some("00000001"));
            assert_eq!(p.get("qop"), Some("auth"));
            assert_eq!(
                p.get("opaque"),
                Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
            );
            assert_eq!(p.get("algorithm"), Some(algorithm));
        }
    }

    /// RFC 2617 §3.5's example, and the qop-less answer of RFC 2069 servers still send.
    #[test]
    fn rfc_2617_vector_and_no_qop() {
        let mut ch = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        let secret = Secret {
            username: "Mufasa".into(),
            password: "Circle Of Life".into(),
        };
        let v = answer(&ch, &secret, "GET", "/dir/index.html", "0a4f113b", 1);
        assert_eq!(
            Params::parse(&v).unwrap().get("response"),
            Some("6629fae49393a05397450978507c4ef1")
        );
        ch.qop_auth = false;
        let v = answer(&ch, &secret, "GET", "/dir/index.html", "0a4f113b", 1);
        let p = Params::parse(&v).unwrap();
        assert_eq!(p.get("response"), Some("670fd8c2df070c60b045671b8b24ff02"));
        assert_eq!(p.get("qop"), None);
        assert_eq!(p.get("cnonce"), None);
    }

    #[test]
    fn the_strongest_challenge_is_answered_and_the_unanswerable_are_not() {
        let both = [
            "Digest realm=\"c\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"",
            "Digest realm=\"c\", nonce=\"n2\", algorithm=SHA-256, qop=\"auth\"",
        ];
        assert_eq!(
            Challenge::pick(both).map(|c| c.algorithm),
            Some(Algorithm::Sha256)
        );
        for bad in [
            "Basic realm=\"c\"",
            "Digest realm=\"c\", nonce=\"n\", algorithm=MD5-sess",
            "Digest realm=\"c\", nonce=\"n\", qop=\"auth-int\"",
            "Digest realm=\"c\"",
            "Digest realm=\"c\", nonce=\"\"",
            "Digest realm=\"c\\\"x\", nonce=\"n\"",
        ] {
            assert_eq!(Challenge::parse(bad), None, "{bad}");
        }
        let stale = Challenge::parse("Digest realm=\"c\", nonce=\"n\", stale=TRUE").unwrap();
        assert!(stale.stale && !stale.qop_auth);
        assert_eq!(stale.algorithm, Algorithm::Md5);
    }

    #[test]
    fn a_username_with_quotes_stays_one_parameter() {
        let ch = Challenge::parse("Digest realm=\"c\", nonce=\"n\"").unwrap();
        let s = Secret {
            username: "a\"b".into(),
            password: "hunter2".into(),
        };
        let v = answer(&ch, &s, "INVITE", "sip:x@y", "c", 1);
        assert_eq!(Params::parse(&v).unwrap().get("username"), Some("a\"b"));
        assert!(
            !format!("{s:?}").contains("hunter2"),
            "a log line never shows it"
        );
    }
}
