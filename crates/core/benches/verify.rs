//! Verification cost against the floor and against the `svix` crate, for an AgentSync-sized
//! payload, 4 KiB and 1 MiB.
//!
//! Two references: `keyed_hmac_floor` is the true floor, the HMAC of the same
//! `id.timestamp.body` bytes from a keyed state made once (what SHA-256 itself costs: the signed
//! content's blocks and the outer block); `bare_hmac_sha256` adds the key set-up (two more
//! blocks) on every call, as a receiver that keeps no keyed state does.
//!
//! `cargo bench -p agentsync-webhooks-core --all-features --bench verify -- agentsync`

use std::{
    future::Future as _,
    hint::black_box,
    pin::pin,
    task::{Context, Poll, Waker},
};

use agentsync_webhooks_core::{
    Clock as _, Delivery, EventData, EventType, Receiver, Signer, SystemClock, Verifier,
    event::samples,
};
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{KeyInit as _, Mac as _};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";

fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    let agentsync = samples::example_body(
        EventType::ProducerSyncUpdatesAvailable,
        "whe_01je7babqteg8v9p30k8zpg3ga",
        1_721_861_465,
    );
    let pad = |n: usize| {
        let mut body = br#"{"type":"contract.updated","data":{"note":""#.to_vec();
        body.resize(n - 3, b'x');
        body.extend_from_slice(br#""}}"#);
        body
    };
    vec![
        ("agentsync", agentsync),
        ("4KiB", pad(4096)),
        ("1MiB", pad(1 << 20)),
    ]
}

fn verify(c: &mut Criterion) {
    let verifier = Verifier::new(SECRET).unwrap();
    let signer = Signer::new(SECRET).unwrap();
    let svix = svix::webhooks::Webhook::new(SECRET).unwrap();
    let key = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    .unwrap();

    let mut group = c.benchmark_group("verify");
    for (name, body) in bodies() {
        group.throughput(Throughput::Bytes(body.len() as u64));
        let now = SystemClock.now_unix_secs();
        let signed = signer.sign(ID, now, &body);
        let pairs = signed.to_pairs();
        let map = signed.to_header_map();
        let ts = now.to_string();
        assert!(verifier.verify(&pairs, &body).is_ok() && svix.verify(&body, &map).is_ok());

        let keyed = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        group.bench_with_input(
            BenchmarkId::new("keyed_hmac_floor", name),
            &body,
            |b, body| {
                b.iter(|| {
                    let mut mac = black_box(&keyed).clone();
                    mac.update(ID.as_bytes());
                    mac.update(b".");
                    mac.update(ts.as_bytes());
                    mac.update(b".");
                    mac.update(black_box(body));
                    black_box(mac.finalize().into_bytes())
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("bare_hmac_sha256", name),
            &body,
            |b, body| {
                b.iter(|| {
                    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
                    mac.update(ID.as_bytes());
                    mac.update(b".");
                    mac.update(ts.as_bytes());
                    mac.update(b".");
                    mac.update(black_box(body));
                    black_box(mac.finalize().into_bytes())
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("ours", name), &body, |b, body| {
            b.iter(|| verifier.verify(black_box(&pairs), black_box(body)).is_ok())
        });
        group.bench_with_input(
            BenchmarkId::new("ours_http_headermap", name),
            &body,
            |b, body| b.iter(|| verifier.verify(black_box(&map), black_box(body)).is_ok()),
        );
        group.bench_with_input(BenchmarkId::new("svix", name), &body, |b, body| {
            b.iter(|| svix.verify(black_box(body), black_box(&map)).is_ok())
        });
    }
    group.finish();
}

/// The whole pipeline an adapter runs per delivery (verify, then parse the envelope and typed
/// `data`), and the parse alone, for the AgentSync payload.
fn accept(c: &mut Criterion) {
    let receiver = Receiver::new(Verifier::new(SECRET).unwrap());
    let body = Bytes::from(bodies().swap_remove(0).1);
    let signed = Signer::new(SECRET)
        .unwrap()
        .sign(ID, SystemClock.now_unix_secs(), &body);
    let pairs = signed.to_pairs();
    let mut group = c.benchmark_group("accept");
    group.bench_function("parse_only", |b| {
        b.iter(|| {
            Delivery::<EventData>::parse(ID, signed.timestamp, black_box(body.clone())).is_ok()
        })
    });
    group.bench_function("verify_and_parse", |b| {
        b.iter(|| {
            let accepted = pin!(receiver.accept::<EventData>(&pairs, black_box(body.clone())));
            matches!(
                accepted.poll(&mut Context::from_waker(Waker::noop())),
                Poll::Ready(Ok(_))
            )
        })
    });
    group.finish();
}

criterion_group!(benches, verify, accept);
criterion_main!(benches);
