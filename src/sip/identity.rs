//! Who is calling: the caller's identity as records, callbacks and agents see it. A
//! caller's From is theirs to write; a trunk's `P-Asserted-Identity` (RFC 3325) is the
//! carrier's word, believed only when the INVITE comes from one of its addresses. Numbers
//! are written in E.164 whatever format the carrier used. Pure.

use super::wire::{self, Message};
use crate::numbers::Numbering;

/// A caller as hotline knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `tel:+34600111222` when a trunk vouched for the number, else their From URI.
    pub uri: String,
    /// They asked not to be shown (`Privacy: id`, RFC 3323/3325, or an anonymous From).
    pub private: bool,
}

/// The caller of `invite`; `trunk`: it came from a trunk's address.
pub fn caller(invite: &Message, trunk: bool, numbering: &Numbering) -> Caller {
    let from = invite
        .get("From")
        .and_then(wire::parse_name_addr)
        .map(|n| n.uri)
        .unwrap_or_default();
    let asserted = trunk
        .then(|| {
            invite
                .get("P-Asserted-Identity")
                .or_else(|| invite.get("Remote-Party-ID"))
                .and_then(|v| {
                    // A PAI may list a sip: and a tel: identity; the first one is taken.
                    wire::parse_name_addr(v.split(',').next().unwrap_or(v))
                })
                .map(|n| n.uri)
        })
        .flatten();
    let private = invite.get("Privacy").is_some_and(|p| {
        p.split(';')
            .any(|t| matches!(t.trim().to_ascii_lowercase().as_str(), "id" | "user"))
    }) || super::dialog::uri_user(&from).eq_ignore_ascii_case("anonymous");
    let uri = match asserted {
        Some(a) => numbering.e164(&a).map_or(a, |n| format!("tel:{n}")),
        None if trunk => numbering.e164(&from).map_or(from, |n| format!("tel:{n}")),
        None => from,
    };
    Caller { uri, private }
}

/// Whether a caller's URI names nobody to call back: empty, or anonymous (RFC 3323's
/// `anonymous@anonymous.invalid`, or any `anonymous` user).
pub fn is_anonymous(uri: &str) -> bool {
    let user = super::dialog::uri_user(uri);
    uri.trim().is_empty()
        || user.eq_ignore_ascii_case("anonymous")
        || uri.to_ascii_lowercase().contains("@anonymous.invalid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numbers::spain;

    fn invite(extra: &str) -> Message {
        let text = format!(
            "INVITE sip:910000000@hotline SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:0034600111222@carrier.example>;tag=a\r\nTo: <sip:910000000@hotline>\r\n\
             Call-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        wire::parse_datagram(text.as_bytes()).expect("valid")
    }

    #[test]
    fn a_trunks_asserted_identity_is_believed_and_written_in_e164() {
        let pai = "P-Asserted-Identity: <sip:600999888@carrier.example;user=phone>\r\n";
        let c = caller(&invite(pai), true, &spain());
        assert_eq!(c.uri, "tel:+34600999888");
        assert!(!c.private);
        // From a trunk without PAI: its From, in E.164.
        assert_eq!(caller(&invite(""), true, &spain()).uri, "tel:+34600111222");
        // From anywhere else, PAI is anyone's to write: the From stands as written.
        assert_eq!(
            caller(&invite(pai), false, &spain()).uri,
            "sip:0034600111222@carrier.example"
        );
    }

    #[test]
    fn privacy_is_noticed() {
        let c = caller(
            &invite("P-Asserted-Identity: <tel:+34600999888>\r\nPrivacy: id;critical\r\n"),
            true,
            &spain(),
        );
        assert_eq!(c.uri, "tel:+34600999888", "the network knows the number");
        assert!(c.private);
        let anon = wire::parse_datagram(
            b"INVITE sip:l@h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
              From: \"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=a\r\nTo: <sip:l@h>\r\n\
              Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("valid");
        let c = caller(&anon, false, &spain());
        assert!(c.private);
        assert_eq!(c.uri, "sip:anonymous@anonymous.invalid");
        assert!(is_anonymous(&c.uri));
        assert!(is_anonymous("sip:Anonymous@carrier.example"));
        assert!(!is_anonymous("tel:+34600999888"));
        assert!(!is_anonymous("sip:ana@pbx.example"));
    }
}
