//! The media loop's sending: a chunk of a tick's packets, each from its own leg's socket, goes
//! to the kernel in one system call (io_uring on Linux). A `sendto` per packet costs a system
//! call entry and exit and a file lookup on top of the kernel's own work, and at 3,000 calls
//! that is 150,000 of them a second. Where io_uring is missing or refused (older kernels,
//! container seccomp profiles) each packet is sent with its own `send_to`, as before.

use std::net::{SocketAddr, UdpSocket};

use crate::media::rtp::MAX_PACKET;

/// Packets queued before they are sent, at most.
pub const CAPACITY: usize = 256;

pub struct Outbox {
    packets: Vec<Outgoing>,
    queued: usize,
    sent: u64,
    failed: u64,
    #[cfg(target_os = "linux")]
    ring: Option<io_uring::IoUring>,
}

struct Outgoing {
    buf: [u8; MAX_PACKET],
    #[cfg(target_os = "linux")]
    fd: std::os::fd::RawFd,
    #[cfg(target_os = "linux")]
    to: (libc::sockaddr_storage, libc::socklen_t),
    /// The `sendmsg` header pointing at `buf` (its length in `iov`) and `to` (set when the packet is queued: the
    /// packets never move, their vector is made once at full size).
    #[cfg(target_os = "linux")]
    iov: libc::iovec,
    #[cfg(target_os = "linux")]
    msg: libc::msghdr,
}

impl Outbox {
    /// Sends in batches where the system allows it; used by the thread that makes it (the
    /// kernel is told that one thread submits).
    pub fn for_this_thread() -> Outbox {
        let mut outbox = Outbox::one_by_one();
        #[cfg(target_os = "linux")]
        {
            outbox.ring = ring::new();
        }
        outbox
    }

    /// Sends each packet at once with its own system call.
    pub fn one_by_one() -> Outbox {
        Outbox {
            packets: (0..CAPACITY)
                .map(|_| Outgoing {
                    buf: [0; MAX_PACKET],
                    #[cfg(target_os = "linux")]
                    fd: -1,
                    // SAFETY: an all-zero sockaddr_storage is a valid (unspecified) address.
                    #[cfg(target_os = "linux")]
                    to: (unsafe { std::mem::zeroed() }, 0),
                    #[cfg(target_os = "linux")]
                    iov: libc::iovec {
                        iov_base: std::ptr::null_mut(),
                        iov_len: 0,
                    },
                    // SAFETY: an all-zero msghdr is valid (no name, no data).
                    #[cfg(target_os = "linux")]
                    msg: unsafe { std::mem::zeroed() },
                })
                .collect(),
            queued: 0,
            sent: 0,
            failed: 0,
            #[cfg(target_os = "linux")]
            ring: None,
        }
    }

    /// Whether packets are sent in batches.
    pub fn batched(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            self.ring.is_some()
        }
        #[cfg(not(target_os = "linux"))]
        {
            false
        }
    }

    /// The buffer the next packet is built in; [`Outbox::push`] sends it.
    pub fn buffer(&mut self) -> &mut [u8; MAX_PACKET] {
        if self.queued == CAPACITY {
            self.flush();
        }
        &mut self.packets[self.queued].buf
    }

    /// Sends the first `len` bytes of [`Outbox::buffer`] (called just before, which made room)
    /// from `socket` to `to`, now or at the next [`Outbox::flush`]. The socket must stay open
    /// until then.
    pub fn push(&mut self, socket: &UdpSocket, to: SocketAddr, len: usize) {
        let len = len.min(MAX_PACKET);
        #[cfg(target_os = "linux")]
        if self.ring.is_some() {
            use std::os::fd::AsRawFd;
            let p = &mut self.packets[self.queued];
            p.fd = socket.as_raw_fd();
            p.to = ring::sockaddr(to);
            p.iov = libc::iovec {
                iov_base: p.buf.as_mut_ptr().cast(),
                iov_len: len,
            };
            p.msg.msg_name = (&mut p.to.0 as *mut libc::sockaddr_storage).cast();
            p.msg.msg_namelen = p.to.1;
            p.msg.msg_iov = &mut p.iov;
            p.msg.msg_iovlen = 1;
            self.queued += 1;
            return;
        }
        match socket.send_to(&self.packets[self.queued].buf[..len], to) {
            Ok(_) => self.sent += 1,
            Err(_) => self.failed += 1,
        }
    }

    /// Sends everything queued.
    pub fn flush(&mut self) {
        if self.queued == 0 {
            return;
        }
        #[cfg(target_os = "linux")]
        if let Some(r) = self.ring.as_mut() {
            let queued = &self.packets[..self.queued];
            match ring::send_all(r, queued) {
                Ok((sent, failed)) => {
                    self.sent += sent;
                    self.failed += failed;
                }
                Err(e) => {
                    // Which of them left is unknown: they count as lost, and from now on
                    // each packet is sent on its own.
                    tracing::warn!("media: batched sending failed ({e}); sending one by one");
                    self.failed += self.queued as u64;
                    self.ring = None;
                }
            }
        }
        self.queued = 0;
    }

    /// Packets sent and packets the kernel refused since the last call.
    pub fn take_counts(&mut self) -> (u64, u64) {
        (
            std::mem::take(&mut self.sent),
            std::mem::take(&mut self.failed),
        )
    }
}

