//! Safe changes on a live line: on SIGHUP, or when `hotline.toml` or a file in the flows
//! folder changes, the config and the whole set of flows are loaded and validated again,
//! together. They go live only without errors; otherwise everything running stays and the
//! reason is logged and shown by `GET /api/flows`. A call keeps the set it started with until
//! it ends (it holds its own `Arc`), and each flow's version, a hash of its file, is recorded
//! on its calls. Of the config, agents, queues, calendars, lines and the callback policy
//! change live; the keys that need a restart (addresses, ports, paths...) are warned about.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Flows, Shared};
use crate::config::Loaded;

/// How often the flows folder is looked at for changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);

pub use crate::line::version_of;

pub use crate::status::ReloadStatus;

/// What the flows folder looks like: each TOML file's name, length and modification time.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .map(|e| {
            let meta = e.metadata().ok();
            (
                e.path(),
                meta.as_ref().map_or(0, |m| m.len()),
                meta.and_then(|m| m.modified().ok()),
            )
        })
        .collect();
    files.sort();
    files
}

/// The flows folder's fingerprint, and the config file's.
fn watched(dir: &Path, config: Option<&Path>) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut all = fingerprint(dir);
    if let Some(file) = config {
        let meta = std::fs::metadata(file).ok();
        all.push((
            file.to_path_buf(),
            meta.as_ref().map_or(0, |m| m.len()),
            meta.and_then(|m| m.modified().ok()),
        ));
    }
    all
}

/// Watches for SIGHUP and for changes in the flows folder or the config until the server
/// stops.
pub async fn watch(shared: Arc<Shared>, mut stop: super::stop::Stop) {
    let dir = shared.config.paths.flows.clone();
    let config_file = shared.config_file.clone();
    let fingerprint = |dir: &Path| watched(dir, config_file.as_deref());
    let mut seen = fingerprint(&dir);
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let signalled = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let signalled = std::future::pending::<Option<()>>();
        // A reload under way is finished before the stop is heard.
        let trigger = tokio::select! {
            _ = stop.requested() => return,
            _ = signalled => "signal",
            _ = tick.tick() => {
                let now = fingerprint(&dir);
                if now == seen {
                    continue;
                }
                // Let an editor finish writing (several files, or write-then-rename).
                tokio::time::sleep(Duration::from_millis(200)).await;
                "file change"
            }
        };
        seen = fingerprint(&dir);
        reload(&shared, trigger).await;
    }
}

/// Loads the config and the flows again and puts them live if they validate, together.
pub async fn reload(shared: &Arc<Shared>, trigger: &str) {
    let mut status = ReloadStatus {
        at: Some(jiff::Timestamp::now().to_string()),
        trigger: Some(trigger.to_string()),
        ..ReloadStatus::default()
    };
    let file = shared.config_file.clone();
    let result = tokio::task::spawn_blocking(move || {
        let loaded = match &file {
            Some(f) => match Loaded::find(Some(f)) {
                Ok(Some(l)) => l,
                Ok(None) => Loaded::embedded(),
                Err(e) => {
                    return Err(crate::line::FlowsRefused {
                        message: format!("the config is refused: {e}"),
                        diagnostics: String::new(),
                    });
                }
            },
            None => Loaded::embedded(),
        };
        // The certificate is read again too (a renewed one is put in place, then SIGHUP).
        let sip = &loaded.config.sip;
        let certificate = (!sip.tls_listen.is_empty())
            .then(|| super::tls::load(&sip.tls_certificate, &sip.tls_key));
        crate::line::load_flows(&loaded).map(|flows| (loaded, flows, certificate))
    })
    .await;
    match result {
        Ok(Ok((loaded, flows, certificate))) => {
            match certificate {
                Some(Ok(c)) => {
                    tracing::info!("TLS certificate reloaded: new connections get it");
                    let _ = shared
                        .sip
                        .send(super::signalling::SipCommand::Certificate(c))
                        .await;
                }
                Some(Err(e)) => {
                    tracing::error!("TLS certificate NOT reloaded, the running one stays: {e}")
                }
                None => {}
            }
            for key in restart_only_changes(&shared.config, &loaded.config) {
                tracing::warn!("{key} changed: it takes effect at the next restart");
            }
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            let _ = shared
                .sip
                .send(super::signalling::SipCommand::Reconfigure(Box::new(
                    loaded.config,
                )))
                .await;
            let before = shared.flows();
            let changed = changes(&before, &flows);
            tracing::info!(
                trigger,
                changed = changed.join(", "),
                "flows reloaded: new calls get the new versions, calls in progress keep theirs"
            );
            for w in &flows.warnings {
                tracing::warn!("{w}");
            }
            shared.set_flows(flows);
            status.ok = Some(true);
            status.message = Some(if changed.is_empty() {
                "no flow changed".to_string()
            } else {
                format!("changed: {}", changed.join(", "))
            });
        }
        Ok(Err(refused)) => {
            tracing::error!(
                trigger,
                "flows NOT reloaded, the running ones stay: {}\n{}",
                refused.message,
                refused.diagnostics
            );
            status.ok = Some(false);
            status.message = Some(refused.message);
            status.diagnostics = Some(refused.diagnostics);
        }
        Err(e) => {
            tracing::error!("flows NOT reloaded: {e}");
            status.ok = Some(false);
            status.message = Some(e.to_string());
        }
    }
    if let Ok(mut s) = shared.reload_status.lock() {
        *s = status;
    }
}

