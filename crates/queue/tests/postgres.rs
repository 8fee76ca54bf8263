//! `PostgresBackend` against a real PostgreSQL: the shared queue contract, the plans of the
//! statements it runs, the purge, two instances sharing a table (one of them with its clock
//! ahead), a server that answers late, a role whose commits are not flushed, and an unreachable
//! server.
//!
//! Uses `POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`). When `POSTGRES_URL`
//! is set, an unreachable PostgreSQL fails every test; when it is not, the tests are skipped with
//! a note. Every test works in a table of its own (dropped at its end), so tests run in parallel.
#![cfg(feature = "postgres")]

mod delay_proxy;
mod postgres_support;

use std::{
    net::TcpListener,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use agentsync_webhooks_core::{
    EventType, UpdatesAvailable,
    route::{Event, EventRouter, HandlerError},
};
use agentsync_webhooks_queue::contract::sample_delivery as delivery;
use agentsync_webhooks_queue::{
    Backend, ClaimToken, Enqueued, Purged, Queue, StoreErrorKind, Workers,
    contract::{self, QueueContract},
    postgres::{PostgresBackend, PostgresOptions},
};
use delay_proxy::DelayProxy;
use postgres_support::*;

/// The options every contract case opens its two instances with.
fn contract_options() -> PostgresOptions {
    PostgresOptions::new()
        .retention(contract::RETENTION)
        .dead_retention(contract::DEAD_RETENTION)
}

async fn contract(case: &'static str) -> Option<QueueContract> {
    let (backend, table) = backend_with(case, contract_options()).await?;
    let second =
        PostgresBackend::connect_with(&table.url, contract_options().table(table.table.clone()))
            .await
            .unwrap();
    Some(
        QueueContract::new(backend, case)
            .second_instance(second)
            .keep_alive(table),
    )
}

agentsync_webhooks_queue::queue_contract_tests!(contract);
agentsync_webhooks_queue::queue_event_time_contract_tests!(contract);

/// An address where nothing listens.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("postgres://postgres@127.0.0.1:{port}/test")
}

#[tokio::test]
async fn an_unreachable_postgres_is_an_unreachable_store_error() {
    let err = PostgresBackend::connect(&closed_port_url())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unreachable, "{err}");
    let err = Queue::from_url(&closed_port_url()).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unreachable, "{err}");
}

#[tokio::test]
async fn a_table_name_that_is_not_an_identifier_is_refused() {
    let (url, _) = postgres_url();
    let err =
        PostgresBackend::connect_with(&url, PostgresOptions::new().table("jobs; DROP TABLE x"))
            .await
            .unwrap_err();
    assert!(err.to_string().contains("plain identifier"), "{err}");
}

