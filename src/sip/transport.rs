//! SIP over UDP, TCP and TLS on tokio: the only file in `sip/` that does IO. Each datagram,
//! and each message framed out of a TCP or TLS stream, is parsed by `wire` and handed to the
//! signalling task as an `Inbound`; answers go back over the same link they came on.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::gate::{Gate, GateConfig, Verdict};
use super::wire::{self, Framed, Message, Reject};

pub use super::link::Link;

/// The TLS side: its address and the certificate it presents, which SIGHUP may replace
/// while connections made with the old one go on.
pub struct Tls {
    local: SocketAddr,
    config: Mutex<Arc<rustls::ServerConfig>>,
}

#[derive(Debug)]
pub struct Inbound {
    pub message: Result<Message, Reject>,
    pub source: SocketAddr,
    pub link: Link,
}

/// Where received messages go. Those that keep existing calls and our own legs going
/// (responses, ACK, CANCEL, BYE, anything inside a dialog) have their own queue, read first:
/// a flood of new requests can delay or lose only new requests.
#[derive(Clone)]
pub struct Inbox {
    urgent: mpsc::Sender<Inbound>,
    fresh: mpsc::Sender<Inbound>,
}

/// Why a message was not queued.
enum Dropped {
    Full,
    Closed,
}

/// The receiving ends of an `Inbox`.
pub struct InboxRx {
    pub urgent: mpsc::Receiver<Inbound>,
    pub fresh: mpsc::Receiver<Inbound>,
}

/// An inbox holding at most `INBOUND_QUEUE` messages on each queue.
pub fn inbox() -> (Inbox, InboxRx) {
    let (urgent, urgent_rx) = mpsc::channel(INBOUND_QUEUE);
    let (fresh, fresh_rx) = mpsc::channel(INBOUND_QUEUE);
    (
        Inbox { urgent, fresh },
        InboxRx {
            urgent: urgent_rx,
            fresh: fresh_rx,
        },
    )
}

impl Inbox {
    fn lane(&self, item: &Inbound) -> &mpsc::Sender<Inbound> {
        if is_urgent(&item.message) {
            &self.urgent
        } else {
            &self.fresh
        }
    }

    /// Queues without waiting; a full queue drops the message (the sender retransmits).
    fn try_send(&self, item: Inbound) -> Result<(), Dropped> {
        self.lane(&item).try_send(item).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Dropped::Full,
            mpsc::error::TrySendError::Closed(_) => Dropped::Closed,
        })
    }

    async fn send(&self, item: Inbound) -> Result<(), mpsc::error::SendError<Inbound>> {
        self.lane(&item).send(item).await
    }
}

/// Whether a message belongs to something already under way: a response, an ACK, CANCEL or
/// BYE, or a request inside a dialog (its To has a tag).
pub fn is_urgent(message: &Result<Message, Reject>) -> bool {
    let Ok(m) = message else { return false };
    match m.method() {
        None => true,
        Some("ACK" | "CANCEL" | "BYE") => true,
        Some(_) => m
            .get("To")
            .and_then(wire::parse_name_addr)
            .is_some_and(|n| n.param("tag").is_some()),
    }
}

/// Queued messages per TCP connection before its writer is considered stuck.
const TCP_QUEUE: usize = 256;
/// Inbound messages waiting for the signalling task, on each of the inbox's queues; beyond
/// this, datagrams are dropped (the sender retransmits) rather than memory growing.
pub const INBOUND_QUEUE: usize = 8192;
/// Open TCP connections at most, and from one address (an office's phones behind one NAT
/// address fit; one attacker does not take them all).
const MAX_TCP: usize = 1024;
const MAX_TCP_PER_ADDRESS: usize = 64;
/// A connection's first message, and any message once begun, must arrive within this.
const TCP_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with nothing read for this long is closed: longer than the longest
/// registration (3,600 s), so a phone's own connection outlives its binding.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3660);
/// When the table is full, the connection idle longest gives way to a new one, if it has
/// been idle this long.
const TCP_EVICTABLE: Duration = Duration::from_secs(60);

