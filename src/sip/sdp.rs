//! SDP offer/answer (RFC 3264) for one audio stream: G.711 (PCMU or PCMA) with RFC 4733
//! telephone-event, in the clear or as SRTP with SDES keys (RFC 4568: `RTP/SAVP` and
//! `a=crypto`). Anything else in an offer is declined, never an error.

use std::fmt::Write;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use crate::media::g711::Law;
use crate::media::srtp::{MASTER_LEN, Suite};

/// SRTP keys agreed by SDES: the far end's master key (what it sends is encrypted with it)
/// and ours (what we send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sdes {
    pub tag: u32,
    pub suite: Suite,
    pub remote: [u8; MASTER_LEN],
    pub local: [u8; MASTER_LEN],
}

/// One usable `a=crypto` line of an offer (or answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: Suite,
    pub key: [u8; MASTER_LEN],
}

/// What we bring to a negotiation: the master key we would send with, and whether the far
/// end must use SRTP (a plain offer is then refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keying {
    pub local: [u8; MASTER_LEN],
    pub required: bool,
}

/// Reads `a=crypto:<tag> <suite> inline:<key||salt>[|lifetime]` (RFC 4568 §9.1). Suites we
/// do not speak, keys of the wrong length, MKIs and session parameters make it unusable.
fn parse_crypto(value: &str) -> Option<Crypto> {
    let mut f = value.split_whitespace();
    let tag: u32 = f.next()?.parse().ok()?;
    let suite = Suite::from_name(f.next()?)?;
    let key_params = f.next()?;
    if f.next().is_some() || key_params.contains(';') {
        return None; // session parameters (UNENCRYPTED_SRTP, KDR, ...) or several keys
    }
    let inline = key_params.strip_prefix("inline:")?;
    let mut parts = inline.split('|');
    let key = parts.next()?;
    for p in parts {
        if p.contains(':') {
            return None; // an MKI: its bytes would be in every packet
        }
    }
    let bytes = STANDARD
        .decode(key)
        .or_else(|_| STANDARD_NO_PAD.decode(key))
        .ok()?;
    Some(Crypto {
        tag,
        suite,
        key: bytes.try_into().ok()?,
    })
}

fn crypto_line(tag: u32, suite: Suite, key: &[u8; MASTER_LEN]) -> String {
    format!(
        "a=crypto:{tag} {} inline:{}\r\n",
        suite.name(),
        STANDARD.encode(key)
    )
}

/// Which way media flows, from the offerer's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Our side of it (RFC 3264 §6.1).
    fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

/// What the far end offered for audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub address: IpAddr,
    pub port: u16,
    /// Payload types in the offerer's order of preference.
    pub formats: Vec<u8>,
    pub rtpmap: Vec<(u8, String)>,
    pub direction: Direction,
    /// The position of the audio m-line, and how many m-lines there are (the answer keeps all).
    pub audio_index: usize,
    pub media: Vec<String>,
    /// The audio m-line's transport: `RTP/AVP`, or `RTP/SAVP` (SRTP only).
    pub proto: String,
    /// The usable SDES keys offered for audio, in the offerer's order.
    pub crypto: Vec<Crypto>,
}

/// What both ends agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    pub law: Law,
    pub telephone_event: Option<u8>,
    pub remote: (IpAddr, u16),
    /// Our direction.
    pub direction: Direction,
    /// SRTP, when both ends agreed on it.
    pub srtp: Option<Sdes>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("no audio stream in the offer")]
    NoAudio,
    #[error("no common codec (PCMU or PCMA)")]
    NoCommonCodec,
    #[error("malformed SDP: {0}")]
    Malformed(&'static str),
    #[error("no usable SRTP key (AES_CM_128_HMAC_SHA1_80 or _32 by SDES)")]
    NoCommonCrypto,
    #[error("SRTP is required and the offer is plain RTP")]
    SrtpRequired,
}