#[tokio::test]
async fn two_instances_share_one_table_and_the_table_is_created_once() {
    let test = "two_instances_share_one_table_and_the_table_is_created_once";
    let Some((first, table)) = backend(test).await else {
        return;
    };
    let (url, _) = postgres_url();
    let second =
        PostgresBackend::connect_with(&url, PostgresOptions::new().table(table.table.clone()))
            .await
            .unwrap();
    assert_eq!(
        first.enqueue(&delivery("msg_1")).await.unwrap(),
        Enqueued::New
    );
    assert_eq!(
        second.enqueue(&delivery("msg_1")).await.unwrap(),
        Enqueued::Duplicate
    );
    let jobs = second.claim(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(
        first
            .claim(10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(first.complete(&jobs[0]).await.unwrap());
}

/// A client of its own on `url`, for what the backend does not offer.
async fn connect_raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// `POSTGRES_URL`'s database, as `user` at `address` (`host:port`; the URL's own when `None`).
fn url_as(user: &str, address: Option<&str>) -> String {
    let (url, _) = postgres_url();
    let config: tokio_postgres::Config = url.parse().unwrap();
    let address = address.map_or_else(|| upstream_address(&config), str::to_owned);
    let database = config.get_dbname().unwrap_or("postgres");
    format!("postgres://{user}@{address}/{database}")
}

/// The `host:port` of `config`'s first host.
fn upstream_address(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    format!(
        "{host}:{}",
        config.get_ports().first().copied().unwrap_or(5432)
    )
}

/// The generic plan of `sql` (what a prepared statement runs after its first executions), as
/// text: every parameter is given `'1'` (an array `'{1}'`), which a generic plan does not look
/// at.
async fn generic_plan(client: &tokio_postgres::Client, sql: &str) -> String {
    client
        .batch_execute(&format!(
            "DEALLOCATE ALL; SET plan_cache_mode = force_generic_plan; PREPARE p AS {sql}"
        ))
        .await
        .unwrap_or_else(|err| panic!("PREPARE {sql}: {err}"));
    // Each parameter's type: a generic plan does not look at the values given.
    let types: Vec<String> = client
        .query_one(
            "SELECT coalesce(parameter_types::text[], '{}') FROM pg_prepared_statements \
             WHERE name = 'p'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let arguments = types
        .iter()
        .map(|ty| if ty.ends_with("[]") { "'{1}'" } else { "'1'" })
        .collect::<Vec<_>>()
        .join(", ");
    let execute = if arguments.is_empty() {
        "EXECUTE p".to_owned()
    } else {
        format!("EXECUTE p({arguments})")
    };
    client
        .simple_query(&format!("EXPLAIN {execute}"))
        .await
        .unwrap()
        .iter()
        .filter_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Rows in the table of the plans' test (waiting, running, retrying, done and dead, of four
/// types in three groups, received over a day, three history entries each): enough that a scan
/// of them all costs what it would in production, so the planner's choice of an index means
/// something.
const PLANNED_ROWS: i64 = 20_000;

/// Fills table `t` with [`PLANNED_ROWS`] deliveries (bodies of 600 bytes) and their history,
/// and vacuums it, as autovacuum would (the visibility map lets the counts read an index
/// alone).
async fn fill_for_plans(client: &tokio_postgres::Client, t: &str) {
    client
        .batch_execute(&format!(
            "INSERT INTO {t} (webhook_id, event_type, event_group, webhook_timestamp, signature,
                              received_at_ms, body, state, attempts, next_run_at_ms,
                              locked_until_ms, lease, worker, claimed_at_ms, last_error,
                              died_at_ms, done_at_ms, history_seq)
             SELECT 'msg_' || i, (ARRAY['producersync.updates_available', 'contract.signed',
                                        'id.producer.updated', 'endpoint.unknown'])[i % 4 + 1],
                    (ARRAY['producersync', 'contract', 'id.producer', ''])[i % 4 + 1],
                    1700000000, 'v1,x', 1700000000000 + i * 4000,
                    convert_to(repeat('x', 600), 'UTF8'),
                    CASE WHEN i <= 40 THEN 'waiting' WHEN i <= 50 THEN 'retrying'
                         WHEN i <= 60 THEN 'running'
                         WHEN i % 20 <> 1 THEN 'done' ELSE 'dead' END,
                    1, 1700000000000 + i,
                    CASE WHEN i > 50 AND i <= 60 THEN 1700000000000 + i END,
                    CASE WHEN i > 50 AND i <= 60 THEN 'lease_' || i END,
                    CASE WHEN i > 50 AND i <= 60 THEN 'worker' END,
                    CASE WHEN i > 50 AND i <= 60 THEN 1700000000000 + i END,
                    CASE WHEN i > 60 AND i % 20 = 1 THEN 'failed' END,
                    CASE WHEN i > 60 AND i % 20 = 1 THEN 1700000000000 + i END,
                    CASE WHEN i > 60 AND i % 20 <> 1 THEN 1700000000000 + i END,
                    3
             FROM generate_series(1, 60 + {PLANNED_ROWS}) AS i;
             INSERT INTO {t}_history (webhook_id, seq, at_ms, kind, attempt, duration_ms, outcome,
                                      worker)
             SELECT 'msg_' || i, seq, 1700000000000 + i, 'attempt', seq, 10, 'retry', 'worker'
             FROM generate_series(1, 60 + {PLANNED_ROWS}) AS i, generate_series(1, 3) AS seq"
        ))
        .await
        .unwrap();
    for table in [t.to_owned(), format!("{t}_history")] {
        client
            .batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .unwrap();
    }
}

/// The indexes a statement's plan must name (after the table's name; `a|b`: one of them), and
/// whether it may sort: `None` for a statement this test does not know.
fn expected_plan(name: &str) -> Option<(&'static [&'static str], bool)> {
    let sorts = true;
    Some(match name {
        "claim" => (&["_due", "_lease", "_key_running", "_key_waiting"], sorts),
        "take_over" | "complete" | "complete_stale" | "retry" | "release" | "bury" | "replay"
        | "discard" | "forget" => (&["_pkey", "_history_pkey"], sorts),
        // A batch's ids through the primary key, or the running rows (as many as the workers'
        // slots) through the lease index.
        "complete_many" => (&["_pkey|_lease", "_history_pkey"], sorts),
        "extend" | "dead_letter" | "one" => (&["_pkey"], sorts),
        // An insert reads nothing: its conflict's arbiter is the primary key.
        "enqueue" | "enqueue_many" => (&[], sorts),
        // One delivery's history (at most 25 rows) may be sorted.
        "history" => (&["_history_pkey"], sorts),
        "abandon" => (&["_lease"], sorts),
        "dead_letters" => (&["_dead_order"], !sorts),
        "purge_done" => (&["_done", "_history_pkey"], sorts),
        "purge_keys" => (&["_keys_updated"], sorts),
        "purge_dead" | "purge_dead_before" => (&["_dead_order", "_history_pkey"], sorts),
        "stats_pending" => (&["_state_received"], sorts),
        "stats_dead" => (&["_dead_order|_state_type"], sorts),
        // An id's prefix is a range of the primary key, whose rows are sorted.
        list if list.starts_with("list: an id") => (&["_pkey"], sorts),
        // A state and a type or group: the planner picks which of their indexes (below).
        list if list.starts_with("list: a state and a type")
            || list.starts_with("list: a state and a group") =>
        {
            (&[], !sorts)
        }
        list if list.starts_with("list: one state") || list.starts_with("list: a state and") => {
            (&["_state_received"], !sorts)
        }
        list if list.starts_with("list: a type") => (&["_type_received"], !sorts),
        list if list.starts_with("list: a group") => (&["_group_received"], !sorts),
        list if list.starts_with("list: ") => (&["_received"], !sorts),
        "counts: an id prefix" | "counts: an id" => (&["_pkey"], sorts),
        // Along the type's index, or the (state, type) one: a walk of a small index.
        "counts: a type" => (&["_type_received|_state_type"], sorts),
        "counts: a group" => (&["_group_received"], sorts),
        "counts: everything" => (&["_state_type"], sorts),
        counts if counts.starts_with("counts: ") => (&["_received"], sorts),
        _ => return None,
    })
}

/// Every statement the backend runs (not copies of them), the record's lists and counts for
/// each shape of filter included, reads its rows through an index under generic plans, without
/// `enable_seqscan = off`, on a table of 20,000 deliveries: never a scan of the table or of the
/// history. A list page reads its order from an index (no Sort), but for an id prefix, whose
/// range of the primary key is sorted; the dead-letter list and a history are read in order.
#[tokio::test]
async fn the_statements_run_on_their_indexes_under_generic_plans() {
    let test = "the_statements_run_on_their_indexes_under_generic_plans";
    let Some((backend, table)) = backend(test).await else {
        return;
    };
    let client = connect_raw(&table.url).await;
    let t = &table.table;
    fill_for_plans(&client, t).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, sql) in backend.statements() {
        let Some((indexes, may_sort)) = expected_plan(&name) else {
            failures.push(format!("{name}: no expected plan in this test"));
            continue;
        };
        checked += 1;
        let plan = generic_plan(&client, &sql).await;
        if std::env::var_os("SHOW_PLANS").is_some() {
            println!("{name}:\n{plan}\n");
        }
        let mut wrong = Vec::new();
        for scanned in [t.clone(), format!("{t}_history")] {
            if plan.contains(&format!("Seq Scan on {scanned} ")) {
                wrong.push(format!("scans {scanned}"));
            }
        }
        for index in indexes {
            // `a|b`: either.
            if !index
                .split('|')
                .any(|index| plan.contains(&format!("{t}{index} ")))
            {
                wrong.push(format!("does not use {t}{index}"));
            }
        }
        if !may_sort && plan.contains("Sort") {
            wrong.push("sorts".to_owned());
        }
        if indexes.is_empty() && name.starts_with("list: ") && !plan.contains("_received on ") {
            wrong.push("reads no index ending in the received-at".to_owned());
        }
        if !wrong.is_empty() {
            failures.push(format!("{name} {}:\n{plan}", wrong.join(", ")));
        }
    }
    assert!(checked > 40, "only {checked} statements checked");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A claim reads the due index in order and stops at its limit, whatever the backlog, on a
/// table the planner has no statistics for (a new queue's, until autovacuum's first `ANALYZE`):
/// left to its estimates, the planner read and sorted every due row at each claim.
#[tokio::test]
async fn a_claim_reads_only_what_it_takes_on_a_table_without_statistics() {
    let test = "a_claim_reads_only_what_it_takes_on_a_table_without_statistics";
    let Some((backend, table)) = backend(test).await else {
        return;
    };
    let client = connect_raw(&table.url).await;
    let t = &table.table;
    client
        .batch_execute(&format!(
            "INSERT INTO {t} (webhook_id, event_type, event_group, webhook_timestamp, signature,
                              received_at_ms, body, state, attempts, next_run_at_ms)
             SELECT 'msg_' || i, 'producersync.updates_available', 'producersync', 1700000000,
                    'v1,x', 1700000000000 + i, convert_to(repeat('x', 300), 'UTF8'), 'waiting',
                    0, 1700000000000 + i
             FROM generate_series(1, 3000) AS i"
        ))
        .await
        .unwrap();
    let plan = backend.explain_claim(5).await.unwrap();
    assert!(
        plan.contains(&format!("Index Scan using {t}_due on {t}")),
        "the claim does not read {t}_due in order:\n{plan}"
    );
    assert!(
        !plan.contains("Bitmap Heap Scan"),
        "the claim reads its due rows through a bitmap:\n{plan}"
    );
    // Nothing was claimed.
    let waiting: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {t} WHERE state = 'waiting'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(waiting, 3000);
}

/// The purge deletes done rows past the retention and dead rows past the dead-letter retention,
/// a batch of each at a time (saying when there is more), and nothing else; their ids are
/// forgotten with them. With both retentions `Duration::MAX` it deletes nothing.
#[tokio::test]
async fn the_purge_deletes_in_batches_what_outlived_its_retention() {
    let test = "the_purge_deletes_in_batches_what_outlived_its_retention";
    let minute = Duration::from_secs(60);
    let Some((backend, table)) = backend_with(
        test,
        PostgresOptions::new()
            .retention(minute)
            .dead_retention(minute),
    )
    .await
    else {
        return;
    };
    let client = connect_raw(&table.url).await;
    let t = &table.table;
    // 1,200 done and 700 dead rows from the epoch's first milliseconds, one of each from now.
    client
        .batch_execute(&format!(
            "INSERT INTO {t} (webhook_id, event_type, webhook_timestamp, signature,
                              received_at_ms, body, state, next_run_at_ms, done_at_ms, died_at_ms)
             SELECT 'old_' || i, 'producersync.updates_available', 1700000000, 'v1,x', 0,
                    ''::bytea, CASE WHEN i <= 1200 THEN 'done' ELSE 'dead' END, 0,
                    CASE WHEN i <= 1200 THEN i END, CASE WHEN i > 1200 THEN i END
             FROM generate_series(1, 1900) AS i"
        ))
        .await
        .unwrap();
    for name in ["recent_done", "recent_dead", "waiting"] {
        assert_eq!(
            backend.enqueue(&delivery(name)).await.unwrap(),
            Enqueued::New
        );
    }
    for settle in ["complete", "bury"] {
        let job = backend.claim(1, minute).await.unwrap().remove(0);
        assert!(match settle {
            "complete" => backend.complete(&job).await.unwrap(),
            _ => backend.bury(&job, "permanent").await.unwrap(),
        });
    }

    let forever = PostgresBackend::connect_with(
        &table.url,
        PostgresOptions::new()
            .table(t.clone())
            .retention(Duration::MAX)
            .dead_retention(Duration::MAX),
    )
    .await
    .unwrap();
    assert_eq!(forever.purge().await.unwrap(), Purged::default());

    let mut batches = Vec::new();
    loop {
        let purged = backend.purge().await.unwrap();
        batches.push(purged);
        if !purged.more {
            break;
        }
        assert!(batches.len() < 10, "{batches:?}");
    }
    let done: u64 = batches.iter().map(|b| b.done).sum();
    let dead: u64 = batches.iter().map(|b| b.dead).sum();
    assert_eq!((done, dead), (1200, 700), "{batches:?}");
    assert!(
        batches[0].done < 1200 && batches.len() > 1,
        "in batches: {batches:?}"
    );

    let left: i64 = client
        .query_one(&format!("SELECT count(*) FROM {t}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        left, 3,
        "the recent done, the recent dead and the waiting job stay"
    );
    assert_eq!(
        backend.enqueue(&delivery("old_1")).await.unwrap(),
        Enqueued::New,
        "a purged done id is forgotten"
    );
    assert_eq!(
        backend.enqueue(&delivery("old_1900")).await.unwrap(),
        Enqueued::New,
        "a purged dead id is forgotten"
    );
    assert_eq!(
        backend.enqueue(&delivery("recent_done")).await.unwrap(),
        Enqueued::Duplicate
    );
}

/// Finding 1 of issue 25: leases are the engine's clock. An instance whose clock is 25 s ahead
/// would see a 30 s lease (claimed, or extended, by the other) end after 5 s.
#[tokio::test]
async fn a_lease_holds_against_an_instance_whose_clock_is_ahead() {
    let test = "a_lease_holds_against_an_instance_whose_clock_is_ahead";
    let Some((backend, table)) = backend(test).await else {
        return;
    };
    let ahead = PostgresBackend::connect_with(
        &table.url,
        PostgresOptions::new()
            .table(table.table.clone())
            .clock_offset(Duration::from_secs(25)),
    )
    .await
    .unwrap();
    let lease = Duration::from_secs(30);
    backend.enqueue(&delivery("claimed")).await.unwrap();
    let claimed = backend.claim(1, lease).await.unwrap();
    backend.enqueue(&delivery("extended")).await.unwrap();
    let extended = backend.claim(1, Duration::from_secs(1)).await.unwrap();
    assert!(backend.extend(&extended[0], lease).await.unwrap());
    for second in 1..=6 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let taken = ahead.claim(10, lease).await.unwrap();
        assert!(
            taken.is_empty(),
            "after {second} s the instance ahead took {:?}",
            taken
                .iter()
                .map(|job| &job.delivery.webhook_id)
                .collect::<Vec<_>>()
        );
    }
    assert!(backend.complete(&claimed[0]).await.unwrap());
    assert!(backend.complete(&extended[0]).await.unwrap());
}

/// Finding 2 of issue 25: claims that commit in PostgreSQL but whose replies come too late
/// (every reply held 1 s, the engine timeout 300 ms) burn no attempt: the workers give each
/// back. With `max_attempts(2)`, the job runs once the replies are on time again, instead of
/// being buried without ever running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_answered_too_late_burn_no_attempt() {
    let test = "claims_answered_too_late_burn_no_attempt";
    let Some((direct, table)) = backend(test).await else {
        return;
    };
    let (url, _) = postgres_url();
    let proxy = DelayProxy::start(upstream_address(&url.parse().unwrap())).await;
    // One connection, whose statements are prepared while the replies are on time: then every
    // claim and every give-back reaches the server as soon as it is sent.
    let slow = PostgresBackend::connect_with(
        &url_as("postgres", Some(&proxy.address())),
        PostgresOptions::new()
            .table(table.table.clone())
            .pool_size(1),
    )
    .await
    .unwrap();
    let token = ClaimToken::new().unwrap();
    assert!(
        slow.claim_with(&token, 1, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(slow.abandon(&token).await.unwrap(), 0);
    slow.purge().await.unwrap();
    direct.enqueue(&sample_job("msg_late")).await.unwrap();

    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let runs = runs.clone();
        move |_: Event<UpdatesAvailable>| {
            runs.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, HandlerError>(()) }
        }
    });
    proxy.set_delay(Duration::from_secs(1));
    let workers = Workers::new(Queue::new(slow), router)
        .max_attempts(2)
        .lease(Duration::from_secs(1))
        .engine_timeout(Duration::from_millis(300))
        .poll_interval(Duration::from_millis(50));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(workers.run_until(async move {
        let _ = stopped.await;
    }));
    // Four leases: without the give-backs, each would have counted an attempt.
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.set_delay(Duration::ZERO);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while runs.load(Ordering::SeqCst) == 0 && direct.stats().await.unwrap().dead == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the job never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .unwrap()
        .unwrap();
    let dead = direct.dead_letters(10).await.unwrap();
    assert!(
        dead.is_empty(),
        "buried: {:?}",
        dead.iter().map(|d| &d.last_error).collect::<Vec<_>>()
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A stored `producersync.updates_available` delivery whose body the router parses.
fn sample_job(webhook_id: &str) -> agentsync_webhooks_queue::ReceivedDelivery {
    let body = agentsync_webhooks_core::event::samples::example_body(
        EventType::ProducerSyncUpdatesAvailable,
        &format!("whe_{webhook_id}"),
        1_700_000_000,
    );
    agentsync_webhooks_queue::ReceivedDelivery {
        body: body.into(),
        ..delivery(webhook_id)
    }
}

/// Finding 9 of issue 25: a role (or database, or server) with `synchronous_commit = off`
/// would make enqueues answer before their commit is flushed; the durable pool turns it back
/// on, and keeps a stronger setting (`remote_apply`) as it is.
#[tokio::test]
async fn durable_writes_are_flushed_under_a_role_with_synchronous_commit_off() {
    let (url, required) = postgres_url();
    let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
    else {
        assert!(
            !required,
            "POSTGRES_URL={url} is set but PostgreSQL is unreachable"
        );
        return;
    };
    tokio::spawn(connection);
    let role = unique_table().replace("queue_test", "queue_role");
    client
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN;
             CREATE SCHEMA {role} AUTHORIZATION {role};
             ALTER ROLE {role} SET search_path = {role};
             ALTER ROLE {role} SET synchronous_commit = off"
        ))
        .await
        .unwrap();
    let _dropped = DropRole {
        url: url.clone(),
        role: role.clone(),
    };
    let role_url = url_as(&role, None);
    let plain = connect_raw(&role_url).await;
    let inherited: String = plain
        .query_one("SHOW synchronous_commit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(inherited, "off", "the role's setting");

    let backend = PostgresBackend::connect(&role_url).await.unwrap();
    assert_eq!(backend.synchronous_commit().await.unwrap(), "on");
    assert_eq!(
        backend.enqueue(&delivery("msg_1")).await.unwrap(),
        Enqueued::New
    );
    // The health check says so, what holds, and the fix.
    let health = backend.health().await.unwrap();
    assert_eq!(health.engine, "postgres");
    assert!(
        matches!(health.warnings.as_slice(), [warning]
            if warning.contains("synchronous_commit is off for this PostgreSQL role")
                && warning.contains("an answered delivery holds")
                && warning.contains("ALTER ROLE ... SET synchronous_commit = on")),
        "{health:?}"
    );
    drop(backend);

    client
        .batch_execute(&format!(
            "ALTER ROLE {role} SET synchronous_commit = remote_apply"
        ))
        .await
        .unwrap();
    let backend = PostgresBackend::connect(&role_url).await.unwrap();
    assert_eq!(backend.synchronous_commit().await.unwrap(), "remote_apply");
    assert!(backend.health().await.unwrap().warnings.is_empty());
}

