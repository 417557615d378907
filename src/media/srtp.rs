//! SRTP (RFC 3711) for one direction of one leg: AES counter mode over the payload and an
//! HMAC-SHA1 tag over the packet, with the session keys derived from an SDES master key
//! (RFC 4568). Pure: bytes in, bytes out; the media loop keeps one context for what it sends
//! and one for what it receives.
//!
//! Only the suites phones actually use are known: `AES_CM_128_HMAC_SHA1_80` and `_32`. The
//! key derivation rate is 0 and no MKI is used (what every SDES phone sends).

use aes::Aes128;
use aes::cipher::{KeyInit, KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha1::Sha1;

type AesCtr = ctr::Ctr128BE<Aes128>;

/// Master key and salt, as SDES carries them: 16 + 14 bytes.
pub const MASTER_LEN: usize = 30;

/// The crypto suites hotline speaks (RFC 4568 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl Suite {
    /// The suite named in an `a=crypto` line; `None` for those we do not speak.
    pub fn from_name(name: &str) -> Option<Suite> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(Suite::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Suite::AesCm128HmacSha1_32),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// Bytes of authentication tag after each packet.
    pub fn tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }
}

/// How far back (in packets) a late packet is still taken; older ones, and any packet seen
/// before, are refused (replay protection, RFC 3711 §3.3.2).
const REPLAY_WINDOW: u64 = 64;

/// One direction's SRTP context.
pub struct Srtp {
    suite: Suite,
    cipher: Aes128,
    salt: [u8; 14],
    /// The HMAC already keyed: each packet's tag starts from a clone of it.
    auth: Hmac<Sha1>,
    /// Rollover counter and highest sequence number (sender: last sent; receiver: highest
    /// authenticated).
    roc: u32,
    last: Option<u16>,
    /// Receiver: the highest index taken, and which of the `REPLAY_WINDOW` before it were.
    highest: u64,
    seen: u64,
}

/// The session key for `label` (0 encryption, 1 authentication, 2 salt), RFC 3711 §4.3.1 with
/// a key derivation rate of 0: AES-CM under the master key, from the master salt with the
/// label in its 7th byte from the end.
fn derive(master_key: &[u8], master_salt: &[u8], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(master_salt);
    iv[7] ^= label;
    out.fill(0);
    let mut ks = AesCtr::new(master_key.into(), (&iv).into());
    ks.apply_keystream(out);
}

