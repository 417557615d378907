//! `hotline`: the command line. Parses arguments and maps results to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use hotline::cli;
use hotline::flow::{render, report};

#[derive(Parser)]
#[command(
    name = "hotline",
    version,
    about = "A phone-line engine where no caller is ever trapped in a phone menu"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer calls: the SIP/RTP server running the flows (exit 0 after a clean shutdown, 2 bad config)
    Serve {
        /// Server config (default: ./hotline.toml if it exists, else the embedded demo defaults)
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Prove that every caller of the flows reaches a live human (exit 0 ok, 1 errors, 2 could not run)
    Validate {
        /// Flow files or folders (default: flows/)
        paths: Vec<PathBuf>,
        /// Server config, for queue and calendar names (default: ./hotline.toml if it exists)
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override every flow's max_steps_to_human
        #[arg(long, value_name = "N")]
        max_steps: Option<u32>,
        #[arg(long, value_enum, default_value = "text")]
        format: report::Format,
    },
    /// Walk a flow as a caller would, with no network
    Simulate {
        /// A flow file, or a flow name under flows/
        flow: String,
        /// Caller actions, one per menu or collect: keys 0-9*#, _ silence, ! hang up (e.g. "1,_,123456#")
        #[arg(long)]
        input: Option<String>,
        /// The time of the call, for schedules (default: now), e.g. 2026-11-23T10:00:00+01:00
        #[arg(long)]
        at: Option<String>,
        /// The caller's number, the built-in variable caller_number (default: withheld)
        #[arg(long)]
        caller: Option<String>,
        /// What a lookup endpoint answers: NAME=FILE (a JSON answer), NAME=error or NAME=timeout (the default); repeatable
        #[arg(long = "lookup")]
        lookups: Vec<String>,
        /// A switch's position: NAME=on or NAME=off (default: as the config sets it); repeatable
        #[arg(long = "switch")]
        switches: Vec<String>,
        /// A returning caller with an open follow-up: KIND[:STATE[:OWNER]], e.g. voicemail:taken:alice
        #[arg(long)]
        returning: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: SimFormat,
    },
    /// Print a flow as a diagram
    Graph {
        flow_file: PathBuf,
        #[arg(long, value_enum, default_value = "dot")]
        format: render::Format,
    },
    /// The compliance view of the call records: time to a human, answers, abandonment
    Report {
        /// Only calls started at or after this date or RFC 3339 time
        #[arg(long)]
        since: Option<String>,
        /// Server config, for the data folder (default: ./hotline.toml if it exists)
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: cli::ReportFormat,
    },
    /// Review a flow change: steps and seconds to a human before and after (exit 1 when a node got worse beyond the bound)
    Diff {
        /// The flow file (or folder) before the change
        old: PathBuf,
        /// The flow file (or folder) after the change
        new: PathBuf,
        /// Server config, for queue and calendar names (default: ./hotline.toml if it exists)
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override every flow's max_steps_to_human
        #[arg(long, value_name = "N")]
        max_steps: Option<u32>,
        #[arg(long, value_enum, default_value = "text")]
        format: cli::DiffFormat,
    },
    /// Dial a line and prove the escape at every caller-facing node on the real phone path (exit 0 all reached a human within the bound, 1 some did not, 2 could not run)
    Probe {
        /// The line to call, e.g. sip:main@127.0.0.1:5060 (;transport=tcp for TCP)
        uri: String,
        /// The flow the line runs: a file, or a name under flows/ (default: the URI's user, else main)
        #[arg(long)]
        flow: Option<String>,
        /// Server config, for the flows, prompts and calendars (default: ./hotline.toml if it exists)
        #[arg(long)]
        config: Option<PathBuf>,
        /// Probe again every DURATION (30s, 5m, 1h) for ever, serving metrics
        #[arg(long, value_name = "DURATION")]
        every: Option<String>,
        /// Probe only these nodes (flow.node, repeatable); the silent caller is probed always
        #[arg(long = "node", value_name = "NODE")]
        nodes: Vec<String>,
        /// With --every: where to serve Prometheus metrics of the probe's results
        #[arg(long, default_value = "127.0.0.1:9465")]
        metrics: String,
        #[arg(long, value_enum, default_value = "text")]
        format: cli::ProbeFormat,
    },
    /// Print the JSON Schema of the flow format (for editors: see README)
    Schema,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SimFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let exit = match args.command {
        Command::Serve { config } => return ExitCode::from(cli::serve(config.as_deref()) as u8),
        Command::Validate {
            paths,
            config,
            max_steps,
            format,
        } => cli::validate(paths, config.as_deref(), max_steps, format),
        Command::Simulate {
            flow,
            input,
            at,
            caller,
            lookups,
            switches,
            returning,
            config,
            format,
        } => cli::simulate(
            &flow,
            &cli::SimulateArgs {
                input: input.as_deref(),
                at: at.as_deref(),
                caller: caller.as_deref(),
                lookups: &lookups,
                switches: &switches,
                returning: returning.as_deref(),
                config: config.as_deref(),
                json: matches!(format, SimFormat::Json),
            },
        ),
        Command::Graph { flow_file, format } => cli::graph(&flow_file, format),
        Command::Report {
            since,
            config,
            format,
        } => cli::report(since.as_deref(), config.as_deref(), format),
        Command::Diff {
            old,
            new,
            config,
            max_steps,
            format,
        } => cli::diff(&old, &new, config.as_deref(), max_steps, format),
        Command::Probe {
            uri,
            flow,
            config,
            every,
            nodes,
            metrics,
            format,
        } => cli::probe(
            &uri,
            cli::ProbeOptions {
                flow: flow.as_deref(),
                config: config.as_deref(),
                every: every.as_deref(),
                nodes: &nodes,
                metrics: &metrics,
                format,
            },
        ),
        Command::Schema => cli::Exit {
            code: 0,
            stdout: hotline::flow::schema::flow_schema(),
            stderr: String::new(),
        },
    };
    // A reader that stops early (`hotline validate | head`) is not an error worth a panic.
    use std::io::Write as _;
    let _ = std::io::stdout().write_all(exit.stdout.as_bytes());
    let _ = std::io::stderr().write_all(exit.stderr.as_bytes());
    ExitCode::from(exit.code as u8)
}