/// Drops a test's role and its schema when the test ends.
struct DropRole {
    url: String,
    role: String,
}

impl Drop for DropRole {
    fn drop(&mut self) {
        let role = &self.role;
        cleanup(
            &self.url,
            format!("DROP SCHEMA IF EXISTS {role} CASCADE; DROP ROLE IF EXISTS {role}"),
        );
    }
}

#[tokio::test]
async fn a_postgres_that_never_answers_is_a_timeout_not_a_hang() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "postgres://postgres@{}/test",
        listener.local_addr().unwrap()
    );
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let err = PostgresBackend::connect_with(
        &url,
        PostgresOptions::new().timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Timeout, "{err}");
    silent.abort();
}

/// The queue table exactly as main created it before the delivery record (`statements.rs` at
/// `d5366b1`): schema 1, the fixture of the upgrade test.
fn version_1_schema(t: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {t} (
            webhook_id text PRIMARY KEY,
            event_type text NOT NULL,
            webhook_timestamp bigint NOT NULL,
            signature text NOT NULL,
            received_at_ms bigint NOT NULL,
            body bytea NOT NULL,
            state text NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
            attempts integer NOT NULL DEFAULT 0,
            next_run_at_ms bigint NOT NULL,
            locked_until_ms bigint,
            lease text,
            last_error text,
            died_at_ms bigint,
            done_at_ms bigint
        );
        CREATE INDEX IF NOT EXISTS {t}_due ON {t} (next_run_at_ms) WHERE state = 'queued';
        CREATE INDEX IF NOT EXISTS {t}_lease ON {t} (locked_until_ms) WHERE state = 'running';
        CREATE INDEX IF NOT EXISTS {t}_pending ON {t} (received_at_ms)
            WHERE state IN ('queued', 'running');
        CREATE INDEX IF NOT EXISTS {t}_done ON {t} (done_at_ms) WHERE state = 'done';
        CREATE INDEX IF NOT EXISTS {t}_dead_order ON {t} (died_at_ms, webhook_id)
            WHERE state = 'dead';
        DROP INDEX IF EXISTS {t}_dead;"
    )
}

