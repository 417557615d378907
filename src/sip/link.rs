//! Which transport a message came over: plain data, so the pure cores (the switch, the
//! registrar) can name it without the sockets of `transport.rs`.

/// How a message reached us, and so how its answers leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    Udp,
    /// A TCP connection, by its number.
    Tcp(u64),
    /// A TLS connection (SIP over TLS, `sips:`), by its number.
    Tls(u64),
}

impl Link {
    pub fn is_reliable(self) -> bool {
        matches!(self, Link::Tcp(_) | Link::Tls(_))
    }
    /// The transport as a Via header names it.
    pub fn name(self) -> &'static str {
        match self {
            Link::Udp => "UDP",
            Link::Tcp(_) => "TCP",
            Link::Tls(_) => "TLS",
        }
    }
}
