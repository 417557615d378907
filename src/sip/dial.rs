//! What hotline may dial back. A caller's From header is theirs to write — any host, any
//! number — so a callback never dials it verbatim: the operator's `[callbacks]` policy says
//! which SIP hosts a caller's own URI may be called at, and which numbers may be dialled
//! through the operator's gateway. Everything else is refused before any DNS lookup, and left
//! to a human. Pure: no lookups here.

/// The `[callbacks]` policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialPolicy {
    /// Hosts (names or addresses, compared exactly, case-insensitively) at which a caller's
    /// own `sip:` URI may be dialled.
    pub domains: Vec<String>,
    /// A trunk (`sip:gw.example.com:5060`) through which callers' numbers are dialled.
    pub gateway: Option<String>,
    /// Number prefixes the gateway may dial (`+34`, `+331`); none: the gateway dials nothing.
    pub numbers: Vec<String>,
    /// How numbers written without `+` are read (`[numbers]`).
    pub numbering: crate::numbers::Numbering,
    /// The carriers' trunks (`[[trunks]]`), tried in order before the gateway.
    pub trunks: Vec<Route>,
}

/// The validator's question: could a flow's `transfer` be placed?
impl crate::flow::check::Dialable for DialPolicy {
    fn refuses(&self, to: &str) -> Option<String> {
        self.transfer_target(to).err()
    }
}

/// A trunk, as a call placed through it needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    /// Its proxy: where requests are sent.
    pub host: String,
    pub port: u16,
    /// The host in the URIs of calls through it.
    pub domain: String,
    /// E.164 prefixes it may dial.
    pub numbers: Vec<String>,
    /// What a 401/407 on the way is answered with.
    pub auth: Option<super::digest::Secret>,
    /// The number presented on calls placed through it.
    pub caller_id: String,
    /// A transfer through it presents the caller's number (unless they asked for privacy).
    pub present_caller: bool,
    /// How its proxy is reached.
    pub proto: Proto,
    /// Its proxy was given with a port: no DNS SRV lookup (RFC 3263 §4.2).
    pub port_given: bool,
}

/// How a trunk's proxy is reached: UDP (the default), TCP (`;transport=tcp`), or TLS
/// (`sips:` or `;transport=tls`), its certificate checked against the system's roots or
/// the trunk's own `ca_file`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Proto {
    #[default]
    Udp,
    Tcp,
    Tls {
        ca_file: Option<String>,
    },
}

impl Route {
    /// A `sip:` URI for `user` at the trunk's domain.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", bracketed(&self.domain))
    }

    /// The DNS SRV name its proxy is looked up as first, when it has one to look up.
    pub fn srv_name(&self) -> Option<String> {
        super::locate::srv_name(&self.host, self.port_given, &self.proto)
    }

    /// Whether a call to `host` goes to this trunk (a transfer target on the carrier).
    pub fn serves(&self, host: &str) -> bool {
        host.eq_ignore_ascii_case(&self.host) || host.eq_ignore_ascii_case(&self.domain)
    }
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Where a callback goes: the URI for the INVITE, and the host and port it is sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub uri: String,
    pub host: String,
    pub port: u16,
    /// The trunk it goes through, when it does.
    pub trunk: Option<Route>,
}

impl DialPolicy {
    /// The target for calling back `caller` (their From URI), or why it may not be dialled.
    pub fn target(&self, caller: &str) -> Result<Target, String> {
        let uri = caller.trim().split('?').next().unwrap_or("");
        if let Some(t) = sip_target(uri)
            && self.domains.iter().any(|d| d.eq_ignore_ascii_case(&t.host))
        {
            return Ok(t);
        }
        if self.gateway.is_none() && self.trunks.is_empty() {
            return Err(format!(
                "{}: not a SIP host in [callbacks] domains, and no trunk or gateway is configured",
                shown(uri)
            ));
        }
        let Some(number) = self.numbering.e164(uri).or_else(|| number_of(uri)) else {
            return Err(format!(
                "{}: no telephone number in it to dial through a trunk",
                shown(uri)
            ));
        };
        if let Some(route) = self
            .trunks
            .iter()
            .find(|t| t.numbers.iter().any(|p| number.starts_with(p.as_str())))
        {
            return Ok(Target {
                uri: format!("{};user=phone", route.uri(&number)),
                host: route.host.clone(),
                port: route.port,
                trunk: Some(route.clone()),
            });
        }
        let Some(gateway) = &self.gateway else {
            return Err(format!("{number}: not a number any trunk's numbers allow"));
        };
        if !self.numbers.iter().any(|p| number.starts_with(p.as_str())) {
            return Err(format!(
                "{number}: not a number [callbacks] numbers allows through the gateway"
            ));
        }
        let gw = sip_target(gateway).ok_or_else(|| format!("gateway {gateway}: not a sip: URI"))?;
        Ok(Target {
            uri: format!(
                "sip:{number}@{}:{};user=phone",
                bracketed(&gw.host),
                gw.port
            ),
            host: gw.host,
            port: gw.port,
            trunk: None,
        })
    }
}

