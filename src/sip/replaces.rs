//! Attended transfer's `Replaces` (RFC 3891): which dialog a new call takes the place of,
//! as a phone writes it inside a REFER's Refer-To URI
//! (`<sip:bob@host?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2>`, RFC 3891 §7).

/// The dialog to replace. Its tags are as the receiving side sees the dialog (§6.1): `to_tag`
/// is its own tag, `from_tag` the far end's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
    /// Only an early dialog may be replaced (`early-only`).
    pub early_only: bool,
}

/// Longest Call-ID or tag taken (a phone's are tens of characters).
const MAX_PART: usize = 256;

impl Replaces {
    /// Reads a `Replaces` header value: `callid;to-tag=…;from-tag=…[;early-only]`. Both tags
    /// are required; anything malformed is `None`.
    pub fn parse(value: &str) -> Option<Replaces> {
        let mut parts = value.split(';').map(str::trim);
        let call_id = parts.next().filter(|c| valid(c))?.to_string();
        let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
        for p in parts {
            let (name, v) = p.split_once('=').unwrap_or((p, ""));
            match name.trim().to_ascii_lowercase().as_str() {
                "to-tag" if valid(v.trim()) => to_tag = Some(v.trim().to_string()),
                "from-tag" if valid(v.trim()) => from_tag = Some(v.trim().to_string()),
                "to-tag" | "from-tag" => return None,
                "early-only" => early_only = true,
                _ => {} // a parameter we do not know is ignored (§6.1)
            }
        }
        Some(Replaces {
            call_id,
            to_tag: to_tag?,
            from_tag: from_tag?,
            early_only,
        })
    }

    /// Whether a dialog with these tags (ours, theirs) is the one named. A phone naming
    /// the tags the other way round (as its own side saw them) is taken too: the Call-ID
    /// decides, the tags only confirm.
    pub fn names(&self, call_id: &str, local_tag: &str, remote_tag: &str) -> bool {
        self.call_id == call_id
            && ((self.to_tag == local_tag && self.from_tag == remote_tag)
                || (self.to_tag == remote_tag && self.from_tag == local_tag))
    }
}

/// A `Replaces` that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadReplaces;

/// A Refer-To URI split into the address to call and the `Replaces` it carries, if any.
pub fn split_uri(uri: &str) -> Result<(String, Option<Replaces>), BadReplaces> {
    let Some((address, headers)) = uri.split_once('?') else {
        return Ok((uri.to_string(), None));
    };
    let mut replaces = None;
    for h in headers.split('&') {
        let (name, value) = h.split_once('=').unwrap_or((h, ""));
        if name.eq_ignore_ascii_case("replaces") {
            let value = unescape(value).ok_or(BadReplaces)?;
            replaces = Some(Replaces::parse(&value).ok_or(BadReplaces)?);
        }
    }
    Ok((address.to_string(), replaces))
}

fn valid(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_PART && s.chars().all(|c| c.is_ascii_graphic() && c != ';')
}

/// `%XX` escapes decoded; a bad escape or a result that is not UTF-8 is `None`.
fn unescape(s: &str) -> Option<String> {
    if s.len() > 4 * MAX_PART {
        return None;
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refer_to_uri_names_the_dialog_it_replaces() {
        // As a phone sends it (RFC 3891 §7's example, and Linphone's shape).
        let uri = "sip:bob@192.0.2.4?Replaces=12345%40192.0.2.1%3Bto-tag%3D7743%3Bfrom-tag%3D6472";
        let (address, r) = split_uri(uri).unwrap();
        assert_eq!(address, "sip:bob@192.0.2.4");
        let r = r.unwrap();
        assert_eq!(r.call_id, "12345@192.0.2.1");
        assert_eq!((r.to_tag.as_str(), r.from_tag.as_str()), ("7743", "6472"));
        assert!(!r.early_only);
        assert!(r.names("12345@192.0.2.1", "7743", "6472"));
        assert!(
            r.names("12345@192.0.2.1", "6472", "7743"),
            "tags either way round"
        );
        assert!(!r.names("12345@192.0.2.1", "7743", "0000"));
        assert!(!r.names("other@192.0.2.1", "7743", "6472"));
        // Lower-case escapes, other headers around it, early-only.
        let uri = "sip:bob@h?Subject=x&replaces=a%3bfrom-tag%3d1%3bto-tag%3d2%3bearly-only";
        let r = split_uri(uri).unwrap().1.unwrap();
        assert_eq!((r.call_id.as_str(), r.to_tag.as_str()), ("a", "2"));
        assert!(r.early_only);
        // No Replaces: a blind transfer.
        assert_eq!(
            split_uri("sip:bob@h").unwrap(),
            ("sip:bob@h".to_string(), None)
        );
        assert_eq!(split_uri("sip:bob@h?Subject=x").unwrap().1, None);
    }

    #[test]
    fn a_replaces_that_cannot_be_read_is_refused() {
        for bad in [
            "sip:b@h?Replaces=abc",                              // no tags
            "sip:b@h?Replaces=abc%3Bto-tag%3D1",                 // one tag
            "sip:b@h?Replaces=%3Bto-tag%3D1%3Bfrom-tag%3D2",     // no Call-ID
            "sip:b@h?Replaces=a%3Bto-tag%3D%3Bfrom-tag%3D2",     // an empty tag
            "sip:b@h?Replaces=a%zz",                             // a bad escape
            "sip:b@h?Replaces=a%3",                              // a cut escape
            "sip:b@h?Replaces=a%FF%3Bto-tag%3D1%3Bfrom-tag%3D2", // not UTF-8
        ] {
            assert!(split_uri(bad).is_err(), "{bad}");
        }
        let long = format!(
            "sip:b@h?Replaces={}%3Bto-tag%3D1%3Bfrom-tag%3D2",
            "x".repeat(300)
        );
        assert!(split_uri(&long).is_err());
    }
}
