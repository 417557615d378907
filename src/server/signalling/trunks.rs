//! Carrier trunks: each registering trunk's proxy (`[[trunks]] register = true`) is resolved
//! off the signalling task — and for a TCP trunk connected — then the switch keeps the
//! registration (`crate::switch::registrations`); its state is logged as it changes and shown
//! by `/api/trunks`, `/metrics` and the wall. A name that does not resolve, or a connection
//! that cannot be made or has closed, is tried again. Calls through a TCP trunk share its
//! connection (`reach`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::dns::Dns;
use super::{Signalling, SipCommand, TimerRef};
use crate::sip::dial::Proto;
use crate::sip::link::Link;
use crate::sip::transport::Transport;
use crate::status::TrunkRow;
use crate::switch::{Account, Registration};

/// A proxy name that did not resolve is looked up again this much later.
const RESOLVE_AGAIN: Duration = Duration::from_secs(30);
/// How often registered TCP trunks' connections are checked.
const TRUNKS_CHECKED_EVERY: Duration = Duration::from_secs(2);

/// Where a request goes next: a trunk's proxy, or the host of a URI dialled.
pub(super) struct Hop {
    pub host: String,
    pub port: u16,
    /// The DNS SRV name looked up first (a proxy named without a port).
    pub srv: Option<String>,
    pub proto: Proto,
}

/// Where a request to `hop` goes: the address, and the link — UDP (the first address DNS
/// gives), or for a TCP or TLS trunk its connection (`open` while it is, else a new one to
/// the first address that takes it, in SRV order).
pub(super) async fn reach(
    transport: Arc<Transport>,
    dns: &Dns,
    hop: Hop,
    open: Option<(SocketAddr, Link)>,
) -> Option<(SocketAddr, Link)> {
    if hop.proto != Proto::Udp
        && let Some(open) = open
    {
        return Some(open);
    }
    let addrs = dns.locate(&hop.host, hop.port, hop.srv.clone()).await;
    if addrs.is_empty() {
        tracing::warn!(host = hop.host, srv = hop.srv, "no address found");
        return None;
    }
    if hop.proto == Proto::Udp {
        return addrs.first().map(|a| (*a, Link::Udp));
    }
    let kind = if matches!(hop.proto, Proto::Tls { .. }) {
        "TLS"
    } else {
        "TCP"
    };
    for addr in addrs {
        let opened = match &hop.proto {
            Proto::Tls { ca_file } => {
                let config =
                    crate::server::tls::client(ca_file.as_deref().map(std::path::Path::new));
                let name = rustls::pki_types::ServerName::try_from(hop.host.clone());
                match (config, name) {
                    (Ok(config), Ok(name)) => transport.connect_tls(addr, name, config).await,
                    (Err(e), _) => Err(std::io::Error::other(e)),
                    (_, Err(e)) => Err(std::io::Error::other(format!("{}: {e}", hop.host))),
                }
            }
            _ => transport.connect(addr).await,
        };
        match opened {
            Ok(link) => {
                tracing::info!(%addr, "{kind} connection to the trunk opened");
                return Some((addr, link));
            }
            Err(e) => tracing::warn!(%addr, "no {kind} connection to the trunk: {e}"),
        }
    }
    None
}

impl Signalling {
    /// Looks up every registering trunk's proxy (at start).
    pub(super) fn start_trunks(&mut self, now: Instant) {
        for t in &self.shared.config.trunks {
            if t.register {
                self.resolve_trunk(t.name.clone(), Duration::ZERO);
            }
        }
        if self.shared.config.trunks.iter().any(|t| t.register) {
            self.schedule(now + TRUNKS_CHECKED_EVERY, TimerRef::Trunks);
        }
    }

