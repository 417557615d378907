//! How long the validator takes on generated flows of 100, 1,000 and 10,000 nodes.
//! Each level of the generated line is a play, a menu, a collect, a branch and a queue: the
//! shape of a real IVR, chained so that paths and retries grow with the size.
//!
//! Then how it grows, shape by shape, from 1,000 to 100,000 nodes, valid and with one early
//! mistake: chains of plays, chains of menus, a wide menu tree. Checking must grow with the
//! line (and report one mistake once), never with its square.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hotline::flow::check::{self, Context};
use hotline::flow::load;

fn generate(nodes: usize) -> String {
    let levels = nodes.div_ceil(5);
    let mut s = String::from(
        "[flow]\nentry = \"p0\"\nescape_digit = \"0\"\nescape_to = \"q0\"\nmax_steps_to_human = 5\nmax_seconds_to_human = 86400\n\n[nodes.vm]\ntype = \"voicemail\"\nmailbox = \"m\"\n",
    );
    for i in 0..levels {
        let next = if i + 1 < levels {
            format!("p{}", i + 1)
        } else {
            format!("q{i}")
        };
        s += &format!(
            r##"
[nodes.p{i}]
type = "play"
prompt = "hello"
next = "m{i}"

[nodes.m{i}]
type = "menu"
prompt = "menu"
options = {{ "1" = "{next}", "2" = "c{i}", "3" = "q{i}", "9" = "{next}" }}
on_exhausted = "q{i}"

[nodes.c{i}]
type = "collect"
prompt = "menu"
min_digits = 4
max_digits = 8
terminator = "#"
variable = "account"
next = "b{i}"
on_exhausted = "q{i}"

[nodes.b{i}]
type = "branch"
variable = "account"
cases = {{ "prefix:9" = "q{i}", "1234" = "q{i}" }}
default = "q{i}"

[nodes.q{i}]
type = "queue"
queue = "support"
on_timeout = "vm"
"##
        );
    }
    s
}

fn prompts() -> PathBuf {
    let dir = std::env::temp_dir().join("hotline-bench-prompts");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, samples) in [("hello", 8000), ("menu", 8000), ("tick", 80)] {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(dir.join(format!("{name}.wav")), spec).unwrap();
        for _ in 0..samples {
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
    }
    dir
}

fn bench(c: &mut Criterion) {
    let prompts = prompts();
    let mut group = c.benchmark_group("validate");
    group.sample_size(20);
    for n in [100, 1_000, 10_000] {
        let text = generate(n);
        let load = |text: &str| {
            let mut set = hotline::flow::FlowSet::default();
            let mut diags = Vec::new();
            load::load_text(&mut set, Path::new("flows/main.toml"), text, &mut diags);
            load::finish(&mut set, Some(&prompts), &mut diags);
            (set, diags)
        };
        let (set, diags) = load(&text);
        assert!(
            diags.is_empty(),
            "the generated flow loads cleanly: {:?}",
            &diags[..1]
        );
        let report = check::check(&set, &Context::default());
        assert!(
            report
                .diagnostics
                .iter()
                .all(|d| d.rule.id() == "watchdog-reachable"),
            "the generated flow is valid: {:?}",
            report.diagnostics.first().map(|d| &d.message)
        );
        group.bench_with_input(BenchmarkId::new("load_and_check", n), &text, |b, text| {
            b.iter(|| {
                let (set, _) = load(black_box(text));
                check::check(&set, &Context::default())
            })
        });
        group.bench_with_input(BenchmarkId::new("check", n), &set, |b, set| {
            b.iter(|| check::check(black_box(set), &Context::default()))
        });
    }
    group.finish();
}

/// A line of `flows` flows, each a chain of `len` plays (or menus, whose silent caller falls
/// through to the next) ending at a queue. `mistake`: the first flow's bound is too small for
/// its chain, so every node of it but the last few strands its caller.
fn chains(nodes: usize, menus: bool, mistake: bool) -> Vec<(String, String)> {
    let len = 200;
    let flows = nodes.div_ceil(len + 2);
    (0..flows)
        .map(|f| {
            let bound = if mistake && f == 0 { 5 } else { 1000 };
            let mut s = format!(
                "[flow]\nentry = \"n0\"\nescape_digit = \"0\"\nescape_to = \"q\"\nmax_steps_to_human = {bound}\nmax_seconds_to_human = 86400\n\n[nodes.q]\ntype = \"queue\"\nqueue = \"support\"\non_timeout = \"vm\"\n\n[nodes.vm]\ntype = \"voicemail\"\nmailbox = \"m\"\n"
            );
            for i in 0..len {
                let next = if i + 1 < len {
                    format!("n{}", i + 1)
                } else {
                    "q".into()
                };
                if menus {
                    s += &format!(
                        "\n[nodes.n{i}]\ntype = \"menu\"\nprompt = \"tick\"\ntimeout_s = 1\nmax_retries = 0\noptions = {{ \"1\" = \"{next}\" }}\non_exhausted = \"{next}\"\n"
                    );
                } else {
                    s += &format!(
                        "\n[nodes.n{i}]\ntype = \"play\"\nprompt = \"tick\"\nnext = \"{next}\"\n"
                    );
                }
            }
            (format!("flows/f{f}.toml"), s)
        })
        .collect()
}

