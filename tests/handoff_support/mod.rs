//! What the handoff end-to-end tests share: the `axum` example run as a child process (killed on
//! drop), its log read line by line, signed deliveries sent over real TCP, a Redis logical
//! database or a PostgreSQL database of one's own, and a TCP proxy in front of either that can
//! go down.
//!
//! The example is built by `cargo build --workspace --all-features --example axum` the first time
//! a test needs it (a no-op when `cargo test --workspace --all-features` already built it).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use agentsync_webhooks::{EventType, Signer, redis::redis};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// The signing secret of every test (the Standard Webhooks test vector secret).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The path the example serves for ProducerSync.
pub const PATH: &str = "/webhooks/psapi";
/// The longest any test waits for something to happen: a bound that stops a broken test from
/// hanging, never an assertion on speed.
pub const BOUND: Duration = Duration::from_secs(60);

/// A name no other test or run uses.
pub fn unique(case: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{case}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh directory under the system's temporary directory, removed on drop (the receivers'
/// working directory: the SQLite queue file lives there).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(case: &str) -> Self {
        let path = std::env::temp_dir().join(format!("agentsync-handoff-e2e-{}", unique(case)));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `axum` example's executable, built once per test run with the features CI builds it with.
pub fn axum_example() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_example("axum")).clone()
}

/// An example's executable, built once per test run (as [`axum_example`]).
pub async fn example_executable(name: &str) -> PathBuf {
    if name == "axum" {
        return tokio::task::spawn_blocking(axum_example).await.unwrap();
    }
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        // Held while building: cargo would serialize the builds anyway.
        let mut built = BUILT.lock().unwrap();
        if let Some((_, exe)) = built.iter().find(|(built, _)| *built == name) {
            return exe.clone();
        }
        let exe = build_example(&name);
        built.push((name, exe.clone()));
        exe
    })
    .await
    .unwrap()
}

fn build_example(name: &str) -> PathBuf {
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--workspace", "--all-features", "--example", name])
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    // Into the target directory of this test binary (`<target>/<profile>/deps/<test>`), also
    // when cargo was given `--target-dir` rather than `CARGO_TARGET_DIR`: never a second one.
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        let exe = std::env::current_exe().unwrap();
        if let Some(target) = exe
            .ancestors()
            .nth(3)
            .filter(|dir| dir.join("CACHEDIR.TAG").is_file())
        {
            cargo.arg("--target-dir").arg(target);
        }
    }
    let output = cargo.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo build --example {name} failed: {}",
        output.status
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == name)
        .filter(|message| {
            message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "example"))
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo built no executable for the example {name}"))
}

/// How one receiver process is started.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `AGENTSYNC_QUEUE_URL` (empty: the SQLite file in the working directory).
    pub queue_url: String,
    /// `WORKERS`: handlers at once in the process, 0 for none.
    pub workers: u32,
    /// `PULL_DELAY_MS`: how long each handler "pulls".
    pub pull_delay_ms: u64,
}

/// The `axum` example running as a child process on 127.0.0.1 (a port of its own), with every
/// line it logged. Killed (SIGKILL) when dropped, so a failing test leaves no process behind.
pub struct ReceiverProcess {
    child: Child,
    /// `http://127.0.0.1:PORT/webhooks/psapi`.
    pub url: String,
    log: Arc<Mutex<Vec<String>>>,
    name: String,
}

impl ReceiverProcess {
    /// Starts the example in `dir` with `settings`, and waits until it listens.
    pub async fn start(name: &str, dir: &Path, settings: &Settings) -> Self {
        Self::start_example("axum", name, dir, settings, &[]).await
    }

