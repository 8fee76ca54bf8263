//! `queue replay|discard|forget|purge` (and `dlq replay`): the actions, recorded in each
//! delivery's history as the CLI's. A bulk action (replay or purge by filter) first says how
//! many deliveries it touches and asks on a terminal; `--yes` skips the question.

use std::{
    collections::HashSet,
    io::{BufRead as _, IsTerminal as _, Write as _},
};

use agentsync_webhooks_queue::{
    Queue,
    record::{DeliveryFilter, DeliveryState, MAX_BULK},
};

use super::{
    BY,
    target::{QueueArgs, QueueUrl, open, store_failure},
    text::{matching, one_line, rfc3339_ms, what},
};
use crate::{failure::Failure, output::out};

/// Which commands' words an action speaks: the whole record's (`queue`), or the dead letters'
/// (`dlq`, whose ids must be dead letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `queue ...`.
    Queue,
    /// `dlq ...`.
    DeadLetters,
}

/// Replays each of `ids` that is in one of `states` (done or dead, if empty), one line each;
/// exit 1 if any was not replayed.
pub async fn replay_ids(
    queue_args: &QueueArgs,
    ids: &[String],
    states: &[DeliveryState],
    scope: Scope,
) -> Result<(), Failure> {
    let (queue, queue_url) = open(queue_args).await?;
    let only = DeliveryFilter::new().states(states.iter().copied());
    let mut asked = 0usize;
    let mut missed = 0usize;
    let mut seen = HashSet::new();
    for id in ids.iter().filter(|id| seen.insert(id.as_str())) {
        asked += 1;
        let failed = |e| store_failure(&format!("replaying {id}"), &queue_url, &e);
        let replayed = if only.states.is_empty() {
            queue.replay_by(id, BY).await.map_err(failed)?
        } else {
            // The state and the replay in one atomic step.
            let filter = only.clone().id(id.as_str());
            queue
                .replay_matching(&filter, BY, 1)
                .await
                .map_err(failed)?
                == 1
        };
        let outcome = if replayed {
            "replayed".to_owned()
        } else {
            missed += 1;
            match (scope, state_of(&queue, &queue_url, id).await?) {
                (Scope::DeadLetters, _) => "not in the dead letters".to_owned(),
                (Scope::Queue, None) => "not found".to_owned(),
                (Scope::Queue, Some(state)) if !state.replayable() => format!(
                    "{state}: not replayed (only done or dead deliveries are; it runs anyway)"
                ),
                (Scope::Queue, Some(state)) => format!("{state}: not replayed (--state)"),
            }
        };
        out!("{}  {outcome}", one_line(id, usize::MAX));
    }
    match (missed, scope) {
        (0, _) => Ok(()),
        (n, Scope::DeadLetters) => Err(Failure::failed(format!(
            "{n} of {asked} ids were not in the dead letters of {queue_url} \
             (`agentsync-webhooks dlq list` lists them)"
        ))),
        (n, Scope::Queue) => Err(Failure::failed(format!(
            "{n} of {asked} ids were not replayed in {queue_url} (`agentsync-webhooks queue \
             show ID` shows one)"
        ))),
    }
}

/// Replays the done or dead deliveries `filter` keeps (its states must be some of those), at
/// most `limit` and [`MAX_BULK`], newest first, once confirmed.
pub async fn replay_matching(
    queue_args: &QueueArgs,
    filter: &DeliveryFilter,
    limit: usize,
    yes: bool,
    scope: Scope,
) -> Result<(), Failure> {
    let (queue, queue_url) = open(queue_args).await?;
    let limit = limit.clamp(1, MAX_BULK);
    let counts = queue
        .counts(filter)
        .await
        .map_err(|e| store_failure("counting the deliveries", &queue_url, &e))?;
    let found = matching(filter, &counts);
    if found == 0 {
        out!("No {} in {queue_url}: nothing to replay.", what(filter, 0));
        return Ok(());
    }
    let touched = found.min(u64::try_from(limit).unwrap_or(u64::MAX));
    let which = if touched < found {
        let bound = if limit < MAX_BULK {
            format!("--limit {limit}")
        } else {
            format!("at most {MAX_BULK} a call")
        };
        format!("the newest {touched} of them ({bound})")
    } else if touched == 1 {
        "it".to_owned()
    } else {
        format!("all {touched}")
    };
    out!(
        "{found} {} in {queue_url}: this replays {which}; each runs again, its attempts \
         counted anew.",
        what(filter, found)
    );
    let list_them = match scope {
        Scope::Queue => "queue list",
        Scope::DeadLetters => "dlq list",
    };
    confirm(
        &format!(
            "Replay {touched} {}?",
            if touched == 1 {
                "delivery"
            } else {
                "deliveries"
            }
        ),
        yes,
        "replayed",
        &format!("`agentsync-webhooks {list_them}` with the same filter shows them"),
    )?;
    let replayed = queue
        .replay_matching(filter, BY, limit)
        .await
        .map_err(|e| store_failure("replaying the deliveries", &queue_url, &e))?;
    out!("Replayed {replayed} {}.", what(filter, replayed));
    if found > replayed {
        out!(
            "{} more matched: run it again for the next ones once these have left the state \
             (or narrow --since/--until).",
            found - replayed
        );
    }
    Ok(())
}

/// Discards each of `ids` (waiting or retrying) to the dead letters.
pub async fn discard(queue_args: &QueueArgs, ids: &[String]) -> Result<(), Failure> {
    let (queue, queue_url) = open(queue_args).await?;
    per_id(&queue, &queue_url, ids, Action::Discard).await
}

