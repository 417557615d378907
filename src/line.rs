//! The validated line: the flows and prompts a server runs, checked against its config, with
//! each flow's version. Built by `hotline serve` at start and by every reload, and by the
//! commands that judge flows (`validate`, `simulate`, `probe`): one place, used by both, so
//! the CLI and the server never import each other.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::Loaded;
use crate::flow::FlowSet;
use crate::flow::calendar::Calendar;
use crate::flow::check::{self, Context};
use crate::flow::load;
use crate::flow::report;
use crate::media::player::Prompts;

/// The flows a server runs, with their calendars and encoded prompts. A reload builds a new
/// one; calls keep the one they started with.
pub struct Flows {
    pub set: FlowSet,
    pub calendars: HashMap<String, Calendar>,
    pub prompts: Prompts,
    /// Each flow's version (`reload::version_of` its file), by flow index.
    pub versions: Vec<String>,
    /// What is missing but not fatal (hold music, queue prompts).
    pub warnings: Vec<String>,
    /// The validator's warnings on the set.
    pub warning_count: usize,
    /// `[lines]` and `[callbacks]` of the config the set was validated with: they change
    /// with it on a reload.
    pub lines: std::collections::BTreeMap<String, String>,
    pub callbacks: crate::sip::dial::DialPolicy,
    /// Each queue's own hold music (`hold_music`), by queue name; others play `hold`.
    pub hold_music: HashMap<String, String>,
    /// Where the built-in variables `time` and `weekday` are read.
    pub timezone: jiff::tz::TimeZone,
}

