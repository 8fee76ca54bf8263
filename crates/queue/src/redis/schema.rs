//! The layout's version (`<prefix>schema`) and the upgrade of a queue written by an older one.
//!
//! Version 1 is the queue without the delivery record (no `schema` key; `stream`, `scheduled`,
//! `dead`, `dead-index` and the id marks). Version 2 adds each delivery's record (hash, history,
//! indexes). [`RedisBackend::prepare`] reads the version before it writes anything: a newer
//! one is refused; a version 1 queue is upgraded in place, its records built from the entries
//! of `stream`, `scheduled` and `dead` in batches (one script each, so Redis is never held for
//! long), then its version set. Running the upgrade twice (two instances connecting at once) is
//! harmless: an entry whose delivery has a record is skipped.

use agentsync_webhooks_core::idempotency::{StoreError, StoreErrorKind};

use super::{MIGRATE, RedisBackend, SCHEMA};

/// The layout this build writes.
pub const VERSION: i64 = 2;
/// Entries per upgrade script.
const MIGRATE_BATCH: usize = 500;

impl RedisBackend {
    /// Checks the queue's layout version and makes it usable: a new queue gets the current
    /// version; a queue written by an older version is upgraded in place (its waiting, running
    /// and retrying jobs and its dead letters keep running and get their records); a queue
    /// written by a newer version is refused before anything is written. Then creates the
    /// stream and its consumer group unless they exist (refusing another group's stream).
    /// [`connect_with`](Self::connect_with) calls it; call it yourself after
    /// [`from_connection_manager`](Self::from_connection_manager).
    pub async fn prepare(&self) -> Result<(), StoreError> {
        for keys in self.parts.iter() {
            self.prepare_partition(keys).await?;
        }
        Ok(())
    }

    /// [`prepare`](Self::prepare) for one partition.
    async fn prepare_partition(&self, keys: &super::Keys) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = SCHEMA.key(&keys.schema);
        invocation
            .key(&keys.stream)
            .key(&keys.scheduled)
            .key(&keys.dead)
            .arg(VERSION);
        let found: i64 = self
            .bounded(
                "read the queue's version",
                invocation.invoke_async(&mut connection),
            )
            .await?;
        if found > VERSION {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                format!(
                    "the Redis queue under the prefix `{}` was written by a newer \
                     agentsync-webhooks (layout version {found}; this build knows up to \
                     {VERSION}): upgrade, or use another prefix; nothing was written",
                    keys.prefix
                ),
            ));
        }
        self.ensure_group(keys).await?;
        if found == 1 {
            self.upgrade_from_1(keys).await?;
        }
        Ok(())
    }

    /// Builds the records of a version 1 queue, then sets its version.
    async fn upgrade_from_1(&self, keys: &super::Keys) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        for phase in ["stream", "scheduled", "dead"] {
            let mut from = "-".to_owned();
            loop {
                let mut invocation = MIGRATE.key(&keys.stream);
                invocation
                    .key(&keys.scheduled)
                    .key(&keys.due)
                    .key(&keys.dead)
                    .key(&keys.dead_index)
                    .key(&keys.leases)
                    .arg(&keys.prefix)
                    .arg(&self.group)
                    .arg(phase)
                    .arg(&from)
                    .arg(MIGRATE_BATCH);
                let next: String = self
                    .bounded(
                        "upgrade the queue's layout",
                        invocation.invoke_async(&mut connection),
                    )
                    .await?;
                if next.is_empty() {
                    break;
                }
                from = next;
            }
        }
        let _: () = self
            .bounded(
                "set the queue's version",
                ::redis::cmd("SET")
                    .arg(&keys.schema)
                    .arg(VERSION)
                    .query_async(&mut connection),
            )
            .await?;
        tracing::info!(
            prefix = %keys.prefix,
            "the Redis queue was upgraded to layout version {VERSION} (the delivery record)"
        );
        Ok(())
    }
}