/// A database of its own whose collation is ICU's `en-US` (linguistic: `b` sorts with `B`),
/// dropped at the end of the test; `None` (skip, with a note) without PostgreSQL when
/// `POSTGRES_URL` is not set.
struct LinguisticDatabase {
    admin: String,
    name: String,
    url: String,
}

impl LinguisticDatabase {
    async fn create(test: &str) -> Option<Self> {
        let (admin, required) = postgres_url();
        let Ok((client, connection)) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await
        else {
            assert!(!required, "POSTGRES_URL={admin} is set but unreachable");
            eprintln!("skipping {test}: no PostgreSQL at {admin}");
            return None;
        };
        tokio::spawn(connection);
        let name = unique_table().replace("queue_test", "queue_icu");
        client
            .batch_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8'
                 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
            ))
            .await
            .unwrap_or_else(|err| panic!("CREATE DATABASE with ICU en-US: {err}"));
        let mut config: tokio_postgres::Config = admin.parse().unwrap();
        config.dbname(&name);
        let url = format!(
            "postgres://{}@{}/{name}",
            config.get_user().unwrap_or("postgres"),
            upstream_address(&config)
        );
        Some(Self { admin, name, url })
    }
}

impl Drop for LinguisticDatabase {
    fn drop(&mut self) {
        cleanup(
            &self.admin,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Schema 2 of the record: a queue table made by today's main (schema 1: states `queued`,
/// `running`, `done`, `dead`; its CHECK constraint `{t}_state_check`), in a database whose
/// collation is linguistic, is upgraded in place when a backend connects (two at once: it is
/// migrated once): its waiting and retrying jobs run, its dead letters are listed, shown and
/// replayed, its done id stays a duplicate, its ids compare by their bytes, and the version row
/// says 4 (schemas 3 and 4 follow, each in its own step). The constraint holds the new states only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_schema_1_is_upgraded_in_place_with_its_jobs_and_dead_letters() {
    use agentsync_webhooks_queue::record::{DeliveryFilter, DeliveryState};
    let test = "a_table_of_schema_1_is_upgraded_in_place_with_its_jobs_and_dead_letters";
    let Some(database) = LinguisticDatabase::create(test).await else {
        return;
    };
    let client = connect_raw(&database.url).await;
    let t = unique_table();
    client.batch_execute(&version_1_schema(&t)).await.unwrap();
    let check: String = client
        .query_one(
            "SELECT conname::text FROM pg_constraint WHERE conrelid = $1::text::regclass
             AND contype = 'c'",
            &[&t],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(check, format!("{t}_state_check"), "schema 1's check");
    let now = agentsync_webhooks_core::handoff::now_ms();
    client
        .batch_execute(&format!(
            "INSERT INTO {t} (webhook_id, event_type, webhook_timestamp, signature,
                              received_at_ms, body, state, attempts, next_run_at_ms,
                              locked_until_ms, lease, last_error, died_at_ms, done_at_ms)
             VALUES
             ('msg_waiting', 'producersync.updates_available', 1700000000, 'v1,w', {now} - 5000,
              '{{\"waiting\":1}}', 'queued', 0, 0, NULL, NULL, NULL, NULL, NULL),
             ('msg_retrying', 'contract.signed', 1700000000, 'v1,r', {now} - 4000,
              '{{\"retrying\":1}}', 'queued', 2, 0, NULL, NULL, 'ProducerSync answered 503',
              NULL, NULL),
             ('msg_running', 'contract.signed', 1700000000, 'v1,u', {now} - 3000,
              '{{\"running\":1}}', 'running', 1, 0, 0, 'lost-lease', NULL, NULL, NULL),
             ('msg_done', 'id.producer.updated', 1700000000, 'v1,d', {now} - 2000, '',
              'done', 1, 0, NULL, NULL, NULL, NULL, {now} - 1000),
             ('msg_dead', 'endpoint.unknown', 1700000000, 'v1,x', {now} - 1000,
              '\\xff00', 'dead', 5, 0, NULL, NULL, 'handler_permanent: no such NPN',
              {now} - 500, NULL)"
        ))
        .await
        .unwrap();

    let connect = || {
        PostgresBackend::connect_with(
            &database.url,
            PostgresOptions::new()
                .table(t.clone())
                .retention(Duration::from_secs(3600)),
        )
    };
    let (first, second) = tokio::join!(connect(), connect());
    let (backend, _second) = (first.unwrap(), second.unwrap());

    let version: i32 = client
        .query_one(&format!("SELECT version FROM {t}_schema"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 4, "one version row, migrated once");
    let collation: Option<String> = client
        .query_one(
            "SELECT collation_name::text FROM information_schema.columns
             WHERE table_name = $1 AND column_name = 'webhook_id'",
            &[&t],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        collation.as_deref(),
        Some("C"),
        "ids compare by their bytes"
    );
    let refused = client
        .batch_execute(&format!(
            "INSERT INTO {t} (webhook_id, event_type, webhook_timestamp, signature,
                              received_at_ms, body, state, next_run_at_ms)
             VALUES ('msg_old_state', 'x', 0, '', 0, '', 'queued', 0)"
        ))
        .await;
    assert!(refused.is_err(), "the check lets an old state in");

    let backend = &backend;
    let states = |state| async move {
        backend
            .list(&DeliveryFilter::new().state(state), None, 10)
            .await
            .unwrap()
            .deliveries
            .into_iter()
            .map(|summary| summary.webhook_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(states(DeliveryState::Waiting).await, ["msg_waiting"]);
    assert_eq!(states(DeliveryState::Retrying).await, ["msg_retrying"]);
    assert_eq!(states(DeliveryState::Running).await, ["msg_running"]);
    assert_eq!(states(DeliveryState::Done).await, ["msg_done"]);
    assert_eq!(states(DeliveryState::Dead).await, ["msg_dead"]);
    let contracts = backend
        .counts(&DeliveryFilter::new().event_type("contract"))
        .await
        .unwrap();
    assert_eq!(contracts.total(), 2, "each type's group is computed");

    let dead = backend.dead_letter("msg_dead").await.unwrap().unwrap();
    assert_eq!(dead.attempts, 5);
    assert_eq!(dead.last_error, "handler_permanent: no such NPN");
    assert_eq!(dead.delivery.body.as_ref(), b"\xff\x00");
    assert_eq!(backend.dead_letters(10).await.unwrap().len(), 1);
    assert_eq!(
        backend.enqueue(&delivery("msg_done")).await.unwrap(),
        Enqueued::Duplicate,
        "a done id within the retention"
    );
    assert_eq!(
        backend.enqueue(&delivery("msg_waiting")).await.unwrap(),
        Enqueued::Duplicate
    );

    // The lost lease is re-claimed (its lost attempt recorded), the waiting and retrying run.
    let mut jobs: Vec<(String, u32)> = backend
        .claim(10, Duration::from_secs(60))
        .await
        .unwrap()
        .into_iter()
        .map(|job| (job.delivery.webhook_id, job.attempt))
        .collect();
    jobs.sort();
    assert_eq!(
        jobs,
        [
            ("msg_retrying".to_owned(), 3),
            ("msg_running".to_owned(), 2),
            ("msg_waiting".to_owned(), 1)
        ]
    );
    let running = backend.delivery("msg_running").await.unwrap().unwrap();
    assert_eq!(running.history.len(), 1, "{:?}", running.history);
    assert!(backend.replay("msg_dead").await.unwrap(), "replay");
    let replayed = backend.claim(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].delivery.body.as_ref(), b"\xff\x00");
    assert!(backend.complete(&replayed[0]).await.unwrap());
}

/// A table whose version row says 5 (written by a newer build) is refused with an error that
/// says so, and nothing is written to it: no history table, no index, the version unchanged.
#[tokio::test]
async fn a_table_of_a_newer_schema_is_refused_and_left_untouched() {
    let test = "a_table_of_a_newer_schema_is_refused_and_left_untouched";
    let (url, required) = postgres_url();
    let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
    else {
        assert!(!required, "POSTGRES_URL={url} is set but unreachable");
        eprintln!("skipping {test}: no PostgreSQL at {url}");
        return;
    };
    tokio::spawn(connection);
    let t = unique_table();
    let _dropped = DropTable {
        url: url.clone(),
        table: t.clone(),
    };
    client
        .batch_execute(&format!(
            "CREATE TABLE {t} (webhook_id text PRIMARY KEY, future_column jsonb);
             CREATE TABLE {t}_schema (version integer NOT NULL);
             INSERT INTO {t}_schema VALUES (5);
             INSERT INTO {t} VALUES ('msg_1', '{{}}')"
        ))
        .await
        .unwrap();
    let err = PostgresBackend::connect_with(&url, PostgresOptions::new().table(t.clone()))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("newer") && message.contains("schema 5") && message.contains(&t),
        "{message}"
    );
    let objects: Vec<String> = client
        .query(
            "SELECT relname::text FROM pg_class WHERE relname LIKE $1 || '%' ORDER BY 1",
            &[&t],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        objects,
        [t.clone(), format!("{t}_pkey"), format!("{t}_schema")],
        "nothing created"
    );
    let version: i32 = client
        .query_one(&format!("SELECT max(version) FROM {t}_schema"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 5);
}

/// An id prefix lists exactly the ids that start with it, and pages of ids that share a
/// received-at skip and repeat nothing, in a database whose collation is ICU's `en-US`, where
/// the range `webhook_id >= 'p' AND webhook_id < 'p' || U+10FFFF` compared by the database's
/// collation holds ids that do not start with `p` (`case:bz` for `case:B`), and orders `b`
/// with `B`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_prefix_and_the_cursor_hold_under_a_linguistic_collation() {
    use agentsync_webhooks_queue::record::{Cursor, DeliveryFilter};
    let test = "an_id_prefix_and_the_cursor_hold_under_a_linguistic_collation";
    let Some(database) = LinguisticDatabase::create(test).await else {
        return;
    };
    let client = connect_raw(&database.url).await;
    let naive: bool = client
        .query_one(
            "SELECT 'case:bz' >= 'case:B' AND 'case:bz' < 'case:B' || U&'\\+10FFFF'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        naive,
        "this database's collation would list case:bz under case:B"
    );
    let backend =
        PostgresBackend::connect_with(&database.url, PostgresOptions::new().table(unique_table()))
            .await
            .unwrap();
    let ids = [
        "case:B", "case:B1", "case:Bz", "case:b", "case:bz", "case:c", "case:a-b",
    ];
    for id in ids {
        assert_eq!(
            backend
                .enqueue(&agentsync_webhooks_queue::ReceivedDelivery {
                    received_at_ms: 1_700_000_000_000,
                    ..delivery(id)
                })
                .await
                .unwrap(),
            Enqueued::New
        );
    }
    let listed = |filter: DeliveryFilter| {
        let backend = &backend;
        async move {
            backend
                .list(&filter, None, 100)
                .await
                .unwrap()
                .deliveries
                .into_iter()
                .map(|summary| summary.webhook_id)
                .collect::<Vec<_>>()
        }
    };
    // Newest first, then by id (its bytes) descending.
    assert_eq!(
        listed(DeliveryFilter::new().id_prefix("case:B")).await,
        ["case:Bz", "case:B1", "case:B"]
    );
    assert_eq!(
        listed(DeliveryFilter::new().id_prefix("case:b")).await,
        ["case:bz", "case:b"]
    );
    assert_eq!(
        backend
            .counts(&DeliveryFilter::new().id_prefix("case:B"))
            .await
            .unwrap()
            .total(),
        3
    );
    let mut by_bytes: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
    by_bytes.sort();
    by_bytes.reverse();
    assert_eq!(listed(DeliveryFilter::new()).await, by_bytes);
    let mut paged = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = backend
            .list(&DeliveryFilter::new(), after.as_ref(), 2)
            .await
            .unwrap();
        paged.extend(
            page.deliveries
                .into_iter()
                .map(|summary| summary.webhook_id),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, by_bytes, "pages skip or repeat nothing");
    drop(backend);
}

/// Schema 3 (event time): a table made by schema 2 (the record, before event time), holding a
/// waiting job and a done one, is upgraded in place when backends connect (two at once: it is
/// migrated once): the version row says 4 (schema 4 follows in its own step), the key
/// columns, the keys' table and the partial indexes exist; the old waiting job is claimed as a
/// job without a key, the done id stays a duplicate, and keyed jobs enqueued after it follow
/// the event-time rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_schema_2_is_upgraded_to_event_time_with_its_jobs() {
    let test = "a_table_of_schema_2_is_upgraded_to_event_time_with_its_jobs";
    let (url, required) = postgres_url();
    let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
    else {
        assert!(!required, "POSTGRES_URL={url} is set but unreachable");
        eprintln!("skipping {test}: no PostgreSQL at {url}");
        return;
    };
    tokio::spawn(connection);
    let t = unique_table();
    let _dropped = DropTable {
        url: url.clone(),
        table: t.clone(),
    };
    client
        .batch_execute(&agentsync_webhooks_queue::postgres::version_2_for_tests(&t))
        .await
        .unwrap();
    let version: i32 = client
        .query_one(&format!("SELECT max(version) FROM {t}_schema"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 2, "the fixture is schema 2");
    let now = agentsync_webhooks_core::handoff::now_ms();
    client
        .batch_execute(&format!(
            "INSERT INTO {t} (webhook_id, event_type, event_group, webhook_timestamp, signature,
                              received_at_ms, body, state, attempts, next_run_at_ms,
                              done_at_ms)
             VALUES
             ('msg_waiting', 'producersync.updates_available', 'producersync', 1700000000,
              'v1,w', {now} - 5000, '{{\"waiting\":1}}', 'waiting', 0, 0, NULL),
             ('msg_done', 'producersync.updates_available', 'producersync', 1700000000,
              'v1,d', {now} - 4000, '{{\"done\":1}}', 'done', 1, 0, {now} - 1000)"
        ))
        .await
        .unwrap();

    let connect = || {
        PostgresBackend::connect_with(
            &url,
            PostgresOptions::new()
                .table(t.clone())
                .retention(Duration::from_secs(3600)),
        )
    };
    let (first, second) = tokio::join!(connect(), connect());
    let (backend, second) = (first.unwrap(), second.unwrap());
    let versions: Vec<i32> = client
        .query(&format!("SELECT version FROM {t}_schema"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [4], "one version row, migrated once");
    let objects: Vec<String> = client
        .query(
            "SELECT relname::text FROM pg_class WHERE relname = ANY($1) ORDER BY 1",
            &[&vec![
                format!("{t}_ordering_keys"),
                format!("{t}_keys_updated"),
                format!("{t}_key_running"),
                format!("{t}_key_waiting"),
            ]],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        objects,
        [
            format!("{t}_key_running"),
            format!("{t}_key_waiting"),
            format!("{t}_keys_updated"),
            format!("{t}_ordering_keys"),
        ]
    );
    assert!(backend.orders_events());
    assert_eq!(
        backend.enqueue(&delivery("msg_done")).await.unwrap(),
        Enqueued::Duplicate,
        "a done id within the retention"
    );

    let lease = Duration::from_secs(60);
    let token = ClaimToken::new().unwrap();
    let old = backend.claim_ordered(&token, 10, lease).await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].job.delivery.webhook_id, "msg_waiting");
    assert!(old[0].order.is_none(), "a job of schema 2 has no key");
    assert!(backend.complete(&old[0].job).await.unwrap());