    /// Starts the example `example` (built once per test run) in `dir` with `settings` and the
    /// variables `env` on top, and waits until it listens.
    pub async fn start_example(
        example: &str,
        name: &str,
        dir: &Path,
        settings: &Settings,
        env: &[(&str, &str)],
    ) -> Self {
        let exe = example_executable(example).await;
        let mut child = Command::new(exe)
            .current_dir(dir)
            .env("AGENTSYNC_WEBHOOK_SECRET", SECRET)
            .env("AGENTSYNC_QUEUE_URL", &settings.queue_url)
            .env("WORKERS", settings.workers.to_string())
            .env("PULL_DELAY_MS", settings.pull_delay_ms.to_string())
            // The example listens on the port the system picks and prints it.
            .env("PORT", "0")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("the {example} example starts: {err}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { return };
                    log.lock().unwrap().push(strip_ansi(&line));
                }
            });
        }
        let mut receiver = Self {
            child,
            url: String::new(),
            log,
            name: name.to_owned(),
        };
        let addr = receiver
            .wait_for_line("the receiver listens", |line| {
                line.split_once("listening on http://")?
                    .1
                    .split_whitespace()
                    .next()?
                    .trim_end_matches(':')
                    .parse::<SocketAddr>()
                    .ok()
            })
            .await;
        receiver.url = format!("http://{addr}{PATH}");
        receiver
    }

    /// Waits (up to [`BOUND`]) for a logged line that `find` accepts, failing the test if the
    /// process exits first.
    pub async fn wait_for_line<T>(&mut self, what: &str, find: impl FnMut(&str) -> Option<T>) -> T {
        self.wait_for_line_after(0, what, find).await
    }

    /// How many lines the process logged so far.
    pub fn lines(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Like [`wait_for_line`](Self::wait_for_line), among the lines after the first `skip`.
    pub async fn wait_for_line_after<T>(
        &mut self,
        skip: usize,
        what: &str,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .skip(skip)
                .find_map(|line| find(line));
            if let Some(found) = found {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "{}: exited ({status}) before {what}; its log:\n{}",
                    self.name,
                    self.log()
                );
            }
            assert!(
                start.elapsed() < BOUND,
                "{}: {what}: not after {BOUND:?}; its log:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many times each `webhook_id` appears in a line with `message`.
    pub fn count(&self, message: &str) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for line in self.log.lock().unwrap().iter() {
            if let Some(id) = logged_id(line, message) {
                *counts.entry(id).or_default() += 1;
            }
        }
        counts
    }

    /// Waits (up to [`BOUND`]) until `webhook processed` was logged for every one of `ids`.
    pub async fn wait_processed(&mut self, ids: &[String]) {
        let start = Instant::now();
        loop {
            let processed = self.count("webhook processed");
            let missing: Vec<&String> = ids
                .iter()
                .filter(|id| !processed.contains_key(*id))
                .collect();
            if missing.is_empty() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{}: exited ({status}) with {} not processed: {missing:?}",
                    self.name,
                    missing.len()
                );
            }
            assert!(
                start.elapsed() < BOUND,
                "{}: {} of {} not processed after {BOUND:?}: {missing:?}; its log:\n{}",
                self.name,
                missing.len(),
                ids.len(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// `kill -9`, and waits until the process is gone.
    pub fn kill9(mut self) {
        use std::os::unix::process::ExitStatusExt;
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "{}: killed: {status}", self.name);
    }
}

impl Drop for ReceiverProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `webhook_id` of a log line with `message` in it (`webhook_id="msg_..."` or unquoted).
fn logged_id(line: &str, message: &str) -> Option<String> {
    if !line.contains(message) {
        return None;
    }
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("webhook_id="))
        .map(|id| id.trim_matches('"').to_owned())
}

/// The line without terminal colour sequences (`ESC [ ... letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One signed delivery: the same bytes and headers on every send, as the sender's retries.
#[derive(Debug, Clone)]
pub struct SignedDelivery {
    /// The `webhook-id`.
    pub id: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl SignedDelivery {
    /// A fresh documented `producersync.updates_available` example (new id, signed now).
    pub fn new() -> Self {
        Self::signed_with(SECRET)
    }

    /// The same, signed with `secret`.
    pub fn signed_with(secret: &str) -> Self {
        Self::example(EventType::ProducerSyncUpdatesAvailable, secret)
    }

    /// A fresh documented example of `event_type`, signed with `secret`.
    pub fn example(event_type: EventType, secret: &str) -> Self {
        let signed = Signer::new(secret).unwrap().example(event_type);
        Self {
            id: signed.headers.id.clone(),
            headers: signed.headers.to_pairs().to_vec(),
            body: signed.body,
        }
    }
}

/// What a receiver answered to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status, or 0 when there was no HTTP answer.
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Answer {
    /// `202`: stored, to be processed.
    pub fn is_accepted(&self) -> bool {
        self.status == 202
    }

    /// `200` with an empty body: a duplicate of a stored delivery.
    pub fn is_duplicate(&self) -> bool {
        self.status == 200 && self.body.is_empty()
    }

    /// `503` with a `Retry-After` of at least one second.
    pub fn is_unavailable(&self) -> bool {
        self.status == 503
            && self
                .retry_after
                .as_deref()
                .and_then(|secs| secs.parse::<u64>().ok())
                .is_some_and(|secs| secs >= 1)
    }
}

/// A client with a bound on every request.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(BOUND).build().unwrap()
}

