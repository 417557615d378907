//! Routing decisions under load: 10,000 agents, 100,000 waiting calls. One cycle is the end of
//! a connected call (the agent is free again: wrap-up 0, so it is offered the head of the
//! line at once) and the answer of the call it was rung for: two events, one assignment.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotline::routing::{AgentConfig, QueueConfig, Router, RouterAction, RouterEvent, Strategy};

const AGENTS: usize = 10_000;
const WAITING: u64 = 100_000;

#[allow(clippy::disallowed_methods)] // one real origin; the router only sees it
fn setup(strategy: Strategy) -> (Router, Vec<(u64, usize)>, Instant) {
    let now = Instant::now();
    let agents: Vec<AgentConfig> = (0..AGENTS)
        .map(|i| AgentConfig {
            id: format!("agent{i}"),
            skills: [("support".to_string(), (i % 10) as u32 + 1)].into(),
        })
        .collect();
    let queue = QueueConfig {
        name: "support".into(),
        skills: vec!["support".into()],
        strategy,
        ring_timeout: Duration::from_secs(15),
        wrap_up: Duration::ZERO,
        retry: Duration::from_secs(5),
    };
    let mut r = Router::new(&agents, &[queue], true, now);
    let mut connected = Vec::with_capacity(AGENTS);
    // Every agent gets a call and answers it; then 100k more callers wait.
    for call in 0..AGENTS as u64 {
        r.handle(
            RouterEvent::Enqueue {
                call,
                queue: 0,
                priority: 0,
            },
            now,
        );
    }
    for agent in 0..AGENTS {
        for a in r.handle(RouterEvent::Registered { agent }, now) {
            if let RouterAction::Ring { call, agent, .. } = a {
                r.handle(RouterEvent::Answered { call, agent }, now);
                connected.push((call, agent));
            }
        }
    }
    for call in AGENTS as u64..AGENTS as u64 + WAITING {
        r.handle(
            RouterEvent::Enqueue {
                call,
                queue: 0,
                priority: (call % 3) as u32,
            },
            now,
        );
    }
    (r, connected, now)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(1));
    for strategy in [Strategy::LongestIdle, Strategy::SkillWeighted] {
        let (mut r, connected, now) = setup(strategy);
        let mut live = std::collections::VecDeque::from(connected);
        let mut next_call = AGENTS as u64 + WAITING;
        g.bench_function(
            format!("{strategy:?} assign+release, 10k agents, 100k waiting"),
            |b| {
                b.iter(|| {
                    let (call, _) = live.pop_front().expect("a connected call");
                    let out = r.handle(RouterEvent::Ended { call }, now);
                    let Some(RouterAction::Ring { call, agent, .. }) = out.first().cloned() else {
                        panic!("the freed agent is offered the next caller: {out:?}");
                    };
                    r.handle(RouterEvent::Answered { call, agent }, now);
                    live.push_back((call, agent));
                    // Keep the line at 100k.
                    r.handle(
                        RouterEvent::Enqueue {
                            call: next_call,
                            queue: 0,
                            priority: 0,
                        },
                        now,
                    );
                    next_call += 1;
                    // What the server then asks: whom to tell the desk and the wall about.
                    black_box(r.take_changes());
                    black_box(&r);
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