/// The keys of the config that a running server cannot take: they need a restart.
fn restart_only_changes(
    running: &crate::config::Config,
    new: &crate::config::Config,
) -> Vec<&'static str> {
    let mut out = Vec::new();
    let (a, b) = (running, new);
    let mut differs = |key, changed: bool| {
        if changed {
            out.push(key);
        }
    };
    differs("[sip] listen", a.sip.listen != b.sip.listen);
    differs("[sip] tls_listen", a.sip.tls_listen != b.sip.tls_listen);
    differs("[sip] domain", a.sip.domain != b.sip.domain);
    differs("[sip] advertise", a.sip.advertise != b.sip.advertise);
    differs(
        "[sip] digest_algorithms",
        a.sip.digest_algorithms != b.sip.digest_algorithms,
    );
    differs(
        "[sip] max_auth_failures / max_auth_failures_per_user / auth_failure_window_s",
        a.sip.max_auth_failures != b.sip.max_auth_failures
            || a.sip.max_auth_failures_per_user != b.sip.max_auth_failures_per_user
            || a.sip.auth_failure_window_s != b.sip.auth_failure_window_s,
    );
    differs(
        "[sip] answer_after_ms",
        a.sip.answer_after_ms != b.sip.answer_after_ms,
    );
    differs(
        "[sip] shutdown_grace_s",
        a.sip.shutdown_grace_s != b.sip.shutdown_grace_s,
    );
    differs("[sip] trace", a.sip.trace != b.sip.trace);
    differs("[sip] t1_ms", a.sip.t1_ms != b.sip.t1_ms);
    differs(
        "[sip] max_calls / max_new_calls_per_s",
        a.sip.max_calls != b.sip.max_calls
            || a.sip.max_new_calls_per_s != b.sip.max_new_calls_per_s,
    );
    differs(
        "[rtp]",
        a.rtp.address != b.rtp.address
            || a.rtp.ports != b.rtp.ports
            || a.rtp.timeout_s != b.rtp.timeout_s
            || a.rtp.srtp != b.rtp.srtp,
    );
    differs(
        "[http]",
        a.http.listen != b.http.listen || a.http.token_env != b.http.token_env,
    );
    differs(
        "[paths]",
        a.paths.flows != b.paths.flows
            || a.paths.prompts != b.paths.prompts
            || a.paths.data != b.paths.data,
    );
    differs(
        "[routing]",
        a.routing.ready_on_register != b.routing.ready_on_register
            || a.routing.ready_toggle_code != b.routing.ready_toggle_code,
    );
    // Calls placed through a trunk take the new [[trunks]] at once (they are the dial
    // policy's); its registration, its trusted addresses and the DNS servers do not.
    differs(
        "[[trunks]] (registrations, trusted addresses) / [sip] resolvers, trusted_addresses",
        format!("{:?}", a.trunks) != format!("{:?}", b.trunks)
            || a.sip.resolvers != b.sip.resolvers
            || a.sip.trusted_addresses != b.sip.trusted_addresses,
    );
    out
}

/// `name old -> new` for each flow whose version changed, was added or removed.
fn changes(before: &Flows, after: &Flows) -> Vec<String> {
    let versions = |f: &Flows| -> Vec<(String, String)> {
        f.set
            .flows
            .iter()
            .zip(&f.versions)
            .map(|(flow, v)| (flow.name.clone(), v.clone()))
            .collect()
    };
    let (b, a) = (versions(before), versions(after));
    let mut out = Vec::new();
    for (name, v) in &a {
        match b.iter().find(|(n, _)| n == name) {
            Some((_, old)) if old == v => {}
            Some((_, old)) => out.push(format!("{name} {old} -> {v}")),
            None => out.push(format!("{name} new {v}")),
        }
    }
    for (name, v) in &b {
        if !a.iter().any(|(n, _)| n == name) {
            out.push(format!("{name} removed (was {v})"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_short_stable_and_changes_with_the_text() {
        let v = version_of("[flow]\nentry = \"a\"\n");
        assert_eq!(v.len(), 12);
        assert_eq!(v, version_of("[flow]\nentry = \"a\"\n"));
        assert_ne!(v, version_of("[flow]\nentry = \"b\"\n"));
        // SHA-256 of the empty string begins e3b0c44298fc.
        assert_eq!(version_of(""), "e3b0c44298fc");
    }

    #[test]
    fn a_changed_trunk_is_named_as_needing_a_restart_and_an_unchanged_config_is_not() {
        let parse = |text: &str| crate::config::Loaded::parse(text, None).unwrap().config;
        let trunk = "[[trunks]]\nname = \"c\"\nproxy = \"sip:192.0.2.1\"\nusername = \"u\"\npassword = \"p\"\nregister = true\n";
        let running = parse(trunk);
        assert!(restart_only_changes(&running, &parse(trunk)).is_empty());
        let changed = restart_only_changes(&running, &parse(&trunk.replace("\"p\"", "\"q\"")));
        assert_eq!(changed.len(), 1);
        assert!(changed[0].starts_with("[[trunks]]"), "{changed:?}");
        let resolvers = parse(&format!("[sip]\nresolvers = [\"192.0.2.53\"]\n\n{trunk}"));
        assert_eq!(restart_only_changes(&running, &resolvers).len(), 1);
    }
}
