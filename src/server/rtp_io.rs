//! The system calls that make one media tick cheap on Linux: `epoll_wait` over every call's
//! RTP socket at once (which of them has something to read, without looking at the others),
//! `recvmmsg` (everything queued on one socket in one call), and a socket filter that has the
//! kernel drop the audio no one uses before it is queued. Without them each call costs a
//! `recvfrom` that finds nothing on every tick. Elsewhere, plain non-blocking reads do the
//! same work and every packet is read.

use std::net::{SocketAddr, UdpSocket};

use crate::media::rtp::MAX_PACKET;

/// Readable sockets reported by one wait at most.
pub const READY_AT_ONCE: usize = 1024;

/// Packets taken from one socket per tick at most.
pub const BATCH: usize = 8;

/// Of the audio packets nobody uses, the kernel still queues one in this many (a power of two).
pub const SAMPLED: u16 = 16;

/// Reusable buffers for one batch of datagrams.
pub struct Batch {
    bufs: Vec<[u8; MAX_PACKET]>,
    lens: [usize; BATCH],
    from: [Option<SocketAddr>; BATCH],
    count: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            bufs: vec![[0u8; MAX_PACKET]; BATCH],
            lens: [0; BATCH],
            from: [None; BATCH],
            count: 0,
        }
    }
}

impl Batch {
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the read filled every buffer (so more may be waiting).
    pub fn is_full(&self) -> bool {
        self.count == BATCH
    }

    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.count {
            return None;
        }
        Some((&self.bufs[i][..self.lens[i]], self.from[i]?))
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use std::mem::{size_of, zeroed};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;

    /// The sockets with something to read, without looking at the others: an epoll set
    /// holding every leg's socket, each under its leg's key. Asking it costs the same with
    /// 10 calls or 3,000, so the media loop can wait on it between ticks and a key press
    /// reaches its call without waiting for the next tick. Edge-triggered: a socket is
    /// reported when something new arrives on it, not again on every wait until it is read
    /// empty (which would cost the kernel a second look at each of 3,000 sockets a tick); a
    /// socket left with packets on it is handed back with [`Poller::again`].
    pub struct Poller {
        ep: Option<std::os::fd::OwnedFd>,
        events: Vec<libc::epoll_event>,
        ready: Vec<u64>,
        again: Vec<u64>,
    }