/// A flow file's version: the first 12 hex digits of the SHA-256 of its text.
pub fn version_of(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn context(config: Option<&Loaded>, max_steps: Option<u32>) -> Context {
    Context {
        queues: config.map(|c| c.queue_names().into_iter().collect::<HashSet<_>>()),
        calendars: config.map(|c| c.calendars.keys().cloned().collect()),
        lookups: config.map(|c| c.config.lookups.keys().cloned().collect()),
        switches: config.map(|c| c.config.switches.keys().cloned().collect()),
        dial: config.map(|c| {
            std::sync::Arc::new(c.config.dial_policy())
                as std::sync::Arc<dyn crate::flow::check::Dialable>
        }),
        max_steps,
    }
}

pub struct Validated {
    pub set: FlowSet,
    pub diagnostics: Vec<crate::flow::Diagnostic>,
    pub summaries: Vec<check::FlowSummary>,
    pub files: Vec<String>,
}

/// Loads and checks flows: the work of `validate`, shared with `simulate` and `serve`.
pub fn validate_paths(
    paths: &[PathBuf],
    config: Option<&Loaded>,
    max_steps: Option<u32>,
) -> Result<Validated, load::LoadError> {
    let prompts = config.map(|c| c.config.paths.prompts.as_path());
    validate_against(paths, config, prompts, max_steps)
}

/// Loads and checks flows against a config's queues and calendars, with prompts from
/// `prompts` (none: the nearest `prompts/` folder beside or above each flow file).
pub fn validate_against(
    paths: &[PathBuf],
    config: Option<&Loaded>,
    prompts: Option<&Path>,
    max_steps: Option<u32>,
) -> Result<Validated, load::LoadError> {
    let files = load::collect_files(paths)?;
    let tts = config.map(|c| c.config.tts.clone()).unwrap_or_default();
    let (mut set, mut diagnostics) = load::load_files(&files, prompts, &tts);
    if let Some(c) = config {
        set.lookups = c.config.lookups.clone();
        set.switches = c.config.switches.clone();
    }
    let mut server_prompts = crate::engine::announce::server_prompts();
    // A queue's own hold music must be there: `serve` refuses to start without it.
    let queues = config.map_or(&[][..], |c| c.config.queues.as_slice());
    for q in queues {
        let Some(name) = &q.hold_music else { continue };
        server_prompts.push(name.clone());
        let dir = prompts.map_or_else(|| PathBuf::from("prompts"), Path::to_path_buf);
        if matches!(
            load::read_prompt(&dir, name),
            crate::flow::model::PromptFile::Missing
        ) {
            let file = config
                .and_then(|c| c.file.clone())
                .unwrap_or_else(|| PathBuf::from("hotline.toml"));
            let source = std::sync::Arc::new(crate::flow::source::Source::new(file, String::new()));
            diagnostics.push(crate::flow::Diagnostic::new(
                crate::flow::diagnostic::Rule::MissingPrompt,
                &source,
                crate::flow::source::Pos { line: 1, column: 1 },
                format!(
                    "queue \"{}\": hold_music = \"{name}\": {} is missing",
                    q.name,
                    dir.join(format!("{name}.wav")).display()
                ),
            ));
        }
    }
    diagnostics.extend(load::check_server_prompts(&set, prompts, &server_prompts));
    diagnostics.extend(language_prompts(&set, prompts));
    let report = check::check(&set, &context(config, max_steps));
    diagnostics.extend(report.diagnostics);
    check::sort(&mut diagnostics);
    let files = files
        .iter()
        .filter(|f| f.1)
        .map(|f| f.0.display().to_string())
        .collect();
    Ok(Validated {
        set,
        diagnostics,
        summaries: report.summaries,
        files,
    })
}

/// What a caller speaking another language than the default hears from the server where they
/// wait or leave a message — the queue announcements, the callback offer, the follow-up
/// confirmations — must be there in their language (`prompts/es/queue/…`): each node where
/// such a caller would meet a missing one is an error naming the first file and the count.
fn language_prompts(set: &FlowSet, prompts: Option<&Path>) -> Vec<crate::flow::Diagnostic> {
    use crate::engine::announce;
    use crate::flow::language;
    use crate::flow::node::NodeKind;
    let mut out = Vec::new();
    let ways = language::Ways::of(set);
    for (id, node) in set.nodes.iter().enumerate() {
        let (needs, what): (Vec<String>, &str) = match &node.kind {
            NodeKind::Queue(_) | NodeKind::Owner(_) => (
                announce::prompt_names(),
                "their place in line, their wait and the callback offer",
            ),
            NodeKind::Voicemail(_) | NodeKind::Callback(_) => (
                announce::FOLLOW_UP.map(String::from).to_vec(),
                "whether their request was kept",
            ),
            _ => continue,
        };
        let flow = set.flow_of(id);
        let dir = prompts.map_or_else(
            || load::default_prompts_dir(&flow.source.path),
            Path::to_path_buf,
        );
        for lang in set.languages.get(id).into_iter().flatten() {
            if lang == language::DEFAULT {
                continue;
            }
            let names: Vec<String> = match &node.kind {
                NodeKind::Queue(_) | NodeKind::Owner(_) => announce::prompt_names_in(lang),
                _ => needs
                    .iter()
                    .map(|n| announce::in_language(lang, n))
                    .collect(),
            };
            // (Words only: the ringback tone is the same in every language.)
            let missing: Vec<String> = names
                .iter()
                .filter(|n| n.starts_with(&format!("{lang}/")))
                .filter(|n| {
                    !matches!(
                        load::read_prompt(&dir, n),
                        crate::flow::model::PromptFile::Ok { .. }
                    )
                })
                .map(|n| dir.join(format!("{n}.wav")).display().to_string())
                .collect();
            let Some(first) = missing.first() else {
                continue;
            };
            let more = match missing.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            out.push(
                crate::flow::Diagnostic::new(
                    crate::flow::diagnostic::Rule::MissingPrompt,
                    &flow.source,
                    node.pos,
                    format!(
                        "a caller speaking {} is told {what} here, but {first} is missing{more}",
                        language::display(lang)
                    ),
                )
                .at_node(node.full_name.clone())
                .with_path(ways.to(set, id, lang)),
            );
        }
    }
    out
}

/// Why a set of flows cannot go live.
#[derive(Debug)]
pub struct FlowsRefused {
    pub message: String,
    /// The validator's report, as `validate` prints it (empty when the problem is elsewhere).
    pub diagnostics: String,
}

/// Loads, validates and encodes the flows a server runs: every flow in `[paths] flows` with no
/// errors, every `[lines]` entry naming one of them, and their prompts (with hold music and the
/// queue announcements when present). Used at start and on every reload.
pub fn load_flows(loaded: &Loaded) -> Result<Flows, FlowsRefused> {
    let refused = |message: String| FlowsRefused {
        message,
        diagnostics: String::new(),
    };
    let flows_dir = loaded.config.paths.flows.clone();
    let v = validate_paths(std::slice::from_ref(&flows_dir), Some(loaded), None)
        .map_err(|e| refused(e.to_string()))?;
    let (errors, warnings) = report::counts(&v.diagnostics);
    if errors > 0 {
        return Err(FlowsRefused {
            message: format!(
                "the flows in {} have {errors} error(s)",
                flows_dir.display()
            ),
            diagnostics: report::text(&v.diagnostics, &v.summaries, v.files.len()),
        });
    }
    for (user, flow) in &loaded.config.lines {
        if v.set.flow_by_name(flow).is_none() {
            return Err(refused(format!(
                "[lines] {user} = \"{flow}\": no flow named \"{flow}\" in {}",
                flows_dir.display()
            )));
        }
    }
    let mut notes = Vec::new();
    let prompts_dir = loaded.config.paths.prompts.clone();
    let mut names: Vec<&str> = v.set.prompts.keys().map(String::as_str).collect();
    if prompts_dir.join("hold.wav").is_file() {
        names.push("hold");
    } else {
        notes.push(format!(
            "{} is missing: callers in a queue hear silence",
            prompts_dir.join("hold.wav").display()
        ));
    }
    // Queue announcements and the callback offer: all their prompts, or none.
    let announce = crate::engine::announce::prompt_names();
    let missing: Vec<&String> = announce
        .iter()
        .filter(|n| !prompts_dir.join(format!("{n}.wav")).is_file())
        .collect();
    if missing.is_empty() {
        names.extend(announce.iter().map(String::as_str));
    } else {
        notes.push(format!(
            "{} is missing ({} of {} queue prompts): callers in a queue hear no position, wait or callback offer",
            prompts_dir.join(format!("{}.wav", missing[0])).display(),
            missing.len(),
            announce.len()
        ));
    }
    // A queue's own hold music: refused when missing, rather than silence for its callers.
    let mut hold_music = HashMap::new();
    for q in &loaded.config.queues {
        let Some(n) = &q.hold_music else { continue };
        if !prompts_dir.join(format!("{n}.wav")).is_file() {
            return Err(refused(format!(
                "queue \"{}\": hold_music = \"{n}\": {} is missing",
                q.name,
                prompts_dir.join(format!("{n}.wav")).display()
            )));
        }
        names.push(n.as_str());
        hold_music.insert(q.name.clone(), n.clone());
    }
    // What a caller hears when their call starts being recorded: refused rather than
    // recording callers who were not told.
    if let Some(n) = &loaded.config.recording.announcement {
        if !prompts_dir.join(format!("{n}.wav")).is_file() {
            return Err(refused(format!(
                "[recording] announcement = \"{n}\": {} is missing",
                prompts_dir.join(format!("{n}.wav")).display()
            )));
        }
        names.push(n.as_str());
    }
    // The confirmations of an agent's feature code (a beep stands in for a missing one).
    for n in [
        crate::engine::announce::AGENT_AVAILABLE,
        crate::engine::announce::AGENT_NOT_READY,
    ] {
        if prompts_dir.join(format!("{n}.wav")).is_file() {
            names.push(n);
        }
    }
    // The same in every other language a caller may speak (the validator proved them there).
    let spoken: std::collections::BTreeSet<&String> = v.set.languages.iter().flatten().collect();
    let mut other = Vec::new();
    for lang in spoken {
        if lang != crate::flow::language::DEFAULT {
            let mut theirs = crate::engine::announce::caller_prompts_in(lang);
            // The recording announcement, where the line has it in their language.
            theirs.extend(
                loaded
                    .config
                    .recording
                    .announcement
                    .iter()
                    .map(|n| crate::engine::announce::in_language(lang, n)),
            );
            other.extend(
                theirs
                    .into_iter()
                    .filter(|n| prompts_dir.join(format!("{n}.wav")).is_file()),
            );
        }
    }
    names.extend(other.iter().map(String::as_str));
    // What a caller hears after a voicemail, or when a follow-up could not be saved.
    let mut missing = Vec::new();
    for n in crate::engine::announce::FOLLOW_UP {
        if prompts_dir.join(format!("{n}.wav")).is_file() {
            names.push(n);
        } else {
            missing.push(prompts_dir.join(format!("{n}.wav")).display().to_string());
        }
    }
    if !missing.is_empty() {
        notes.push(format!(
            "{} missing: callers are not told whether their message or callback was kept",
            missing.join(", ")
        ));
    }
    let prompts = crate::media::player::Prompts::load(&prompts_dir, names)
        .map_err(|e| refused(e.to_string()))?;
    let versions = v
        .set
        .flows
        .iter()
        .map(|f| version_of(&f.source.text))
        .collect();
    Ok(Flows {
        set: v.set,
        calendars: loaded.calendars.clone(),
        prompts,
        versions,
        warnings: notes,
        warning_count: warnings,
        lines: loaded.config.lines.clone(),
        callbacks: loaded.config.dial_policy(),
        hold_music,
        timezone: loaded.timezone.clone(),
    })
}

impl Flows {
    /// What a caller of `queue` hears while they wait or are held: its `hold_music`, else
    /// `prompts/hold.wav`.
    pub fn hold(&self, queue: Option<&str>) -> Vec<String> {
        let name = queue
            .and_then(|q| self.hold_music.get(q))
            .map_or("hold", String::as_str);
        vec![name.to_string()]
    }

    /// The flow a dialled user names in `[lines]`: exactly, or as the same number written
    /// another way (`0034910000000` finds `"+34910000000"`); `None` for no entry.
    pub fn line_named(&self, user: &str) -> Option<&str> {
        if user.is_empty() {
            return None;
        }
        if let Some(flow) = self.lines.get(user) {
            return Some(flow);
        }
        let numbering = &self.callbacks.numbering;
        let number = numbering.e164(user)?;
        self.lines
            .iter()
            .find(|(key, _)| numbering.e164(key).as_deref() == Some(number.as_str()))
            .map(|(_, flow)| flow.as_str())
    }
}
