//! How long the validator takes on generated flows of 100, 1,000 and 10,000 nodes.
//! Each level of the generated line is a play, a menu, a collect, a branch and a queue: the
//! shape of a real IVR, chained so that paths and retries grow with the size.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hotline::flow::check::{self, Context};
use hotline::flow::load;

fn generate(nodes: usize) -> String {
    let levels = nodes.div_ceil(5);
    let mut s = String::from(
        "[flow]\nentry = \"p0\"\nescape_digit = \"0\"\nescape_to = \"q0\"\nmax_steps_to_human = 5\n\n[nodes.vm]\ntype = \"voicemail\"\nmailbox = \"m\"\n",
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
    for name in ["hello", "menu"] {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(dir.join(format!("{name}.wav")), spec).unwrap();
        for _ in 0..8000 {
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

criterion_group!(benches, bench);
criterion_main!(benches);