    fn resolve_trunk(&self, name: String, after: Duration) {
        let Some(route) = self
            .shared
            .config
            .trunks
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.route())
        else {
            return;
        };
        let sip = self.shared.sip.clone();
        let transport = Arc::clone(&self.transport);
        let dns = Arc::clone(&self.dns);
        let open = self.open_link(&name);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let hop = Hop {
                srv: route.srv_name(),
                host: route.host,
                port: route.port,
                proto: route.proto,
            };
            let target = reach(transport, &dns, hop, open).await;
            let _ = sip.send(SipCommand::TrunkResolved { name, target }).await;
        });
    }

    /// The trunk's TCP or TLS connection (and where it goes), while it is open.
    pub(super) fn open_link(&self, trunk: &str) -> Option<(SocketAddr, Link)> {
        self.trunk_links
            .get(trunk)
            .copied()
            .filter(|(_, l)| self.transport.is_open(*l))
    }

    /// The trunk's proxy resolved (or not): register to it, or look it up again later.
    pub(super) fn register_trunk(
        &mut self,
        name: String,
        target: Option<(SocketAddr, Link)>,
        now: Instant,
    ) {
        if self.draining {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let Some(trunk) = shared.config.trunks.iter().find(|t| t.name == name) else {
            return;
        };
        let Some((peer, link)) = target else {
            tracing::warn!(
                trunk = name,
                proxy = trunk.proxy,
                "the trunk's proxy cannot be reached (no address, or no TCP connection): not registered, tried again in 30 s"
            );
            return self.resolve_trunk(name, RESOLVE_AGAIN);
        };
        if link != Link::Udp {
            self.trunk_links.insert(name.clone(), (peer, link));
        }
        self.connecting.remove(&name);
        if self.switch.reconnected(&name, link, peer, now) {
            // A registration that lost its connection registers again over the new one.
            return;
        }
        let Some(route) = trunk.route() else {
            return;
        };
        let account = Account {
            trunk: name.clone(),
            registrar: format!("sip:{}", route.domain),
            aor: route.uri(&trunk.username),
            contact_user: trunk.username.clone(),
            link,
            peer,
            auth: route.auth.clone(),
            expires: trunk.expires_s,
        };
        tracing::info!(trunk = name, %peer, aor = account.aor, "registering to the carrier");
        self.switch.register(account, now);
    }

    /// Every few seconds: a registered TCP trunk whose connection has closed (the carrier
    /// restarted, a NAT or firewall dropped it) is connected again and registers at once.
    pub(super) fn on_trunks_timer(&mut self, now: Instant) {
        for (name, link) in self.switch.registration_links() {
            if link == Link::Udp
                || self.transport.is_open(link)
                || self.draining
                || self.connecting.contains(&name)
            {
                continue;
            }
            tracing::warn!(
                trunk = name,
                "the trunk's TCP connection has closed: connecting again"
            );
            self.trunk_links.remove(&name);
            self.connecting.insert(name.clone());
            self.resolve_trunk(name, Duration::ZERO);
        }
        if self.shared.config.trunks.iter().any(|t| t.register) {
            self.schedule(now + TRUNKS_CHECKED_EVERY, TimerRef::Trunks);
        }
    }

    /// A registration changed state.
    pub(super) fn trunk_registration(&mut self, trunk: &str, state: &Registration) {
        match state {
            Registration::Registered { expires } => {
                tracing::info!(trunk, expires_s = expires, "registered to the carrier")
            }
            Registration::Failed { code, retry_in } => tracing::warn!(
                trunk,
                code = ?code,
                retry_in_s = retry_in.as_secs(),
                "the carrier did not register us"
            ),
            Registration::Registering | Registration::Unregistered => {}
        }
    }

    /// Every trunk and where its registration stands.
    pub(super) fn trunk_rows(&self) -> Vec<TrunkRow> {
        let states = self.switch.registrations();
        self.shared
            .config
            .trunks
            .iter()
            .map(|t| {
                let state = states.iter().find(|(n, _)| *n == t.name).map(|(_, s)| s);
                let (name, expires_s, code, retry_in_s) = match state {
                    None if !t.register => ("off", None, None, None),
                    None | Some(Registration::Registering) => ("registering", None, None, None),
                    Some(Registration::Registered { expires }) => {
                        ("registered", Some(*expires), None, None)
                    }
                    Some(Registration::Failed { code, retry_in }) => {
                        ("failed", None, *code, Some(retry_in.as_secs()))
                    }
                    Some(Registration::Unregistered) => ("unregistered", None, None, None),
                };
                TrunkRow {
                    name: t.name.clone(),
                    proxy: t.proxy.clone(),
                    register: t.register,
                    state: name,
                    expires_s,
                    code,
                    retry_in_s,
                }
            })
            .collect()
    }
}
