//! What `--secret` may hold: a `whsec_` secret (v1, HMAC), a `whsk_` signing key or a `whpk_`
//! public key (v1a, Ed25519), with the core's rules and a warning for a short secret.

use agentsync_webhooks_core::{
    Secret, Signer, Verifier, VerifierBuilder,
    v1a::{PUBLIC_KEY_PREFIX, SECRET_KEY_PREFIX, SigningKey},
};

use crate::failure::{Failure, bad_secret};

/// The environment variable every subcommand reads the signing secret from.
pub const SECRET_ENV: &str = "AGENTSYNC_WEBHOOK_SECRET";

/// A `whsec_` secret, with a warning on stderr when it is shorter than Standard Webhooks
/// secrets (a key under 16 bytes is refused by the core).
pub fn secret(text: &str) -> Result<Secret, Failure> {
    let secret = Secret::parse(text).map_err(bad_secret)?;
    if secret.is_short() {
        eprintln!(
            "warning: this secret is only {} bytes once decoded; Standard Webhooks secrets are \
             {} to 64 bytes. Is it the endpoint's whole secret? (`agentsync-webhooks secret new` \
             makes one of 32 random bytes)",
            secret.len(),
            Secret::RECOMMENDED_LEN
        );
    }
    Ok(secret)
}

/// Whether `text` is a v1a key rather than a `whsec_` secret.
pub fn is_v1a(text: &str) -> bool {
    let text = text.trim();
    text.starts_with(SECRET_KEY_PREFIX) || text.starts_with(PUBLIC_KEY_PREFIX)
}

/// A signer for `--secret`: `whsec_...` signs v1, `whsk_...` signs v1a.
pub fn signer(text: &str) -> Result<Signer, Failure> {
    let text = text.trim();
    if text.starts_with(PUBLIC_KEY_PREFIX) {
        return Err(Failure::bad_input(
            "bad --secret: a whpk_ public key verifies, it cannot sign: give the whsk_ signing \
             key (or a whsec_ secret)",
        ));
    }
    if text.starts_with(SECRET_KEY_PREFIX) {
        let key: SigningKey = text.parse().map_err(bad_secret)?;
        return Ok(Signer::default().with_signing_key(key));
    }
    Ok(Signer::default().with_secret(&secret(text)?))
}

/// A verifier builder for `--secret`: `whsec_...` checks v1, `whpk_...` (or the public half of a
/// `whsk_...`) checks v1a.
pub fn verifier_builder(text: &str) -> Result<VerifierBuilder, Failure> {
    let text = text.trim();
    if text.starts_with(SECRET_KEY_PREFIX) {
        let key: SigningKey = text.parse().map_err(bad_secret)?;
        return Verifier::builder()
            .public_key(&key.public_key().to_string())
            .map_err(bad_secret);
    }
    if text.starts_with(PUBLIC_KEY_PREFIX) {
        return Verifier::builder().public_key(text).map_err(bad_secret);
    }
    Ok(Verifier::builder().parsed_secret(secret(text)?))
}

/// A verifier for `--secret` with the default tolerance; for a `whsec_` secret through
/// [`Verifier::new`], as a service would build it.
pub fn verifier(text: &str) -> Result<Verifier, Failure> {
    if is_v1a(text) {
        return verifier_builder(text)?.build().map_err(bad_secret);
    }
    secret(text)?;
    Verifier::new(text).map_err(bad_secret)
}