    let order = |occurred_at_ms| agentsync_webhooks_queue::EventOrder {
        key: "npn:1".into(),
        occurred_at_ms,
    };
    for (id, at) in [("msg_newer", 20_000), ("msg_older", 10_000)] {
        assert_eq!(
            backend
                .enqueue_ordered(&delivery(id), &order(at))
                .await
                .unwrap(),
            Enqueued::New
        );
    }
    let token = ClaimToken::new().unwrap();
    let first = backend.claim_ordered(&token, 10, lease).await.unwrap();
    assert_eq!(first.len(), 1, "one of the key at a time");
    assert_eq!(first[0].job.delivery.webhook_id, "msg_older");
    let token = ClaimToken::new().unwrap();
    assert!(
        second
            .claim_ordered(&token, 10, lease)
            .await
            .unwrap()
            .is_empty(),
        "the key is held on the other instance"
    );
    assert!(backend.complete(&first[0].job).await.unwrap());
    let token = ClaimToken::new().unwrap();
    let next = second.claim_ordered(&token, 10, lease).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].job.delivery.webhook_id, "msg_newer");
    assert_eq!(
        next[0].order.as_ref().and_then(|o| o.newest_done_ms),
        Some(10_000)
    );
}

/// A key's newest done occurred-at is kept for the key retention, then purged: an older event
/// of the key claimed after the purge is no longer found stale. The purge keeps a key written
/// within the retention.
#[tokio::test]
async fn the_purge_forgets_a_keys_newest_after_the_key_retention() {
    let test = "the_purge_forgets_a_keys_newest_after_the_key_retention";
    let Some((backend, _table)) = backend_with(
        test,
        PostgresOptions::new().key_retention(Duration::from_millis(200)),
    )
    .await
    else {
        return;
    };
    let lease = Duration::from_secs(60);
    let order = |occurred_at_ms| agentsync_webhooks_queue::EventOrder {
        key: "npn:1".into(),
        occurred_at_ms,
    };
    let claim = || async {
        let token = ClaimToken::new().unwrap();
        backend.claim_ordered(&token, 10, lease).await.unwrap()
    };
    backend
        .enqueue_ordered(&delivery("msg_new"), &order(20_000))
        .await
        .unwrap();
    let done = claim().await;
    assert!(backend.complete(&done[0].job).await.unwrap());
    assert!(!backend.purge().await.unwrap().more);
    backend
        .enqueue_ordered(&delivery("msg_kept"), &order(10_000))
        .await
        .unwrap();
    let kept = claim().await;
    assert_eq!(
        kept[0].order.as_ref().and_then(|o| o.newest_done_ms),
        Some(20_000),
        "within the key retention"
    );
    assert!(backend.complete_stale(&kept[0].job).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    backend.purge().await.unwrap();
    backend
        .enqueue_ordered(&delivery("msg_old"), &order(10_000))
        .await
        .unwrap();
    let old = claim().await;
    let order = old[0].order.clone().expect("keyed");
    assert_eq!(order.newest_done_ms, None, "purged after the key retention");
    assert!(!order.is_stale());
}

/// The SQL the backend runs under `name` (`PostgresBackend::statements`).
fn statement_named(backend: &PostgresBackend, name: &str) -> String {
    backend
        .statements()
        .into_iter()
        .find_map(|(found, sql)| (found == name).then_some(sql))
        .unwrap_or_else(|| panic!("no statement {name}"))
}

/// How many claims on table `t` wait for a lock now (another transaction's row or id). The
/// claim's opening names the table (`pg_stat_activity` keeps a query's first 1 kB).
async fn waiting_on(client: &tokio_postgres::Client, t: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE wait_event_type = 'Lock' AND position($1 in query) > 0",
            &[&format!("worker FROM {t}\n")],
        )
        .await
        .unwrap()
        .get(0)
}