/// One flow: a tree of menus nine wide (options 1-9 to the next level, 0 escapes), its
/// leaves queues. `mistake`: the root's silent caller is hung up on.
fn tree(nodes: usize, mistake: bool) -> Vec<(String, String)> {
    let exhausted = if mistake { "bye" } else { "q" };
    let mut s = "[flow]\nentry = \"t0\"\nescape_digit = \"0\"\nescape_to = \"q\"\nmax_seconds_to_human = 86400\n\n[nodes.q]\ntype = \"queue\"\nqueue = \"support\"\non_timeout = \"vm\"\n\n[nodes.vm]\ntype = \"voicemail\"\nmailbox = \"m\"\n\n[nodes.bye]\ntype = \"hangup\"\n".to_string();
    // Menus t0.., each with children 9i+1..9i+9; those past `nodes` are queues.
    let menus = nodes / 10;
    for i in 0..menus {
        let options: Vec<String> = (1..=9)
            .map(|k| {
                let child = 9 * i + k;
                let target = if child < menus {
                    format!("t{child}")
                } else if child - menus < nodes - menus {
                    format!("w{}", child - menus)
                } else {
                    "q".into()
                };
                format!("\"{k}\" = \"{target}\"")
            })
            .collect();
        let on_exhausted = if i == 0 { exhausted } else { "q" };
        s += &format!(
            "\n[nodes.t{i}]\ntype = \"menu\"\nprompt = \"tick\"\noptions = {{ {} }}\non_exhausted = \"{on_exhausted}\"\n",
            options.join(", ")
        );
    }
    // The leaves: a play each, on the way to the queue.
    for i in 0..(nodes - menus) {
        s += &format!("\n[nodes.w{i}]\ntype = \"play\"\nprompt = \"tick\"\nnext = \"q\"\n");
    }
    vec![("flows/tree.toml".to_string(), s)]
}

fn growth(c: &mut Criterion) {
    let prompts = prompts();
    let mut group = c.benchmark_group("growth");
    group.sample_size(10);
    type Shape = fn(usize, bool) -> Vec<(String, String)>;
    let shapes: [(&str, Shape); 3] = [
        ("plays", |n, m| chains(n, false, m)),
        ("menus", |n, m| chains(n, true, m)),
        ("tree", tree),
    ];
    for (shape, make) in shapes {
        for mistake in [false, true] {
            for n in [1_000, 10_000, 100_000] {
                let mut set = hotline::flow::FlowSet::default();
                let mut diags = Vec::new();
                for (path, text) in make(n, mistake) {
                    load::load_text(&mut set, Path::new(&path), &text, &mut diags);
                }
                load::finish(&mut set, Some(&prompts), &mut diags);
                assert!(
                    diags.is_empty(),
                    "{shape} loads cleanly: {:?}",
                    diags.iter().map(|d| &d.message).take(3).collect::<Vec<_>>()
                );
                let report = check::check(&set, &Context::default());
                let errors = report
                    .diagnostics
                    .iter()
                    .filter(|d| {
                        d.rule.id() != "watchdog-reachable" && d.rule.id() != "unreachable-node"
                    })
                    .count();
                // One mistake, one diagnostic per stranded-caller rule.
                // (The tree's root hangs up on its silent caller: forced-hangup too.)
                let expected = match (mistake, shape) {
                    (false, _) => 0,
                    (true, "tree") => 3,
                    (true, _) => 2,
                };
                assert_eq!(
                    errors,
                    expected,
                    "{shape} {n} mistake={mistake}: {:?}",
                    report
                        .diagnostics
                        .iter()
                        .map(|d| (d.rule.id(), &d.message))
                        .take(4)
                        .collect::<Vec<_>>()
                );
                let name = if mistake {
                    format!("{shape}+mistake")
                } else {
                    shape.to_string()
                };
                group.bench_with_input(BenchmarkId::new(name, n), &set, |b, set| {
                    b.iter(|| check::check(black_box(set), &Context::default()))
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench, growth);
criterion_main!(benches);
