//! Named on/off switches (`[switches.NAME]` in `hotline.toml`) that a supervisor flips through
//! the API or the wall, for a while or until flipped back: an outage message, an emergency
//! closure. Flows branch on them (`switch` nodes); a call takes the positions of the moment it
//! comes. Each flip is logged and kept in the store (table `switches`), so it outlives a
//! restart; once its expiry has passed the switch is back where the config sets it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use jiff::Timestamp;
use serde::Serialize;

use crate::config::SwitchConfig;

/// The last flip of a switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flip {
    pub on: bool,
    /// When it ends (RFC 3339, UTC); `None`: until flipped again.
    pub until: Option<String>,
    /// Who flipped it: an agent's id, or `api` for the bearer token.
    pub by: String,
    /// When (RFC 3339, UTC).
    pub at: String,
}

impl Flip {
    fn live(&self, now: Timestamp) -> bool {
        self.until
            .as_deref()
            .and_then(|u| u.parse::<Timestamp>().ok())
            .is_none_or(|u| now < u)
    }
}

/// One switch as the API and the wall show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwitchRow {
    pub name: String,
    pub description: String,
    pub on: bool,
    /// Where the config sets it (and where it returns when a flip expires).
    pub default: bool,
    /// The flip in force, if any.
    pub flip: Option<Flip>,
}

#[derive(Debug, Default)]
pub struct Switches {
    flips: Mutex<BTreeMap<String, Flip>>,
}

impl Switches {
    /// The flips kept in the store.
    pub fn new(flips: Vec<(String, Flip)>) -> Switches {
        Switches {
            flips: Mutex::new(flips.into_iter().collect()),
        }
    }

    fn flips(&self) -> BTreeMap<String, Flip> {
        match self.flips.lock() {
            Ok(f) => f.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set(&self, name: &str, flip: Flip) {
        match self.flips.lock() {
            Ok(mut f) => f.insert(name.to_string(), flip),
            Err(poisoned) => poisoned.into_inner().insert(name.to_string(), flip),
        };
    }

    /// Every configured switch at `now`.
    pub fn rows(&self, config: &BTreeMap<String, SwitchConfig>, now: Timestamp) -> Vec<SwitchRow> {
        let flips = self.flips();
        config
            .iter()
            .map(|(name, c)| {
                let flip = flips.get(name).filter(|f| f.live(now)).cloned();
                SwitchRow {
                    name: name.clone(),
                    description: c.description.clone(),
                    on: flip.as_ref().map_or(c.on, |f| f.on),
                    default: c.on,
                    flip,
                }
            })
            .collect()
    }

    /// Where each configured switch stands at `now`: what a call coming now takes.
    pub fn positions(
        &self,
        config: &BTreeMap<String, SwitchConfig>,
        now: Timestamp,
    ) -> BTreeMap<String, bool> {
        self.rows(config, now)
            .into_iter()
            .map(|r| (r.name, r.on))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flip_holds_until_its_expiry_then_the_config_decides() {
        let config = BTreeMap::from([
            ("outage".to_string(), SwitchConfig::default()),
            (
                "open".to_string(),
                SwitchConfig {
                    description: "the line takes calls".into(),
                    on: true,
                },
            ),
        ]);
        let s = Switches::default();
        let t = |x: &str| -> Timestamp { x.parse().unwrap() };
        let now = t("2026-12-07T10:00:00Z");
        assert!(!s.positions(&config, now)["outage"]);
        assert!(s.positions(&config, now)["open"]);
        s.set(
            "outage",
            Flip {
                on: true,
                until: Some("2026-12-07T11:00:00Z".into()),
                by: "sam".into(),
                at: now.to_string(),
            },
        );
        assert!(s.positions(&config, t("2026-12-07T10:59:59Z"))["outage"]);
        let after = s.rows(&config, t("2026-12-07T11:00:00Z"));
        assert_eq!(after[1].name, "outage");
        assert!(!after[1].on && after[1].flip.is_none());
        // A flip with no expiry holds; a switch the config no longer has is not shown.
        s.set(
            "open",
            Flip {
                on: false,
                until: None,
                by: "api".into(),
                at: now.to_string(),
            },
        );
        s.set(
            "gone",
            Flip {
                on: true,
                until: None,
                by: "api".into(),
                at: now.to_string(),
            },
        );
        let far = s.positions(&config, t("2030-01-01T00:00:00Z"));
        assert_eq!(
            far,
            BTreeMap::from([("open".into(), false), ("outage".into(), false)])
        );
    }
}