/// Issue 23, one at a time per key, under READ COMMITTED. A claim takes its key's head B; before
/// it commits, an older event A of the key is stored, and a second claim starts: its snapshot
/// shows B still waiting (the first claim's take is not committed) and A as the key's head, and
/// A is locked by nobody. Row locks alone let it take A, and A and B run at once. Driven step by
/// step: the first claim is the backend's own claim statement in an explicit transaction on a
/// connection of the test's, committed only once the second claim answered or waits for it.
/// After it: one job of the key runs (B); A is claimed once B completed, and is stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_event_stored_during_a_claim_never_runs_beside_the_claimed_one() {
    let test = "an_older_event_stored_during_a_claim_never_runs_beside_the_claimed_one";
    let Some((backend, table)) = backend(test).await else {
        return;
    };
    let backend = std::sync::Arc::new(backend);
    let t = table.table.clone();
    let order = |occurred_at_ms| agentsync_webhooks_queue::EventOrder {
        key: "npn:1".into(),
        occurred_at_ms,
    };
    let lease = Duration::from_secs(60);
    assert_eq!(
        backend
            .enqueue_ordered(&delivery("msg_b"), &order(20_000))
            .await
            .unwrap(),
        Enqueued::New
    );

    let first = connect_raw(&table.url).await;
    let monitor = connect_raw(&table.url).await;
    let claim = statement_named(&backend, "claim");
    first.batch_execute("BEGIN").await.unwrap();
    let lease_ms = 60_000_i64;
    let taken: Vec<String> = first
        .query(&claim, &[&10_i64, &lease_ms, &"lease_first", &"first"])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(taken, ["msg_b"], "the key's head, not yet committed");

    // Older than B, stored and committed while the first claim is open.
    assert_eq!(
        backend
            .enqueue_ordered(&delivery("msg_a"), &order(10_000))
            .await
            .unwrap(),
        Enqueued::New
    );
    let second = tokio::spawn({
        let backend = backend.clone();
        async move {
            let token = ClaimToken::new().unwrap();
            backend.claim_ordered(&token, 10, lease).await
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !second.is_finished() && waiting_on(&monitor, &t).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second claim neither answered nor waited"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.batch_execute("COMMIT").await.unwrap();
    let second: Vec<String> = second
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|claimed| claimed.job.delivery.webhook_id.clone())
        .collect();
    let running: Vec<String> = monitor
        .query(
            &format!(
                "SELECT webhook_id FROM {t} WHERE state = 'running' AND ordering_key = 'npn:1'
                 ORDER BY webhook_id"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        running,
        ["msg_b"],
        "one job of the key runs (the second claim took {second:?})"
    );
    assert!(second.is_empty(), "the second claim took {second:?}");

    // B completes; then A, older than what was done, is claimed, and found stale.
    let complete = statement_named(&backend, "complete");
    assert_eq!(
        first
            .query(&complete, &[&"msg_b", &"lease_first"])
            .await
            .unwrap()
            .len(),
        1
    );
    let token = ClaimToken::new().unwrap();
    let next = backend.claim_ordered(&token, 10, lease).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].job.delivery.webhook_id, "msg_a");
    assert!(next[0].order.as_ref().is_some_and(|o| o.is_stale()));
}

