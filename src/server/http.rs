//! The HTTP API's listener: every connection has a deadline. Headers must arrive within
//! `HEADER_TIMEOUT`, a connection with nothing moving for `IDLE_TIMEOUT` is closed, and one
//! address holds at most `PER_ADDRESS` connections (`MAX_CONNECTIONS` in all), so idle or
//! slow clients cannot use up the descriptors the calls need.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tower::Service;

pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Each open desk or wall holds one connection (its event stream), and an office's agents
/// often share one address behind NAT: room for a few hundred of them.
pub const PER_ADDRESS: usize = 256;
pub const MAX_CONNECTIONS: usize = 2048;

/// How long a request being answered at shutdown has to finish (an event stream is closed
/// after it).
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Serves `app` on `listener` until told to stop; then takes no more connections, lets the
/// requests being answered finish (within `STOP_GRACE`), and returns once every connection
/// has closed.
pub async fn serve(listener: TcpListener, app: axum::Router, stop: super::stop::Stop) {
    let open: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let mut connections = tokio::task::JoinSet::new();
    let mut stopping = stop.clone();
    loop {
        // Finished connections are reaped as they go.
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            _ = stopping.requested() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors, typically: wait rather than spin.
                tracing::warn!("HTTP accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ip = peer.ip();
        let admitted = open.lock().is_ok_and(|mut m| {
            let total: usize = m.values().sum();
            let n = m.entry(ip).or_insert(0);
            if *n >= PER_ADDRESS || total >= MAX_CONNECTIONS {
                false
            } else {
                *n += 1;
                true
            }
        });
        if !admitted {
            tracing::debug!(%peer, "HTTP connection refused: too many open");
            continue; // dropped: closed at once
        }
        let open = Arc::clone(&open);
        let app = app.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            connection(stream, peer, app, stop).await;
            if let Ok(mut m) = open.lock()
                && let Some(n) = m.get_mut(&ip)
            {
                *n -= 1;
                if *n == 0 {
                    m.remove(&ip);
                }
            }
        });
    }
    // Each open connection heard the stop too: they end on their own, soon.
    while connections.join_next().await.is_some() {}
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    mut stop: super::stop::Stop,
) {
    let started = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Watched {
        inner: stream,
        started,
        last: Arc::clone(&last),
    });
    // The peer's address goes with each request (the desk's login counts failures by it).
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            app.clone().call(req)
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    loop {
        tokio::select! {
            _ = &mut conn => return,
            _ = stop.requested() => {
                // The request being answered finishes; no other is read.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(STOP_GRACE, &mut conn).await;
                return;
            }
            _ = tokio::time::sleep(IDLE_TIMEOUT / 4) => {
                let idle = started.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                if idle >= IDLE_TIMEOUT {
                    return; // dropped: the socket closes
                }
            }
        }
    }
}

/// A stream that notes when bytes last moved (milliseconds since `started`).
struct Watched {
    inner: tokio::net::TcpStream,
    started: Instant,
    last: Arc<AtomicU64>,
}

impl Watched {
    fn touch(&self) {
        let ms = self.started.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A request being answered when the stop comes is answered; the server then returns,
    /// and takes no new connection.
    #[tokio::test]
    async fn a_request_under_way_at_the_stop_is_answered_then_the_server_returns() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        );
        let (stop_all, stop) = super::super::stop::channel();
        let server = tokio::spawn(serve(listener, app, stop));
        let mut client = tokio::net::TcpStream::connect(at).await.unwrap();
        client
            .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop_all.now();
        let mut answer = String::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut answer)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server returns once its connections are done")
            .unwrap();
        assert!(tokio::net::TcpStream::connect(at).await.is_err());
    }
}
