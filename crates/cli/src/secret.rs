//! `secret new`: a fresh signing secret.

use agentsync_webhooks_core::Secret;

use crate::failure::Failure;

/// Prints a fresh `whsec_` secret of 32 random bytes from the operating system.
pub fn new() -> Result<(), Failure> {
    let secret = Secret::generate().map_err(Failure::failed)?;
    println!("{}", secret.expose_whsec());
    Ok(())
}
