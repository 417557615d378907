//! SRTP's cost per packet: one 20 ms G.711 frame (12-byte header, 160 bytes of audio)
//! protected as the media loop sends it, and unprotected as it arrives. A call costs 50 of
//! each a second.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hotline::media::srtp::{MASTER_LEN, Srtp, Suite};

fn frame(seq: u16) -> [u8; 200] {
    let mut p = [0u8; 200];
    p[0] = 0x80;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    p[12..172].fill(0xd5);
    p
}

fn srtp(c: &mut Criterion) {
    let key = [7u8; MASTER_LEN];
    let mut g = c.benchmark_group("srtp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("protect one 20 ms frame", |b| {
        let mut tx = Srtp::new(Suite::AesCm128HmacSha1_80, &key);
        let mut seq = 0u16;
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let mut p = frame(seq);
            black_box(tx.protect(&mut p, 172));
        })
    });
    g.bench_function("unprotect one 20 ms frame", |b| {
        let mut tx = Srtp::new(Suite::AesCm128HmacSha1_80, &key);
        let mut rx = Srtp::new(Suite::AesCm128HmacSha1_80, &key);
        let mut seq = 0u16;
        // Each packet is made (untimed) by the sender just before it is read, in order.
        b.iter_batched(
            || {
                seq = seq.wrapping_add(1);
                let mut p = frame(seq);
                tx.protect(&mut p, 172);
                p
            },
            |mut p| {
                let n = rx.unprotect(&mut p[..182]);
                assert!(n.is_some());
                n
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, srtp);
criterion_main!(benches);
