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

/// The layout this build writes for a queue of one partition.
pub const VERSION: i64 = 2;
/// The layout this build writes for a partitioned queue: version 2, a keyed delivery stored in
/// its ordering key's partition (version 2 stored every delivery in its id's, keyless).
pub const PARTITIONED_VERSION: i64 = 3;
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
        let mut earlier = false;
        for keys in self.parts.iter() {
            earlier |= self.prepare_partition(keys).await?;
        }
        if self.parts.len() > 1 {
            self.keyed_partitions(earlier).await?;
        }
        Ok(())
    }

    /// A partitioned queue of layout 2 (or 1) is set to layout 3, and the window in which a
    /// keyed enqueue first looks for its id in the id's own partition (where layout 2 stored
    /// it) is started: the de-duplication retention from now, kept in the first partition's
    /// `legacy-until` (set once, so every instance that connects later reads the same end).
    async fn keyed_partitions(&self, earlier: bool) -> Result<(), StoreError> {
        let first = &self.parts[0];
        let until_key = format!("{}legacy-until", first.prefix);
        let mut connection = self.connection.clone();
        if earlier {
            let until = agentsync_webhooks_core::handoff::now_ms().saturating_add(
                i64::try_from(self.retention_secs.saturating_mul(1_000)).unwrap_or(i64::MAX),
            );
            let _: Option<String> = self
                .bounded(
                    "start the layout's upgrade window",
                    ::redis::cmd("SET")
                        .arg(&until_key)
                        .arg(until)
                        .arg("NX")
                        .query_async(&mut connection),
                )
                .await?;
            for keys in self.parts.iter() {
                let _: () = self
                    .bounded(
                        "set the queue's version",
                        ::redis::cmd("SET")
                            .arg(&keys.schema)
                            .arg(PARTITIONED_VERSION)
                            .query_async(&mut connection),
                    )
                    .await?;
            }
            tracing::info!(
                prefix = %first.prefix,
                "the partitioned Redis queue was upgraded to layout version \
                 {PARTITIONED_VERSION}: a keyed delivery is stored in its key's partition; \
                 until the de-duplication retention has passed, a keyed delivery first looks \
                 for its id where the earlier layout stored it"
            );
        }
        let until: Option<i64> = self
            .bounded(
                "read the layout's upgrade window",
                ::redis::cmd("GET")
                    .arg(&until_key)
                    .query_async(&mut connection),
            )
            .await?;
        self.legacy_until_ms
            .store(until.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// [`prepare`](Self::prepare) for one partition; `true` when it was written by a layout
    /// before the partitioned one (1 or 2) and the queue is partitioned.
    async fn prepare_partition(&self, keys: &super::Keys) -> Result<bool, StoreError> {
        let partitioned = self.parts.len() > 1;
        let current = if partitioned {
            PARTITIONED_VERSION
        } else {
            VERSION
        };
        let mut connection = self.connection.clone();
        let mut invocation = SCHEMA.key(&keys.schema);
        invocation
            .key(&keys.stream)
            .key(&keys.scheduled)
            .key(&keys.dead)
            .arg(current);
        let found: i64 = self
            .bounded(
                "read the queue's version",
                invocation.invoke_async(&mut connection),
            )
            .await?;
        if found > current {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                format!(
                    "the Redis queue under the prefix `{}` was written by a newer \
                     agentsync-webhooks (layout version {found}; this build knows up to \
                     {current}): upgrade, or use another prefix; nothing was written",
                    keys.prefix
                ),
            ));
        }
        self.ensure_group(keys).await?;
        if found == 1 {
            self.upgrade_from_1(keys).await?;
        }
        Ok(partitioned && (found == 1 || found == VERSION))
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
