//! DNS for the SIP servers hotline reaches by name (a carrier's proxy): SRV records first
//! where `sip::locate` says to look (RFC 3263), then each target's addresses. With `[sip]
//! resolvers` the lookups ask those servers; without, SRV asks the system's
//! (`/etc/resolv.conf`) and addresses are resolved as every other program does.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;

use crate::sip::locate::{self, Srv};

/// Targets of one SRV answer looked at, at most (a hostile answer stays small work).
const MAX_TARGETS: usize = 8;

pub struct Dns {
    resolver: Option<TokioResolver>,
    /// Addresses too come from `resolver` (the operator named the servers).
    own_servers: bool,
}

impl Dns {
    /// The resolver for `servers`, or the system's when there are none.
    pub fn new(servers: &[SocketAddr]) -> Dns {
        if servers.is_empty() {
            let resolver = TokioResolver::builder_tokio()
                .map(|b| b.build())
                .map_err(|e| tracing::warn!("no DNS configuration for SRV lookups: {e}"))
                .ok();
            return Dns {
                resolver,
                own_servers: false,
            };
        }
        let group: Vec<NameServerConfig> = servers
            .iter()
            .flat_map(|s| {
                [
                    NameServerConfig::new(*s, Protocol::Udp),
                    NameServerConfig::new(*s, Protocol::Tcp),
                ]
            })
            .collect();
        let config = ResolverConfig::from_parts(None, Vec::new(), group);
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default()).build();
        Dns {
            resolver: Some(resolver),
            own_servers: true,
        }
    }

    /// Every address `host` may be reached at, in the order to try them: the SRV targets of
    /// `srv` when it has records (each at its own port), else `host` at `port`. Empty when
    /// nothing resolves.
    pub async fn locate(&self, host: &str, port: u16, srv: Option<String>) -> Vec<SocketAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return vec![SocketAddr::new(ip, port)];
        }
        if let (Some(name), Some(resolver)) = (srv, &self.resolver) {
            match resolver.srv_lookup(name.as_str()).await {
                Ok(answer) => {
                    let records: Vec<Srv> = answer
                        .iter()
                        .take(MAX_TARGETS)
                        .map(|r| Srv {
                            priority: r.priority(),
                            weight: r.weight(),
                            port: r.port(),
                            target: r.target().to_ascii().trim_end_matches('.').to_string(),
                        })
                        .collect();
                    let mut found = Vec::new();
                    for (target, port) in locate::order(records, draw) {
                        found.extend(self.addresses(&target, port).await);
                    }
                    tracing::debug!(srv = name, ?found, "SRV records found");
                    if !found.is_empty() {
                        return found;
                    }
                }
                Err(e) => tracing::debug!(srv = name, "no SRV records: {e}"),
            }
        }
        self.addresses(host, port).await
    }

    /// `host`'s IPv4 addresses at `port`.
    async fn addresses(&self, host: &str, port: u16) -> Vec<SocketAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return vec![SocketAddr::new(ip, port)];
        }
        match (&self.resolver, self.own_servers) {
            (Some(resolver), true) => resolver
                .lookup_ip(host)
                .await
                .map(|ips| {
                    ips.iter()
                        .filter(IpAddr::is_ipv4)
                        .map(|ip| SocketAddr::new(ip, port))
                        .collect()
                })
                .unwrap_or_default(),
            _ => tokio::net::lookup_host((host, port))
                .await
                .map(|addrs| addrs.filter(SocketAddr::is_ipv4).collect())
                .unwrap_or_default(),
        }
    }
}

/// A number in `0..=total` from the system's randomness, for SRV weights.
fn draw(total: u32) -> u32 {
    let mut b = [0u8; 4];
    if getrandom::getrandom(&mut b).is_err() || total == 0 {
        return 0;
    }
    u32::from_le_bytes(b) % (total + 1)
}
