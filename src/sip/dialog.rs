//! UAS dialogs (RFC 3261 §12): the state an answered INVITE creates, the checks an in-dialog
//! request must pass, and the requests we send inside it (BYE). Pure: no IO, no clock.

use std::fmt::Write;

use super::wire::{self, Header, Message, Start};

/// The methods a caller may send us; anything else is answered 501.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REGISTER";
/// What we accept in a body.
pub const ACCEPT: &str = "application/sdp, application/dtmf-relay, application/dtmf";

/// One call's dialog, seen from our side (we are the UAS).
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// Our From in requests we send: the caller's To, with our tag.
    local: String,
    /// Our To in requests we send: the caller's From.
    remote: String,
    /// Where in-dialog requests go: the caller's Contact URI.
    remote_target: String,
    /// Record-Route of the INVITE, in order (§12.1.1).
    route_set: Vec<String>,
    local_cseq: u32,
    remote_cseq: u32,
}

/// Why an in-dialog request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
}

impl Dialog {
    /// The dialog an INVITE creates when we answer it with `local_tag`. `None` when the
    /// INVITE lacks what a dialog needs (a From tag, a Contact): the caller gets a 400.
    pub fn from_invite(req: &Message, local_tag: &str) -> Result<Dialog, Refusal> {
        let bad = |reason| Refusal {
            status: 400,
            reason,
        };
        let from = req.get("From").ok_or(bad("Missing From Header"))?;
        let remote_tag = wire::parse_name_addr(from)
            .and_then(|n| n.param("tag").map(str::to_string))
            .unwrap_or_default();
        // RFC 2543 did not require a Contact (RFC 4475 §3.4.1): then the caller is reached
        // at the address in its From.
        let contact = match req.get("Contact") {
            Some(c) => wire::split_list(c)
                .first()
                .copied()
                .and_then(wire::parse_name_addr)
                .ok_or(bad("Malformed Contact Header"))?,
            None => wire::parse_name_addr(from).ok_or(bad("Missing Contact Header"))?,
        };
        let to = req.get("To").ok_or(bad("Missing To Header"))?;
        let (cseq, _) = req
            .get("CSeq")
            .and_then(wire::parse_cseq)
            .ok_or(bad("Malformed CSeq Header"))?;
        let mut local = to.to_string();
        if wire::parse_name_addr(to).is_some_and(|n| n.param("tag").is_none()) {
            let _ = write!(local, ";tag={local_tag}");
        }
        Ok(Dialog {
            call_id: req.get("Call-ID").unwrap_or_default().to_string(),
            local_tag: local_tag.to_string(),
            remote_tag,
            local,
            remote: from.to_string(),
            remote_target: contact.uri,
            route_set: req
                .all("Record-Route")
                .flat_map(wire::split_list)
                .map(str::to_string)
                .collect(),
            local_cseq: 0,
            remote_cseq: cseq,
        })
    }

    /// The dialog a 2xx to our INVITE creates (we are the UAC, §12.1.2): the remote target
    /// is the answerer's Contact, the route set its Record-Route reversed.
    pub fn from_answer(invite: &Message, response: &Message) -> Result<Dialog, Refusal> {
        let bad = |reason| Refusal {
            status: 400,
            reason,
        };
        let tag_of = |v: &str| {
            wire::parse_name_addr(v)
                .and_then(|n| n.param("tag").map(str::to_string))
                .unwrap_or_default()
        };
        let local = invite.get("From").ok_or(bad("Missing From Header"))?;
        let remote = response.get("To").ok_or(bad("Missing To Header"))?;
        let contact = response
            .get("Contact")
            .and_then(|c| wire::split_list(c).first().copied())
            .and_then(wire::parse_name_addr)
            .ok_or(bad("Missing Contact Header"))?;
        let (cseq, _) = invite
            .get("CSeq")
            .and_then(wire::parse_cseq)
            .ok_or(bad("Malformed CSeq Header"))?;
        let mut route_set: Vec<String> = response
            .all("Record-Route")
            .flat_map(wire::split_list)
            .map(str::to_string)
            .collect();
        route_set.reverse();
        Ok(Dialog {
            call_id: invite.get("Call-ID").unwrap_or_default().to_string(),
            local_tag: tag_of(local),
            remote_tag: tag_of(remote),
            local: local.to_string(),
            remote: remote.to_string(),
            remote_target: contact.uri,
            route_set,
            local_cseq: cseq,
            remote_cseq: 0,
        })
    }

