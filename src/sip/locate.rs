//! Locating a SIP server (RFC 3263 §4): a name given without a port is looked up as DNS SRV
//! records first (`_sip._udp.`, `_sip._tcp.`, `_sips._tcp.` by transport), tried in the
//! order RFC 2782 gives them — the lowest priority first, and within one priority at random
//! weighted by weight; a name without SRV records, or given with a port, is an address
//! lookup at that port (5060, 5061 for TLS). Pure: the lookups themselves are the driver's.

use super::dial::Proto;

/// One SRV record, as the resolver read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The target's host name, without the trailing dot.
    pub target: String,
}

/// The SRV name to look up for `host` reached over `proto`; `None` when the port was given
/// or the host is an address (then there is nothing to look up but the address itself).
pub fn srv_name(host: &str, port_given: bool, proto: &Proto) -> Option<String> {
    if port_given || host.parse::<std::net::IpAddr>().is_ok() || host.is_empty() {
        return None;
    }
    let service = match proto {
        Proto::Udp => "_sip._udp",
        Proto::Tcp => "_sip._tcp",
        Proto::Tls { .. } => "_sips._tcp",
    };
    Some(format!("{service}.{}", host.trim_end_matches('.')))
}

/// The targets in the order to try them (RFC 2782): by priority, and within a priority each
/// next one drawn with a chance in proportion to its weight (`draw(total)` returns a number
/// in `0..=total`). A single `.` target means the service is not offered there: nothing.
pub fn order(mut records: Vec<Srv>, mut draw: impl FnMut(u32) -> u32) -> Vec<(String, u16)> {
    records.retain(|r| !r.target.is_empty() && r.target != ".");
    records.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let priority = records[0].priority;
        let end = records
            .iter()
            .position(|r| r.priority != priority)
            .unwrap_or(records.len());
        let mut group: Vec<Srv> = records.drain(..end).collect();
        // Zero weights first, so they are only rarely chosen while others remain (§ "Usage").
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = draw(total).min(total);
            let mut running = 0u32;
            let mut chosen = group.len() - 1;
            for (i, r) in group.iter().enumerate() {
                running += u32::from(r.weight);
                if running >= pick {
                    chosen = i;
                    break;
                }
            }
            let r = group.remove(chosen);
            out.push((r.target, r.port));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    #[test]
    fn only_a_name_without_a_port_is_looked_up_as_srv_named_by_its_transport() {
        let tls = Proto::Tls { ca_file: None };
        assert_eq!(
            srv_name("carrier.example", false, &Proto::Udp).as_deref(),
            Some("_sip._udp.carrier.example")
        );
        assert_eq!(
            srv_name("carrier.example.", false, &Proto::Tcp).as_deref(),
            Some("_sip._tcp.carrier.example")
        );
        assert_eq!(
            srv_name("carrier.example", false, &tls).as_deref(),
            Some("_sips._tcp.carrier.example")
        );
        assert_eq!(srv_name("carrier.example", true, &Proto::Udp), None);
        assert_eq!(srv_name("192.0.2.10", false, &Proto::Udp), None);
        assert_eq!(srv_name("2001:db8::1", false, &Proto::Udp), None);
    }

    #[test]
    fn the_lowest_priority_comes_first_and_weight_decides_within_one() {
        let records = vec![
            srv(20, 0, 5060, "backup.example"),
            srv(10, 60, 5060, "a.example"),
            srv(10, 40, 5062, "b.example"),
        ];
        // A draw at the low end picks the first by weight, at the high end the second.
        let low = order(records.clone(), |_| 0);
        assert_eq!(
            low,
            [
                ("a.example".to_string(), 5060),
                ("b.example".to_string(), 5062),
                ("backup.example".to_string(), 5060)
            ]
        );
        let high = order(records.clone(), |total| total);
        assert_eq!(high[0], ("b.example".to_string(), 5062));
        assert_eq!(high[2], ("backup.example".to_string(), 5060));
        // Over many draws, a takes about 60 % of the first places.
        let mut seed = 7u32;
        let mut a_first = 0;
        for _ in 0..1000 {
            let o = order(records.clone(), |total| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 8) % (total + 1)
            });
            if o[0].0 == "a.example" {
                a_first += 1;
            }
        }
        assert!((520..=680).contains(&a_first), "{a_first}");
    }

    #[test]
    fn a_dot_target_means_no_service_and_zero_weights_still_get_their_turn() {
        assert!(order(vec![srv(0, 0, 0, ".")], |_| 0).is_empty());
        let o = order(
            vec![srv(1, 0, 5060, "z.example"), srv(1, 0, 5061, "y.example")],
            |_| 0,
        );
        assert_eq!(o.len(), 2);
    }
}