pub fn parse_offer(body: &str) -> Result<Offer, SdpError> {
    let mut session_addr: Option<IpAddr> = None;
    let mut media: Vec<String> = Vec::new();
    let mut audio: Option<(usize, u16, Vec<u8>)> = None;
    let mut audio_addr = None;
    let mut rtpmap = Vec::new();
    let mut crypto = Vec::new();
    let mut proto_of_audio = String::new();
    let (mut session_dir, mut audio_dir) = (None, None);
    for line in body.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        let (kind, value) = line
            .split_once('=')
            .ok_or(SdpError::Malformed("a line without ="))?;
        let in_audio = audio.as_ref().is_some_and(|a| a.0 + 1 == media.len());
        match kind {
            "c" => {
                let addr = value
                    .split_whitespace()
                    .nth(2)
                    .ok_or(SdpError::Malformed("c="))?;
                let addr: IpAddr = addr
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .parse()
                    .map_err(|_| SdpError::Malformed("c= address"))?;
                if media.is_empty() {
                    session_addr = Some(addr);
                } else if in_audio {
                    audio_addr = Some(addr);
                }
            }
            "m" => {
                media.push(line.to_string());
                let mut f = value.split_whitespace();
                let (kind, port, proto) = (f.next(), f.next(), f.next());
                if kind == Some("audio")
                    && audio.is_none()
                    && proto.is_some_and(|p| p.starts_with("RTP/AVP") || p.starts_with("RTP/SAVP"))
                {
                    proto_of_audio = proto.unwrap_or_default().to_string();
                    let port: u16 = port
                        .and_then(|p| p.split('/').next()?.parse().ok())
                        .ok_or(SdpError::Malformed("m= port"))?;
                    let formats = f.filter_map(|p| p.parse().ok()).collect();
                    // Port 0: a stream declined (RFC 3264 §6), never the one we answer.
                    if port != 0 {
                        audio = Some((media.len() - 1, port, formats));
                    }
                }
            }
            "a" => {
                let dir = match value {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                if let Some(d) = dir {
                    if media.is_empty() {
                        session_dir = Some(d);
                    } else if in_audio {
                        audio_dir = Some(d);
                    }
                } else if in_audio && let Some(map) = value.strip_prefix("rtpmap:") {
                    let (pt, name) = map.split_once(' ').ok_or(SdpError::Malformed("rtpmap"))?;
                    if let Ok(pt) = pt.parse() {
                        rtpmap.push((pt, name.trim().to_string()));
                    }
                } else if in_audio && let Some(c) = value.strip_prefix("crypto:") {
                    crypto.extend(parse_crypto(c));
                }
            }
            _ => {}
        }
    }
    let (audio_index, port, formats) = audio.ok_or(SdpError::NoAudio)?;
    let address = audio_addr
        .or(session_addr)
        .ok_or(SdpError::Malformed("no c= line"))?;
    Ok(Offer {
        address,
        port,
        formats,
        rtpmap,
        direction: audio_dir.or(session_dir).unwrap_or(Direction::SendRecv),
        audio_index,
        media,
        proto: proto_of_audio,
        crypto,
    })
}

impl Offer {
    fn name_of(&self, pt: u8) -> Option<String> {
        if let Some((_, n)) = self.rtpmap.iter().find(|(p, _)| *p == pt) {
            return Some(n.to_ascii_lowercase());
        }
        match pt {
            0 => Some("pcmu/8000".into()),
            8 => Some("pcma/8000".into()),
            _ => None,
        }
    }

    /// Chooses the offerer's first G.711 law, and telephone-event at 8 kHz if offered; SRTP
    /// with the first usable key when one is offered (`RTP/SAVP` must have one; `RTP/AVP`
    /// with keys is "best effort" SRTP, taken too).
    pub fn negotiate(&self, keying: &Keying) -> Result<Agreed, SdpError> {
        let law = self.laws().next().ok_or(SdpError::NoCommonCodec)?;
        self.agree(law, keying)
    }