/// An open TCP connection: where its messages are queued, who it is, when it last spoke.
struct TcpConn {
    tx: mpsc::Sender<Arc<[u8]>>,
    ip: std::net::IpAddr,
    /// Milliseconds after the transport started that the connection last read a byte.
    last: Arc<AtomicU64>,
    close: Arc<tokio::sync::Notify>,
}

pub struct Transport {
    udp: Arc<UdpSocket>,
    local: SocketAddr,
    tcp: Mutex<HashMap<u64, TcpConn>>,
    started: Instant,
    next_conn: AtomicU64,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Datagrams dropped because the signalling queue was full.
    dropped: Arc<AtomicU64>,
    /// Per-address limits and scanners: judged before a message is read further.
    gate: Arc<Gated>,
    tls: Option<Tls>,
    /// Where connections we open deliver what they read, as accepted ones do.
    inbound: Inbox,
}

/// The gate with what it counts, shared by the UDP loop and the TCP connections.
pub struct Gated {
    gate: Mutex<Gate>,
    /// Messages dropped because their source was banned or a scanner.
    pub dropped: AtomicU64,
    /// Bans started.
    pub bans: AtomicU64,
}

impl Gated {
    /// Whether a message from `source` goes on; logs a ban once, when it starts.
    fn pass(&self, source: SocketAddr, message: Option<&Message>) -> bool {
        let now = Instant::now().into_std();
        let Ok(mut g) = self.gate.lock() else {
            return true;
        };
        let verdict = g.check(source.ip(), None, now);
        let verdict = match (verdict, message.and_then(|m| m.get("User-Agent"))) {
            (Verdict::Pass, Some(ua)) if g.is_scanner(ua) => {
                if g.ban(source.ip(), now) {
                    self.bans.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(source = %source.ip(), user_agent = ua, "SIP scanner banned");
                }
                Verdict::Scanner
            }
            (v, _) => v,
        };
        match verdict {
            Verdict::Pass => true,
            Verdict::Banned { now: started } => {
                if started {
                    self.bans.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(source = %source.ip(), "SIP source banned: too many messages");
                }
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            Verdict::Scanner => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    fn is_banned(&self, ip: std::net::IpAddr) -> bool {
        self.gate
            .lock()
            .is_ok_and(|g| g.is_banned(ip, Instant::now().into_std()))
    }

    /// Addresses banned now.
    pub fn banned(&self) -> usize {
        self.gate
            .lock()
            .map_or(0, |g| g.banned(Instant::now().into_std()))
    }
}

impl Transport {
    /// Binds UDP and TCP on `addr` (and TLS on `tls`'s address, with its certificate) and
    /// starts receiving into `inbound`.
    pub async fn bind(
        addr: SocketAddr,
        inbound: Inbox,
        gate: GateConfig,
        tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    ) -> io::Result<Arc<Transport>> {
        let udp = Arc::new(UdpSocket::bind(addr).await?);
        let local = udp.local_addr()?;
        let listener = TcpListener::bind(local).await?;
        let tls_listener = match &tls {
            Some((at, _)) => Some(TcpListener::bind(at).await?),
            None => None,
        };
        let tls = match (tls, &tls_listener) {
            (Some((_, config)), Some(l)) => Some(Tls {
                local: l.local_addr()?,
                config: Mutex::new(config),
            }),
            _ => None,
        };
        let t = Arc::new(Transport {
            udp: Arc::clone(&udp),
            local,
            tcp: Mutex::new(HashMap::new()),
            started: Instant::now(),
            next_conn: AtomicU64::new(1),
            tasks: Mutex::new(Vec::new()),
            dropped: Arc::new(AtomicU64::new(0)),
            gate: Arc::new(Gated {
                gate: Mutex::new(Gate::new(gate)),
                dropped: AtomicU64::new(0),
                bans: AtomicU64::new(0),
            }),
            tls,
            inbound: inbound.clone(),
        });
        let udp_task = tokio::spawn(udp_loop(
            udp,
            inbound.clone(),
            Arc::clone(&t.dropped),
            Arc::clone(&t.gate),
        ));
        let tcp_task = tokio::spawn(accept_loop(
            Arc::clone(&t),
            listener,
            inbound.clone(),
            false,
        ));
        if let Ok(mut tasks) = t.tasks.lock() {
            tasks.push(udp_task);
            tasks.push(tcp_task);
            if let Some(l) = tls_listener {
                tasks.push(tokio::spawn(accept_loop(Arc::clone(&t), l, inbound, true)));
            }
        }
        Ok(t)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Where SIP over TLS listens, if it does.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|t| t.local)
    }

    /// The port a request we send over `link` names in its Via and Contact.
    pub fn port_for(&self, link: Link) -> u16 {
        match (link, &self.tls) {
            (Link::Tls(_), Some(t)) => t.local.port(),
            _ => self.local.port(),
        }
    }

    /// From now on, new TLS connections get this certificate (SIGHUP); open ones keep theirs.
    pub fn set_tls_config(&self, config: Arc<rustls::ServerConfig>) {
        if let Some(t) = &self.tls
            && let Ok(mut c) = t.config.lock()
        {
            *c = config;
        }
    }

    fn tls_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        let t = self.tls.as_ref()?;
        t.config.lock().ok().map(|c| Arc::clone(&c))
    }

    fn millis(&self) -> u64 {
        self.started.elapsed().as_millis().min(u128::from(u64::MAX)) as u64
    }

    /// Takes a new connection into the table: refused when its address has too many; when
    /// the table is full, the connection idle longest (a minute at least) is closed for it.
    fn admit(
        &self,
        id: u64,
        peer: SocketAddr,
        tx: &mpsc::Sender<Arc<[u8]>>,
        last: &Arc<AtomicU64>,
        close: &Arc<tokio::sync::Notify>,
    ) -> bool {
        let Ok(mut m) = self.tcp.lock() else {
            return false;
        };
        if m.values().filter(|c| c.ip == peer.ip()).count() >= MAX_TCP_PER_ADDRESS {
            tracing::warn!(%peer, "too many TCP connections from this address: refused");
            return false;
        }
        if m.len() >= MAX_TCP {
            let now = self.millis();
            let idlest = m
                .iter()
                .map(|(id, c)| (now.saturating_sub(c.last.load(Ordering::Relaxed)), *id))
                .max();
            match idlest {
                Some((idle, victim)) if idle >= TCP_EVICTABLE.as_millis() as u64 => {
                    if let Some(c) = m.remove(&victim) {
                        tracing::info!(
                            idle_s = idle / 1000,
                            "TCP table full: closing the connection idle longest"
                        );
                        c.close.notify_one();
                    }
                }
                _ => {
                    tracing::warn!(%peer, "too many TCP connections: refused");
                    return false;
                }
            }
        }
        m.insert(
            id,
            TcpConn {
                tx: tx.clone(),
                ip: peer.ip(),
                last: Arc::clone(last),
                close: Arc::clone(close),
            },
        );
        true
    }

    /// The gate's counts: messages dropped, bans started, addresses banned now.
    pub fn gate(&self) -> &Gated {
        &self.gate
    }

    /// Datagrams dropped so far because the signalling queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Sends without waiting: a full UDP buffer or a stuck TCP peer loses this message, and
    /// the transaction layer's retransmission (UDP) or the peer's own timeout deals with it.
    pub fn send(&self, link: Link, to: SocketAddr, bytes: Arc<[u8]>) {
        match link {
            Link::Udp => {
                if let Err(e) = self.udp.try_send_to(&bytes, to) {
                    tracing::debug!(%to, "SIP send failed: {e}");
                }
            }
            Link::Tcp(id) | Link::Tls(id) => {
                let tx = self
                    .tcp
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&id).map(|c| c.tx.clone()));
                match tx {
                    Some(tx) => {
                        if tx.try_send(bytes).is_err() {
                            tracing::debug!(%to, "TCP connection {id} is not keeping up");
                        }
                    }
                    None => tracing::debug!(%to, "TCP connection {id} is gone"),
                }
            }
        }
    }

    /// Whether a message sent over `link` can leave: always over UDP; over TCP or TLS, while
    /// the connection is open (a phone that registered over it and has since gone is not).
    pub fn is_open(&self, link: Link) -> bool {
        match link {
            Link::Udp => true,
            Link::Tcp(id) | Link::Tls(id) => self.tcp.lock().is_ok_and(|m| m.contains_key(&id)),
        }
    }

    /// Opens a TCP connection to `peer` (a carrier's proxy): its link, over which requests
    /// go and answers and requests come back as on an accepted one. Refused when the table
    /// is full, or when no connection is made within `TCP_MESSAGE_TIMEOUT`.
    pub async fn connect(self: &Arc<Self>, peer: SocketAddr) -> io::Result<Link> {
        self.open(peer, None).await
    }

    /// The same over TLS: the carrier's certificate must be valid for `name` (its host name
    /// or address) under `config`'s roots, and the handshake done within the same time.
    pub async fn connect_tls(
        self: &Arc<Self>,
        peer: SocketAddr,
        name: rustls::pki_types::ServerName<'static>,
        config: Arc<rustls::ClientConfig>,
    ) -> io::Result<Link> {
        self.open(peer, Some((name, config))).await
    }

    async fn open(
        self: &Arc<Self>,
        peer: SocketAddr,
        tls: Option<(
            rustls::pki_types::ServerName<'static>,
            Arc<rustls::ClientConfig>,
        )>,
    ) -> io::Result<Link> {
        let stream = tokio::time::timeout(TCP_MESSAGE_TIMEOUT, TcpStream::connect(peer))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no TCP connection in time"))??;
        let _ = stream.set_nodelay(true);
        let stream = match tls {
            None => Either::Plain(stream),
            Some((name, config)) => {
                let connector = tokio_rustls::TlsConnector::from(config);
                let handshake = connector.connect(name, stream);
                let stream = tokio::time::timeout(TCP_MESSAGE_TIMEOUT, handshake)
                    .await
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::TimedOut, "no TLS handshake in time")
                    })??;
                Either::Tls(Box::new(stream))
            }
        };
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(TCP_QUEUE);
        let last = Arc::new(AtomicU64::new(self.millis()));
        let close = Arc::new(tokio::sync::Notify::new());
        if !self.admit(id, peer, &tx, &last, &close) {
            return Err(io::Error::other("the TCP connection table is full"));
        }
        let t = Arc::clone(self);
        let inbound = self.inbound.clone();
        let tls = matches!(stream, Either::Tls(_));
        let task = tokio::spawn(async move {
            let watch = Watch {
                started: t.started,
                last,
                close,
                gate: Arc::clone(&t.gate),
            };
            match stream {
                Either::Plain(s) => {
                    connection(s, peer, Link::Tcp(id), tx, rx, inbound, watch).await
                }
                Either::Tls(s) => connection(*s, peer, Link::Tls(id), tx, rx, inbound, watch).await,
            }
            tracing::info!(%peer, "connection {id} we opened has closed");
            if let Ok(mut m) = t.tcp.lock() {
                m.remove(&id);
            }
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
        Ok(if tls { Link::Tls(id) } else { Link::Tcp(id) })
    }

    /// Stops receiving.
    pub fn close(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
    }
}