/// What schema 3 added to schema 2 (`schema.rs` at `62422b8`, event time), exactly: with
/// `version_2_for_tests`, the fixture of the upgrade to schema 4.
fn version_3_additions(t: &str) -> String {
    format!(
        "ALTER TABLE {t}
            ADD COLUMN IF NOT EXISTS ordering_key text COLLATE \"C\",
            ADD COLUMN IF NOT EXISTS occurred_at_ms bigint;
         CREATE TABLE IF NOT EXISTS {t}_ordering_keys (
            key text COLLATE \"C\" PRIMARY KEY,
            newest_done_ms bigint NOT NULL,
            updated_at_ms bigint NOT NULL
         );
         CREATE INDEX IF NOT EXISTS {t}_keys_updated ON {t}_ordering_keys (updated_at_ms);
         CREATE INDEX IF NOT EXISTS {t}_key_running ON {t} (ordering_key)
            WHERE state = 'running' AND ordering_key IS NOT NULL;
         CREATE INDEX IF NOT EXISTS {t}_key_waiting
            ON {t} (ordering_key, occurred_at_ms, webhook_id)
            WHERE state IN ('waiting', 'retrying') AND ordering_key IS NOT NULL;
         UPDATE {t}_schema SET version = 3;"
    )
}

/// A table of schema 3 holding what its race could leave (two running jobs of key `npn:1`,
/// one of `npn:2`) is upgraded to schema 4 in place by two instances connecting at once
/// (migrated once): `{t}_key_running` is unique; of `npn:1` the first by occurred-at still
/// runs under its lease, the other is given back (waiting, its attempt not counted, no lease);
/// `npn:2`'s job is untouched; and a second running job of a key is refused by the engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_schema_3_is_upgraded_to_one_running_job_per_key() {
    let test = "a_table_of_schema_3_is_upgraded_to_one_running_job_per_key";
    let (url, required) = postgres_url();
    let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
    else {
        assert!(!required, "POSTGRES_URL={url} is set but unreachable");
        eprintln!("skipping {test}: no PostgreSQL at {url}");
        return;
    };
    tokio::spawn(connection);
    let t = unique_table();
    let _dropped = DropTable {
        url: url.clone(),
        table: t.clone(),
    };
    client
        .batch_execute(&agentsync_webhooks_queue::postgres::version_2_for_tests(&t))
        .await
        .unwrap();
    client
        .batch_execute(&version_3_additions(&t))
        .await
        .unwrap();
    let now = agentsync_webhooks_core::handoff::now_ms();
    client
        .batch_execute(&format!(
            "INSERT INTO {t} (webhook_id, event_type, event_group, webhook_timestamp, signature,
                              received_at_ms, body, state, attempts, next_run_at_ms,
                              locked_until_ms, lease, worker, claimed_at_ms, ordering_key,
                              occurred_at_ms)
             SELECT id, 'producersync.npn.activated', 'producersync', 1700000000, 'v1,x',
                    {now}, '{{}}', 'running', 1, 0, {now} + 600000, 'lease_' || id, 'old',
                    {now}, key, at
             FROM (VALUES ('msg_b', 'npn:1', 20000), ('msg_a', 'npn:1', 10000),
                          ('msg_c', 'npn:2', 30000)) AS v(id, key, at)"
        ))
        .await
        .unwrap();

    let connect = || PostgresBackend::connect_with(&url, PostgresOptions::new().table(t.clone()));
    let (first, second) = tokio::join!(connect(), connect());
    let (backend, _second) = (first.unwrap(), second.unwrap());
    let versions: Vec<i32> = client
        .query(&format!("SELECT version FROM {t}_schema"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [4], "one version row, migrated once");
    let unique: bool = client
        .query_one(
            "SELECT indisunique FROM pg_index WHERE indexrelid = to_regclass($1)",
            &[&format!("{t}_key_running")],
        )
        .await
        .unwrap()
        .get(0);
    assert!(unique, "{t}_key_running is unique");
    let rows: Vec<(String, String, i32, Option<String>)> = client
        .query(
            &format!("SELECT webhook_id, state, attempts, lease FROM {t} ORDER BY webhook_id"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    let row = |id: &str, state: &str, attempts, lease: Option<&str>| {
        (
            id.to_owned(),
            state.to_owned(),
            attempts,
            lease.map(str::to_owned),
        )
    };
    assert_eq!(
        rows,
        [
            row("msg_a", "running", 1, Some("lease_msg_a")),
            row("msg_b", "waiting", 0, None),
            row("msg_c", "running", 1, Some("lease_msg_c")),
        ]
    );
    // The given-back job waits for its key, held by the running one.
    let token = ClaimToken::new().unwrap();
    assert!(
        backend
            .claim_ordered(&token, 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    let err = client
        .execute(
            &format!("UPDATE {t} SET state = 'running' WHERE webhook_id = 'msg_b'"),
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
        "{err}"
    );
}

/// The health check on the shared server: the durable pool answers, nothing to warn about
/// (`synchronous_commit` and `fsync` on, a primary), through the queue as the examples' `GET
/// /healthz` calls it.
#[tokio::test]
async fn health_on_a_primary_with_durable_settings_has_no_warnings() {
    let test = "health_on_a_primary_with_durable_settings_has_no_warnings";
    let Some((backend, _table)) = backend(test).await else {
        return;
    };
    let health = Queue::new(backend).health().await.unwrap();
    assert_eq!(health.engine, "postgres");
    assert!(health.warnings.is_empty(), "{health:?}");
}

/// Held by each test that runs private servers: they pick their ports from one range, one test
/// at a time.
static PRIVATE_SERVERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A PostgreSQL server of the test's own (`initdb`, `pg_ctl`, run as the `postgres` user when
/// the test runs as root), on a loopback port, stopped and removed when dropped.
struct PrivateServer {
    dir: tempfile::TempDir,
    port: u16,
}

/// The directory of PostgreSQL's programs (`initdb`, `pg_ctl`), if installed.
fn postgres_bin() -> Option<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

impl PrivateServer {
    /// `initdb` and start on the first free port of 55201-55209 with `settings` (`-c` options);
    /// `None` when PostgreSQL's programs are not installed.
    fn start(settings: &[&str]) -> Option<Self> {
        let bin = postgres_bin()?;
        let port = (55201..=55209).find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())?;
        let dir = tempfile::Builder::new()
            .prefix("agentsync-pg-")
            .tempdir()
            .unwrap();
        let server = Self { dir, port };
        let data = server.dir.path().join("data");
        run_as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
            server.dir.path(),
        );
        let mut options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            server.dir.path().display()
        );
        for setting in settings {
            options.push_str(&format!(" -c {setting}"));
        }
        run_as_postgres(
            &bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                server.dir.path().join("log").to_str().unwrap(),
                "-w",
                "start",
            ],
            server.dir.path(),
        );
        Some(server)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A hot standby of `primary` (`pg_basebackup -R`, streaming), started on the next free
    /// port of the range.
    fn standby_of(primary: &Self) -> Self {
        let bin = postgres_bin().unwrap();
        let port = (55201..=55209)
            .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
            .unwrap();
        let dir = tempfile::Builder::new()
            .prefix("agentsync-pg-")
            .tempdir()
            .unwrap();
        let server = Self { dir, port };
        let data = server.dir.path().join("data");
        run_as_postgres(
            &bin.join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
            ],
            server.dir.path(),
        );
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c hot_standby=on",
            server.dir.path().display()
        );
        run_as_postgres(
            &bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                server.dir.path().join("log").to_str().unwrap(),
                "-w",
                "start",
            ],
            server.dir.path(),
        );
        server
    }

    /// `pg_ctl stop -m immediate`: the server ends at once, as in a crash.
    fn stop(&self) {
        if let Some(bin) = postgres_bin() {
            let data = self.dir.path().join("data");
            run_as_postgres(
                &bin.join("pg_ctl"),
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                self.dir.path(),
            );
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if self.dir.path().join("data/postmaster.pid").exists() {
            self.stop();
        }
    }
}

