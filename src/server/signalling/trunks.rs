//! Carrier trunks the server registers to (`[[trunks]] register = true`): each proxy's name
//! is resolved off the signalling task, then the switch keeps the registration
//! (`crate::switch::registrations`); its state is logged as it changes and shown by
//! `/api/trunks` and `/metrics`. A name that does not resolve is tried again later.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Signalling, SipCommand};
use crate::sip::link::Link;
use crate::status::TrunkRow;
use crate::switch::{Account, Registration};

/// A proxy name that did not resolve is looked up again this much later.
const RESOLVE_AGAIN: Duration = Duration::from_secs(30);

impl Signalling {
    /// Looks up every registering trunk's proxy (at start).
    pub(super) fn start_trunks(&mut self) {
        for t in &self.shared.config.trunks {
            if t.register {
                self.resolve_trunk(t.name.clone(), Duration::ZERO);
            }
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
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let target = tokio::net::lookup_host((route.host.as_str(), route.port))
                .await
                .ok()
                .and_then(|mut addrs| addrs.find(SocketAddr::is_ipv4));
            let _ = sip.send(SipCommand::TrunkResolved { name, target });
        });
    }

    /// The trunk's proxy resolved (or not): register to it, or look it up again later.
    pub(super) fn register_trunk(
        &mut self,
        name: String,
        target: Option<SocketAddr>,
        now: Instant,
    ) {
        if self.draining {
            return;
        }
        let Some(trunk) = self.shared.config.trunks.iter().find(|t| t.name == name) else {
            return;
        };
        let Some(peer) = target else {
            tracing::warn!(
                trunk = name,
                proxy = trunk.proxy,
                "the trunk's proxy does not resolve: not registered, tried again in 30 s"
            );
            return self.resolve_trunk(name, RESOLVE_AGAIN);
        };
        let Some(route) = trunk.route() else {
            return;
        };
        let account = Account {
            trunk: name.clone(),
            registrar: format!("sip:{}", route.domain),
            aor: route.uri(&trunk.username),
            contact_user: trunk.username.clone(),
            link: Link::Udp,
            peer,
            auth: route.auth.clone(),
            expires: trunk.expires_s,
        };
        tracing::info!(trunk = name, %peer, aor = account.aor, "registering to the carrier");
        self.switch.register(account, now);
    }

    /// A registration changed state.
    pub(super) fn trunk_registration(&self, trunk: &str, state: &Registration) {
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
