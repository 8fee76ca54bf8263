//! The verify path allocates nothing beyond what the caller already holds.

use agentsync_webhooks_core::{FixedClock, Signer, Verifier};

#[test]
fn verify_does_not_allocate() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let verifier = Verifier::builder()
        .secret(secret)
        .unwrap()
        .secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
        .unwrap()
        .clock(FixedClock::new(1_614_265_330))
        .build()
        .unwrap();
    let body = br#"{"type":"producersync.updates_available","data":{"runDate":"2025-07-24"}}"#;
    let signed = Signer::new(secret)
        .unwrap()
        .sign("msg_1", 1_614_265_330, body);
    let decoys = format!("v1,Zm9v v2,abc {} v1,", signed.signature);
    let headers = [
        ("webhook-id", "msg_1".to_owned()),
        ("webhook-timestamp", "1614265330".to_owned()),
        ("webhook-signature", decoys),
    ];
    let bad = b"{}";

    let counted = allocation_counter::measure(|| {
        assert!(verifier.verify(&headers, body).is_ok());
        assert!(verifier.verify(&headers, bad).is_err());
    });
    assert_eq!(counted.count_total, 0, "{counted:?}");
}
