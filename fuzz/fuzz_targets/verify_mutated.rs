//! A delivery signed correctly with `Signer`, then one field changed.
//!
//! Checks: the signed delivery verifies, also after changes that do not touch what is signed
//! (header names in upper case, `svix-*` names, another order, an extra header); after one
//! change to the id, the timestamp, the body or the signature header, it verifies only if that
//! field is byte-identical to what was signed, or (for the signature header) if an examined
//! entry is still one of the signed entries, at most with some of its `=` padding dropped.
#![no_main]

use agentsync_webhooks_core::{
    FixedClock, Secret, Signer, Verifier,
    headers::{self, MAX_ID_LEN, MAX_SIGNATURE_ENTRIES},
    v1a::SigningKey,
};
use agentsync_webhooks_fuzz::{NOW, OTHER_SECRETS, PUBLIC_KEY, SECRET, check_error};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

/// The published `v1a` vector's signing key (its public key is [`PUBLIC_KEY`]).
const SIGNING_KEY: &str =
    "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";

#[derive(Arbitrary, Debug)]
struct Input {
    /// The secret's bytes; empty means the vector secret.
    key: Vec<u8>,
    /// Used when it is a valid id (1 to 256 visible ASCII characters).
    id: String,
    /// Signed at `NOW + drift % 301`, inside the window.
    drift: i16,
    body: Vec<u8>,
    /// Also signed with the `v1a` key.
    v1a: bool,
    /// The verifier holds another secret before this one.
    rotation: bool,
    harmless: Harmless,
    mutation: Mutation,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Field {
    Id,
    Timestamp,
    Signature,
    Body,
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    Flip { field: Field, at: usize, xor: u8 },
    Insert { field: Field, at: usize, byte: u8 },
    Remove { field: Field, at: usize },
    Replace { field: Field, with: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
enum Harmless {
    Nothing,
    UpperCaseNames,
    SvixNames,
    Reversed,
    ExtraHeader(Vec<u8>),
}

fuzz_target!(|input: Input| {
    let secret = match input.key.is_empty() {
        true => Secret::parse(SECRET),
        false => Secret::from_bytes(&input.key),
    }
    .expect("a non-empty key");
    let id = match input.id.len() <= MAX_ID_LEN
        && !input.id.is_empty()
        && input.id.bytes().all(|b| b.is_ascii_graphic())
    {
        true => input.id.as_str(),
        false => "msg_p5jXN8AQM9LWM0D4loKWxJek",
    };
    let timestamp = NOW + i64::from(input.drift) % 301;

    let mut signer = Signer::default().with_secret(&secret);
    let mut verifier = Verifier::builder();
    if input.rotation {
        verifier = verifier.secret(OTHER_SECRETS[0]).expect("vector secret");
    }
    verifier = verifier.parsed_secret(secret);
    if input.v1a {
        signer = signer.with_signing_key(SIGNING_KEY.parse::<SigningKey>().expect("vector key"));
        verifier = verifier.public_key(PUBLIC_KEY).expect("vector key");
    }
    let verifier = verifier
        .clock(FixedClock::new(NOW))
        .build()
        .expect("a secret");

    let signed = signer.sign(id, timestamp, &input.body);
    let original = [
        id.as_bytes().to_vec(),
        timestamp.to_string().into_bytes(),
        signed.signature.clone().into_bytes(),
        input.body.clone(),
    ];
    let (pairs, body) = delivery(&original, &input.harmless);
    let verified = verifier
        .verify(&pairs, body)
        .expect("a signed delivery verifies");
    assert_eq!((verified.id, verified.timestamp), (id, timestamp));

    let (field, mutated) = mutate(&original, &input.mutation);
    let (pairs, body) = delivery(&mutated, &input.harmless);
    match verifier.verify(&pairs, body) {
        Ok(_) => {
            let (before, after) = (&original[field as usize], &mutated[field as usize]);
            assert!(
                before == after || (field == Field::Signature && still_signed(before, after)),
                "a changed {field:?} verified: {:?}",
                String::from_utf8_lossy(after)
            );
        }
        Err(e) => {
            assert_ne!(
                original, mutated,
                "an unchanged delivery was refused: {e:?}"
            );
            check_error(&e);
        }
    }
});

/// Header pairs and body of a delivery whose fields are `[id, timestamp, signature, body]`.
fn delivery<'a>(
    fields: &'a [Vec<u8>; 4],
    harmless: &Harmless,
) -> (Vec<(String, Vec<u8>)>, &'a [u8]) {
    let names = match harmless {
        Harmless::SvixNames => [
            headers::SVIX_ID,
            headers::SVIX_TIMESTAMP,
            headers::SVIX_SIGNATURE,
        ],
        _ => [
            headers::WEBHOOK_ID,
            headers::WEBHOOK_TIMESTAMP,
            headers::WEBHOOK_SIGNATURE,
        ],
    };
    let mut pairs: Vec<_> = names
        .iter()
        .zip(fields)
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    match harmless {
        Harmless::UpperCaseNames => pairs.iter_mut().for_each(|(n, _)| n.make_ascii_uppercase()),
        Harmless::Reversed => pairs.reverse(),
        Harmless::ExtraHeader(value) => pairs.push(("x-extra".into(), value.clone())),
        Harmless::Nothing | Harmless::SvixNames => {}
    }
    (pairs, &fields[3])
}

/// The fields with one of them changed, and which.
fn mutate(original: &[Vec<u8>; 4], mutation: &Mutation) -> (Field, [Vec<u8>; 4]) {
    let mut fields = original.clone();
    let field = match *mutation {
        Mutation::Flip { field, at, xor } => {
            let value = &mut fields[field as usize];
            if let Some(len) = std::num::NonZeroUsize::new(value.len()) {
                value[at % len] ^= xor;
            }
            field
        }
        Mutation::Insert { field, at, byte } => {
            let value = &mut fields[field as usize];
            value.insert(at % (value.len() + 1), byte);
            field
        }
        Mutation::Remove { field, at } => {
            let value = &mut fields[field as usize];
            if let Some(len) = std::num::NonZeroUsize::new(value.len()) {
                value.remove(at % len);
            }
            field
        }
        Mutation::Replace { field, ref with } => {
            fields[field as usize] = with.clone();
            field
        }
    };
    (field, fields)
}

/// Whether an examined entry of `after` is one of `before`'s entries, at most with part of its
/// padding dropped (padding is optional).
fn still_signed(before: &[u8], after: &[u8]) -> bool {
    let unpadded = |e: &[u8]| e.len() - e.iter().rev().take_while(|b| **b == b'=').count();
    let entries = |h: &[u8]| -> Vec<Vec<u8>> {
        h.split(|b| *b == b' ')
            .filter(|e| !e.is_empty())
            .take(MAX_SIGNATURE_ENTRIES)
            .map(<[u8]>::to_vec)
            .collect()
    };
    let signed = entries(before);
    entries(after).iter().any(|e| {
        signed
            .iter()
            .any(|s| e.len() <= s.len() && e[..unpadded(e)] == s[..unpadded(s)])
    })
}