/// Runs `program` with `args`, as the `postgres` user when this runs as root (PostgreSQL
/// refuses root), `dir` made theirs; panics when it fails.
fn run_as_postgres(program: &std::path::Path, args: &[&str], dir: &std::path::Path) {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    let status = if root {
        std::process::Command::new("chown")
            .args(["-R", "postgres"])
            .arg(dir)
            .status()
            .unwrap();
        std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
    } else {
        std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
    };
    assert!(status.success(), "{} {args:?}: {status}", program.display());
}

/// Issue 22's health on a server of the test's own, run with `fsync = off`: the health check
/// answers with one warning naming the setting and its fix; once the server is stopped it
/// fails, as unreachable, saying it was the health check, within the engine timeout (the
/// call is bounded by it; nothing here waits longer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_warns_of_fsync_off_and_fails_once_the_server_is_stopped() {
    let _one_at_a_time = PRIVATE_SERVERS.lock().await;
    let Some(server) = PrivateServer::start(&["fsync=off"]) else {
        eprintln!("skipping: PostgreSQL's programs (initdb, pg_ctl) are not installed");
        return;
    };
    let backend = PostgresBackend::connect_with(
        &server.url(),
        PostgresOptions::new().timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let queue = Queue::new(backend);
    let health = queue.health().await.unwrap();
    assert!(
        matches!(health.warnings.as_slice(), [warning]
            if warning.contains("fsync is off") && warning.contains("set fsync = on")),
        "{health:?}"
    );
    server.stop();
    let err = queue.health().await.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            StoreErrorKind::Unreachable | StoreErrorKind::Timeout
        ),
        "{err}"
    );
    assert!(err.to_string().contains("PostgreSQL health check"), "{err}");
}

/// Issue 22's health on a standby: a backend connected to a hot standby of a private primary
/// (its table replicated, so that the connect finds schema 4 and writes nothing) fails the
/// health check with an error that says it is a standby and how to reach the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_on_a_standby_is_an_error_naming_the_fix() {
    let _one_at_a_time = PRIVATE_SERVERS.lock().await;
    let Some(primary) = PrivateServer::start(&[]) else {
        eprintln!("skipping: PostgreSQL's programs (initdb, pg_ctl) are not installed");
        return;
    };
    let options = || PostgresOptions::new().table("standby_health");
    let on_primary = PostgresBackend::connect_with(&primary.url(), options())
        .await
        .unwrap();
    assert!(on_primary.health().await.unwrap().warnings.is_empty());
    let standby = PrivateServer::standby_of(&primary);
    let replica = connect_raw(&standby.url()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let row = replica
            .query_one(
                "SELECT to_regclass('standby_health_schema') IS NOT NULL, pg_is_in_recovery()",
                &[],
            )
            .await
            .unwrap();
        let (replicated, in_recovery): (bool, bool) = (row.get(0), row.get(1));
        assert!(in_recovery, "the standby is in recovery");
        if replicated {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the table never reached the standby"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let on_standby = PostgresBackend::connect_with(&standby.url(), options())
        .await
        .unwrap();
    let err = on_standby.health().await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("standby") && message.contains("target_session_attrs=read-write"),
        "{message}"
    );
    drop(standby);
    drop(primary);
}