/// Sends `delivery` once to `url`.
pub async fn send(client: &reqwest::Client, url: &str, delivery: &SignedDelivery) -> Answer {
    let mut request = client.post(url).header("content-type", "application/json");
    for (name, value) in &delivery.headers {
        request = request.header(*name, value);
    }
    let response = match request.body(delivery.body.clone()).send().await {
        Ok(response) => response,
        Err(err) => {
            return Answer {
                status: 0,
                retry_after: None,
                body: format!("no answer: {err}"),
            };
        }
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let body = response
        .text()
        .await
        .unwrap_or_else(|err| format!("body lost: {err}"));
    Answer {
        status,
        retry_after,
        body,
    }
}

/// Sends every one of `deliveries` at once to `url`; the answers, in the same order.
pub async fn send_all(
    client: &reqwest::Client,
    url: &str,
    deliveries: &[SignedDelivery],
) -> Vec<Answer> {
    let sends: Vec<_> = deliveries
        .iter()
        .map(|delivery| {
            let (client, url, delivery) = (client.clone(), url.to_owned(), delivery.clone());
            tokio::spawn(async move { send(&client, &url, &delivery).await })
        })
        .collect();
    let mut answers = Vec::with_capacity(sends.len());
    for send in sends {
        answers.push(send.await.unwrap());
    }
    answers
}

/// `REDIS_URL`, and whether it was set (then Redis is required: unreachable fails the test).
pub fn redis_url() -> (String, bool) {
    agentsync_webhooks::redis::testing::redis_url()
}

/// `url` with its database path (if any) replaced by `/db`.
fn with_database(url: &str, db: u32) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{authority}/{db}")
}

/// The lowest and highest logical database numbers the tests may take.
const DATABASES: std::ops::RangeInclusive<u32> = 8..=15;

/// A Redis logical database that this test alone uses, emptied when taken and when dropped.
///
/// The `axum` example reads only `AGENTSYNC_QUEUE_URL`, so its Redis queue is always under the
/// default key prefix: a database of its own (`redis://HOST:PORT/N`, N in 8..=15) keeps the tests
/// (and concurrent runs) apart. A test takes a database with `SET` `NX` of a lock key in the
/// database `REDIS_URL` names, and waits while all are taken.
pub struct RedisDb {
    /// `REDIS_URL` with the database path `/N`.
    pub url: String,
    /// The database number.
    pub db: u32,
    base: String,
    lock: String,
    token: String,
}

