//! The Lua scripts, one per operation, each one atomic step and one round trip. They live as
//! `.lua` files beside this one; every script starts with `helpers.lua` (the engine's clock,
//! argument checks, entries, receipts, the consumer group, the record's hash, history and
//! indexes), and the record's lists with `walk.lua`.

use std::sync::LazyLock;

use ::redis::Script;

const HELPERS: &str = include_str!("helpers.lua");
const WALK: &str = include_str!("walk.lua");

fn with_helpers(body: &str) -> Script {
    Script::new(&format!("{HELPERS}\n{body}"))
}

fn with_walk(body: &str) -> Script {
    Script::new(&format!("{HELPERS}\n{WALK}\n{body}"))
}

/// The version check: no helpers, read before anything is written.
pub(super) static SCHEMA: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("schema.lua")));
pub(super) static MIGRATE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("migrate.lua")));
pub(super) static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("enqueue.lua")));
pub(super) static ENSURE_GROUP: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("ensure_group.lua")));
pub(super) static CLAIM: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("claim.lua")));
pub(super) static ABANDON: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("abandon.lua")));
pub(super) static COMPLETE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("complete.lua")));
pub(super) static COMPLETE_MANY: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("complete_many.lua")));
pub(super) static RETRY: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("retry.lua")));
pub(super) static EXTEND: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("extend.lua")));
pub(super) static RELEASE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("release.lua")));
pub(super) static BURY: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("bury.lua")));
pub(super) static BURY_BROKEN: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("bury_broken.lua")));
pub(super) static DEAD_LETTER: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("dead_letter.lua")));
pub(super) static REPLAY: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("replay.lua")));
pub(super) static STATS: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("stats.lua")));
pub(super) static PURGE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("purge.lua")));
pub(super) static PURGE_DEAD: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("purge_dead.lua")));
pub(super) static DISCARD: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("discard.lua")));
pub(super) static FORGET: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("forget.lua")));
pub(super) static RECORD: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("record.lua")));
pub(super) static COUNTS: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("counts.lua")));
pub(super) static LIST: LazyLock<Script> = LazyLock::new(|| with_walk(include_str!("list.lua")));
pub(super) static REPLAY_MATCHING: LazyLock<Script> =
    LazyLock::new(|| with_walk(include_str!("replay_matching.lua")));
