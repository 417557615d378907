//! Writes validation results for people (`text`, rustc-like) and for machines (`json` exactly as
//! SPEC §3, `junit` one testcase per flow file, `github` workflow annotations).

use std::fmt::Write;

use serde_json::json;

use super::check::FlowSummary;
use super::diagnostic::{Diagnostic, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Junit,
    Github,
}

pub fn counts(diags: &[Diagnostic]) -> (usize, usize) {
    let errors = diags
        .iter()
        .filter(|d| d.severity() == Severity::Error)
        .count();
    (errors, diags.len() - errors)
}

pub fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// `main.welcome -(done)-> main.menu -(_)-> main.bye`
pub fn path_text(path: &[String]) -> String {
    let mut out = String::new();
    for (i, p) in path.iter().enumerate() {
        if i % 2 == 0 {
            out.push_str(p);
        } else {
            let _ = write!(out, " -({p})-> ");
        }
    }
    out
}

pub fn text(diags: &[Diagnostic], summaries: &[FlowSummary], files: usize) -> String {
    let mut out = String::new();
    for d in diags {
        let line = d.source.line_text(d.pos.line);
        let num = d.pos.line.to_string();
        let pad = " ".repeat(num.len());
        let _ = writeln!(
            out,
            "{}[{}]: {}",
            d.severity().as_str(),
            d.rule.id(),
            d.message
        );
        let _ = writeln!(out, "{pad}--> {}:{}:{}", d.file(), d.pos.line, d.pos.column);
        if !line.is_empty() {
            let caret = " ".repeat(d.pos.column.saturating_sub(1) as usize);
            let _ = writeln!(out, "{pad} |\n{num} | {line}\n{pad} | {caret}^");
        }
        if let Some(node) = &d.node {
            let _ = writeln!(out, "{pad} = node: {node}");
        }
        if !d.path.is_empty() {
            let _ = writeln!(out, "{pad} = path: {}", path_text(&d.path));
        }
        out.push('\n');
    }
    for s in summaries {
        let entry = s.entry.as_deref().unwrap_or("(none)");
        let worst = match (s.silent_steps, s.silent_seconds) {
            (Some(st), Some(sec)) => format!(
                "worst silent path {} and {sec:.1} s to a human",
                plural(st as usize, "step")
            ),
            _ => "a silent caller does not reach a human".to_string(),
        };
        let _ = writeln!(
            out,
            "{} ({}): entry {entry}, {}, {worst}",
            s.flow,
            s.file,
            plural(s.nodes, "node")
        );
    }
    let (e, w) = counts(diags);
    let verdict = if e == 0 { "ok" } else { "FAILED" };
    let _ = writeln!(
        out,
        "{verdict}: {} checked, {}, {}",
        plural(files, "flow file"),
        plural(e, "error"),
        plural(w, "warning")
    );
    out
}

pub fn json(diags: &[Diagnostic]) -> String {
    let (errors, warnings) = counts(diags);
    let list: Vec<_> = diags
        .iter()
        .map(|d| {
            json!({
                "rule": d.rule.id(),
                "severity": d.severity().as_str(),
                "file": d.file(),
                "line": d.pos.line,
                "column": d.pos.column,
                "node": d.node,
                "message": d.message,
                "path": d.path,
            })
        })
        .collect();
    let doc =
        json!({"ok": errors == 0, "errors": errors, "warnings": warnings, "diagnostics": list});
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// One testcase per flow file; a failure per error; warnings in the testcase's output.
pub fn junit(diags: &[Diagnostic], files: &[String]) -> String {
    let (errors, _) = counts(diags);
    let failed_files = files
        .iter()
        .filter(|f| {
            diags
                .iter()
                .any(|d| &d.file() == *f && d.severity() == Severity::Error)
        })
        .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"hotline validate\" tests=\"{}\" failures=\"{failed_files}\" errors=\"0\">",
        files.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"hotline validate\" tests=\"{}\" failures=\"{failed_files}\" errors=\"0\" skipped=\"0\">",
        files.len()
    );
    for f in files {
        let _ = writeln!(
            out,
            "    <testcase classname=\"hotline.validate\" name=\"{}\" file=\"{}\">",
            xml(f),
            xml(f)
        );
        let mine = diags.iter().filter(|d| &d.file() == f);
        let mut warnings = String::new();
        for d in mine {
            let mut body = format!("{}:{}:{}", d.file(), d.pos.line, d.pos.column);
            if let Some(n) = &d.node {
                let _ = write!(body, " node {n}");
            }
            if !d.path.is_empty() {
                let _ = write!(body, "\npath: {}", path_text(&d.path));
            }
            match d.severity() {
                Severity::Error => {
                    let _ = writeln!(
                        out,
                        "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                        d.rule.id(),
                        xml(&d.message),
                        xml(&body)
                    );
                }
                Severity::Warning => {
                    let _ = writeln!(warnings, "warning[{}]: {} ({body})", d.rule.id(), d.message);
                }
            }
        }
        if !warnings.is_empty() {
            let _ = writeln!(out, "      <system-out>{}</system-out>", xml(&warnings));
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    let _ = errors;
    out
}

/// GitHub Actions workflow commands: `::error file=…,line=…,col=…,title=RULE::message`.
pub fn github(diags: &[Diagnostic]) -> String {
    let data = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let prop = |s: &str| data(s).replace(':', "%3A").replace(',', "%2C");
    let mut out = String::new();
    for d in diags {
        let mut msg = d.message.clone();
        if let Some(n) = &d.node {
            let _ = write!(msg, " [{n}]");
        }
        if !d.path.is_empty() {
            let _ = write!(msg, "\npath: {}", path_text(&d.path));
        }
        let _ = writeln!(
            out,
            "::{} file={},line={},col={},title={}::{}",
            d.severity().as_str(),
            prop(&d.file()),
            d.pos.line,
            d.pos.column,
            d.rule.id(),
            data(&msg)
        );
    }
    out
}