impl DialPolicy {
    /// Where a flow's `transfer` to `to` goes, or why hotline cannot dial it: a `sip:` URI
    /// at its host (through the trunk serving that host, if one does); a `tel:` number
    /// through the trunk whose numbers take it or the gateway (as the policy allows
    /// numbers); a `sips:` URI only through a TLS trunk serving its host.
    pub fn transfer_target(&self, to: &str) -> Result<Target, String> {
        let to = to.trim();
        let scheme = to.split_once(':').map_or("", |s| s.0).to_ascii_lowercase();
        match scheme.as_str() {
            "sip" => {
                let t = sip_target(to).ok_or_else(|| format!("{}: no host to call", shown(to)))?;
                Ok(self.through_trunk(t))
            }
            "tel" => self.target(to).map_err(|why| {
                format!("{why} (a tel: number is dialled only through a [[trunks]] entry whose numbers take it, or the [callbacks] gateway)")
            }),
            "sips" => {
                let as_sip = format!("sip:{}", &to[5..]);
                let t = sip_target(&as_sip)
                    .ok_or_else(|| format!("{}: no host to call", shown(to)))?;
                let tls = self
                    .trunks
                    .iter()
                    .find(|r| r.serves(&t.host) && matches!(r.proto, Proto::Tls { .. }));
                match tls {
                    Some(_) => Ok(Target {
                        uri: to.split('?').next().unwrap_or(to).to_string(),
                        ..self.through_trunk(t)
                    }),
                    None => Err(format!(
                        "{}: a sips: URI is dialled only through a [[trunks]] entry reached over TLS that serves {}",
                        shown(to),
                        t.host
                    )),
                }
            }
            _ => Err(format!("{}: not a sip:, sips: or tel: URI", shown(to))),
        }
    }

    /// A `sip:` target sent through the trunk serving its host, when one does.
    fn through_trunk(&self, t: Target) -> Target {
        match self.trunks.iter().find(|r| r.serves(&t.host)) {
            Some(r) => Target {
                host: r.host.clone(),
                port: r.port,
                trunk: Some(r.clone()),
                ..t
            },
            None => t,
        }
    }
}

/// The caller's text in a log line: printable and bounded.
fn shown(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(80).collect()
}

/// A `sip:` URI's host and port (5060 without one), header fields dropped; `None` for other
/// schemes or a host with characters no host has.
pub fn sip_target(uri: &str) -> Option<Target> {
    let uri = uri.trim().split('?').next()?;
    let (scheme, rest) = uri.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("sip") {
        return None;
    }
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = hostport.split(';').next()?;
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 5060,
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
    {
        return None;
    }
    Some(Target {
        uri: uri.to_string(),
        host: host.to_string(),
        port,
        trunk: None,
    })
}

