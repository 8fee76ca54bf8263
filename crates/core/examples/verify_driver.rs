//! A small driver for counting instructions of one verification path under callgrind
//! (`valgrind --tool=callgrind`), which criterion's own loop would blur.
//!
//! ```text
//! cargo build --release -p agentsync-webhooks-core --all-features --example verify_driver
//! valgrind --tool=callgrind target/release/examples/verify_driver ours 10000
//! ```
//!
//! Modes: `floor` (HMAC from a keyed state made once), `bare` (HMAC with key set-up), `ours`
//! (`Verifier::verify`, name/value pairs), `headermap` (`Verifier::verify`, `http::HeaderMap`),
//! `none` (the set-up alone, to subtract). Under valgrind, sha2 runs its portable code.

use std::hint::black_box;

use agentsync_webhooks_core::{
    Clock as _, EventType, Signer, SystemClock, Verifier, event::samples,
};
use hmac::{KeyInit as _, Mac as _};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "ours".into());
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let body = samples::example_body(
        EventType::ProducerSyncUpdatesAvailable,
        "whe_01je7babqteg8v9p30k8zpg3ga",
        1_721_861_465,
    );
    let verifier = Verifier::new(SECRET).unwrap();
    let now = SystemClock.now_unix_secs();
    let signed = Signer::new(SECRET).unwrap().sign(ID, now, &body);
    let pairs = signed.to_pairs();
    let map = signed.to_header_map();
    let ts = now.to_string();
    let key = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    .unwrap();
    let keyed = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    let hmac = |mut mac: hmac::Hmac<sha2::Sha256>| {
        mac.update(ID.as_bytes());
        mac.update(b".");
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(black_box(&body));
        black_box(mac.finalize().into_bytes());
    };
    let mut ok = 0usize;
    for _ in 0..count {
        match mode.as_str() {
            "floor" => hmac(black_box(&keyed).clone()),
            "bare" => hmac(hmac::Hmac::<sha2::Sha256>::new_from_slice(black_box(&key)).unwrap()),
            "ours" => {
                ok += usize::from(verifier.verify(black_box(&pairs), black_box(&body)).is_ok())
            }
            "headermap" => {
                ok += usize::from(verifier.verify(black_box(&map), black_box(&body)).is_ok())
            }
            _ => {}
        }
    }
    println!("{mode}: {count} calls, {ok} verified");
}
