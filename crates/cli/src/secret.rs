//! `secret new`: a fresh signing secret, or a v1a key pair.

use agentsync_webhooks_core::{Secret, v1a::SigningKey};
use clap::Subcommand;

use crate::{failure::Failure, output::out};

/// `secret ...`.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Print a fresh whsec_ secret of 32 random bytes (or, with --v1a, an Ed25519 key pair).
    New {
        /// An Ed25519 (v1a) key pair instead: the whsk_ signing key on the first line (for
        /// `send`/`sign --secret`), the whpk_ public key on the second (for receivers).
        #[arg(long)]
        v1a: bool,
    },
}

/// Prints a fresh `whsec_` secret of 32 random bytes from the operating system; with `v1a`, a
/// fresh Ed25519 signing key (`whsk_`) and its public key (`whpk_`), one per line.
pub fn new(v1a: bool) -> Result<(), Failure> {
    if v1a {
        let key = SigningKey::generate().map_err(Failure::failed)?;
        out!("{}", key.expose_whsk());
        out!("{}", key.public_key());
        eprintln!(
            "(line 1: the signing key, for the sender: send/sign --secret whsk_...; \
             line 2: the public key, for receivers: listen/verify --secret whpk_...)"
        );
        return Ok(());
    }
    let secret = Secret::generate().map_err(Failure::failed)?;
    out!("{}", secret.expose_whsec());
    Ok(())
}
