//! The desk's and the wall's live stream: what one event costs the signalling task that
//! publishes it (its JSON, made once, and the ring kept for reconnecting pages), and what it
//! costs to hand it to every open page.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotline::status::caller::{CallerCard, Variable};
use hotline::status::events::{Event, Hub};
use hotline::status::{AgentRow, NextState};

/// An agent ringing for a caller: the largest row there is (the caller card with its path).
fn ringing() -> Event {
    Event::Agent {
        agent: Box::new(AgentRow {
            id: "alice".into(),
            name: "Alice".into(),
            state: "ringing",
            since: "2026-12-06T22:00:00Z".into(),
            since_s: 0,
            reason: None,
            registered: true,
            unreachable: false,
            auth_failures: 0,
            locked_out: Vec::new(),
            call: Some("a84b4c76e66710@pc33.example.com".into()),
            next_state: Some(NextState {
                state: "not-ready",
                reason: Some("lunch".into()),
            }),
            wrap_up_left_s: None,
            caller: Some(CallerCard {
                call: "a84b4c76e66710@pc33.example.com".into(),
                name: "Ana Garcia".into(),
                uri: "sip:+34600111222@carrier.example.com".into(),
                number: "+34600111222".into(),
                queue: "support".into(),
                waited_s: 42,
                steps: vec![
                    "main.welcome: listened to the end".into(),
                    "main.menu: pressed 2".into(),
                    "main.account: typed their digits".into(),
                    "main.agents: reached".into(),
                ],
                returning: Some("returning: voicemail from 09:14, taken by alice".into()),
                variables: vec![Variable {
                    name: "account".into(),
                    value: "12345678".into(),
                }],
                callback: false,
                transferred_by: None,
                note: None,
            }),
            consulting: None,
        }),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("events");
    g.throughput(Throughput::Elements(1));
    let hub = Hub::default();
    g.bench_function("publish an agent ringing (no page open)", |b| {
        b.iter(|| hub.publish(black_box(ringing())))
    });
    let hub = Hub::default();
    let mut pages: Vec<_> = (0..100).map(|_| hub.subscribe(None).rx).collect();
    g.bench_function("publish, and 100 open pages receive it", |b| {
        b.iter(|| {
            hub.publish(black_box(ringing()));
            for p in &mut pages {
                black_box(p.try_recv().expect("every page gets it"));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
