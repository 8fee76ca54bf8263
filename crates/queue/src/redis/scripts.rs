//! The Lua scripts, one per operation, each one atomic step and one round trip. They live as
//! `.lua` files beside this one; every script but enqueue's starts with `helpers.lua`.

use std::sync::LazyLock;

use ::redis::Script;

const HELPERS: &str = include_str!("helpers.lua");

fn with_helpers(body: &str) -> Script {
    Script::new(&format!("{HELPERS}\n{body}"))
}

/// Without the helpers: the enqueue is the hot path, and the shortest script.
pub(super) static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("enqueue.lua")));
pub(super) static ENSURE_GROUP: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("ensure_group.lua")));
pub(super) static CLAIM: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("claim.lua")));
pub(super) static ABANDON: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("abandon.lua")));
pub(super) static COMPLETE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("complete.lua")));
pub(super) static RETRY: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("retry.lua")));
pub(super) static EXTEND: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("extend.lua")));
pub(super) static RELEASE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("release.lua")));
pub(super) static BURY: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("bury.lua")));
pub(super) static DEAD_LETTER: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("dead_letter.lua")));
pub(super) static REPLAY: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("replay.lua")));
pub(super) static STATS: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("stats.lua")));
pub(super) static PURGE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("purge.lua")));
