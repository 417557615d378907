//! SDP offer/answer (RFC 3264) for one audio stream: G.711 (PCMU or PCMA) with RFC 4733
//! telephone-event. Anything else in an offer is declined, never an error.

use std::fmt::Write;
use std::net::IpAddr;

use crate::media::g711::Law;

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
}

/// What both ends agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    pub law: Law,
    pub telephone_event: Option<u8>,
    pub remote: (IpAddr, u16),
    /// Our direction.
    pub direction: Direction,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("no audio stream in the offer")]
    NoAudio,
    #[error("no common codec (PCMU or PCMA)")]
    NoCommonCodec,
    #[error("malformed SDP: {0}")]
    Malformed(&'static str),
}

pub fn parse_offer(body: &str) -> Result<Offer, SdpError> {
    let mut session_addr: Option<IpAddr> = None;
    let mut media: Vec<String> = Vec::new();
    let mut audio: Option<(usize, u16, Vec<u8>)> = None;
    let mut audio_addr = None;
    let mut rtpmap = Vec::new();
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
                    && proto.is_some_and(|p| p.starts_with("RTP/AVP"))
                {
                    let port: u16 = port
                        .and_then(|p| p.split('/').next()?.parse().ok())
                        .ok_or(SdpError::Malformed("m= port"))?;
                    let formats = f.filter_map(|p| p.parse().ok()).collect();
                    audio = Some((media.len() - 1, port, formats));
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

    /// Chooses the offerer's first G.711 law, and telephone-event at 8 kHz if offered.
    pub fn negotiate(&self) -> Result<Agreed, SdpError> {
        let law = self.laws().next().ok_or(SdpError::NoCommonCodec)?;
        Ok(self.agree(law))
    }

    /// For a new offer inside a call (re-INVITE): the law the call already uses, which must be
    /// among those offered; a call does not change codec midway.
    pub fn negotiate_keeping(&self, law: Law) -> Result<Agreed, SdpError> {
        if self.laws().any(|l| l == law) {
            Ok(self.agree(law))
        } else {
            Err(SdpError::NoCommonCodec)
        }
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

    fn agree(&self, law: Law) -> Agreed {
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
        Agreed {
            law,
            telephone_event,
            remote: (self.address, self.port),
            direction,
        }
    }
}

/// A new offer inside a call (re-INVITE), answered keeping the call's law once it has one.
pub fn renegotiate(body: &str, law: Option<Law>) -> Result<(Offer, Agreed), SdpError> {
    let offer = parse_offer(body)?;
    let agreed = match law {
        Some(law) => offer.negotiate_keeping(law)?,
        None => offer.negotiate()?,
    };
    Ok((offer, agreed))
}

/// Our SDP: an offer (no `offer` given) or the answer to one, sending from `address:port`.
pub fn describe(
    session_id: u64,
    version: u64,
    address: IpAddr,
    port: u16,
    agreed: Option<(&Offer, &Agreed)>,
) -> String {
    let ip = if address.is_ipv4() { "IP4" } else { "IP6" };
    let mut s = format!(
        "v=0\r\no=hotline {session_id} {version} IN {ip} {address}\r\ns=hotline\r\nc=IN {ip} {address}\r\nt=0 0\r\n"
    );
    let audio = |s: &mut String, law: Law, te: Option<u8>, dir: Direction| {
        let pt = law.payload_type();
        let _ = write!(s, "m=audio {port} RTP/AVP {pt}");
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
            let _ = write!(
                s,
                "m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
            );
        }
        Some((offer, a)) => {
            // One m-line per offered one, in order; the others are declined with port 0.
            for (i, m) in offer.media.iter().enumerate() {
                if i == offer.audio_index {
                    audio(&mut s, a.law, a.telephone_event, a.direction);
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

    #[test]
    fn a_new_offer_in_a_call_keeps_its_codec_or_is_refused() {
        let both = SIPP.replace("RTP/AVP 0 101", "RTP/AVP 0 8 101").replace(
            "a=rtpmap:0 PCMU/8000\r\n",
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n",
        );
        let o = parse_offer(&both).unwrap();
        assert_eq!(o.negotiate().unwrap().law, Law::Pcmu, "the offerer's first");
        let kept = o.negotiate_keeping(Law::Pcma).unwrap();
        assert_eq!(kept.law, Law::Pcma, "the call's own law, though second");
        assert_eq!(kept.telephone_event, Some(101));
        let answer = describe(1, 2, "127.0.0.1".parse().unwrap(), 20000, Some((&o, &kept)));
        assert!(
            answer.contains("m=audio 20000 RTP/AVP 8 101\r\n"),
            "{answer}"
        );
        let only_mu = parse_offer(SIPP).unwrap();
        assert_eq!(
            only_mu.negotiate_keeping(Law::Pcma),
            Err(SdpError::NoCommonCodec)
        );
    }

    const SIPP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-11,16\r\n";

    #[test]
    fn a_sipp_offer_gets_pcmu_and_telephone_event() {
        let o = parse_offer(SIPP).unwrap();
        let a = o.negotiate().unwrap();
        assert_eq!(
            a,
            Agreed {
                law: Law::Pcmu,
                telephone_event: Some(101),
                remote: ("127.0.0.1".parse().unwrap(), 6000),
                direction: Direction::SendRecv
            }
        );
        let answer = describe(1, 1, "127.0.0.1".parse().unwrap(), 20000, Some((&o, &a)));
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
        assert_eq!(o.negotiate().unwrap().law, Law::Pcma);
        assert_eq!(o.negotiate().unwrap().telephone_event, None);
    }

    #[test]
    fn video_is_declined_and_hold_is_answered() {
        let sdp01 = "v=0\r\nc=IN IP4 192.0.2.5\r\nm=video 3227 RTP/AVP 31\r\nm=audio 49217 RTP/AVP 0 12\r\na=sendonly\r\n";
        let o = parse_offer(sdp01).unwrap();
        let a = o.negotiate().unwrap();
        assert_eq!(a.direction, Direction::RecvOnly);
        let ans = describe(1, 2, "127.0.0.1".parse().unwrap(), 20002, Some((&o, &a)));
        let m: Vec<&str> = ans.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(m, ["m=video 0 RTP/AVP 31", "m=audio 20002 RTP/AVP 0"]);
        let old_hold =
            parse_offer("v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n").unwrap();
        assert_eq!(old_hold.negotiate().unwrap().direction, Direction::Inactive);
    }

    #[test]
    fn no_common_codec_no_audio_and_garbage() {
        let g729 = parse_offer(
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
        )
        .unwrap();
        assert_eq!(g729.negotiate(), Err(SdpError::NoCommonCodec));
        // PT 0 renamed to something else is not PCMU.
        let renamed = parse_offer(
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 opus/48000\r\n",
        )
        .unwrap();
        assert_eq!(renamed.negotiate(), Err(SdpError::NoCommonCodec));
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
}
