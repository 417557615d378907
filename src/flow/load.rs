//! Reads flow files into a `FlowSet`: TOML with source spans, node by node, collecting every
//! mistake as a diagnostic; then resolves references and reads prompt headers.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use toml::de::DeTable;

use super::diagnostic::{Diagnostic, Rule};
use super::fields::Fields;
use super::model::{Flow, FlowSet, Node, PromptFile};
use super::node::{NodeKind, TYPES};
use super::source::{Pos, Source};

/// A flow file larger than this is refused before parsing.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Why a check could not run at all (exit code 2), as opposed to finding errors in flows.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}: no such file or folder")]
    NotFound(PathBuf),
    #[error("{0}: no flow files (*.toml) in this folder")]
    Empty(PathBuf),
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
}

/// The flows to load: the files asked for, and their neighbours for resolving `flow.node`.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, bool)>, LoadError> {
    let mut out: Vec<(PathBuf, bool)> = Vec::new();
    let mut neighbours: Vec<PathBuf> = Vec::new();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |err| LoadError::Io { path, err }
    };
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|_| LoadError::NotFound(path.clone()))?;
        if meta.is_dir() {
            let files = toml_files(path).map_err(io(path))?;
            if files.is_empty() {
                return Err(LoadError::Empty(path.clone()));
            }
            out.extend(files.into_iter().map(|f| (f, true)));
        } else {
            out.push((path.clone(), true));
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            neighbours.extend(toml_files(&dir).unwrap_or_default());
        }
    }
    let same = |a: &Path, b: &Path| {
        a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    };
    for n in neighbours {
        if !out.iter().any(|(p, _)| same(p, &n)) {
            out.push((n, false));
        }
    }
    Ok(out)
}

