//! The commands behind `hotline validate | simulate | graph`: argument handling, loading, and
//! mapping results to the exit codes of SPEC §1.

use std::path::{Path, PathBuf};
use std::time::Instant;

use jiff::Timestamp;

use crate::config::Loaded;
use crate::engine::simulate;
use crate::flow::report::{self, Format};
use crate::flow::{Severity, render};
pub use crate::line::{FlowsRefused, Validated, load_flows, validate_against, validate_paths};

/// What a command ends with: its output and exit code.
pub struct Exit {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Exit {
    fn usage(msg: impl Into<String>) -> Exit {
        Exit {
            code: 2,
            stdout: String::new(),
            stderr: format!("hotline: {}\n", msg.into()),
        }
    }
}

pub fn validate(
    paths: Vec<PathBuf>,
    config: Option<&Path>,
    max_steps: Option<u32>,
    format: Format,
) -> Exit {
    let config = match Loaded::find(config) {
        Ok(c) => c,
        Err(e) => return Exit::usage(e.to_string()),
    };
    if max_steps == Some(0) {
        return Exit::usage("--max-steps must be at least 1");
    }
    let paths = if paths.is_empty() {
        vec![
            config
                .as_ref()
                .map_or(PathBuf::from("flows"), |c| c.config.paths.flows.clone()),
        ]
    } else {
        paths
    };
    // With no hotline.toml, the flows are judged against the embedded config that `serve`
    // would run them with: a queue it does not have fails here, not at start-up.
    let (v, used) = match &config {
        Some(c) => (
            validate_paths(&paths, Some(c), max_steps),
            c.file
                .as_ref()
                .map_or("the embedded demo config".to_string(), |f| {
                    f.display().to_string()
                }),
        ),
        None => (
            validate_against(&paths, Some(&Loaded::embedded()), None, max_steps),
            "the embedded demo config (no hotline.toml here; --config FILE names one)".to_string(),
        ),
    };
    let v = match v {
        Ok(v) => v,
        Err(e) => return Exit::usage(e.to_string()),
    };
    let calendars = config
        .as_ref()
        .map(|c| c.calendar_warnings(today()))
        .unwrap_or_default();
    let warnings: String = config
        .iter()
        .flat_map(|c| &c.warnings)
        .chain(&calendars)
        .map(|w| format!("hotline: warning: {w}\n"))
        .collect();
    let (errors, _) = report::counts(&v.diagnostics);
    let stdout = match format {
        Format::Text => report::text(&v.diagnostics, &v.summaries, v.files.len()),
        Format::Json => report::json(&v.diagnostics),
        Format::Junit => report::junit(&v.diagnostics, &v.files),
        Format::Github => report::github(&v.diagnostics),
    };
    Exit {
        code: i32::from(errors > 0),
        stdout,
        stderr: format!("hotline: queues and calendars checked against {used}\n{warnings}"),
    }
}

/// Today's date here, for the calendars' look a year ahead.
#[allow(clippy::disallowed_methods)] // the edge: validate and serve judge against today
fn today() -> jiff::civil::Date {
    jiff::Zoned::now().date()
}

/// A flow file path, or a flow name under the flows folder.
fn flow_file(reference: &str, config: Option<&Loaded>) -> Result<PathBuf, String> {
    let p = PathBuf::from(reference);
    if p.is_file() {
        return Ok(p);
    }
    if reference.ends_with(".toml") || reference.contains('/') {
        return Err(format!("{reference}: no such flow file"));
    }
    let dir = config.map_or(PathBuf::from("flows"), |c| c.config.paths.flows.clone());
    let f = dir.join(format!("{reference}.toml"));
    if f.is_file() {
        Ok(f)
    } else {
        Err(format!(
            "no flow \"{reference}\": {} does not exist",
            f.display()
        ))
    }
}

fn parse_at(s: &str) -> Result<Timestamp, String> {
    s.parse::<Timestamp>()
        .or_else(|_| s.parse::<jiff::Zoned>().map(|z| z.timestamp()))
        .map_err(|_| format!("--at \"{s}\" is not a time like 2026-11-23T10:00:00+01:00"))
}

/// Loads one flow (with its neighbours) for simulate and probe; errors are for the caller.
/// With no config, it is judged against the embedded one (its queues, calendars and lookups)
/// as `validate` does, with prompts from beside the flow.
fn load_one(file: &Path, config: Option<&Loaded>) -> Result<Validated, Exit> {
    let files = [file.to_path_buf()];
    match config {
        Some(c) => validate_paths(&files, Some(c), None),
        None => validate_against(&files, Some(&Loaded::embedded()), None, None),
    }
    .map_err(|e| Exit::usage(e.to_string()))
}

/// The flow of `file` in a loaded set, or the exit that says why it cannot be run: its errors
/// (exit 1), or no such flow (exit 2).
fn runnable(v: &Validated, file: &Path, doing: &str) -> Result<usize, Exit> {
    let errors: Vec<_> = v
        .diagnostics
        .iter()
        .filter(|d| d.severity() == Severity::Error)
        .cloned()
        .collect();
    if !errors.is_empty() {
        let mut stderr = report::text(&errors, &[], 1);
        stderr.push_str(&format!(
            "hotline: the flow is invalid; fix it before {doing}\n"
        ));
        return Err(Exit {
            code: 1,
            stdout: String::new(),
            stderr,
        });
    }
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    v.set
        .flow_by_name(&name)
        .ok_or_else(|| Exit::usage(format!("{}: no flow loaded", file.display())))
}

/// `hotline simulate`'s options beside the flow.
#[derive(Debug, Default)]
pub struct SimulateArgs<'a> {
    /// `--input`: the caller's actions.
    pub input: Option<&'a str>,
    /// `--at`: the time of the call.
    pub at: Option<&'a str>,
    /// `--caller`: the caller's number.
    pub caller: Option<&'a str>,
    /// `--lookup NAME=FILE|error|timeout`, each.
    pub lookups: &'a [String],
    /// `--switch NAME=on|off`, each.
    pub switches: &'a [String],
    /// `--returning KIND[:STATE[:OWNER]]`: a caller with an open follow-up.
    pub returning: Option<&'a str>,
    pub config: Option<&'a Path>,
    pub json: bool,
}

