//! `dashboard` as a real process against a SQLite queue file made with the library (a dead
//! letter: enqueued, claimed, buried, as a service's workers make it), read and acted on over
//! HTTP on 127.0.0.1.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use agentsync_webhooks_queue::{Queue, ReceivedDelivery, record::DeliveryState};

const BIN: &str = env!("CARGO_BIN_EXE_agentsync-webhooks");

/// A scratch directory of this test's own, removed at the end.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "agentsync-cli-dashboard-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A SQLite queue at `path` holding the dead letter `msg_dead`.
async fn queue_with_a_dead_letter(path: &Path) {
    let queue = Queue::sqlite(path).await.unwrap();
    let delivery = ReceivedDelivery {
        webhook_id: "msg_dead".to_owned(),
        event_type: "contract.signed".to_owned(),
        webhook_timestamp: 1_700_000_000,
        signature: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".to_owned(),
        received_at_ms: agentsync_webhooks_core::handoff::now_ms(),
        body: br#"{"type":"contract.signed","data":{"note":"<script>alert(1)</script>"}}"#
            .to_vec()
            .into(),
    };
    queue.enqueue(&delivery).await.unwrap();
    let jobs = queue
        .backend()
        .claim(1, Duration::from_secs(30))
        .await
        .unwrap();
    queue
        .backend()
        .bury(&jobs[0], "upstream answered 500")
        .await
        .unwrap();
}

/// The running `dashboard` and the address it printed.
struct Served {
    child: Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str], env: &[(&str, &str)]) -> Served {
    let mut command = Command::new(BIN);
    command
        .arg("dashboard")
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .env_remove("AGENTSYNC_QUEUE_URL")
        .env_remove("AGENTSYNC_DASHBOARD_USER")
        .env_remove("AGENTSYNC_DASHBOARD_PASSWORD")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = command.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .split(" on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    std::thread::spawn(move || for _ in stdout.lines() {});
    Served { child, base }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn serves_the_record_and_acts_only_on_same_origin_posts() {
    let scratch = Scratch::new("serve");
    let path = scratch.0.join("queue.sqlite3");
    queue_with_a_dead_letter(&path).await;
    let served = start(&["--queue", &format!("sqlite://{}", path.display())], &[]);
    let client = client();

    let overview = client
        .get(format!("{}/", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(overview.status(), 200);
    let overview = overview.text().await.unwrap();
    assert!(overview.contains("engine: SQLite"), "{overview}");
    assert!(overview.contains(r#"data-state="dead">1<"#), "{overview}");

    let page = client
        .get(format!("{}/deliveries/msg_dead", served.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("upstream answered 500"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script>alert"));

    let replay = format!("{}/deliveries/msg_dead/replay", served.base);
    let refused = client
        .post(&replay)
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let refused = client.post(&replay).send().await.unwrap();
    assert_eq!(refused.status(), 403, "no Origin, no Sec-Fetch-Site");
    let done = client
        .post(&replay)
        .header("origin", &served.base)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    assert_eq!(
        done.headers()["location"],
        "/deliveries/msg_dead?done=replay"
    );
    drop(served);
    let queue = Queue::sqlite(&path).await.unwrap();
    let record = queue.delivery("msg_dead").await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Waiting);
}

#[tokio::test]
async fn read_only_and_basic_auth_from_the_environment() {
    let scratch = Scratch::new("auth");
    let path = scratch.0.join("queue.sqlite3");
    queue_with_a_dead_letter(&path).await;
    let url = format!("sqlite://{}", path.display());
    let served = start(
        &["--read-only"],
        &[
            ("AGENTSYNC_QUEUE_URL", url.as_str()),
            ("AGENTSYNC_DASHBOARD_USER", "ops"),
            ("AGENTSYNC_DASHBOARD_PASSWORD", "a long password"),
        ],
    );
    let client = client();
    let anonymous = client
        .get(format!("{}/", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let wrong = client
        .get(format!("{}/", served.base))
        .basic_auth("ops", Some("guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let page = client
        .get(format!("{}/deliveries/msg_dead", served.base))
        .basic_auth("ops", Some("a long password"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("read-only") && !page.contains(r#"method="post""#),
        "{page}"
    );
    let refused = client
        .post(format!("{}/deliveries/msg_dead/replay", served.base))
        .basic_auth("ops", Some("a long password"))
        .header("origin", &served.base)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

#[test]
fn a_missing_file_or_a_bad_url_is_refused_without_quoting_a_password() {
    let scratch = Scratch::new("bad");
    let missing = scratch.0.join("nothing.sqlite3");
    let output = Command::new(BIN)
        .args([
            "dashboard",
            "--queue",
            &format!("sqlite://{}", missing.display()),
        ])
        .env_remove("AGENTSYNC_DASHBOARD_USER")
        .env_remove("AGENTSYNC_DASHBOARD_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!missing.exists(), "no empty queue was created");

    let output = Command::new(BIN)
        .args(["dashboard", "--queue", "mysql://root:s3cret@db/app"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown queue URL") && !stderr.contains("s3cret"),
        "{stderr}"
    );

    let output = Command::new(BIN)
        .args([
            "dashboard",
            "--queue",
            &format!("sqlite://{}", missing.display()),
        ])
        .env("AGENTSYNC_DASHBOARD_USER", "ops")
        .env_remove("AGENTSYNC_DASHBOARD_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("set both"));
}