impl RedisDb {
    /// A database for `test`, or `None` (skip, with a note) when Redis is unreachable and
    /// `REDIS_URL` is not set.
    ///
    /// # Panics
    ///
    /// When `REDIS_URL` is set and Redis is unreachable.
    pub fn take(test: &str) -> Option<Self> {
        let (base, required) = redis_url();
        let mut connection = match redis::Client::open(base.as_str())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        {
            Ok(connection) => connection,
            Err(err) if required => {
                panic!("REDIS_URL={base} is set but Redis is unreachable: {err}")
            }
            Err(err) => {
                eprintln!(
                    "skipping {test}: no Redis at {base} ({err}); set REDIS_URL to require it"
                );
                return None;
            }
        };
        let token = unique(test);
        let start = Instant::now();
        loop {
            for db in DATABASES {
                let lock = format!("agentsync-webhooks-test:handoff-e2e:db:{db}");
                // Expires on its own if the process dies without dropping the guard.
                let taken: Option<String> = redis::cmd("SET")
                    .arg(&lock)
                    .arg(&token)
                    .arg("NX")
                    .arg("EX")
                    .arg(600)
                    .query(&mut connection)
                    .unwrap();
                if taken.is_some() {
                    let taken = Self {
                        url: with_database(&base, db),
                        db,
                        base,
                        lock,
                        token,
                    };
                    taken.flush();
                    return Some(taken);
                }
            }
            assert!(
                start.elapsed() < BOUND,
                "every Redis database in {DATABASES:?} stayed taken for {BOUND:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `FLUSHDB` on this database.
    fn flush(&self) {
        let mut connection = redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap();
        let () = redis::cmd("FLUSHDB").query(&mut connection).unwrap();
    }
}

impl Drop for RedisDb {
    fn drop(&mut self) {
        let cleanup = || -> redis::RedisResult<()> {
            let mut db = redis::Client::open(self.url.as_str())?
                .get_connection_with_timeout(Duration::from_secs(2))?;
            let () = redis::cmd("FLUSHDB").query(&mut db)?;
            let mut base = redis::Client::open(self.base.as_str())?
                .get_connection_with_timeout(Duration::from_secs(2))?;
            let holder: Option<String> = redis::cmd("GET").arg(&self.lock).query(&mut base)?;
            if holder.as_deref() == Some(self.token.as_str()) {
                let _: i64 = redis::cmd("DEL").arg(&self.lock).query(&mut base)?;
            }
            Ok(())
        };
        if let Err(err) = cleanup() {
            eprintln!("could not clean Redis database {}: {err}", self.db);
        }
    }
}

/// A TCP proxy on 127.0.0.1 to `upstream` (`HOST:PORT`) that can go down: while down, every
/// connection is dropped and new ones are closed at once (the engine unreachable), until it is
/// up.
pub struct Proxy {
    pub port: u16,
    down: watch::Sender<bool>,
    /// Connections being relayed now.
    open: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// Counts one relayed connection while it lives.
struct Open(Arc<AtomicU64>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Proxy {
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (down, _) = watch::channel(false);
        let open = Arc::new(AtomicU64::new(0));
        let (watch_down, count) = (down.clone(), Arc::clone(&open));
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if *watch_down.borrow() {
                    drop(client);
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let open = Open(Arc::clone(&count));
                let (upstream, down) = (upstream.clone(), watch_down.subscribe());
                tokio::spawn(async move {
                    relay(client, upstream, down).await;
                    drop(open);
                });
            }
        });
        Self {
            port,
            down,
            open,
            task,
        }
    }

    /// Down: every relayed connection closed, new ones closed at once; returns once none is
    /// open any more (so that nothing sent afterwards can reach Redis).
    pub async fn go_down(&self) {
        self.down.send_replace(true);
        let start = Instant::now();
        while self.open.load(Ordering::SeqCst) > 0 {
            assert!(
                start.elapsed() < BOUND,
                "proxy connections still open after {BOUND:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Up: connections are relayed again.
    pub fn go_up(&self) {
        self.down.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down.send_replace(true);
        self.task.abort();
    }
}

/// The `HOST:PORT` of a `redis://` (or `postgres://`) URL.
pub fn redis_authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_owned()
}

/// `url` (`redis://` or `postgres://`) pointing at 127.0.0.1:`port` instead, credentials, path
/// and query kept.
pub fn through_port(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let (authority, path) = rest
        .find(['/', '?'])
        .map_or((rest, ""), |at| rest.split_at(at));
    let credentials = authority
        .rsplit_once('@')
        .map_or(String::new(), |(credentials, _)| format!("{credentials}@"));
    format!("{scheme}://{credentials}127.0.0.1:{port}{path}")
}

/// One client connection, both ways, until either end closes or the proxy goes down.
async fn relay(client: TcpStream, upstream: String, mut down: watch::Receiver<bool>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let replies = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        () = requests => {}
        () = replies => {}
        _ = down.wait_for(|down| *down) => {}
    }
}

/// `POSTGRES_URL`, and whether it was set (then PostgreSQL is required: unreachable fails the
/// test).
pub fn postgres_url() -> (String, bool) {
    match std::env::var("POSTGRES_URL") {
        Ok(url) if !url.is_empty() => (url, true),
        _ => ("postgres://postgres@127.0.0.1:5432/test".to_owned(), false),
    }
}

/// A PostgreSQL database that this test alone uses (`CREATE DATABASE` on the server
/// `POSTGRES_URL` names), dropped with everything in it when the guard is dropped.
///
/// The `axum` example reads only `AGENTSYNC_QUEUE_URL`, so its PostgreSQL queue is always the
/// default table: a database of its own keeps the tests (and concurrent runs) apart.
pub struct PostgresDb {
    /// `POSTGRES_URL` with the database path replaced by this database.
    pub url: String,
    pub name: String,
    base: String,
}

impl PostgresDb {
    /// A database for `test`, or `None` (skip, with a note) when PostgreSQL is unreachable and
    /// `POSTGRES_URL` is not set.
    ///
    /// # Panics
    ///
    /// When `POSTGRES_URL` is set and PostgreSQL is unreachable.
    pub async fn take(test: &str) -> Option<Self> {
        let (base, required) = postgres_url();
        let client = match connect_postgres(&base).await {
            Ok(client) => client,
            Err(err) if required => {
                panic!("POSTGRES_URL={base} is set but PostgreSQL is unreachable: {err}")
            }
            Err(err) => {
                eprintln!(
                    "skipping {test}: no PostgreSQL at {base} ({err}); set POSTGRES_URL to require it"
                );
                return None;
            }
        };
        // At most 63 bytes, lower case: a plain identifier.
        let name = unique("hoe2e").replace('-', "_").to_ascii_lowercase();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", &base));
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        let query = rest
            .split_once('?')
            .map_or(String::new(), |(_, q)| format!("?{q}"));
        Some(Self {
            url: format!("{scheme}://{authority}/{name}{query}"),
            name,
            base,
        })
    }
}

async fn connect_postgres(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

impl Drop for PostgresDb {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop runs inside the test's runtime: a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| err.to_string())?;
            runtime.block_on(async {
                let client = connect_postgres(&base).await.map_err(|e| e.to_string())?;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(err)) = dropped {
            eprintln!(
                "could not drop the PostgreSQL database {}: {err}",
                self.name
            );
        }
    }
}

/// The `HOST:PORT` of a `postgres://` URL (port 5432 if it names none).
pub fn postgres_authority(url: &str) -> String {
    let authority = redis_authority(url);
    if authority.contains(':') {
        authority
    } else {
        format!("{authority}:5432")
    }
}

/// `REDIS_CLUSTER_URL`, and whether it was set (then the cluster is required: unreachable
/// fails the test). Default: the cluster of `.ci/redis-cluster.sh`.
pub fn redis_cluster_url() -> (String, bool) {
    match std::env::var("REDIS_CLUSTER_URL") {
        Ok(url) if !url.is_empty() => (url, true),
        _ => (
            "redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103".to_owned(),
            false,
        ),
    }
}

/// A queue on the Redis Cluster under a key prefix that this test alone uses, named in the
/// queue URL (`?prefix=`, and `&partitions=N`), its keys deleted on every primary when dropped.
pub struct ClusterQueue {
    /// The queue URL the receivers read.
    pub url: String,
    prefix: String,
    primaries: Vec<String>,
}

impl ClusterQueue {
    /// A queue for `test` in `partitions` partitions, or `None` (skip, with a note) when the
    /// cluster is unreachable and `REDIS_CLUSTER_URL` is not set.
    ///
    /// # Panics
    ///
    /// When `REDIS_CLUSTER_URL` is set and the cluster is unreachable.
    pub fn take(test: &str, partitions: usize) -> Option<Self> {
        let (base, required) = redis_cluster_url();
        let primaries = match cluster_primaries(&base) {
            Ok(primaries) if !primaries.is_empty() => primaries,
            other => {
                let err = other.map_or_else(|err| err.to_string(), |_| "no primary".to_owned());
                if required {
                    panic!("REDIS_CLUSTER_URL={base} is set but the cluster is unreachable: {err}");
                }
                eprintln!(
                    "skipping {test}: no Redis Cluster at {base} ({err}); run \
                     .ci/redis-cluster.sh start, set REDIS_CLUSTER_URL to require it"
                );
                return None;
            }
        };
        let prefix = format!("agentsync-webhooks-test:handoff:{}:", unique(test));
        let (nodes, query) = base.split_once('?').unwrap_or((base.as_str(), ""));
        let mut url = format!(
            "{nodes}?prefix={}&partitions={partitions}",
            prefix.replace(':', "%3A")
        );
        if !query.is_empty() {
            url = format!("{url}&{query}");
        }
        Some(Self {
            url,
            prefix,
            primaries,
        })
    }
}

impl Drop for ClusterQueue {
    fn drop(&mut self) {
        for node in &self.primaries {
            let Ok(mut connection) = redis::Client::open(node.as_str())
                .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
            else {
                continue;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", self.prefix))
                .query(&mut connection)
                .unwrap_or_default();
            for key in keys {
                let _: Result<i64, _> = redis::cmd("DEL").arg(key).query(&mut connection);
            }
        }
    }
}

/// The primaries of the cluster named by `url` (`redis+cluster://HOST:PORT,...`), as
/// `redis://HOST:PORT`, read with `CLUSTER NODES` from the first seed that answers.
fn cluster_primaries(url: &str) -> redis::RedisResult<Vec<String>> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split(['?', '/']).next().unwrap_or(rest);
    let mut last = None;
    for seed in rest.split(',') {
        let seed = seed.rsplit('@').next().unwrap_or(seed);
        let answer = redis::Client::open(format!("redis://{seed}").as_str())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut connection| {
                redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query::<String>(&mut connection)
            });
        match answer {
            Ok(nodes) => {
                return Ok(nodes
                    .lines()
                    .filter(|line| line.contains("master") && !line.contains("fail"))
                    .filter_map(|line| line.split_whitespace().nth(1))
                    .map(|address| {
                        format!("redis://{}", address.split('@').next().unwrap_or(address))
                    })
                    .collect());
            }
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "no seed node"))))
}
