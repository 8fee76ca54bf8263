//! A claimed Redis stream entry whose fields do not decode (a missing or malformed field, as a
//! hand, a bug or a later layout leaves it) is never left pending: the claim buries it as a
//! dead letter that decodes, with a reason naming what was wrong, or, without a webhook id or a
//! body, keeps it in the queue's `quarantine` stream; its ordering key is released, and every
//! other entry of the claim runs. The dead letters and the record still read.
//!
//! Uses `REDIS_URL` (default `redis://127.0.0.1:6379`); skipped with a note when Redis is
//! unreachable and `REDIS_URL` is not set. Each test works under its own key prefix.
#![cfg(feature = "redis")]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use agentsync_webhooks_core::{
    EventType, UpdatesAvailable,
    event::samples,
    route::{Event, EventRouter, HandlerError},
};
use agentsync_webhooks_queue::{
    Backend, Enqueued, EventOrder, Queue, ReceivedDelivery, Workers,
    record::{DeliveryFilter, DeliveryState, HistoryEvent},
    redis::{DEFAULT_GROUP, RedisBackend},
};

mod redis_support;
use redis_support::{backend, prefix, redis_url};

fn raw_connection() -> redis::Connection {
    let (url, _) = redis_url();
    redis::Client::open(url.as_str())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap()
}

/// A delivery whose body the router reads as `producersync.updates_available`.
fn stored(id: &str) -> ReceivedDelivery {
    ReceivedDelivery {
        webhook_id: id.into(),
        event_type: "producersync.updates_available".into(),
        webhook_timestamp: 1_700_000_000,
        signature: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".into(),
        received_at_ms: 1_700_000_000_123,
        body: samples::example_body(
            EventType::ProducerSyncUpdatesAvailable,
            &format!("whe_{id}"),
            1_700_000_000,
        )
        .into(),
    }
}

/// A stream entry's fields, in order.
type Entry = Vec<(String, Vec<u8>)>;

/// Rewrites the stream entry of `id` (stored by the library) as a hand would: the same fields
/// but `drop` left out and `set` changed, as a new entry at the stream's end.
fn tamper(stream: &str, id: &str, drop: &[&str], set: &[(&str, &str)]) -> String {
    let mut raw = raw_connection();
    let entries: Vec<(String, Entry)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(&mut raw)
        .unwrap();
    let (entry, fields) = entries
        .into_iter()
        .find(|(_, fields)| {
            fields
                .iter()
                .any(|(name, value)| name == "id" && value == id.as_bytes())
        })
        .unwrap_or_else(|| panic!("{id} is not in {stream}"));
    let _: i64 = redis::cmd("XDEL")
        .arg(stream)
        .arg(&entry)
        .query(&mut raw)
        .unwrap();
    let mut add = redis::cmd("XADD");
    add.arg(stream).arg("*");
    for (name, value) in fields {
        if drop.contains(&name.as_str()) {
            continue;
        }
        match set.iter().find(|(changed, _)| *changed == name) {
            Some((_, new)) => add.arg(&name).arg(*new),
            None => add.arg(&name).arg(value),
        };
    }
    add.query(&mut raw).unwrap()
}

/// The entries pending in the queue's consumer group.
fn pending(stream: &str) -> Vec<String> {
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(DEFAULT_GROUP)
        .arg("-")
        .arg("+")
        .arg(100)
        .query(&mut raw_connection())
        .unwrap();
    rows.into_iter().map(|row| row.0).collect()
}