/// The telephone number in a `tel:` URI or a `sip:` URI's user part: `+` and digits, visual
/// separators dropped (RFC 3966), 3 to 20 digits; `None` when there is none.
fn number_of(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    let user = if scheme.eq_ignore_ascii_case("tel") {
        rest
    } else if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        rest.rsplit_once('@')?.0
    } else {
        return None;
    };
    let user = user.split(';').next()?;
    let mut number = String::new();
    for (i, c) in user.chars().enumerate() {
        match c {
            '+' if i == 0 => number.push('+'),
            '0'..='9' => number.push(c),
            '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    let digits = number.trim_start_matches('+').len();
    (3..=20).contains(&digits).then_some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> DialPolicy {
        DialPolicy {
            domains: vec!["127.0.0.1".into(), "pbx.example.com".into()],
            gateway: Some("sip:gw.example.net:5080".into()),
            numbers: vec!["+34".into(), "+331".into()],
            ..DialPolicy::default()
        }
    }

    fn carrier() -> Route {
        Route {
            name: "carrier".into(),
            host: "127.0.0.1".into(),
            port: 5099,
            domain: "carrier.test".into(),
            numbers: vec!["+346".into(), "+349".into()],
            auth: None,
            caller_id: "+34910000000".into(),
            present_caller: true,
            proto: Proto::Udp,
            port_given: true,
        }
    }

    #[test]
    fn a_number_in_any_format_goes_through_the_trunk_that_carries_it() {
        let p = DialPolicy {
            numbering: crate::numbers::spain(),
            trunks: vec![carrier()],
            ..DialPolicy::default()
        };
        for caller in [
            "sip:600111222@carrier.test",
            "sip:+34600111222@10.9.9.9",
            "tel:0034600111222",
            "sip:34600111222@carrier.test;user=phone",
        ] {
            let t = p.target(caller).unwrap();
            assert_eq!(
                t.uri, "sip:+34600111222@carrier.test;user=phone",
                "{caller}"
            );
            assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 5099));
            assert_eq!(t.trunk.map(|r| r.name), Some("carrier".into()));
        }
        // +348 is not among the trunk's numbers: refused, whatever host the caller named.
        let e = p.target("sip:+34800123456@carrier.test").unwrap_err();
        assert!(e.contains("+34800123456"), "{e}");
        assert!(p.target("sip:anonymous@anonymous.invalid").is_err());
    }

    #[test]
    fn a_caller_on_an_allowed_host_is_dialled_at_their_own_uri() {
        assert_eq!(
            policy().target("sip:ana@127.0.0.1:5070"),
            Ok(Target {
                uri: "sip:ana@127.0.0.1:5070".into(),
                host: "127.0.0.1".into(),
                port: 5070,
                trunk: None,
            })
        );
        assert_eq!(
            policy()
                .target("sip:bob@PBX.example.com;transport=udp?subject=x")
                .map(|t| t.uri),
            Ok("sip:bob@PBX.example.com;transport=udp".into())
        );
    }

    #[test]
    fn numbers_go_through_the_gateway_only_when_allowed() {
        let p = policy();
        assert_eq!(
            p.target("tel:+34-600-111-222")
                .map(|t| (t.uri, t.host, t.port)),
            Ok((
                "sip:+34600111222@gw.example.net:5080;user=phone".into(),
                "gw.example.net".into(),
                5080
            ))
        );
        // The toll-fraud attempt: a premium number on a host the attacker named.
        let e = p.target("sip:+19005550100@evil.example:5099").unwrap_err();
        assert!(e.contains("+19005550100"), "{e}");
        assert!(
            p.target("sip:+33923@attacker.example").is_err(),
            "+331 only"
        );
        assert!(p.target("sip:+3312345678@attacker.example").is_ok());
        // Without a gateway, only allowed hosts.
        let direct = DialPolicy {
            gateway: None,
            ..policy()
        };
        assert!(direct.target("sip:+34600111222@evil.example").is_err());
        assert!(DialPolicy::default().target("sip:ana@127.0.0.1").is_err());
        for bad in [
            "sip:+34;x@evil",
            "sip:+34 600@evil",
            "http://x",
            "",
            "sip:+3@evil",
        ] {
            assert!(p.target(bad).is_err(), "{bad}");
        }
    }

    /// A flow's transfer: a sip: URI at its host (or its carrier's proxy), a tel: number
    /// only through a trunk or the gateway that takes it, a sips: URI only over a TLS trunk.
    #[test]
    fn a_transfer_goes_where_the_server_can_dial_it() {
        let p = DialPolicy {
            trunks: vec![carrier()],
            ..policy()
        };
        let desk = p
            .transfer_target("sip:frontdesk@pbx.example.com:5070")
            .unwrap();
        assert_eq!((desk.host.as_str(), desk.port), ("pbx.example.com", 5070));
        assert!(desk.trunk.is_none());
        // On the carrier's domain: through its proxy.
        let t = p.transfer_target("sip:+34600111222@carrier.test").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 5099));
        assert_eq!(t.trunk.map(|r| r.name).as_deref(), Some("carrier"));
        // A number: the trunk that carries it, else the gateway if it may.
        let t = p.transfer_target("tel:+34600111222").unwrap();
        assert_eq!(t.uri, "sip:+34600111222@carrier.test;user=phone");
        let t = p.transfer_target("tel:+34810000001").unwrap();
        assert_eq!(t.host, "gw.example.net");
        let why = p.transfer_target("tel:+44200000000").unwrap_err();
        assert!(why.contains("+44200000000"), "{why}");
        assert!(why.contains("[[trunks]]"), "{why}");
        // Nothing configured to dial numbers: no tel: at all.
        assert!(
            DialPolicy::default()
                .transfer_target("tel:+34600111222")
                .is_err()
        );
        // sips: only over TLS.
        let why = p
            .transfer_target("sips:+34600111222@carrier.test")
            .unwrap_err();
        assert!(why.contains("TLS"), "{why}");
        let tls = DialPolicy {
            trunks: vec![Route {
                proto: Proto::Tls { ca_file: None },
                ..carrier()
            }],
            ..policy()
        };
        let t = tls
            .transfer_target("sips:+34600111222@carrier.test")
            .unwrap();
        assert_eq!(t.uri, "sips:+34600111222@carrier.test");
        assert_eq!(t.port, 5099);
        for bad in ["http://x", "sip:", "mailto:a@b", ""] {
            assert!(p.transfer_target(bad).is_err(), "{bad}");
        }
    }
}