#[cfg(target_os = "linux")]
mod ring {
    use super::{CAPACITY, Outgoing};
    use io_uring::{IoUring, opcode, types};
    use std::mem::size_of;
    use std::net::SocketAddr;

    /// A ring for one thread's sends, or `None` where the kernel refuses io_uring.
    pub fn new() -> Option<IoUring> {
        let entries = CAPACITY as u32;
        // One thread submits, and completions are reaped right after it: the kernel need not
        // interrupt it for them.
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .build(entries)
            .or_else(|_| IoUring::new(entries));
        let ring = ring.and_then(|r| {
            // Kernels before 5.3 have no SENDMSG (and before 5.6 cannot say what they have).
            let mut probe = io_uring::Probe::new();
            r.submitter().register_probe(&mut probe)?;
            if probe.is_supported(opcode::SendMsg::CODE) {
                Ok(r)
            } else {
                Err(std::io::Error::other("no SENDMSG"))
            }
        });
        match ring {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::info!("media: io_uring unavailable ({e}); one system call per packet");
                None
            }
        }
    }

    pub fn sockaddr(to: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
        // SAFETY: an all-zero sockaddr_storage is a valid (unspecified) address.
        let mut s: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match to {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*a.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for any sockaddr_*.
                unsafe { std::ptr::write((&mut s as *mut libc::sockaddr_storage).cast(), sin) };
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above.
                unsafe { std::ptr::write((&mut s as *mut libc::sockaddr_storage).cast(), sin6) };
                size_of::<libc::sockaddr_in6>()
            }
        };
        (s, len as libc::socklen_t)
    }

    /// Sends every packet in one `io_uring_enter` and returns (sent, refused) once the kernel
    /// has finished with all of them: until then it reads their buffers and addresses, which
    /// `packets` borrows. UDP sends with MSG_DONTWAIT complete (or fail) at once.
    pub fn send_all(ring: &mut IoUring, packets: &[Outgoing]) -> std::io::Result<(u64, u64)> {
        {
            let mut sq = ring.submission();
            for p in packets {
                // SENDMSG rather than SEND with an address: the kernel reads the address of
                // a SEND only since 6.0, SENDMSG's since io_uring began.
                let entry = opcode::SendMsg::new(types::Fd(p.fd), &p.msg)
                    .flags(libc::MSG_DONTWAIT as u32)
                    .build();
                // SAFETY: the header, buffer and address live in `packets`, borrowed until
                // every completion is reaped below (or the ring is dropped on an error).
                if unsafe { sq.push(&entry) }.is_err() {
                    return Err(std::io::Error::other("submission queue full"));
                }
            }
        }
        let (mut sent, mut failed, mut done) = (0, 0, 0);
        while done < packets.len() {
            match ring.submit_and_wait(packets.len() - done) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            for cqe in ring.completion() {
                done += 1;
                if cqe.result() >= 0 {
                    sent += 1;
                } else {
                    failed += 1;
                }
            }
        }
        Ok((sent, failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receiver() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s
    }

    /// Each packet leaves from its own socket, reaches its own address whole, and a packet
    /// the kernel refuses is counted without holding up the others: in batches and one by one.
    fn sends_each_packet_from_its_socket(mut outbox: Outbox) {
        let from: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let to: Vec<UdpSocket> = (0..3).map(|_| receiver()).collect();
        // More packets than one batch holds, so a batch also goes out on its own.
        let rounds = CAPACITY / 3 + 2;
        for round in 0..rounds {
            for (i, (f, t)) in from.iter().zip(&to).enumerate() {
                let buf = outbox.buffer();
                let n = 20 + i;
                buf[..n].fill(round as u8);
                outbox.push(f, t.local_addr().unwrap(), n);
            }
            // An IPv4 socket cannot send to an IPv6 address: refused by the kernel.
            outbox.buffer()[..4].fill(9);
            outbox.push(&from[0], "[::1]:9".parse().unwrap(), 4);
        }
        outbox.flush();
        assert_eq!(outbox.take_counts(), ((rounds * 3) as u64, rounds as u64));
        assert_eq!(outbox.take_counts(), (0, 0), "counts are taken once");
        for (i, (f, t)) in from.iter().zip(&to).enumerate() {
            let mut buf = [0u8; 64];
            for round in 0..rounds {
                let (n, src) = t.recv_from(&mut buf).unwrap();
                assert_eq!(src, f.local_addr().unwrap());
                assert_eq!(&buf[..n], &vec![round as u8; 20 + i][..], "in order, whole");
            }
        }
    }

    #[test]
    fn batched_sends_reach_each_far_end_from_its_own_port() {
        let outbox = Outbox::for_this_thread();
        #[cfg(target_os = "linux")]
        if !outbox.batched() {
            eprintln!("io_uring unavailable here: checking the one-by-one sending instead");
        }
        sends_each_packet_from_its_socket(outbox);
    }

    #[test]
    fn one_by_one_sends_reach_each_far_end_from_its_own_port() {
        let outbox = Outbox::one_by_one();
        assert!(!outbox.batched());
        sends_each_packet_from_its_socket(outbox);
    }
}