    /// The ACK for the 2xx that created a UAC dialog (§13.2.2.4): the INVITE's CSeq number.
    pub fn ack(&self, via: &str) -> Message {
        let mut headers = vec![
            header("Via", via),
            header("Max-Forwards", "70"),
            header("From", &self.local),
            header("To", &self.remote),
            header("Call-ID", &self.call_id),
            header("CSeq", &format!("{} ACK", self.local_cseq)),
        ];
        for r in &self.route_set {
            headers.push(header("Route", r));
        }
        Message {
            start: Start::Request {
                method: "ACK".into(),
                uri: self.remote_target.clone(),
            },
            headers,
            body: Vec::new(),
        }
    }

    /// Where the dialog's requests go first (§12.2.1.1, loose routing): the first entry of
    /// the route set, else the remote target.
    pub fn next_hop_uri(&self) -> String {
        self.route_set
            .first()
            .and_then(|r| wire::parse_name_addr(r))
            .map_or_else(|| self.remote_target.clone(), |r| r.uri)
    }

    /// Whether the far end asked to stay on the path (a Record-Route).
    pub fn is_routed(&self) -> bool {
        !self.route_set.is_empty()
    }

    /// Whether a request belongs to this dialog (§12.2.2): Call-ID and both tags.
    pub fn matches(&self, req: &Message) -> bool {
        let tag = |name| {
            req.get(name)
                .and_then(wire::parse_name_addr)
                .and_then(|n| n.param("tag").map(str::to_string))
                .unwrap_or_default()
        };
        req.get("Call-ID") == Some(self.call_id.as_str())
            && tag("From") == self.remote_tag
            && tag("To") == self.local_tag
    }

    /// Checks an in-dialog request's CSeq (§12.2.2): a lower one than already seen is out of
    /// order (500). ACK and CANCEL reuse the INVITE's number and are not checked.
    pub fn accept_cseq(&mut self, req: &Message) -> Result<(), Refusal> {
        let Some((n, method)) = req.get("CSeq").and_then(wire::parse_cseq) else {
            return Err(Refusal {
                status: 400,
                reason: "Malformed CSeq Header",
            });
        };
        if method == "ACK" || method == "CANCEL" {
            return Ok(());
        }
        if n <= self.remote_cseq && method != "INVITE" || n < self.remote_cseq {
            return Err(Refusal {
                status: 500,
                reason: "CSeq Out Of Order",
            });
        }
        self.remote_cseq = n;
        // A target refresh (re-INVITE) may move the caller's Contact (§12.2.2).
        if method == "INVITE"
            && let Some(c) = req
                .get("Contact")
                .and_then(|c| wire::split_list(c).first().copied())
                .and_then(wire::parse_name_addr)
        {
            self.remote_target = c.uri;
        }
        Ok(())
    }