    /// For a new offer inside a call (re-INVITE): the law the call already uses, which must be
    /// among those offered; a call does not change codec midway, nor fall back from SRTP to
    /// plain RTP.
    pub fn negotiate_keeping(
        &self,
        law: Law,
        keying: &Keying,
        srtp: Option<Sdes>,
    ) -> Result<Agreed, SdpError> {
        if !self.laws().any(|l| l == law) {
            return Err(SdpError::NoCommonCodec);
        }
        let keying = Keying {
            local: srtp.map_or(keying.local, |s| s.local),
            required: keying.required || srtp.is_some(),
        };
        self.agree(law, &keying)
    }

    /// Whether the audio stream is SRTP only (`RTP/SAVP`, `RTP/SAVPF`).
    pub fn is_secure(&self) -> bool {
        self.proto.starts_with("RTP/SAVP")
    }

    /// The G.711 laws offered, in the offerer's order.
    fn laws(&self) -> impl Iterator<Item = Law> + '_ {
        self.formats
            .iter()
            .filter_map(|&pt| match self.name_of(pt)?.as_str() {
                "pcmu/8000" | "pcmu/8000/1" if pt == 0 => Some(Law::Pcmu),
                "pcma/8000" | "pcma/8000/1" if pt == 8 => Some(Law::Pcma),
                _ => None,
            })
    }

    fn agree(&self, law: Law, keying: &Keying) -> Result<Agreed, SdpError> {
        let srtp = match self.crypto.first() {
            Some(c) => Some(Sdes {
                tag: c.tag,
                suite: c.suite,
                remote: c.key,
                local: keying.local,
            }),
            None if self.is_secure() => return Err(SdpError::NoCommonCrypto),
            None if keying.required => return Err(SdpError::SrtpRequired),
            None => None,
        };
        let telephone_event = self.formats.iter().copied().find(|&pt| {
            self.name_of(pt)
                .is_some_and(|n| n.starts_with("telephone-event/8000"))
        });
        let on_hold = self.address.is_unspecified();
        let direction = if on_hold {
            Direction::Inactive
        } else {
            self.direction.answer()
        };
        Ok(Agreed {
            law,
            telephone_event,
            remote: (self.address, self.port),
            direction,
            srtp,
        })
    }
}

/// A new offer inside a call (re-INVITE), answered keeping the call's law (and SRTP keys)
/// once it has them.
pub fn renegotiate(
    body: &str,
    law: Option<Law>,
    keying: &Keying,
    srtp: Option<Sdes>,
) -> Result<(Offer, Agreed), SdpError> {
    let offer = parse_offer(body)?;
    let agreed = match law {
        Some(law) => offer.negotiate_keeping(law, keying, srtp)?,
        None => offer.negotiate(keying)?,
    };
    Ok((offer, agreed))
}

/// The far end's answer to our offer `ours`: SRTP only when we offered a key, and then with
/// that key as ours; a plain answer to an `RTP/SAVP` offer is refused.
pub fn read_answer(ours: &str, answer: &str) -> Result<Agreed, SdpError> {
    let ours = parse_offer(ours)?;
    let theirs = parse_offer(answer)?;
    match ours.crypto.first() {
        Some(c) => theirs.negotiate(&Keying {
            local: c.key,
            required: ours.is_secure(),
        }),
        None if theirs.is_secure() => Err(SdpError::NoCommonCrypto),
        None => {
            let mut a = theirs.negotiate(&Keying {
                local: [0; MASTER_LEN],
                required: false,
            })?;
            a.srtp = None; // keys we never asked for: the phone would not use them
            Ok(a)
        }
    }
}

/// What our own offer says about SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferSrtp {
    /// Plain RTP.
    No,
    /// `RTP/AVP` with our key: a phone that speaks SDES answers with its own and both use
    /// SRTP; one that does not ignores it and answers plain.
    BestEffort([u8; MASTER_LEN]),
    /// `RTP/SAVP`: SRTP or no call.
    Required([u8; MASTER_LEN]),
}

/// The tag and suite of the key we offer.
pub const OFFER_TAG: u32 = 1;
pub const OFFER_SUITE: Suite = Suite::AesCm128HmacSha1_80;