    impl Default for Poller {
        fn default() -> Self {
            use std::os::fd::FromRawFd;
            // SAFETY: epoll_create1 has no memory arguments; a valid result is a new fd we own.
            let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            Poller {
                // SAFETY: `fd` was just returned by epoll_create1 and nothing else owns it.
                ep: (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }),
                events: vec![libc::epoll_event { events: 0, u64: 0 }; READY_AT_ONCE],
                ready: Vec::new(),
                again: Vec::new(),
            }
        }
    }

    impl Poller {
        /// Watches `socket`, reported as `key` when readable.
        pub fn add(&mut self, socket: &UdpSocket, key: u64) {
            self.ctl(libc::EPOLL_CTL_ADD, socket, key);
        }

        /// Stops watching `socket` (before the leg goes: another holder may keep it open).
        pub fn remove(&mut self, socket: &UdpSocket) {
            self.ctl(libc::EPOLL_CTL_DEL, socket, 0);
        }

        fn ctl(&mut self, op: libc::c_int, socket: &UdpSocket, key: u64) {
            let Some(ep) = &self.ep else { return };
            let mut ev = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                u64: key,
            };
            // SAFETY: both fds are open for the call; `ev` is a valid epoll_event.
            unsafe { libc::epoll_ctl(ep.as_raw_fd(), op, socket.as_raw_fd(), &mut ev) };
        }

        /// Reports `key` on the next wait: its socket was not read empty.
        pub fn again(&mut self, key: u64) {
            self.again.push(key);
        }

        /// The keys of the readable sockets, waiting up to `timeout_ms` for the first one
        /// (0: just look; not at all when a socket was handed back), and whether there may be
        /// more than one wait reports.
        pub fn wait(&mut self, timeout_ms: i32) -> (&[u64], bool) {
            self.ready.clear();
            self.ready.append(&mut self.again);
            let timeout_ms = if self.ready.is_empty() { timeout_ms } else { 0 };
            let Some(ep) = &self.ep else {
                return (&self.ready, false);
            };
            // SAFETY: `events` is a live buffer of `len` epoll_events for the call.
            let n = unsafe {
                libc::epoll_wait(
                    ep.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    self.events.len() as libc::c_int,
                    timeout_ms,
                )
            };
            let n = n.max(0) as usize;
            self.ready.extend(self.events.iter().take(n).map(|e| e.u64));
            (&self.ready, n == self.events.len())
        }
    }

    /// Reads what is queued on `socket`, up to `BATCH` datagrams, in one call.
    pub fn receive(socket: &UdpSocket, batch: &mut Batch) {
        batch.count = 0;
        // SAFETY: zeroed sockaddr_storage/iovec/mmsghdr are valid initial values.
        let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..BATCH {
            iov[i].iov_base = batch.bufs[i].as_mut_ptr().cast();
            iov[i].iov_len = MAX_PACKET;
            msgs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every mmsghdr points at a live buffer of MAX_PACKET bytes and a live
        // sockaddr_storage, all outliving the call; MSG_DONTWAIT never blocks.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            return;
        }
        let n = (n as usize).min(BATCH);
        for i in 0..n {
            batch.lens[i] = (msgs[i].msg_len as usize).min(MAX_PACKET);
            batch.from[i] = to_socket_addr(&addrs[i]);
        }
        batch.count = n;
    }

    /// From now on the kernel drops, before they are queued, the packets on `socket` that
    /// nobody will use: it keeps RFC 4733 events (payload type `events`) and one packet of
    /// every [`SAMPLED`] others by sequence number (so the far end's stream is still seen),
    /// and drops the rest of the audio. Returns whether the filter is in place.
    pub fn drop_unheard_audio(socket: &UdpSocket, events: Option<u8>) -> bool {
        use libc::{
            BPF_ABS, BPF_ALU, BPF_AND, BPF_B, BPF_H, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET,
        };
        // A UDP socket's filter sees the datagram from its UDP header (8 bytes).
        const RTP: u32 = 8;
        let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        };
        // 0x80 matches no 7-bit payload type: without events, only the sample is kept.
        let events = events.map_or(0x80, u32::from);
        let mut program = [
            op(BPF_LD | BPF_B | BPF_ABS, 0, 0, RTP + 1),
            op(BPF_ALU | BPF_AND | BPF_K, 0, 0, 0x7f),
            op(BPF_JMP | BPF_JEQ | BPF_K, 3, 0, events),
            op(BPF_LD | BPF_H | BPF_ABS, 0, 0, RTP + 2),
            op(BPF_ALU | BPF_AND | BPF_K, 0, 0, u32::from(SAMPLED) - 1),
            op(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
            op(BPF_RET | BPF_K, 0, 0, u32::MAX),
            op(BPF_RET | BPF_K, 0, 0, 0),
        ];
        let fprog = libc::sock_fprog {
            len: program.len() as libc::c_ushort,
            filter: program.as_mut_ptr(),
        };
        // `fprog` points at `program`, which outlives the call; the kernel copies both.
        set_option(socket, libc::SO_ATTACH_FILTER, &fprog)
    }

    /// Shrinks `socket`'s receive queue to the kernel's minimum (a packet or two; the rest is
    /// dropped as it comes), for a socket no one reads any more; whether it took.
    pub fn queue_almost_nothing(socket: &UdpSocket) -> bool {
        set_option(socket, libc::SO_RCVBUF, &0 as &libc::c_int)
    }

    /// Every packet on `socket` is queued again.
    pub fn keep_all_packets(socket: &UdpSocket) {
        // SO_DETACH_FILTER ignores its value.
        set_option(socket, libc::SO_DETACH_FILTER, &0 as &libc::c_int);
    }

    /// `setsockopt(SOL_SOCKET, name, value)`; whether it was accepted.
    fn set_option<T>(socket: &UdpSocket, name: libc::c_int, value: &T) -> bool {
        // SAFETY: `value` is a live `T` of the size given, read by the kernel during the call.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                name,
                (value as *const T).cast(),
                size_of::<T>() as libc::socklen_t,
            )
        };
        rc == 0
    }

    fn to_socket_addr(a: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match a.ss_family as libc::c_int {
            libc::AF_INET => {
                // SAFETY: the family says this storage holds a sockaddr_in.
                let sin: &libc::sockaddr_in = unsafe { &*(a as *const _ as *const _) };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says this storage holds a sockaddr_in6.
                let sin6: &libc::sockaddr_in6 = unsafe { &*(a as *const _ as *const _) };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    /// Without epoll: every socket is read (and a read finds nothing when it is empty).
    #[derive(Default)]
    pub struct Poller {
        keys: std::collections::BTreeSet<u64>,
        by_socket: std::collections::HashMap<SocketAddr, u64>,
        ready: Vec<u64>,
    }

    impl Poller {
        pub fn add(&mut self, socket: &UdpSocket, key: u64) {
            self.keys.insert(key);
            if let Ok(a) = socket.local_addr() {
                self.by_socket.insert(a, key);
            }
        }

        pub fn remove(&mut self, socket: &UdpSocket) {
            if let Some(k) = socket
                .local_addr()
                .ok()
                .and_then(|a| self.by_socket.remove(&a))
            {
                self.keys.remove(&k);
            }
        }

        /// Every socket is read on every wait anyway.
        pub fn again(&mut self, _key: u64) {}

        pub fn wait(&mut self, timeout_ms: i32) -> (&[u64], bool) {
            if timeout_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(timeout_ms as u64));
            }
            self.ready.clear();
            self.ready.extend(self.keys.iter().copied());
            (&self.ready, false)
        }
    }

    /// Without socket filters every packet is read.
    pub fn drop_unheard_audio(_socket: &UdpSocket, _events: Option<u8>) -> bool {
        false
    }

    pub fn keep_all_packets(_socket: &UdpSocket) {}

    pub fn queue_almost_nothing(_socket: &UdpSocket) -> bool {
        false
    }

    pub fn receive(socket: &UdpSocket, batch: &mut Batch) {
        batch.count = 0;
        while batch.count < BATCH {
            match socket.recv_from(&mut batch.bufs[batch.count]) {
                Ok((n, from)) => {
                    batch.lens[batch.count] = n;
                    batch.from[batch.count] = Some(from);
                    batch.count += 1;
                }
                Err(_) => break,
            }
        }
    }
}