fn toml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .map(|p| match dir.to_str() {
            // Keep the user's spelling (`flows/main.toml`, not `./flows/main.toml`).
            Some(".") => p.strip_prefix(".").map(Path::to_path_buf).unwrap_or(p),
            _ => p,
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Loads flow files (each with whether its diagnostics are reported) into one set.
pub fn load_files(
    files: &[(PathBuf, bool)],
    prompts_dir: Option<&Path>,
    tts: &crate::tts::Tts,
) -> (FlowSet, Vec<Diagnostic>) {
    let mut set = FlowSet::default();
    let mut diags = Vec::new();
    let mut unreported: Vec<Arc<Source>> = Vec::new();
    for (path, reported) in files {
        let before = diags.len();
        let source = load_file(&mut set, path, *reported, &mut diags);
        if !reported {
            diags.truncate(before);
            unreported.extend(source);
        }
    }
    let mut later = Vec::new();
    resolve(&mut set, &mut later);
    set.languages = super::language::reachable(&set);
    render_says(&mut set, prompts_dir, tts);
    check_prompts(&mut set, prompts_dir, &mut later);
    later.retain(|d| !unreported.iter().any(|s| Arc::ptr_eq(s, &d.source)));
    diags.extend(later);
    (set, diags)
}

/// Loads one flow from text (for tests and tools that have the text at hand).
pub fn load_text(set: &mut FlowSet, path: &Path, text: &str, diags: &mut Vec<Diagnostic>) {
    let source = Arc::new(Source::new(path, text.to_string()));
    parse_flow(set, &source, true, diags);
}

/// Resolves references and reads prompts once every flow of the set is loaded (text prompts
/// rendered by the default engine).
pub fn finish(set: &mut FlowSet, prompts_dir: Option<&Path>, diags: &mut Vec<Diagnostic>) {
    resolve(set, diags);
    set.languages = super::language::reachable(set);
    render_says(set, prompts_dir, &crate::tts::Tts::default());
    check_prompts(set, prompts_dir, diags);
}

/// Each flow's prompts folder: `prompts_dir`, or the nearest `prompts/` beside the file.
fn prompt_dirs(set: &FlowSet, prompts_dir: Option<&Path>) -> Vec<PathBuf> {
    set.flows
        .iter()
        .map(|f| prompts_dir.map_or_else(|| default_prompts_dir(&f.source.path), Path::to_path_buf))
        .collect()
}

/// Renders every text prompt (once: the cache keeps it) and names it by its rendering; one
/// that cannot be rendered is kept in `unrendered` with why, for its diagnostic.
fn render_says(set: &mut FlowSet, prompts_dir: Option<&Path>, tts: &crate::tts::Tts) {
    let dirs = prompt_dirs(set, prompts_dir);
    for id in 0..set.nodes.len() {
        let flow = set.nodes[id].flow;
        let mut failed = Vec::new();
        for p in set.nodes[id].kind.prompts_mut() {
            let Some(text) = p.say.clone() else { continue };
            let mut render =
                |language: &str, text: &str| match tts.ensure(&dirs[flow], language, text) {
                    Ok(name) => name,
                    Err(why) => {
                        failed.push((text.to_string(), why));
                        tts.name(language, text)
                    }
                };
            p.name = render(&p.language, &text);
            for (language, (text, name)) in p.others.iter_mut() {
                *name = render(language, text);
            }
        }
        set.unrendered.extend(failed);
    }
}

fn load_file(
    set: &mut FlowSet,
    path: &Path,
    reported: bool,
    diags: &mut Vec<Diagnostic>,
) -> Option<Arc<Source>> {
    let start = Pos { line: 1, column: 1 };
    // Until it parses, references into it are not reported a second time.
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    set.unreadable.extend(stem.clone());
    let empty = |text: &str| Arc::new(Source::new(path, text.to_string()));
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_FILE_BYTES {
        let s = empty("");
        diags.push(Diagnostic::new(
            Rule::InvalidFlow,
            &s,
            start,
            format!(
                "the file is {:.1} MB; a flow file may be at most 8 MiB",
                size as f64 / 1e6
            ),
        ));
        return Some(s);
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let s = empty("");
            diags.push(Diagnostic::new(
                Rule::InvalidFlow,
                &s,
                start,
                format!("cannot read the file: {e}"),
            ));
            return Some(s);
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let s = Arc::new(Source::new(path, lossy));
            let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
            let pos = Source::new(path, prefix.clone()).pos(prefix.len());
            diags.push(Diagnostic::new(
                Rule::InvalidFlow,
                &s,
                pos,
                "the file is not valid UTF-8 text",
            ));
            return Some(s);
        }
    };
    let source = Arc::new(Source::new(path, text));
    if let Some(stem) = stem {
        set.unreadable.retain(|n| *n != stem);
    }
    parse_flow(set, &source, reported, diags);
    Some(source)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_flow(
    set: &mut FlowSet,
    source: &Arc<Source>,
    reported: bool,
    diags: &mut Vec<Diagnostic>,
) {
    let start = Pos { line: 1, column: 1 };
    let name = source
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !valid_name(&name) {
        diags.push(Diagnostic::new(
            Rule::InvalidFlow,
            source,
            start,
            format!(
                "the flow name \"{name}\" (the file name) may use only letters, digits, `_` and `-`"
            ),
        ));
        return;
    }
    if set.flow_by_name(&name).is_some() {
        diags.push(Diagnostic::new(
            Rule::InvalidFlow,
            source,
            start,
            format!("a flow named \"{name}\" is already loaded from another file"),
        ));
        return;
    }
    let text = source.text.as_str();
    let root = match DeTable::parse(text) {
        Ok(t) => t,
        Err(e) => {
            let pos = e.span().map_or(start, |s| source.pos(s.start));
            diags.push(Diagnostic::new(
                Rule::InvalidFlow,
                source,
                pos,
                format!("TOML syntax: {}", e.message().trim()),
            ));
            set.unreadable.push(name);
            return;
        }
    };
    let root = root.get_ref();
    let flow_id = set.flows.len();
    let mut flow = Flow {
        name: name.clone(),
        source: Arc::clone(source),
        pos: start,
        entry: None,
        escape_digit: '0',
        escape_to: None,
        max_steps_to_human: 5,
        max_seconds_to_human: 120,
        description: None,
        language: super::language::DEFAULT.to_string(),
        nodes: Vec::new(),
        reported,
    };

    let top = Fields::new(root, source, "flow file", None, diags);
    top.finish(&["flow", "nodes"]);

    match root.get("flow") {
        None => diags.push(Diagnostic::new(
            Rule::InvalidFlow,
            source,
            start,
            "missing the [flow] table (entry, escape_digit, escape_to)",
        )),
        Some(v) => match v.get_ref().as_table() {
            None => diags.push(Diagnostic::new(
                Rule::InvalidFlow,
                source,
                source.pos(v.span().start),
                "`flow` must be a table",
            )),
            Some(t) => {
                let at = source.line_start_pos(v.span().start);
                flow.pos = at;
                let mut f = Fields::new(t, source, "[flow]", None, diags);
                flow.entry = f.required_target("entry", at);
                flow.escape_digit = f.key("escape_digit").unwrap_or('0');
                flow.escape_to = f.target("escape_to");
                flow.max_steps_to_human = f.number("max_steps_to_human", 5, 1000).max(1);
                flow.max_seconds_to_human = f.number("max_seconds_to_human", 120, 86_400);
                flow.description = f.string("description").map(|(d, _)| d);
                if let Some((language, pos)) = f.string("language") {
                    if super::language::is_spoken(&language) {
                        flow.language = language;
                    } else {
                        f.error(
                            pos,
                            format!("[flow]: {}", super::language::unknown(&language)),
                        );
                    }
                }
                f.finish(&[]);
            }
        },
    }

    let nodes = root
        .get("nodes")
        .and_then(|v| match v.get_ref().as_table() {
            Some(t) => Some(t),
            None => {
                diags.push(Diagnostic::new(
                    Rule::InvalidFlow,
                    source,
                    source.pos(v.span().start),
                    "`nodes` must be a table of nodes",
                ));
                None
            }
        });
    if root.get("nodes").is_none() {
        diags.push(Diagnostic::new(
            Rule::InvalidFlow,
            source,
            start,
            "the flow has no [nodes]",
        ));
    }
    for (key, value) in nodes.into_iter().flat_map(|t| t.iter()) {
        let node_name = key.get_ref().to_string();
        let full_name = format!("{name}.{node_name}");
        let at = source.line_start_pos(key.span().start);
        let err = |diags: &mut Vec<Diagnostic>, msg: String| {
            diags.push(
                Diagnostic::new(Rule::InvalidFlow, source, at, msg).at_node(full_name.clone()),
            );
        };
        if !valid_name(&node_name) {
            err(
                diags,
                format!("node name \"{node_name}\" may use only letters, digits, `_` and `-`"),
            );
            continue;
        }
        let Some(table) = value.get_ref().as_table() else {
            err(diags, format!("node {full_name} must be a table"));
            continue;
        };
        let mut f = Fields::new(
            table,
            source,
            format!("node {full_name}"),
            Some(full_name.clone()),
            diags,
        );
        let Some((ty, ty_pos)) = f.required_string("type", at) else {
            set.unreadable.push(full_name);
            continue;
        };
        let mut allow_loop = false;
        for (what, pos) in f.strings("allow") {
            match what.as_str() {
                "loop" => allow_loop = true,
                _ => f.error(
                    pos,
                    format!("node {full_name}: `allow` takes \"loop\" (a way back here the caller chooses), found \"{what}\""),
                ),
            }
        }
        let set_vars = super::variables::parse_set(&mut f, &format!("node {full_name}"));
        match NodeKind::parse(&ty, &mut f, at) {
            Some(kind) => {
                f.finish(&[]);
                let id = set.add_node(Node {
                    flow: flow_id,
                    name: node_name,
                    full_name,
                    pos: at,
                    kind,
                    allow_loop,
                    set: set_vars,
                });
                flow.nodes.push(id);
            }
            None => {
                f.error(
                    ty_pos,
                    format!("unknown node type \"{ty}\" (one of {})", TYPES.join(", ")),
                );
                set.unreadable.push(full_name);
            }
        }
    }
    // A text given without a language is in the flow's; one given per language is shown
    // (graph, diff) in the flow's when it has that.
    for &id in &flow.nodes {
        for p in set.nodes[id].kind.prompts_mut() {
            if p.say.is_some() && p.language.is_empty() {
                p.language = flow.language.clone();
            }
            if let Some((text, _)) = p.others.remove(&flow.language) {
                let was = (
                    std::mem::take(&mut p.language),
                    p.say.take().unwrap_or_default(),
                );
                p.others.insert(was.0, (was.1, String::new()));
                p.language = flow.language.clone();
                p.say = Some(text);
            }
        }
    }
    set.flows.push(flow);
}

/// Resolves every reference; a name that matches nothing is `unknown-node` — except one
/// into a flow whose file could not be read or parsed, which is left unresolved (that file's
/// own error says what is wrong).
fn resolve(set: &mut FlowSet, diags: &mut Vec<Diagnostic>) {
    let lookup = |set: &FlowSet, flow: usize, text: &str| -> Result<usize, String> {
        if let Some((f, n)) = text.split_once('.') {
            if set.flow_by_name(f).is_none() {
                if set.unreadable.iter().any(|u| u == f) {
                    return Err(String::new());
                }
                return Err(format!(
                    "\"{text}\" names no flow \"{f}\" (no {f}.toml beside this flow)"
                ));
            }
            set.find(flow, text).ok_or_else(|| {
                if set.unreadable.iter().any(|u| u == text) {
                    return String::new();
                }
                format!("\"{text}\" names no node \"{n}\" in flow {f}")
            })
        } else {
            let name = &set.flows[flow].name;
            set.find(flow, text).ok_or_else(|| {
                if set.unreadable.contains(&format!("{name}.{text}")) {
                    return String::new();
                }
                format!("\"{text}\" names no node of flow {name}")
            })
        }
    };
    for fi in 0..set.flows.len() {
        for which in [0, 1] {
            let t = if which == 0 {
                &set.flows[fi].entry
            } else {
                &set.flows[fi].escape_to
            };
            let Some(t) = t else { continue };
            let r = lookup(set, fi, &t.text);
            let label = if which == 0 { "entry" } else { "escape_to" };
            let source = Arc::clone(&set.flows[fi].source);
            let pos = t.pos;
            match r {
                Ok(id) => {
                    let flow = &mut set.flows[fi];
                    let t = if which == 0 {
                        &mut flow.entry
                    } else {
                        &mut flow.escape_to
                    };
                    if let Some(t) = t {
                        t.node = Some(id);
                    }
                }
                Err(msg) if msg.is_empty() => {}
                Err(msg) => diags.push(Diagnostic::new(
                    Rule::UnknownNode,
                    &source,
                    pos,
                    format!("{label}: {msg}"),
                )),
            }
        }
    }
    for id in 0..set.nodes.len() {
        let flow = set.nodes[id].flow;
        let texts: Vec<String> = set.nodes[id]
            .kind
            .targets_mut()
            .iter()
            .map(|t| t.text.clone())
            .collect();
        let results: Vec<_> = texts.iter().map(|t| lookup(set, flow, t)).collect();
        let source = Arc::clone(&set.flows[flow].source);
        let full = set.nodes[id].full_name.clone();
        for (t, r) in set.nodes[id].kind.targets_mut().into_iter().zip(results) {
            match r {
                Ok(target) => t.node = Some(target),
                Err(msg) if msg.is_empty() => {}
                Err(msg) => diags.push(
                    Diagnostic::new(Rule::UnknownNode, &source, t.pos, msg).at_node(full.clone()),
                ),
            }
        }
    }
}

/// Where a flow file's prompts live when no config says: the nearest `prompts/` folder beside
/// the file or above it, else `prompts/` in the working directory.
/// The prompts the server plays besides the flows' own (`names`: hold music, queue
/// announcements, follow-up confirmations), in `prompts_dir` or each flow's nearest
/// `prompts/`: each may be absent, but one that is there must be playable, because `serve`
/// refuses to start on a broken one.
pub fn check_server_prompts(
    set: &FlowSet,
    prompts_dir: Option<&Path>,
    names: &[String],
) -> Vec<Diagnostic> {
    let mut dirs: Vec<PathBuf> = match prompts_dir {
        Some(d) => vec![d.to_path_buf()],
        None => set
            .flows
            .iter()
            .map(|f| default_prompts_dir(&f.source.path))
            .collect(),
    };
    dirs.sort();
    dirs.dedup();
    let mut diags = Vec::new();
    for dir in &dirs {
        for name in names {
            if let PromptFile::Bad(why) = read_prompt(dir, name) {
                let file = dir.join(format!("{name}.wav"));
                let source = Arc::new(Source::new(file, String::new()));
                diags.push(Diagnostic::new(
                    Rule::BadPrompt,
                    &source,
                    Pos { line: 1, column: 1 },
                    format!("prompt \"{name}\" (played by the server): {why}"),
                ));
            }
        }
    }
    diags
}

pub fn default_prompts_dir(flow_file: &Path) -> PathBuf {
    let abs = std::path::absolute(flow_file).unwrap_or_else(|_| flow_file.to_path_buf());
    let mut dir = abs.parent();
    while let Some(d) = dir {
        let candidate = d.join("prompts");
        if candidate.is_dir() {
            return candidate;
        }
        dir = d.parent();
    }
    PathBuf::from("prompts")
}

/// A prompt name must stay inside the prompts folder: no absolute path, no `..`.
pub fn prompt_name_escapes(name: &str) -> bool {
    let p = Path::new(name);
    name.is_empty()
        || name.contains('\\')
        || name.contains('\0')
        || p.components().any(|c| !matches!(c, Component::Normal(_)))
}

/// Reads the header of a prompt: 8 kHz, mono, 16-bit PCM WAV, and its length.
pub fn read_prompt(dir: &Path, name: &str) -> PromptFile {
    if prompt_name_escapes(name) {
        return PromptFile::Escapes;
    }
    let path = dir.join(format!("{name}.wav"));
    if !path.is_file() {
        return PromptFile::Missing;
    }
    // A link inside prompts/ must not lead outside it either.
    if let (Ok(real), Ok(root)) = (path.canonicalize(), dir.canonicalize())
        && !real.starts_with(&root)
    {
        return PromptFile::Escapes;
    }
    match hound::WavReader::open(&path) {
        Err(e) => PromptFile::Bad(format!("not a readable WAV file ({e})")),
        Ok(r) => {
            let s = r.spec();
            if s.sample_rate != 8000
                || s.channels != 1
                || s.bits_per_sample != 16
                || s.sample_format != hound::SampleFormat::Int
            {
                PromptFile::Bad(format!(
                    "{} Hz, {} channel(s), {}-bit {}; prompts must be 8000 Hz mono 16-bit PCM",
                    s.sample_rate,
                    s.channels,
                    s.bits_per_sample,
                    if s.sample_format == hound::SampleFormat::Int {
                        "PCM"
                    } else {
                        "float"
                    }
                ))
            } else {
                PromptFile::Ok {
                    seconds: f64::from(r.duration()) / 8000.0,
                }
            }
        }
    }
}

fn check_prompts(set: &mut FlowSet, prompts_dir: Option<&Path>, diags: &mut Vec<Diagnostic>) {
    let mut seen: HashSet<(usize, String)> = HashSet::new();
    let dirs = prompt_dirs(set, prompts_dir);
    let ways = super::language::Ways::of(set);
    for id in 0..set.nodes.len() {
        let node = &set.nodes[id];
        let flow = &set.flows[node.flow];
        let dir = &dirs[node.flow];
        // Every language a caller may hear the node in; the flow's own where none reaches it.
        let languages: Vec<String> = match set.languages.get(id) {
            Some(l) if !l.is_empty() => l.iter().cloned().collect(),
            _ => vec![flow.language.clone()],
        };
        for p in node.kind.prompts() {
            for language in &languages {
                let in_language = if languages.len() > 1 || language != super::language::DEFAULT {
                    format!(" in {}", super::language::display(language))
                } else {
                    String::new()
                };
                let Some(name) = p.name_in(language) else {
                    let shown: String = p.say.as_deref().unwrap_or("").chars().take(40).collect();
                    let msg = format!(
                        "a caller speaking {} hears text prompt \"{shown}\", which has no text in {}: add it (say = {{ {language} = \"…\" }})",
                        super::language::display(language),
                        super::language::display(language),
                    );
                    if seen.insert((id, format!("{language}:{shown}"))) {
                        diags.push(
                            Diagnostic::new(Rule::MissingPrompt, &flow.source, p.pos, msg)
                                .at_node(node.full_name.clone())
                                .with_path(ways.to(set, id, language)),
                        );
                    }
                    continue;
                };
                let file = set
                    .prompts
                    .entry(name.clone())
                    .or_insert_with(|| read_prompt(dir, &name))
                    .clone();
                let (rule, msg) = match file {
                    PromptFile::Ok { .. } => continue,
                    PromptFile::Escapes => (
                        Rule::MissingPrompt,
                        format!("prompt \"{}\" is outside the prompts folder", p.name),
                    ),
                    PromptFile::Missing => match p
                        .text_in(language)
                        .and_then(|t| set.unrendered.get(t).map(|why| (t, why)))
                    {
                        Some((text, why)) => {
                            let shown: String = text.chars().take(60).collect();
                            (
                                Rule::MissingPrompt,
                                format!("text prompt \"{shown}\" could not be rendered: {why}"),
                            )
                        }
                        None => (
                            Rule::MissingPrompt,
                            format!(
                                "prompt \"{}\"{in_language}: no file {}",
                                p.name,
                                dir.join(format!("{name}.wav")).display()
                            ),
                        ),
                    },
                    PromptFile::Bad(why) => (
                        Rule::BadPrompt,
                        format!("prompt \"{}\"{in_language}: {why}", p.name),
                    ),
                };
                if seen.insert((id, name.clone())) {
                    // How a caller speaking another language gets here.
                    let way = if in_language.is_empty() {
                        Vec::new()
                    } else {
                        ways.to(set, id, language)
                    };
                    diags.push(
                        Diagnostic::new(rule, &flow.source, p.pos, msg)
                            .at_node(node.full_name.clone())
                            .with_path(way),
                    );
                }
            }
        }
    }
}