/// Forgets each of `ids` (done or dead): the sender's next resend is processed as new.
pub async fn forget(queue_args: &QueueArgs, ids: &[String]) -> Result<(), Failure> {
    let (queue, queue_url) = open(queue_args).await?;
    per_id(&queue, &queue_url, ids, Action::Forget).await
}

/// An action on one id at a time.
#[derive(Clone, Copy)]
enum Action {
    Discard,
    Forget,
}

/// Runs `action` on each of `ids`, one line each; exit 1 if any did not apply.
async fn per_id(
    queue: &Queue,
    queue_url: &QueueUrl,
    ids: &[String],
    action: Action,
) -> Result<(), Failure> {
    let mut asked = 0usize;
    let mut missed = 0usize;
    let mut seen = HashSet::new();
    for id in ids.iter().filter(|id| seen.insert(id.as_str())) {
        asked += 1;
        let (verb, done) = match action {
            Action::Discard => ("discarding", queue.discard(id, BY).await),
            Action::Forget => ("forgetting", queue.forget(id, BY).await),
        };
        let done = done.map_err(|e| store_failure(&format!("{verb} {id}"), queue_url, &e))?;
        let outcome = match (action, done) {
            (Action::Discard, true) => "discarded: now a dead letter".to_owned(),
            (Action::Forget, true) => {
                "forgotten: the sender's next resend of it is processed as new".to_owned()
            }
            (_, false) => {
                missed += 1;
                match (action, state_of(queue, queue_url, id).await?) {
                    (_, None) => "not found".to_owned(),
                    (Action::Discard, Some(state)) => format!(
                        "{state}: not discarded (only a waiting or retrying delivery is; a \
                         running one is its worker's until it settles)"
                    ),
                    (Action::Forget, Some(state)) => {
                        format!("{state}: not forgotten (only a done or dead delivery's id is)")
                    }
                }
            }
        };
        out!("{}  {outcome}", one_line(id, usize::MAX));
    }
    if missed == 0 {
        return Ok(());
    }
    let verb = match action {
        Action::Discard => "discarded",
        Action::Forget => "forgotten",
    };
    Err(Failure::failed(format!(
        "{missed} of {asked} ids were not {verb} in {queue_url} (`agentsync-webhooks queue show \
         ID` shows one)"
    )))
}

/// Deletes the dead letters that died before `before_ms`, in batches, once confirmed.
pub async fn purge(queue_args: &QueueArgs, before_ms: i64, yes: bool) -> Result<(), Failure> {
    let (queue, queue_url) = open(queue_args).await?;
    let before = rfc3339_ms(before_ms);
    // A dead letter died after it was received: those received before the time are the most
    // that died before it.
    let candidates = DeliveryFilter::new()
        .state(DeliveryState::Dead)
        .received_until(before_ms);
    let counts = queue
        .counts(&candidates)
        .await
        .map_err(|e| store_failure("counting the dead letters", &queue_url, &e))?;
    let at_most = counts.state(DeliveryState::Dead);
    if at_most == 0 {
        out!("No dead letters died before {before} in {queue_url}: nothing to purge.");
        return Ok(());
    }
    out!(
        "This deletes the dead letters of {queue_url} that died before {before}, their \
         history and ids with them: at most {at_most} (the dead letters received before then)."
    );
    confirm(
        &format!("Delete up to {at_most} dead letters?"),
        yes,
        "deleted",
        "`agentsync-webhooks queue list --state dead --until TIME` shows them",
    )?;
    let batch = u64::try_from(MAX_BULK).unwrap_or(u64::MAX);
    let mut deleted = 0u64;
    loop {
        let purged = queue
            .purge_dead(before_ms, MAX_BULK)
            .await
            .map_err(|e| store_failure("purging the dead letters", &queue_url, &e))?;
        deleted += purged;
        // What dies from now on dies after the time: the loop ends.
        if purged < batch {
            break;
        }
    }
    out!(
        "Deleted {deleted} dead {} that died before {before}.",
        if deleted == 1 { "letter" } else { "letters" }
    );
    Ok(())
}

/// The state of `id` now, to say why an action did not apply.
async fn state_of(
    queue: &Queue,
    queue_url: &QueueUrl,
    id: &str,
) -> Result<Option<DeliveryState>, Failure> {
    Ok(queue
        .delivery(id)
        .await
        .map_err(|e| store_failure(&format!("reading {id}"), queue_url, &e))?
        .map(|record| record.state))
}

/// Asks `question` on the terminal unless `yes`; without a terminal, refuses (bad input, exit
/// 2) saying why, and a "no" is exit 1. `done` is what would not happen ("replayed"), `hint`
/// how to see what it concerns.
fn confirm(question: &str, yes: bool, done: &str, hint: &str) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::bad_input(format!(
            "nothing {done}: a bulk action asks first, and there is no terminal to ask on \
             (stdin is not one). Add --yes to go ahead without asking; {hint}"
        )));
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{question} [y/N] ");
    let _ = stderr.flush();
    drop(stderr);
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::failed(format!("nothing {done}: reading the answer failed: {e}")))?;
    if is_yes(&answer) {
        Ok(())
    } else {
        Err(Failure::failed(format!("nothing {done}: not confirmed")))
    }
}

/// `y` or `yes`, in any case.
fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_confirms() {
        for answer in ["y\n", "Y", " yes \n", "YES"] {
            assert!(is_yes(answer), "{answer:?}");
        }
        for answer in ["", "\n", "n", "no", "yep", "y es", "ja"] {
            assert!(!is_yes(answer), "{answer:?}");
        }
    }
}