pub use imp::{Poller, drop_unheard_audio, keep_all_packets, queue_almost_nothing, receive};

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-blocking loopback socket, as the media loop reads them.
    fn leg_socket() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    #[test]
    fn poll_finds_the_sockets_with_data_and_one_call_reads_them_all() {
        let a = leg_socket();
        let b = leg_socket();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..3u8 {
            sender.send_to(&[i; 20], b.local_addr().unwrap()).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut poller = Poller::default();
        poller.add(&a, 1);
        poller.add(&b, 2);
        assert_eq!(poller.wait(0).0, &[2]);
        let mut batch = Batch::default();
        receive(&b, &mut batch);
        assert_eq!(batch.len(), 3);
        let (bytes, from) = batch.get(2).unwrap();
        assert_eq!(bytes, &[2u8; 20]);
        assert_eq!(from, sender.local_addr().unwrap());
        receive(&b, &mut batch);
        assert_eq!(batch.len(), 0);
        assert!(poller.wait(0).0.is_empty(), "nothing left to read");
        sender.send_to(&[9; 20], a.local_addr().unwrap()).unwrap();
        assert_eq!(
            poller.wait(1000).0,
            &[1],
            "a wait wakes when a packet comes"
        );
        poller.remove(&a);
        sender.send_to(&[10; 20], a.local_addr().unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(
            poller.wait(0).0.is_empty(),
            "a removed socket is not watched"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_socket_not_read_empty_is_reported_again_only_when_handed_back_or_when_more_comes() {
        let s = leg_socket();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut poller = Poller::default();
        poller.add(&s, 7);
        for i in 0..(BATCH + 2) as u8 {
            sender.send_to(&[i; 12], s.local_addr().unwrap()).unwrap();
        }
        assert_eq!(poller.wait(1000).0, &[7]);
        let mut batch = Batch::default();
        receive(&s, &mut batch);
        assert!(batch.is_full(), "a full batch: more may wait");
        assert!(
            poller.wait(0).0.is_empty(),
            "reported once per arrival, not on every wait"
        );
        poller.again(7);
        assert_eq!(poller.wait(0).0, &[7], "handed back, it comes again");
        receive(&s, &mut batch);
        assert_eq!(batch.len(), 2, "the rest");
        assert!(!batch.is_full());
        sender.send_to(&[1; 12], s.local_addr().unwrap()).unwrap();
        assert_eq!(poller.wait(1000).0, &[7], "something new is reported");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_drops_audio_nobody_uses_but_keeps_key_presses_and_a_sample() {
        let s = leg_socket();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = s.local_addr().unwrap();
        let rtp = |pt: u8, seq: u16| {
            let mut p = vec![0x80, pt];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&[0; 8]);
            p.extend_from_slice(&[0xff; 160]);
            p
        };
        // What the media loop gets: (payload type, sequence) of each packet, in order.
        let received = |s: &UdpSocket| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let mut got = Vec::new();
            let mut batch = Batch::default();
            loop {
                receive(s, &mut batch);
                if batch.len() == 0 {
                    return got;
                }
                for i in 0..batch.len() {
                    let (b, _) = batch.get(i).unwrap();
                    got.push((b[1] & 0x7f, u16::from_be_bytes([b[2], b[3]])));
                }
            }
        };
        assert!(drop_unheard_audio(&s, Some(101)));
        for seq in 0..40u16 {
            sender.send_to(&rtp(0, seq), to).unwrap();
            if seq % 10 == 5 {
                // A key press, marker bit set on its first packet.
                sender.send_to(&rtp(101 | 0x80, 1000 + seq), to).unwrap();
            }
        }
        sender.send_to(&[0x80, 0], to).unwrap(); // too short to be RTP
        assert_eq!(
            received(&s),
            [
                (0, 0),
                (101, 1005),
                (101, 1015),
                (0, 16),
                (101, 1025),
                (0, 32),
                (101, 1035)
            ],
            "every event and one audio packet in {SAMPLED}"
        );
        let t = leg_socket();
        assert!(drop_unheard_audio(&t, None));
        for seq in 0..17u16 {
            sender
                .send_to(&rtp(101, seq), t.local_addr().unwrap())
                .unwrap();
        }
        assert_eq!(
            received(&t),
            [(101, 0), (101, 16)],
            "no events expected: sampled like audio"
        );
        keep_all_packets(&s);
        for seq in 0..3u16 {
            sender.send_to(&rtp(8, seq + 1), to).unwrap();
        }
        assert_eq!(received(&s), [(8, 1), (8, 2), (8, 3)], "the filter is gone");
    }
}
