//! The two system calls that make one media tick cheap on Linux: `poll` over every call's RTP
//! socket at once (which of them has something to read), and `recvmmsg` (everything queued on
//! one socket in one call). Without them each call costs a `recvfrom` that finds nothing on
//! every tick. Elsewhere, plain non-blocking reads do the same work.

use std::net::{SocketAddr, UdpSocket};

use crate::media::rtp::MAX_PACKET;

/// Packets taken from one socket per tick at most.
pub const BATCH: usize = 8;

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

    /// Which sockets have something to read, in one system call.
    #[derive(Default)]
    pub struct Poller {
        fds: Vec<libc::pollfd>,
        ready: Vec<bool>,
    }

    impl Poller {
        /// `result[i]` says whether the i-th socket is readable.
        pub fn poll<'a>(&mut self, sockets: impl Iterator<Item = &'a UdpSocket>) -> &[bool] {
            self.fds.clear();
            self.fds.extend(sockets.map(|s| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }));
            self.ready.clear();
            self.ready.resize(self.fds.len(), false);
            readable(&mut self.fds, &mut self.ready);
            &self.ready
        }
    }

    fn readable(fds: &mut [libc::pollfd], ready: &mut [bool]) {
        if fds.is_empty() {
            return;
        }
        // SAFETY: `fds` is a valid, initialised slice of pollfd for the duration of the call;
        // a zero timeout never blocks.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        if n <= 0 {
            return;
        }
        for (r, fd) in ready.iter_mut().zip(fds.iter()) {
            *r = fd.revents & (libc::POLLIN | libc::POLLERR) != 0;
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

    /// Without poll: every socket is read (and a read finds nothing when it is empty).
    #[derive(Default)]
    pub struct Poller {
        ready: Vec<bool>,
    }

    impl Poller {
        pub fn poll<'a>(&mut self, sockets: impl Iterator<Item = &'a UdpSocket>) -> &[bool] {
            self.ready.clear();
            self.ready.extend(sockets.map(|_| true));
            &self.ready
        }
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

pub use imp::{Poller, receive};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_finds_the_sockets_with_data_and_one_call_reads_them_all() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..3u8 {
            sender.send_to(&[i; 20], b.local_addr().unwrap()).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut poller = Poller::default();
        assert_eq!(poller.poll([&a, &b].into_iter()), &[false, true]);
        let mut batch = Batch::default();
        receive(&b, &mut batch);
        assert_eq!(batch.len(), 3);
        let (bytes, from) = batch.get(2).unwrap();
        assert_eq!(bytes, &[2u8; 20]);
        assert_eq!(from, sender.local_addr().unwrap());
        receive(&b, &mut batch);
        assert_eq!(batch.len(), 0);
    }
}