impl Srtp {
    /// A context for `master` (key then salt, as SDES sends them).
    pub fn new(suite: Suite, master: &[u8; MASTER_LEN]) -> Srtp {
        let (key, salt) = master.split_at(16);
        let mut k_e = [0u8; 16];
        let mut k_a = [0u8; 20];
        let mut k_s = [0u8; 14];
        derive(key, salt, 0, &mut k_e);
        derive(key, salt, 1, &mut k_a);
        derive(key, salt, 2, &mut k_s);
        let auth = <Hmac<Sha1> as Mac>::new_from_slice(&k_a).expect("HMAC takes any key length");
        Srtp {
            suite,
            cipher: Aes128::new((&k_e).into()),
            salt: k_s,
            auth,
            roc: 0,
            last: None,
            highest: 0,
            seen: 0,
        }
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Encrypts the RTP packet in `buf[..len]` in place and appends its tag; returns the new
    /// length, or `None` when `buf` has no room or the packet is not RTP.
    pub fn protect(&mut self, buf: &mut [u8], len: usize) -> Option<usize> {
        let tag = self.suite.tag_len();
        if len + tag > buf.len() {
            return None;
        }
        let header = header_len(&buf[..len])?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        if let Some(last) = self.last
            && seq < last
            && last - seq > 0x8000
        {
            self.roc = self.roc.wrapping_add(1);
        }
        self.last = Some(seq);
        let index = (u64::from(self.roc) << 16) | u64::from(seq);
        let ssrc = [buf[8], buf[9], buf[10], buf[11]];
        self.keystream(ssrc, index, &mut buf[header..len]);
        let mut mac = self.auth.clone();
        mac.update(&buf[..len]);
        mac.update(&self.roc.to_be_bytes());
        let full = mac.finalize().into_bytes();
        buf[len..len + tag].copy_from_slice(&full[..tag]);
        Some(len + tag)
    }

    /// Checks and decrypts the SRTP packet in `buf` in place; returns the length of the plain
    /// RTP packet, or `None` for a packet that fails authentication, is a replay, or is not
    /// SRTP at all (nothing about the context changes then).
    pub fn unprotect(&mut self, buf: &mut [u8]) -> Option<usize> {
        let tag = self.suite.tag_len();
        let len = buf.len().checked_sub(tag)?;
        let header = header_len(&buf[..len])?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let roc = self.estimate_roc(seq);
        let index = (u64::from(roc) << 16) | u64::from(seq);
        if self.is_replay(index) {
            return None;
        }
        let mut mac = self.auth.clone();
        mac.update(&buf[..len]);
        mac.update(&roc.to_be_bytes());
        mac.verify_truncated_left(&buf[len..]).ok()?;
        let ssrc = [buf[8], buf[9], buf[10], buf[11]];
        self.keystream(ssrc, index, &mut buf[header..len]);
        self.taken(roc, seq, index);
        Some(len)
    }

    /// RFC 3711 §3.3.1: the rollover counter a received sequence number most likely belongs to.
    fn estimate_roc(&self, seq: u16) -> u32 {
        let Some(last) = self.last else {
            return self.roc;
        };
        if last < 0x8000 {
            if seq > last && seq - last > 0x8000 {
                self.roc.wrapping_sub(1)
            } else {
                self.roc
            }
        } else if last - 0x8000 > seq {
            self.roc.wrapping_add(1)
        } else {
            self.roc
        }
    }

    fn is_replay(&self, index: u64) -> bool {
        if self.last.is_none() || index > self.highest {
            return false;
        }
        let behind = self.highest - index;
        behind >= REPLAY_WINDOW || self.seen & (1 << behind) != 0
    }

    fn taken(&mut self, roc: u32, seq: u16, index: u64) {
        if self.last.is_none() || index > self.highest {
            let ahead = if self.last.is_none() {
                REPLAY_WINDOW
            } else {
                index - self.highest
            };
            self.seen = if ahead >= REPLAY_WINDOW {
                0
            } else {
                self.seen << ahead
            };
            self.seen |= 1;
            self.highest = index;
            self.roc = roc;
            self.last = Some(seq);
        } else {
            self.seen |= 1 << (self.highest - index);
        }
    }

    /// XORs the keystream for packet `index` of `ssrc` into `data` (RFC 3711 §4.1.1).
    fn keystream(&self, ssrc: [u8; 4], index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        for (i, b) in ssrc.iter().enumerate() {
            iv[4 + i] ^= b;
        }
        let index = index.to_be_bytes();
        for i in 0..6 {
            iv[8 + i] ^= index[2 + i];
        }
        let core = <ctr::CtrCore<Aes128, ctr::flavors::Ctr128BE> as ctr::cipher::InnerIvInit>::inner_iv_init(
            self.cipher.clone(),
            (&iv).into(),
        );
        let mut ks = AesCtr::from_core(core);
        ks.apply_keystream(data);
    }
}

/// The length of an RTP packet's header (fixed part, CSRCs, extension); `None` if it is not
/// RTP version 2 or is shorter than its header says.
fn header_len(p: &[u8]) -> Option<usize> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    let mut n = 12 + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let words = p.get(n + 2..n + 4)?;
        n += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    (n <= p.len()).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 3711 Appendix B.3.
    #[test]
    fn session_keys_are_derived_as_the_rfc_lists_them() {
        let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let mut k_e = [0u8; 16];
        let mut k_a = [0u8; 20];
        let mut k_s = [0u8; 14];
        derive(&key, &salt, 0, &mut k_e);
        derive(&key, &salt, 1, &mut k_a);
        derive(&key, &salt, 2, &mut k_s);
        assert_eq!(k_e.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        assert_eq!(
            k_a.to_vec(),
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
        assert_eq!(k_s.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    }

    /// RFC 3711 Appendix B.2: the keystream for SSRC 0, index 0.
    #[test]
    fn the_keystream_is_the_rfcs() {
        let session_key: [u8; 16] = hex("2B7E151628AED2A6ABF7158809CF4F3C").try_into().unwrap();
        let mut s = Srtp::new(Suite::AesCm128HmacSha1_80, &[0; MASTER_LEN]);
        s.cipher = Aes128::new((&session_key).into());
        s.salt = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap();
        let mut data = [0u8; 32];
        s.keystream([0; 4], 0, &mut data);
        assert_eq!(
            data.to_vec(),
            hex("E03EAD0935C95E80E166B16DD92B4EB4D23513162B02D0F72A43A2FE4A5F97AB")
        );
    }

    /// A frame protected by another implementation (Python's `cryptography`, from RFC 3711
    /// itself): master key and salt all 0x5a, SSRC 0x11223344, sequence 1, 42 bytes of 0xd5.
    #[test]
    fn a_packet_protected_elsewhere_is_read() {
        let mut p = hex(
            "80000001000000A011223344598C653A66E29081EDD143CB359B492AC2287582E667E46F3938C510A74E1A580466CC53A81B0F105D726FF518FB3FFC0CD5AC58",
        );
        let mut rx = Srtp::new(Suite::AesCm128HmacSha1_80, &[0x5a; MASTER_LEN]);
        let n = rx.unprotect(&mut p).expect("it authenticates");
        assert_eq!(n, 54);
        assert!(p[12..54].iter().all(|&b| b == 0xd5));
    }

    fn packet(seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0x12, 0x34, 0x56, 0x78];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn protected(tx: &mut Srtp, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut buf = packet(seq, payload);
        let len = buf.len();
        buf.resize(len + 16, 0);
        let n = tx.protect(&mut buf, len).unwrap();
        buf.truncate(n);
        buf
    }

    fn master(b: u8) -> [u8; MASTER_LEN] {
        let mut m = [0u8; MASTER_LEN];
        for (i, x) in m.iter_mut().enumerate() {
            *x = b.wrapping_add(i as u8);
        }
        m
    }

    #[test]
    fn what_one_side_protects_the_other_reads_and_nobody_else_does() {
        for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
            let mut tx = Srtp::new(suite, &master(1));
            let mut rx = Srtp::new(suite, &master(1));
            let mut stranger = Srtp::new(suite, &master(2));
            let voice = [0x55u8; 160];
            let mut p = protected(&mut tx, 7, &voice);
            assert_eq!(p.len(), 12 + 160 + suite.tag_len());
            assert_ne!(&p[12..172], &voice[..], "the payload is encrypted");
            assert_eq!(&p[..12], &packet(7, &[])[..], "the header is not");
            assert_eq!(stranger.unprotect(&mut p.clone()), None);
            let n = rx.unprotect(&mut p).unwrap();
            assert_eq!(&p[..n], &packet(7, &voice)[..]);
        }
    }

    #[test]
    fn a_changed_byte_a_replay_and_a_stale_packet_are_refused() {
        let mut tx = Srtp::new(Suite::AesCm128HmacSha1_80, &master(9));
        let mut rx = Srtp::new(Suite::AesCm128HmacSha1_80, &master(9));
        let packets: Vec<Vec<u8>> = (0..100).map(|s| protected(&mut tx, s, b"hello")).collect();
        let mut tampered = packets[0].clone();
        tampered[13] ^= 1;
        assert_eq!(rx.unprotect(&mut tampered), None);
        assert!(rx.unprotect(&mut packets[0].clone()).is_some());
        assert_eq!(rx.unprotect(&mut packets[0].clone()), None, "replay");
        assert!(rx.unprotect(&mut packets[99].clone()).is_some());
        // Late but within the window: taken once.
        assert!(rx.unprotect(&mut packets[50].clone()).is_some());
        assert_eq!(rx.unprotect(&mut packets[50].clone()), None);
        // Further back than the window: refused.
        assert_eq!(rx.unprotect(&mut packets[10].clone()), None);
    }

    #[test]
    fn the_rollover_counter_follows_a_wrapping_sequence_number() {
        let mut tx = Srtp::new(Suite::AesCm128HmacSha1_80, &master(3));
        let mut rx = Srtp::new(Suite::AesCm128HmacSha1_80, &master(3));
        // Through the wrap, with one packet in eight lost (the kernel's filter drops audio).
        let mut seq = 65_000u16;
        for _ in 0..2_000 {
            let mut p = protected(&mut tx, seq, b"voice");
            if !seq.is_multiple_of(8) {
                let n = rx.unprotect(&mut p).expect("every packet is read");
                assert_eq!(&p[12..n], b"voice");
            }
            seq = seq.wrapping_add(1);
        }
        assert_eq!(tx.roc, 1);
        assert_eq!(rx.roc, 1);
    }

    #[test]
    fn short_and_non_rtp_packets_are_refused_without_panicking() {
        let mut rx = Srtp::new(Suite::AesCm128HmacSha1_80, &master(4));
        for len in 0..40 {
            let mut junk = vec![0x80u8; len];
            assert_eq!(rx.unprotect(&mut junk), None);
            let mut junk = vec![0x9fu8; len];
            assert_eq!(rx.unprotect(&mut junk), None);
        }
        let mut tx = Srtp::new(Suite::AesCm128HmacSha1_80, &master(4));
        let mut small = [0u8; 20];
        small[0] = 0x80;
        assert_eq!(tx.protect(&mut small, 15), None, "no room for the tag");
    }
}
