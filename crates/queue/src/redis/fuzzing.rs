//! The stream-entry decoder every read of the Redis queue uses, reachable by the fuzz target
//! `queue_redis_entry` (feature `testing`): what someone wrote by hand into the stream must be
//! refused with an error, never a panic.

use agentsync_webhooks_core::idempotency::StoreError;

use super::fields::Fields;
use crate::DeadLetter;

/// Decodes a stream entry's field-value pairs as the backend does when it reads one back.
#[doc(hidden)]
pub fn decode_entry_for_fuzzing(fields: Vec<Vec<u8>>) -> Result<DeadLetter, StoreError> {
    Fields::parse(fields).map(Fields::into_dead_letter)
}