#[allow(clippy::disallowed_methods)] // the edge: the default --at is the real clock
pub fn simulate(flow: &str, args: &SimulateArgs) -> Exit {
    let SimulateArgs {
        input,
        at,
        caller,
        lookups,
        switches,
        returning,
        config,
        json,
    } = *args;
    let found = match Loaded::find(config) {
        Ok(c) => c,
        Err(e) => return Exit::usage(e.to_string()),
    };
    let file = match flow_file(flow, found.as_ref()) {
        Ok(f) => f,
        Err(e) => return Exit::usage(e),
    };
    let script = match simulate::parse_script(input.unwrap_or("")) {
        Ok(s) => s,
        Err(e) => return Exit::usage(e),
    };
    let wall = match at.map(parse_at).transpose() {
        Ok(t) => t.unwrap_or_else(Timestamp::now),
        Err(e) => return Exit::usage(e),
    };
    let v = match load_one(&file, found.as_ref()) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let line = match runnable(&v, &file, "simulating") {
        Ok(line) => line,
        Err(e) => return e,
    };
    let loaded = found.unwrap_or_else(Loaded::embedded);
    let caller_number = match caller {
        Some("") => String::new(),
        Some(c) => match loaded.config.numbers.e164(c) {
            Some(n) => n,
            None => {
                return Exit::usage(format!(
                    "--caller \"{c}\" is not a telephone number ([numbers] says how national numbers are read)"
                ));
            }
        },
        None => String::new(),
    };
    let mut notes = String::new();
    let mut answers = std::collections::HashMap::new();
    for assume in lookups {
        match assumed_answer(assume, &loaded) {
            Ok((endpoint, answer, note)) => {
                notes.push_str(&note);
                if let Some(a) = answer {
                    answers.insert(endpoint, a);
                }
            }
            Err(e) => return Exit::usage(e),
        }
    }
    let mut positions = std::collections::BTreeMap::new();
    for s in switches {
        let Some((name, position)) = s.split_once('=') else {
            return Exit::usage(format!("--switch \"{s}\": NAME=on or NAME=off"));
        };
        let on = match position {
            "on" => true,
            "off" => false,
            _ => return Exit::usage(format!("--switch \"{s}\": NAME=on or NAME=off")),
        };
        if !loaded.config.switches.contains_key(name) {
            let known: Vec<&str> = loaded.config.switches.keys().map(String::as_str).collect();
            return Exit::usage(format!(
                "--switch {name}: the config has no [switches.{name}] (it has: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        positions.insert(name.to_string(), on);
    }
    // The follow-up's queue: the line's first owner node's (what the server falls back to).
    let owner_queue = v
        .set
        .nodes
        .iter()
        .find_map(|n| match &n.kind {
            crate::flow::node::NodeKind::Owner(q) => q.queue.as_ref().map(|q| q.0.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let returning = match returning.map(|r| simulate::parse_returning(r, &owner_queue, wall)) {
        None => None,
        Some(Ok(item)) => Some(item),
        Some(Err(e)) => return Exit::usage(e),
    };
    let world = simulate::World {
        calendars: &loaded.calendars,
        caller_number,
        line: None,
        timezone: loaded.timezone.clone(),
        answers,
        switches: positions,
        returning,
    };
    let run = simulate::run(&v.set, &world, line, &script, wall, Instant::now(), true);
    let stdout = if json {
        serde_json::to_string_pretty(&run.to_json()).unwrap_or_default() + "\n"
    } else {
        let mut s = format!("path: {}\n", report::path_text(&run.path));
        s.push_str(&format!(
            "outcome: {} at {} after {} step{} and {:.1} s\n",
            run.outcome.as_str(),
            run.node,
            run.steps,
            if run.steps == 1 { "" } else { "s" },
            run.seconds
        ));
        if run.escape {
            s.push_str("the caller pressed the escape digit\n");
        }
        if run.watchdog {
            s.push_str("the watchdog stepped in and sent the caller to a live human\n");
        }
        if run.language != crate::flow::language::DEFAULT {
            s.push_str(&format!(
                "the caller heard {}\n",
                crate::flow::language::display(&run.language)
            ));
        }
        for (k, val) in &run.variables {
            s.push_str(&format!("variable {k} = {val}\n"));
        }
        s
    };
    Exit {
        code: 0,
        stdout,
        stderr: notes,
    }
}

/// `--lookup NAME=FILE|error|timeout`: what the endpoint answers in the simulation (`None`:
/// no answer in time), with a note for stderr when the file's answer does not read (the
/// call then goes `on_error`, as it would live).
fn assumed_answer(
    assume: &str,
    loaded: &Loaded,
) -> Result<(String, Option<simulate::Assumed>, String), String> {
    let Some((name, what)) = assume.split_once('=') else {
        return Err(format!(
            "--lookup \"{assume}\": NAME=FILE (a JSON answer), NAME=error or NAME=timeout"
        ));
    };
    let Some(endpoint) = loaded.config.lookups.get(name) else {
        let known: Vec<&str> = loaded.config.lookups.keys().map(String::as_str).collect();
        return Err(format!(
            "--lookup {name}: the config has no [lookups.{name}] (it has: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    };
    match what {
        "error" => {
            return Ok((
                name.to_string(),
                Some(simulate::Assumed::Error),
                String::new(),
            ));
        }
        "timeout" => return Ok((name.to_string(), None, String::new())),
        _ => {}
    }
    use std::io::Read;
    let mut body = Vec::new();
    std::fs::File::open(what)
        .and_then(|f| {
            f.take(crate::lookup::MAX_ANSWER_BYTES as u64 + 1)
                .read_to_end(&mut body)
        })
        .map_err(|e| format!("--lookup {name}={what}: {e}"))?;
    Ok(match crate::lookup::read_answer(&body, &endpoint.fields) {
        Ok(fields) => (
            name.to_string(),
            Some(simulate::Assumed::Answer(fields)),
            String::new(),
        ),
        Err(why) => (
            name.to_string(),
            Some(simulate::Assumed::Error),
            format!("hotline: --lookup {name}={what}: {why}; simulated as the error it would be\n"),
        ),
    })
}

pub fn graph(file: &Path, format: render::Format) -> Exit {
    if !file.is_file() {
        return Exit::usage(format!("{}: no such flow file", file.display()));
    }
    let v = match load_one(file, None) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(flow) = v
        .set
        .flow_by_name(&name)
        .filter(|&f| v.set.flows[f].reported)
    else {
        let errors = report::text(&v.diagnostics, &[], 1);
        return Exit {
            code: 2,
            stdout: String::new(),
            stderr: format!("{errors}hotline: cannot draw {}\n", file.display()),
        };
    };
    let stdout = match format {
        render::Format::Dot => render::dot(&v.set, flow),
        render::Format::Mermaid => render::mermaid(&v.set, flow),
    };
    Exit {
        code: 0,
        stdout,
        stderr: String::new(),
    }
}

/// `hotline serve`: checks everything it can before binding a socket, so a bad config or an
/// invalid flow stops it with exit 2 and a clear message, never half-started.
pub fn serve(config: Option<&Path>) -> i32 {
    let fail = |msg: String| {
        eprintln!("hotline: {msg}");
        2
    };
    let loaded = match Loaded::find(config) {
        Ok(Some(c)) => c,
        Ok(None) => Loaded::embedded(),
        Err(e) => return fail(e.to_string()),
    };
    let flows = match load_flows(&loaded) {
        Ok(f) => f,
        Err(e) => {
            eprint!("{}", e.diagnostics);
            return fail(format!("refusing to start: {}", e.message));
        }
    };
    let store = match crate::store::Store::open(&loaded.config.paths.data) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    init_logging();
    let calendars = loaded.calendar_warnings(today());
    for warning in loaded
        .warnings
        .iter()
        .chain(&flows.warnings)
        .chain(&calendars)
    {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let token = std::env::var(&loaded.config.http.token_env)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let http_app = move |status| crate::web::app(crate::api::ApiState::new(status, token));
    let result = runtime.block_on(crate::server::run(
        loaded,
        flows,
        store,
        http_app,
        shutdown_signal(),
    ));
    match result {
        Ok(()) => 0,
        Err(e) => fail(e.to_string()),
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Logs to stderr; `HOTLINE_LOG=debug|info|warn|error` picks the level (default info), and
/// `HOTLINE_LOG_FORMAT=json` writes one JSON object a line (for log shippers).
fn init_logging() {
    let level = match std::env::var("HOTLINE_LOG").as_deref() {
        Ok("trace") => tracing::Level::TRACE,
        Ok("debug") => tracing::Level::DEBUG,
        Ok("warn") => tracing::Level::WARN,
        Ok("error") => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    let fmt = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_ansi(false);
    let _ = if std::env::var("HOTLINE_LOG_FORMAT").as_deref() == Ok("json") {
        fmt.json().try_init()
    } else {
        fmt.try_init()
    };
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Csv,
}

/// `hotline report`: figures from the call records in the data folder.
pub fn report(since: Option<&str>, config: Option<&Path>, format: ReportFormat) -> Exit {
    let loaded = match Loaded::find(config) {
        Ok(Some(c)) => c,
        Ok(None) => Loaded::embedded(),
        Err(e) => return Exit::usage(e.to_string()),
    };
    let data = &loaded.config.paths.data;
    if !data.join("hotline.db").is_file() {
        return Exit::usage(format!(
            "no call records: {} does not exist (is [paths] data right?)",
            data.join("hotline.db").display()
        ));
    }
    let since = match since.map(|s| (s, crate::store::utc_time(s))) {
        None => None,
        Some((_, Some(t))) => Some(t),
        Some((s, None)) => {
            return Exit::usage(format!(
                "--since \"{s}\" is not a date (2026-11-01) or an RFC 3339 time"
            ));
        }
    };
    #[allow(clippy::disallowed_methods)]
    // a command's edge: whether an open follow-up is overdue now
    let now = jiff::Timestamp::now();
    let within_h = loaded.config.desk.follow_up_within_h;
    let r = match crate::store::Store::open(data)
        .and_then(|s| crate::store::report::Report::read(&s, since, within_h, now))
    {
        Ok(r) => r,
        Err(e) => return Exit::usage(e.to_string()),
    };
    Exit {
        code: 0,
        stdout: match format {
            ReportFormat::Text => r.text(),
            ReportFormat::Json => r.json(),
            ReportFormat::Csv => r.csv(),
        },
        stderr: String::new(),
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DiffFormat {
    Text,
    Markdown,
}

/// `hotline diff OLD NEW`: exit 0 when no caller got further from a human than the bound,
/// 1 when one did (or the change brings errors), 2 when it could not run.
pub fn diff(
    old: &Path,
    new: &Path,
    config: Option<&Path>,
    max_steps: Option<u32>,
    format: DiffFormat,
) -> Exit {
    use crate::flow::diff;
    let config = match Loaded::find(config) {
        Ok(c) => c,
        Err(e) => return Exit::usage(e.to_string()),
    };
    if max_steps == Some(0) {
        return Exit::usage("--max-steps must be at least 1");
    }
    let mut sides = Vec::new();
    for path in [old, new] {
        if !path.exists() {
            return Exit::usage(format!("{}: no such file or folder", path.display()));
        }
        match validate_paths(&[path.to_path_buf()], config.as_ref(), max_steps) {
            Ok(v) => sides.push(v),
            Err(e) => return Exit::usage(e.to_string()),
        }
    }
    let (o, n) = (&sides[0], &sides[1]);
    let d = diff::Diff::new(
        &diff::distances(&o.set, max_steps),
        &diff::distances(&n.set, max_steps),
        &o.diagnostics,
        &n.diagnostics,
    );
    let (old_name, new_name) = (old.display().to_string(), new.display().to_string());
    Exit {
        code: i32::from(!d.failures().is_empty()),
        stdout: match format {
            DiffFormat::Text => diff::text(&d, &old_name, &new_name),
            DiffFormat::Markdown => diff::markdown(&d, &old_name, &new_name),
        },
        stderr: String::new(),
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ProbeFormat {
    Text,
    Json,
    Junit,
}

/// `hotline probe`: dials the line and proves the escape at every caller-facing node (exit 0
/// all reached a human within the bound, 1 some did not, 2 could not run). With `every`, runs
/// a round each period for ever, printing each, with Prometheus metrics on `metrics`.
pub struct ProbeOptions<'a> {
    pub flow: Option<&'a str>,
    pub config: Option<&'a Path>,
    pub every: Option<&'a str>,
    /// Only these nodes (full names); all when empty.
    pub nodes: &'a [String],
    pub metrics: &'a str,
    pub format: ProbeFormat,
}

#[allow(clippy::disallowed_methods)] // the edge: a probe places real calls, now
pub fn probe(uri: &str, o: ProbeOptions) -> Exit {
    use crate::probe::{self, call};
    let ProbeOptions {
        flow,
        config,
        every,
        nodes,
        metrics,
        format,
    } = o;
    let dest = match call::parse_uri(uri) {
        Ok(d) => d,
        Err(e) => return Exit::usage(e),
    };
    let every = match every.map(probe::parse_every).transpose() {
        Ok(e) => e,
        Err(e) => return Exit::usage(e),
    };
    let found = match Loaded::find(config) {
        Ok(c) => c,
        Err(e) => return Exit::usage(e.to_string()),
    };
    // The flow to walk: --flow, else the one named like the line dialled, else main.
    let dir = found
        .as_ref()
        .map_or(PathBuf::from("flows"), |c| c.config.paths.flows.clone());
    let reference = flow.map(str::to_string).unwrap_or_else(|| {
        if dir.join(format!("{}.toml", dest.user)).is_file() {
            dest.user.clone()
        } else {
            "main".into()
        }
    });
    let file = match flow_file(&reference, found.as_ref()) {
        Ok(f) => f,
        Err(e) => return Exit::usage(e),
    };
    let v = match load_one(&file, found.as_ref()) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let line = match runnable(&v, &file, "probing") {
        Ok(line) => line,
        Err(e) => return e,
    };
    let calendars = found
        .as_ref()
        .map(|c| c.calendars.clone())
        .unwrap_or_else(|| Loaded::embedded().calendars);
    let prompt_dir = found
        .as_ref()
        .map_or(PathBuf::from("prompts"), |c| c.config.paths.prompts.clone());
    let token = std::env::var("HOTLINE_PROBE_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let plan_now = |at: Timestamp| {
        let mut p = probe::plan(&v.set, &calendars, line, at, Instant::now());
        if !nodes.is_empty() {
            p.targets.retain(|t| nodes.contains(&t.node));
        }
        p
    };
    let first = plan_now(Timestamp::now());
    if let Some(unknown) = nodes
        .iter()
        .find(|n| !first.targets.iter().any(|t| &&t.node == n))
    {
        let first = probe::plan(&v.set, &calendars, line, Timestamp::now(), Instant::now());
        return Exit::usage(format!(
            "--node {unknown}: not a caller-facing node a call meets now before a human (these are: {})",
            first
                .targets
                .iter()
                .map(|t| t.node.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut encoded = Vec::new();
    for p in &first.prompts {
        if let Ok(loaded) = crate::media::player::Prompts::load(&prompt_dir, [p.as_str()])
            && let Some(e) = loaded.get(p)
        {
            encoded.push((p.clone(), e.clone()));
        }
    }
    if !encoded.iter().any(|(n, _)| n == probe::HOLD) {
        return Exit::usage(format!(
            "{}: no {}.wav: the probe recognises the queue by its hold music",
            prompt_dir.display(),
            probe::HOLD
        ));
    }
    let recogniser = probe::Recogniser::new(&encoded);
    let seconds = |p: &str| {
        encoded
            .iter()
            .find(|(n, _)| n == p)
            .map_or(0.0, |(_, e)| e.seconds())
    };
    let render = |r: &probe::Results| match format {
        ProbeFormat::Text => r.text(),
        ProbeFormat::Json => r.json(),
        ProbeFormat::Junit => r.junit(),
    };
    let Some(every) = every else {
        let results = call::run_round(
            &first,
            &dest,
            token.as_deref(),
            &recogniser,
            &seconds,
            Timestamp::now().to_string(),
        );
        return Exit {
            code: if results.ok() { 0 } else { 1 },
            stdout: render(&results),
            stderr: String::new(),
        };
    };
    // For ever: a round each period, its figures served to Prometheus.
    let listener = match std::net::TcpListener::bind(metrics) {
        Ok(l) => l,
        Err(e) => return Exit::usage(format!("--metrics {metrics}: {e}")),
    };
    let last = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let served = std::sync::Arc::clone(&last);
    std::thread::spawn(move || {
        use std::io::{Read as _, Write as _};
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let body = served.lock().map(|s| s.clone()).unwrap_or_default();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let mut rounds = 0u64;
    loop {
        let started = Instant::now();
        let plan = plan_now(Timestamp::now());
        let results = call::run_round(
            &plan,
            &dest,
            token.as_deref(),
            &recogniser,
            &seconds,
            Timestamp::now().to_string(),
        );
        rounds += 1;
        if let Ok(mut m) = last.lock() {
            *m = results.metrics(rounds);
        }
        {
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(render(&results).as_bytes());
            let _ = std::io::stdout().flush();
        }
        std::thread::sleep(every.saturating_sub(started.elapsed()));
    }
}