    /// A request we send inside the dialog (BYE), from `via` (our Via value with its branch).
    pub fn request(&mut self, method: &str, via: &str, contact: &str) -> Message {
        self.local_cseq += 1;
        // Loose routing (RFC 3261 §12.2.1.1): the target stays the Request-URI; strict
        // routers are long gone from the field.
        let mut headers = vec![
            header("Via", via),
            header("Max-Forwards", "70"),
            header("From", &self.local),
            header("To", &self.remote),
            header("Call-ID", &self.call_id),
            header("CSeq", &format!("{} {method}", self.local_cseq)),
            header("Contact", contact),
        ];
        for r in &self.route_set {
            headers.push(header("Route", r));
        }
        headers.push(header("User-Agent", "hotline"));
        Message {
            start: Start::Request {
                method: method.to_string(),
                uri: self.remote_target.clone(),
            },
            headers,
            body: Vec::new(),
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.to_string(),
        value: value.to_string(),
    }
}

/// The user part of a Request-URI (`sip:support@host` → `support`, `tel:+3491...` → the
/// number): it picks the line.
pub fn uri_user(uri: &str) -> &str {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    match rest.split_once('@') {
        Some((user, _)) => user.split(';').next().unwrap_or(user),
        None if uri.to_ascii_lowercase().starts_with("tel:") => {
            rest.split(';').next().unwrap_or(rest)
        }
        None => "",
    }
}

/// Who called, as the agent's phone is to show it: the caller's display name and URI from
/// their From header, made safe to put in ours. The caller wrote both, so the URI is kept only
/// when it is a plain `sip:`, `sips:` or `tel:` URI of at most 256 safe characters (no quotes,
/// brackets, spaces or control characters: nothing that could end the header or add a
/// parameter of ours); otherwise it is `sip:anonymous@anonymous.invalid` (RFC 3323). The
/// display name loses quotes, backslashes and control characters and is cut to 64 characters;
/// without one, the URI's user part stands in.
pub fn caller_identity(from: Option<&str>, fallback_uri: &str) -> (String, String) {
    let na = from.and_then(wire::parse_name_addr);
    let uri = na.as_ref().map_or(fallback_uri, |n| n.uri.as_str());
    let scheme_ok = ["sip:", "sips:", "tel:"]
        .iter()
        .any(|s| uri.len() > s.len() && uri[..s.len()].eq_ignore_ascii_case(s));
    let chars_ok = uri
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.!~*()%;:@&=+$,/?#[]".contains(c));
    let uri = if scheme_ok && chars_ok && uri.len() <= 256 {
        uri.to_string()
    } else {
        "sip:anonymous@anonymous.invalid".to_string()
    };
    let display = na
        .and_then(|n| n.display)
        .unwrap_or_else(|| uri_user(&uri).to_string());
    let display: String = display
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .take(64)
        .collect();
    (display.trim().to_string(), uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_identity_is_shown_but_never_lets_them_write_our_headers() {
        assert_eq!(
            caller_identity(
                Some("\"Ana García\" <sip:+34600111222@example.com>;tag=1"),
                ""
            ),
            ("Ana García".into(), "sip:+34600111222@example.com".into())
        );
        assert_eq!(
            caller_identity(Some("<sip:bob@10.0.0.1:5070>;tag=2"), ""),
            ("bob".into(), "sip:bob@10.0.0.1:5070".into())
        );
        // A callback: no header, the stored URI.
        assert_eq!(
            caller_identity(None, "tel:+15551234"),
            ("+15551234".into(), "tel:+15551234".into())
        );
        // Hostile: quotes and line breaks in the name, a URI that would add to our header.
        let (name, uri) = caller_identity(
            Some("\"Eve\\\" <sip:x>\r\nX-Evil: 1\" <sip:eve@h>;tag=3"),
            "",
        );
        assert!(
            !name.contains('"') && !name.contains('\r') && !name.contains('\n'),
            "{name}"
        );
        assert_eq!(uri, "sip:eve@h");
        for bad in [
            "<http://evil.example/>",
            "<sip:a@b> x",
            "<javascript:alert(1)>",
        ] {
            assert_eq!(
                caller_identity(Some(bad), "").1,
                "sip:anonymous@anonymous.invalid",
                "{bad}"
            );
        }
        let long = format!("<sip:{}@h>", "a".repeat(300));
        assert_eq!(
            caller_identity(Some(&long), "").1,
            "sip:anonymous@anonymous.invalid"
        );
    }

    fn invite() -> Message {
        wire::parse_datagram(
            b"INVITE sip:support@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
From: \"Ana\" <sip:ana@127.0.0.1:5070>;tag=abc\r\n\
To: <sip:support@127.0.0.1>\r\n\
Call-ID: c1@x\r\n\
CSeq: 7 INVITE\r\n\
Contact: <sip:ana@127.0.0.1:5070;transport=udp>\r\n\
Record-Route: <sip:proxy.example.com;lr>\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n",
        )
        .unwrap()
    }

    fn in_dialog(method: &str, cseq: u32, to_tag: &str) -> Message {
        let text = format!(
            "{method} sip:hotline@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{cseq}\r\n\
From: <sip:ana@127.0.0.1:5070>;tag=abc\r\n\
To: <sip:support@127.0.0.1>;tag={to_tag}\r\n\
Call-ID: c1@x\r\n\
CSeq: {cseq} {method}\r\n\
Contact: <sip:ana@10.0.0.9:5070>\r\n\
Content-Length: 0\r\n\r\n"
        );
        wire::parse_datagram(text.as_bytes()).unwrap()
    }

    #[test]
    fn a_bye_we_send_goes_to_the_contact_with_swapped_headers_and_the_route_set() {
        let mut d = Dialog::from_invite(&invite(), "us1").unwrap();
        let bye = d.request(
            "BYE",
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-b",
            "<sip:h@x>",
        );
        let text = String::from_utf8(bye.to_bytes()).unwrap();
        assert!(text.starts_with("BYE sip:ana@127.0.0.1:5070;transport=udp SIP/2.0\r\n"));
        assert!(text.contains("From: <sip:support@127.0.0.1>;tag=us1\r\n"));
        assert!(text.contains("To: \"Ana\" <sip:ana@127.0.0.1:5070>;tag=abc\r\n"));
        assert!(text.contains("CSeq: 1 BYE\r\n"));
        assert!(text.contains("Route: <sip:proxy.example.com;lr>\r\n"));
        let again = d.request("BYE", "v", "c");
        assert_eq!(again.get("CSeq"), Some("2 BYE"));
    }

    #[test]
    fn in_dialog_requests_match_on_both_tags_and_keep_cseq_order() {
        let mut d = Dialog::from_invite(&invite(), "us1").unwrap();
        assert!(d.matches(&in_dialog("BYE", 8, "us1")));
        assert!(!d.matches(&in_dialog("BYE", 8, "other")));
        assert_eq!(d.accept_cseq(&in_dialog("INFO", 8, "us1")), Ok(()));
        assert_eq!(
            d.accept_cseq(&in_dialog("INFO", 8, "us1"))
                .unwrap_err()
                .status,
            500
        );
        // A re-INVITE moves the target.
        assert_eq!(d.accept_cseq(&in_dialog("INVITE", 9, "us1")), Ok(()));
        let bye = d.request("BYE", "v", "c");
        assert!(
            matches!(bye.start, Start::Request { ref uri, .. } if uri == "sip:ana@10.0.0.9:5070")
        );
    }

    #[test]
    fn our_invite_answered_makes_a_dialog_that_acks_and_byes_the_answerer() {
        // We call an agent: our INVITE, their 200 with a tag, a Contact and two proxies.
        let ours = wire::parse_datagram(
            b"INVITE sip:alice@10.0.0.5:5062 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-i\r\n\
From: <sip:hotline@hotline.local>;tag=us9\r\n\
To: <sip:alice@hotline.local>\r\n\
Call-ID: leg1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:hotline@127.0.0.1:5060>\r\n\
Content-Length: 0\r\n\r\n",
        )
        .unwrap();
        let ok = wire::parse_datagram(
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-i\r\n\
Record-Route: <sip:p2;lr>, <sip:p1;lr>\r\n\
From: <sip:hotline@hotline.local>;tag=us9\r\n\
To: <sip:alice@hotline.local>;tag=her3\r\n\
Call-ID: leg1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@10.0.0.5:5062>\r\n\
Content-Length: 0\r\n\r\n",
        )
        .unwrap();
        let mut d = Dialog::from_answer(&ours, &ok).unwrap();
        let ack = String::from_utf8(d.ack("SIP/2.0/UDP h;branch=z9hG4bK-a").to_bytes()).unwrap();
        assert!(ack.starts_with("ACK sip:alice@10.0.0.5:5062 SIP/2.0\r\n"));
        assert!(ack.contains("CSeq: 1 ACK\r\n"));
        assert!(ack.contains("To: <sip:alice@hotline.local>;tag=her3\r\n"));
        assert!(ack.find("Route: <sip:p1;lr>") < ack.find("Route: <sip:p2;lr>"));
        let bye = d.request("BYE", "v", "c");
        assert_eq!(bye.get("CSeq"), Some("2 BYE"));
        // Her BYE: her tag in From, ours in To.
        let hers = wire::parse_datagram(
            b"BYE sip:hotline@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-b\r\n\
From: <sip:alice@hotline.local>;tag=her3\r\n\
To: <sip:hotline@hotline.local>;tag=us9\r\n\
Call-ID: leg1\r\n\
CSeq: 1 BYE\r\n\
Content-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert!(d.matches(&hers));
        assert_eq!(d.accept_cseq(&hers), Ok(()));
    }

    #[test]
    fn an_invite_without_contact_is_answered_at_its_from_as_rfc_2543_did() {
        let mut m = invite();
        m.headers.retain(|h| h.name != "Contact");
        let d = Dialog::from_invite(&m, "t").unwrap();
        assert_eq!(d.remote_target, "sip:ana@127.0.0.1:5070");
        let mut m = invite();
        for h in &mut m.headers {
            if h.name == "Contact" {
                h.value = "<<nonsense".into();
            }
        }
        assert_eq!(Dialog::from_invite(&m, "t").unwrap_err().status, 400);
    }

    #[test]
    fn the_line_is_the_request_uri_user() {
        assert_eq!(uri_user("sip:support@127.0.0.1:5060"), "support");
        assert_eq!(uri_user("sips:sales;x=1@h"), "sales");
        assert_eq!(uri_user("tel:+34910000000;phone-context=x"), "+34910000000");
        assert_eq!(uri_user("sip:127.0.0.1"), "");
    }
}