async fn udp_loop(
    socket: Arc<UdpSocket>,
    inbound: Inbox,
    dropped: Arc<AtomicU64>,
    gate: Arc<Gated>,
) {
    let mut buf = vec![0u8; wire::MAX_MESSAGE + 1];
    loop {
        let (n, source) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP port unreachable from an earlier send shows up here on some systems.
            Err(e) => {
                tracing::debug!("UDP receive: {e}");
                continue;
            }
        };
        // Keep-alives (RFC 5626 CRLF) and stray bytes.
        if buf[..n].iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        // A banned source costs a count, not a parse.
        if gate.is_banned(source.ip()) {
            let _ = gate.pass(source, None);
            continue;
        }
        let message = wire::parse_datagram(&buf[..n]);
        if !gate.pass(source, message.as_ref().ok()) {
            continue;
        }
        let item = Inbound {
            message,
            source,
            link: Link::Udp,
        };
        match inbound.try_send(item) {
            Ok(()) => {}
            Err(Dropped::Full) => {
                // Counted, not logged: a flood must not become a log flood.
                dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(Dropped::Closed) => return,
        }
    }
}

/// Takes the connections of one listener: plain TCP, or TLS (`tls`: each is handshaken, within
/// the time a first message has, before anything is read).
async fn accept_loop(t: Arc<Transport>, listener: TcpListener, inbound: Inbox, tls: bool) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("TCP accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if t.gate.is_banned(peer.ip()) {
            continue; // dropped: closed at once
        }
        let id = t.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(TCP_QUEUE);
        let last = Arc::new(AtomicU64::new(t.millis()));
        let close = Arc::new(tokio::sync::Notify::new());
        if !t.admit(id, peer, &tx, &last, &close) {
            continue; // dropped: closed at once
        }
        let t2 = Arc::clone(&t);
        let inbound = inbound.clone();
        let acceptor = if tls {
            match t.tls_config() {
                Some(c) => Some(tokio_rustls::TlsAcceptor::from(c)),
                None => continue,
            }
        } else {
            None
        };
        tokio::spawn(async move {
            let watch = Watch {
                started: t2.started,
                last,
                close,
                gate: Arc::clone(&t2.gate),
            };
            match acceptor {
                None => connection(stream, peer, Link::Tcp(id), tx, rx, inbound, watch).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(TCP_MESSAGE_TIMEOUT, acceptor.accept(stream)).await;
                    match handshake {
                        Ok(Ok(stream)) => {
                            connection(stream, peer, Link::Tls(id), tx, rx, inbound, watch).await
                        }
                        Ok(Err(e)) => tracing::info!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::info!(%peer, "TLS handshake did not finish in time"),
                    }
                }
            }
            if let Ok(mut m) = t2.tcp.lock() {
                m.remove(&id);
            }
        });
    }
}