/// Our SDP: an offer (no `offer` given; `srtp` says whether it offers SRTP) or the answer to
/// one, sending from `address:port`.
pub fn describe(
    session_id: u64,
    version: u64,
    address: IpAddr,
    port: u16,
    agreed: Option<(&Offer, &Agreed)>,
    srtp: OfferSrtp,
) -> String {
    let ip = if address.is_ipv4() { "IP4" } else { "IP6" };
    let mut s = format!(
        "v=0\r\no=hotline {session_id} {version} IN {ip} {address}\r\ns=hotline\r\nc=IN {ip} {address}\r\nt=0 0\r\n"
    );
    let audio = |s: &mut String, law: Law, te: Option<u8>, dir: Direction, proto: &str| {
        let pt = law.payload_type();
        let _ = write!(s, "m=audio {port} {proto} {pt}");
        if let Some(te) = te {
            let _ = write!(s, " {te}");
        }
        let name = if law == Law::Pcmu { "PCMU" } else { "PCMA" };
        let _ = write!(s, "\r\na=rtpmap:{pt} {name}/8000\r\n");
        if let Some(te) = te {
            let _ = write!(
                s,
                "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n"
            );
        }
        let _ = write!(s, "a=ptime:20\r\na={}\r\n", dir.attr());
    };
    match agreed {
        None => {
            let proto = match srtp {
                OfferSrtp::Required(_) => "RTP/SAVP",
                _ => "RTP/AVP",
            };
            let _ = write!(
                s,
                "m=audio {port} {proto} 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
            );
            if let OfferSrtp::BestEffort(key) | OfferSrtp::Required(key) = &srtp {
                s.push_str(&crypto_line(OFFER_TAG, OFFER_SUITE, key));
            }
        }
        Some((offer, a)) => {
            // One m-line per offered one, in order; the others are declined with port 0.
            for (i, m) in offer.media.iter().enumerate() {
                if i == offer.audio_index {
                    let proto = if offer.is_secure() {
                        offer.proto.as_str()
                    } else {
                        "RTP/AVP"
                    };
                    audio(&mut s, a.law, a.telephone_event, a.direction, proto);
                    if let Some(k) = &a.srtp {
                        s.push_str(&crypto_line(k.tag, k.suite, &k.local));
                    }
                } else {
                    let mut f = m.trim_start_matches("m=").split_whitespace();
                    let (kind, _, proto) = (
                        f.next().unwrap_or("audio"),
                        f.next(),
                        f.next().unwrap_or("RTP/AVP"),
                    );
                    let fmt = f.next().unwrap_or("0");
                    let _ = write!(s, "m={kind} 0 {proto} {fmt}\r\n");
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Keying = Keying {
        local: [7; MASTER_LEN],
        required: false,
    };

    #[test]
    fn a_new_offer_in_a_call_keeps_its_codec_or_is_refused() {
        let both = SIPP.replace("RTP/AVP 0 101", "RTP/AVP 0 8 101").replace(
            "a=rtpmap:0 PCMU/8000\r\n",
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n",
        );
        let o = parse_offer(&both).unwrap();
        assert_eq!(
            o.negotiate(&PLAIN).unwrap().law,
            Law::Pcmu,
            "the offerer's first"
        );
        let kept = o.negotiate_keeping(Law::Pcma, &PLAIN, None).unwrap();
        assert_eq!(kept.law, Law::Pcma, "the call's own law, though second");
        assert_eq!(kept.telephone_event, Some(101));
        let answer = describe(
            1,
            2,
            "127.0.0.1".parse().unwrap(),
            20000,
            Some((&o, &kept)),
            OfferSrtp::No,
        );
        assert!(
            answer.contains("m=audio 20000 RTP/AVP 8 101\r\n"),
            "{answer}"
        );
        let only_mu = parse_offer(SIPP).unwrap();
        assert_eq!(
            only_mu.negotiate_keeping(Law::Pcma, &PLAIN, None),
            Err(SdpError::NoCommonCodec)
        );
    }

    const SIPP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-11,16\r\n";

    #[test]
    fn a_sipp_offer_gets_pcmu_and_telephone_event() {
        let o = parse_offer(SIPP).unwrap();
        let a = o.negotiate(&PLAIN).unwrap();
        assert_eq!(
            a,
            Agreed {
                law: Law::Pcmu,
                telephone_event: Some(101),
                remote: ("127.0.0.1".parse().unwrap(), 6000),
                direction: Direction::SendRecv,
                srtp: None,
            }
        );
        let answer = describe(
            1,
            1,
            "127.0.0.1".parse().unwrap(),
            20000,
            Some((&o, &a)),
            OfferSrtp::No,
        );
        assert!(
            answer.contains("m=audio 20000 RTP/AVP 0 101\r\n"),
            "{answer}"
        );
        assert!(answer.contains("a=rtpmap:101 telephone-event/8000\r\n"));
        // Our answer is itself a valid offer.
        assert_eq!(parse_offer(&answer).unwrap().port, 20000);
    }

    #[test]
    fn the_offerers_preference_wins_and_static_types_need_no_rtpmap() {
        let o =
            parse_offer("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 18 8 0\r\n").unwrap();
        assert_eq!(o.negotiate(&PLAIN).unwrap().law, Law::Pcma);
        assert_eq!(o.negotiate(&PLAIN).unwrap().telephone_event, None);
    }

    #[test]
    fn video_is_declined_and_hold_is_answered() {
        let sdp01 = "v=0\r\nc=IN IP4 192.0.2.5\r\nm=video 3227 RTP/AVP 31\r\nm=audio 49217 RTP/AVP 0 12\r\na=sendonly\r\n";
        let o = parse_offer(sdp01).unwrap();
        let a = o.negotiate(&PLAIN).unwrap();
        assert_eq!(a.direction, Direction::RecvOnly);
        let ans = describe(
            1,
            2,
            "127.0.0.1".parse().unwrap(),
            20002,
            Some((&o, &a)),
            OfferSrtp::No,
        );
        let m: Vec<&str> = ans.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(m, ["m=video 0 RTP/AVP 31", "m=audio 20002 RTP/AVP 0"]);
        let old_hold =
            parse_offer("v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n").unwrap();
        assert_eq!(
            old_hold.negotiate(&PLAIN).unwrap().direction,
            Direction::Inactive
        );
    }

    #[test]
    fn no_common_codec_no_audio_and_garbage() {
        let g729 = parse_offer(
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
        )
        .unwrap();
        assert_eq!(g729.negotiate(&PLAIN), Err(SdpError::NoCommonCodec));
        // PT 0 renamed to something else is not PCMU.
        let renamed = parse_offer(
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 opus/48000\r\n",
        )
        .unwrap();
        assert_eq!(renamed.negotiate(&PLAIN), Err(SdpError::NoCommonCodec));
        assert_eq!(
            parse_offer("v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 4000 RTP/AVP 31\r\n"),
            Err(SdpError::NoAudio)
        );
        assert!(
            parse_offer("v=0\r\nm=audio 4000 RTP/AVP 0\r\n").is_err(),
            "no address"
        );
        assert!(parse_offer("garbage").is_err());
        assert!(parse_offer("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 99999 RTP/AVP 0\r\n").is_err());
    }

    /// baresip's `mediaenc=srtp-mand` offer: RTP/SAVP with several suites, some we do not speak.
    const SAVP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10000 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:8AbZePWwsKhLGX3GlXA+yHYPQ3cgraer/9DkFJYCOPZZy3o9wC0NIbIFYZfyHw==\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:VAzLKvoE3jG9cdH/AZsl/ZqWNXrUzyM4Gw6chrFr\r\na=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:cJOJ7kxQjhFBp2fP6AYjs3vKw7CeBdWZCj0isbJv|2^31\r\n";

    #[test]
    fn an_srtp_offer_is_answered_with_the_first_suite_we_speak_and_our_own_key() {
        let o = parse_offer(SAVP).unwrap();
        assert!(o.is_secure());
        assert_eq!(o.crypto.len(), 2, "AES-256 is not spoken: {:?}", o.crypto);
        let a = o.negotiate(&PLAIN).unwrap();
        let k = a.srtp.unwrap();
        assert_eq!((k.tag, k.suite), (2, Suite::AesCm128HmacSha1_32));
        assert_eq!(
            STANDARD.encode(k.remote),
            "VAzLKvoE3jG9cdH/AZsl/ZqWNXrUzyM4Gw6chrFr"
        );
        assert_eq!(k.local, PLAIN.local);
        let answer = describe(
            1,
            1,
            "127.0.0.1".parse().unwrap(),
            20000,
            Some((&o, &a)),
            OfferSrtp::No,
        );
        assert!(
            answer.contains("m=audio 20000 RTP/SAVP 0 101\r\n"),
            "{answer}"
        );
        let ours = format!(
            "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{}\r\n",
            STANDARD.encode(PLAIN.local)
        );
        assert!(answer.contains(&ours), "{answer}");
        // The answer read back (as the phone reads it) gives our key.
        let back = parse_offer(&answer).unwrap();
        assert_eq!(back.crypto[0].key, PLAIN.local);
    }

    #[test]
    fn srtp_without_a_usable_key_or_plain_rtp_when_srtp_is_required_is_refused() {
        let only_256 = SAVP
            .lines()
            .filter(|l| !l.contains("AES_CM_128"))
            .collect::<Vec<_>>()
            .join("\r\n");
        let o = parse_offer(&only_256).unwrap();
        assert_eq!(o.negotiate(&PLAIN), Err(SdpError::NoCommonCrypto));
        let mki = SAVP
            .replace("|2^31", "|2^31|1:4")
            .replace("a=crypto:2", "a=x:2");
        let o = parse_offer(&mki).unwrap();
        assert_eq!(
            o.negotiate(&PLAIN),
            Err(SdpError::NoCommonCrypto),
            "an MKI is not spoken"
        );
        let required = Keying {
            required: true,
            ..PLAIN
        };
        assert_eq!(
            parse_offer(SIPP).unwrap().negotiate(&required),
            Err(SdpError::SrtpRequired)
        );
        assert!(parse_offer(SAVP).unwrap().negotiate(&required).is_ok());
        // Inside an SRTP call, a plain re-offer would send the audio in the clear: refused.
        let keys = parse_offer(SAVP).unwrap().negotiate(&PLAIN).unwrap().srtp;
        assert_eq!(
            parse_offer(SIPP)
                .unwrap()
                .negotiate_keeping(Law::Pcmu, &PLAIN, keys),
            Err(SdpError::SrtpRequired)
        );
        // A re-offer keeps our key: the phone need not re-key.
        let fresh = Keying {
            local: [9; MASTER_LEN],
            required: false,
        };
        let again = parse_offer(SAVP)
            .unwrap()
            .negotiate_keeping(Law::Pcmu, &fresh, keys)
            .unwrap();
        assert_eq!(again.srtp.unwrap().local, PLAIN.local);
    }

    #[test]
    fn our_offers_say_srtp_as_asked() {
        let ip = "127.0.0.1".parse().unwrap();
        let plain = describe(1, 1, ip, 20000, None, OfferSrtp::No);
        assert!(!plain.contains("crypto") && plain.contains("RTP/AVP 0 8 101"));
        let best = describe(
            1,
            1,
            ip,
            20000,
            None,
            OfferSrtp::BestEffort([3; MASTER_LEN]),
        );
        assert!(
            best.contains("RTP/AVP 0 8 101")
                && best.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:")
        );
        let req = describe(1, 1, ip, 20000, None, OfferSrtp::Required([3; MASTER_LEN]));
        let o = parse_offer(&req).unwrap();
        assert!(o.is_secure());
        assert_eq!(o.crypto[0].key, [3; MASTER_LEN]);
    }
}