/// The quarantine's entries, each as its fields by name.
fn quarantine(prefix: &str) -> Vec<HashMap<String, Vec<u8>>> {
    let entries: Vec<(String, HashMap<String, Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(format!("{prefix}quarantine"))
        .arg("-")
        .arg("+")
        .query(&mut raw_connection())
        .unwrap();
    entries.into_iter().map(|(_, fields)| fields).collect()
}

fn text(fields: &HashMap<String, Vec<u8>>, name: &str) -> String {
    String::from_utf8_lossy(fields.get(name).map(Vec::as_slice).unwrap_or_default()).into_owned()
}

/// The dead letters, the record's list, counts and each record still read with the broken
/// entries gone through.
async fn the_record_still_reads(backend: &RedisBackend) {
    backend
        .dead_letters(100)
        .await
        .unwrap_or_else(|err| panic!("the dead letters do not parse: {err}"));
    let page = backend
        .list(&DeliveryFilter::default(), None, 100)
        .await
        .unwrap_or_else(|err| panic!("the record's list does not parse: {err}"));
    for summary in &page.deliveries {
        backend
            .delivery(&summary.webhook_id)
            .await
            .unwrap_or_else(|err| {
                panic!("{}: its record does not parse: {err}", summary.webhook_id)
            });
    }
    backend
        .counts(&DeliveryFilter::default())
        .await
        .unwrap_or_else(|err| panic!("the counts fail: {err}"));
}

/// A claim over broken entries between good ones: each broken one is out of the pending list,
/// never returned as a job; one with its id and body is a dead letter (that decodes) and dead
/// on record with the reason, one without is in the quarantine with its fields and reason,
/// named in the health's warnings, its id free for a resend; the good ones are claimed.
#[tokio::test]
async fn a_claim_buries_or_quarantines_entries_that_do_not_decode() {
    let test = "a_claim_buries_or_quarantines_entries_that_do_not_decode";
    let Some((backend, _keys)) = backend(test).await else {
        return;
    };
    let prefix = prefix(test);
    let stream = format!("{prefix}stream");
    let mut good = Vec::new();
    for i in 0..3 {
        let id = format!("msg_good_{i}");
        assert_eq!(backend.enqueue(&stored(&id)).await.unwrap(), Enqueued::New);
        good.push(id);
    }
    for id in ["msg_bad_ts", "msg_no_body", "msg_bad_utf8_sig"] {
        assert_eq!(backend.enqueue(&stored(id)).await.unwrap(), Enqueued::New);
    }
    tamper(&stream, "msg_bad_ts", &[], &[("ts", "soon")]);
    tamper(&stream, "msg_no_body", &["body"], &[]);
    {
        // Not UTF-8: a text field's bytes a hand could write.
        let entry = tamper(&stream, "msg_bad_utf8_sig", &["sig"], &[]);
        let _: i64 = redis::cmd("XDEL")
            .arg(&stream)
            .arg(&entry)
            .query(&mut raw_connection())
            .unwrap();
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("id")
            .arg("msg_bad_utf8_sig")
            .arg("type")
            .arg("producersync.updates_available")
            .arg("ts")
            .arg("1700000000")
            .arg("sig")
            .arg(&b"v1,\xff\xfe"[..])
            .arg("recv")
            .arg("1700000000123")
            .arg("body")
            .arg(&stored("msg_bad_utf8_sig").body[..])
            .query(&mut raw_connection())
            .unwrap();
    }
    // Written by something else: no webhook id, no body.
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("type")
        .arg("x")
        .arg("ts")
        .arg("later")
        .query(&mut raw_connection())
        .unwrap();
    for i in 3..5 {
        let id = format!("msg_good_{i}");
        assert_eq!(backend.enqueue(&stored(&id)).await.unwrap(), Enqueued::New);
        good.push(id);
    }

    let jobs = backend.claim(50, Duration::from_secs(30)).await.unwrap();
    let mut claimed: Vec<String> = jobs
        .iter()
        .map(|job| job.delivery.webhook_id.clone())
        .collect();
    claimed.sort_unstable();
    assert_eq!(claimed, good, "the good entries are claimed, no broken one");
    let mut held = pending(&stream);
    held.sort_unstable();
    let mut expected: Vec<String> = jobs
        .iter()
        .map(|job| job.receipt.0.split_once('/').unwrap().0.to_owned())
        .collect();
    expected.sort_unstable();
    assert_eq!(held, expected, "no broken entry is left pending");
    for job in &jobs {
        assert!(backend.complete(job).await.unwrap());
    }
    assert!(pending(&stream).is_empty());

    // Buried: a dead letter that decodes, dead on record with the reason in its history.
    let letters = backend.dead_letters(100).await.unwrap();
    let mut dead: Vec<&str> = letters
        .iter()
        .map(|letter| letter.delivery.webhook_id.as_str())
        .collect();
    dead.sort_unstable();
    assert_eq!(dead, ["msg_bad_ts", "msg_bad_utf8_sig"]);
    for (id, field) in [("msg_bad_ts", "`ts`"), ("msg_bad_utf8_sig", "`sig`")] {
        let letter = backend.dead_letter(id).await.unwrap().unwrap();
        assert!(
            letter
                .last_error
                .starts_with("buried without running: its stream entry could not be decoded: ")
                && letter.last_error.contains(field),
            "{id}: {}",
            letter.last_error
        );
        assert_eq!(letter.delivery.body, stored(id).body, "{id}: its body kept");
        let record = backend.delivery(id).await.unwrap().unwrap();
        assert_eq!(record.state, DeliveryState::Dead, "{id}");
        assert_eq!(
            record.last_error.as_deref(),
            Some(letter.last_error.as_str())
        );
        assert!(
            record.history.iter().any(|entry| matches!(
                &entry.event,
                HistoryEvent::Attempt { error: Some(error), .. } if error == &letter.last_error
            )),
            "{id}: no history entry with the reason: {:?}",
            record.history
        );
    }
    assert_eq!(
        backend
            .dead_letter("msg_bad_ts")
            .await
            .unwrap()
            .unwrap()
            .delivery
            .webhook_timestamp,
        0
    );

    // Quarantined: the raw fields and the reason.
    let kept = quarantine(&prefix);
    assert_eq!(kept.len(), 2, "{kept:?}");
    let no_body = kept
        .iter()
        .find(|fields| text(fields, "f:id") == "msg_no_body")
        .expect("msg_no_body is quarantined");
    let reason = text(no_body, "reason");
    assert!(
        reason.starts_with("quarantined without running: its stream entry could not be decoded: ")
            && reason.contains("`body`"),
        "{reason}"
    );
    assert_eq!(text(no_body, "f:type"), "producersync.updates_available");
    let anonymous = kept
        .iter()
        .find(|fields| !fields.contains_key("f:id"))
        .expect("the entry without an id is quarantined");
    let reason = text(anonymous, "reason");
    assert!(
        reason.contains("`id`") && reason.contains("`body`"),
        "{reason}"
    );
    assert_eq!(text(anonymous, "f:ts"), "later");
    assert!(!text(anonymous, "entry").is_empty());
    let health = backend.health().await.unwrap();
    assert!(
        health.warnings.iter().any(
            |warning| warning.starts_with("2 stream entries") && warning.contains("quarantine")
        ),
        "{:?}",
        health.warnings
    );
    // Its record, which held what could not be read, is gone; its id is free for a resend.
    assert!(backend.delivery("msg_no_body").await.unwrap().is_none());
    the_record_still_reads(&backend).await;
    assert_eq!(
        backend.enqueue(&stored("msg_no_body")).await.unwrap(),
        Enqueued::New
    );
    let again = backend.claim(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery.webhook_id, "msg_no_body");
    assert!(backend.complete(&again[0]).await.unwrap());
    assert_eq!(backend.stats().await.unwrap().depth, 0);
}

/// A keyed entry that does not decode, at its key's head, releases the key when the claim
/// takes it out: the key's next event runs (under `Workers`), for a buried one (its
/// occurred-at not a number) and a quarantined one (no body) alike; no handler runs for either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_keyed_entry_releases_its_key_to_the_next_event() {
    let test = "a_broken_keyed_entry_releases_its_key_to_the_next_event";
    let Some((backend, _keys)) = backend(test).await else {
        return;
    };
    let prefix = prefix(test);
    let stream = format!("{prefix}stream");
    for (id, key, at) in [
        ("msg_k1_first", "npn:1", 10),
        ("msg_k1_next", "npn:1", 20),
        ("msg_k2_first", "npn:2", 10),
        ("msg_k2_next", "npn:2", 20),
    ] {
        let order = EventOrder {
            key: key.into(),
            occurred_at_ms: at,
        };
        assert_eq!(
            backend.enqueue_ordered(&stored(id), &order).await.unwrap(),
            Enqueued::New
        );
    }
    tamper(&stream, "msg_k1_first", &[], &[("oat", "yesterday")]);
    tamper(&stream, "msg_k2_first", &["body"], &[]);
    assert_eq!(
        backend.enqueue(&stored("msg_plain")).await.unwrap(),
        Enqueued::New
    );

    let queue = Queue::new(backend.clone());
    let ran = Arc::new(Mutex::new(Vec::<String>::new()));
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let ran = ran.clone();
        move |event: Event<UpdatesAvailable>| {
            let ran = ran.clone();
            async move {
                ran.lock().unwrap().push(event.webhook_id.clone());
                Ok::<_, HandlerError>(())
            }
        }
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(
        Workers::new(queue.clone(), router)
            .concurrency(4)
            .poll_interval(Duration::from_millis(10))
            .run_until(async move {
                let _ = stopped.await;
            }),
    );
    let want = ["msg_k1_next", "msg_k2_next", "msg_plain"];
    // Generous: it only keeps a broken build from hanging (a lease is 30 s by default).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let done = {
            let ran = ran.lock().unwrap();
            want.iter().all(|id| ran.iter().any(|r| r == id))
        };
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a key stalled: ran {:?}, pending {:?}",
            ran.lock().unwrap(),
            pending(&stream)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    workers.await.unwrap();

    let mut ran = ran.lock().unwrap().clone();
    ran.sort_unstable();
    assert_eq!(ran, want, "each good event ran once, no broken one");
    assert!(pending(&stream).is_empty(), "{:?}", pending(&stream));
    let letter = backend.dead_letter("msg_k1_first").await.unwrap().unwrap();
    assert!(letter.last_error.contains("`oat`"), "{}", letter.last_error);
    let kept = quarantine(&prefix);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(text(&kept[0], "f:id"), "msg_k2_first");
    assert_eq!(text(&kept[0], "f:ok"), "npn:2");
    assert!(text(&kept[0], "reason").contains("`body`"));
    for id in ["msg_k1_next", "msg_k2_next"] {
        let record = backend.delivery(id).await.unwrap().unwrap();
        assert_eq!(record.state, DeliveryState::Done, "{id}");
    }
    the_record_still_reads(&backend).await;
    assert_eq!(queue.stats().await.unwrap().depth, 0);
}