/// A connection we opened: plain TCP, or TLS over it.
enum Either {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// A connection's clock: when it last read, and the signal that closes it.
struct Watch {
    started: Instant,
    last: Arc<AtomicU64>,
    close: Arc<tokio::sync::Notify>,
    gate: Arc<Gated>,
}

/// One TCP connection: messages framed by Content-Length in, queued messages out; a
/// keep-alive ping (CRLF CRLF) is answered with a pong (CRLF), as RFC 5626 §4.4.1 asks. The
/// first message, and each message once begun, must arrive within `TCP_MESSAGE_TIMEOUT`
/// (no slow drip of headers holds a connection); nothing at all for `TCP_IDLE_TIMEOUT`
/// closes it.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    link: Link,
    queue: mpsc::Sender<Arc<[u8]>>,
    mut outgoing: mpsc::Receiver<Arc<[u8]>>,
    inbound: Inbox,
    watch: Watch,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write = async move {
        while let Some(bytes) = outgoing.recv().await {
            // TLS: a record is sent only on flush.
            if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                break;
            }
        }
    };
    let read = async {
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 16 * 1024];
        let mut messages = 0u64;
        let opened = Instant::now();
        let mut began: Option<Instant> = None;
        loop {
            // Frame every whole message in the buffer before reading more.
            loop {
                // Leading CRLFs are keep-alives between messages.
                let skip = buf
                    .iter()
                    .take_while(|b| **b == b'\r' || **b == b'\n')
                    .count();
                if buf[..skip].windows(4).any(|w| w == b"\r\n\r\n") {
                    let _ = queue.try_send(Arc::from(&b"\r\n"[..]));
                }
                buf.drain(..skip);
                if buf.is_empty() {
                    break;
                }
                match wire::parse_stream(&buf) {
                    Ok(Framed::Complete(m, used)) => {
                        buf.drain(..used.min(buf.len()));
                        messages += 1;
                        if !watch.gate.pass(peer, Some(&m)) {
                            return; // banned or a scanner: the connection closes
                        }
                        let item = Inbound {
                            message: Ok(m),
                            source: peer,
                            link,
                        };
                        if inbound.send(item).await.is_err() {
                            return;
                        }
                    }
                    Ok(Framed::Incomplete) => break,
                    Err(reject) => {
                        // The stream cannot be re-synchronised: answer if we can, then close.
                        let item = Inbound {
                            message: Err(reject),
                            source: peer,
                            link,
                        };
                        let _ = inbound.send(item).await;
                        // Give the writer a moment to send the 400 before the socket closes.
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        return;
                    }
                }
            }
            if buf.len() > wire::MAX_MESSAGE {
                return;
            }
            // A message begun, or none yet: it must be whole soon after it began (a byte at a
            // time does not stretch it). Between messages: the idle limit.
            if buf.is_empty() {
                began = None;
            } else if began.is_none() {
                began = Some(Instant::now());
            }
            let deadline = match (messages, began) {
                (_, Some(t)) => t + TCP_MESSAGE_TIMEOUT,
                (0, None) => opened + TCP_MESSAGE_TIMEOUT,
                _ => Instant::now() + TCP_IDLE_TIMEOUT,
            };
            match tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
                Err(_) => {
                    tracing::debug!(%peer, "TCP connection closed: nothing came in time");
                    return;
                }
                Ok(Ok(0) | Err(_)) => return,
                Ok(Ok(n)) => {
                    buf.extend_from_slice(&chunk[..n]);
                    let ms = watch
                        .started
                        .elapsed()
                        .as_millis()
                        .min(u128::from(u64::MAX));
                    watch.last.store(ms as u64, Ordering::Relaxed);
                }
            }
        }
    };
    tokio::select! {
        _ = read => {}
        _ = write => {}
        _ = watch.close.notified() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::is_urgent;
    use crate::sip::wire;

    fn msg(start: &str, to: &str) -> Result<wire::Message, wire::Reject> {
        let text = format!(
            "{start}\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1\r\nFrom: <sip:a@x>;tag=1\r\nTo: {to}\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        wire::parse_datagram(text.as_bytes())
    }

    #[test]
    fn what_keeps_calls_going_is_read_before_new_requests() {
        assert!(is_urgent(&msg("SIP/2.0 200 OK", "<sip:b@x>;tag=2")));
        assert!(is_urgent(&msg("ACK sip:b@x SIP/2.0", "<sip:b@x>;tag=2")));
        assert!(is_urgent(&msg("BYE sip:b@x SIP/2.0", "<sip:b@x>;tag=2")));
        assert!(is_urgent(&msg("CANCEL sip:b@x SIP/2.0", "<sip:b@x>")));
        assert!(
            is_urgent(&msg("INVITE sip:b@x SIP/2.0", "<sip:b@x>;tag=2")),
            "a re-INVITE"
        );
        assert!(
            !is_urgent(&msg("INVITE sip:b@x SIP/2.0", "<sip:b@x>")),
            "a new call"
        );
        assert!(!is_urgent(&msg("REGISTER sip:x SIP/2.0", "<sip:b@x>")));
        assert!(!is_urgent(&msg("OPTIONS sip:x SIP/2.0", "<sip:b@x>")));
        assert!(!is_urgent(&wire::parse_datagram(b"garbage")));
    }
}
