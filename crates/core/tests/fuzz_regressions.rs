//! What the fuzz targets (`fuzz/`, see fuzz/README.md) found, kept as ordinary tests: CI does not
//! run the fuzzers, it runs these. Each input is also in the target's seed corpus.

use agentsync_webhooks_core::{Delivery, EventData, FixedClock, Secret, Signer, Verifier};

/// fuzz target `secret` (seed `trailing_bits`): a secret whose last base64 character has
/// non-zero unused bits was refused as not base64, though the design (and the Python and Go
/// reference libraries) accept it. It reads as the canonical spelling.
#[test]
fn secret_with_nonzero_trailing_bits_is_the_canonical_key() {
    let canonical = "whsec_YWdlbnRzeW5jLXdlYmhvb2tzLWZ1enotMQ==";
    for sloppy in [
        "whsec_YWdlbnRzeW5jLXdlYmhvb2tzLWZ1enotMf",
        "whsec_YWdlbnRzeW5jLXdlYmhvb2tzLWZ1enotMf==",
        "YWdlbnRzeW5jLXdlYmhvb2tzLWZ1enotMR",
    ] {
        let secret = Secret::parse(sloppy).expect(sloppy);
        assert_eq!(secret.expose_whsec(), canonical, "{sloppy}");
    }
    // Both spellings are one key: what one signs, the other verifies.
    let signed = Signer::new(canonical)
        .unwrap()
        .sign("msg_1", 1_614_265_330, b"{}");
    let verifier = Verifier::builder()
        .secret("whsec_YWdlbnRzeW5jLXdlYmhvb2tzLWZ1enotMf")
        .unwrap()
        .clock(FixedClock::new(1_614_265_330))
        .build()
        .unwrap();
    assert!(verifier.verify(&signed.to_pairs(), b"{}").is_ok());
}

/// fuzz target `envelope` (seed `huge_number_unknown_type`): a number beyond `f64` in the `data`
/// of an unknown type was a 400 `invalid_event_data`, though an unknown type is never an error.
/// Its `data` is now kept as sent, unparsed.
#[test]
fn huge_number_in_unknown_data_is_accepted_as_sent() {
    let body = br#"{"type":"future.event","data":{"amount":1e400}}"#;
    let delivery = Delivery::<EventData>::parse("msg_1", 1_614_265_330, body[..].into())
        .expect("an unknown type is never refused");
    let EventData::Unknown { event_type, data } = &delivery.event.data else {
        panic!("{delivery:?}")
    };
    assert_eq!(
        (event_type.as_str(), data.get()),
        ("future.event", r#"{"amount":1e400}"#)
    );
}
