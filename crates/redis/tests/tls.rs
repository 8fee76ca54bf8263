//! `rediss://` and `rediss+cluster://` (feature `tls`) against `redis-server`s of the test's own,
//! started with `--tls-port` and a certificate made by `openssl` for a CA of the test's own, on
//! loopback ports 7390-7393: a verified connection to a server whose CA is not trusted fails,
//! one told `#insecure` answers, on a single Redis and on a 3-node TLS cluster
//! (`--tls-cluster yes`). Skipped, with a note, when `redis-server` or `openssl` is missing.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use agentsync_webhooks_redis::connection::RedisConnection;

/// A CA and a certificate for 127.0.0.1 under `dir`, or `false` when `openssl` fails.
fn certificates(dir: &Path) -> bool {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=agentsync-test-ca",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "node.key",
        "-out",
        "node.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "node.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "node.crt",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    ])
}

/// `redis-server`s on TLS ports, shut down when dropped.
struct TlsServers {
    ports: Vec<u16>,
    dir: Dir,
}

/// A directory of the test's own, removed when dropped.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("agentsync-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TlsServers {
    fn start(ports: &[u16], cluster: bool) -> Option<Self> {
        let dir = Dir::new(&ports[0].to_string());
        if !certificates(dir.path()) {
            eprintln!("skipping: openssl could not make the certificates");
            return None;
        }
        for port in ports {
            let data = dir.path().join(port.to_string());
            std::fs::create_dir_all(&data).unwrap();
            let mut command = Command::new("redis-server");
            command
                .current_dir(dir.path())
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                ])
                // Absolute: redis-server moves to `--dir` before it reads them.
                .arg("--tls-cert-file")
                .arg(dir.path().join("node.crt"))
                .arg("--tls-key-file")
                .arg(dir.path().join("node.key"))
                .arg("--tls-ca-cert-file")
                .arg(dir.path().join("ca.crt"))
                .args(["--tls-auth-clients", "no"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "yes"])
                .arg("--dir")
                .arg(&data)
                .arg("--pidfile")
                .arg(data.join("redis.pid"));
            if cluster {
                command.args(["--cluster-enabled", "yes", "--tls-cluster", "yes"]);
                command.args(["--tls-replication", "yes", "--cluster-node-timeout", "2000"]);
            }
            match command.stdout(Stdio::null()).status() {
                Ok(status) if status.success() => {}
                other => {
                    eprintln!("skipping: redis-server did not start with TLS: {other:?}");
                    return None;
                }
            }
        }
        let servers = Self {
            ports: ports.to_vec(),
            dir,
        };
        for port in ports {
            let ready = (0..100).any(|_| {
                std::thread::sleep(Duration::from_millis(50));
                servers
                    .cli(*port, &["ping"])
                    .is_some_and(|out| out.contains("PONG"))
            });
            assert!(ready, "the TLS redis-server on {port} did not answer");
        }
        Some(servers)
    }

    /// `redis-cli --tls` on `port`, its output.
    fn cli(&self, port: u16, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .current_dir(self.dir.path())
            .args([
                "--tls",
                "--cacert",
                "ca.crt",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .args(args)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for TlsServers {
    fn drop(&mut self) {
        for port in &self.ports {
            let _ = self.cli(*port, &["shutdown", "nosave"]);
        }
    }
}

async fn ping(url: &str) -> Result<String, String> {
    let mut connection = RedisConnection::connect(url, Duration::from_secs(2))
        .await
        .map_err(|err| err.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut connection)
        .await
        .map_err(|err| err.to_string())
}

#[tokio::test]
async fn rediss_to_a_single_redis() {
    let Some(servers) = TlsServers::start(&[7390], false) else {
        return;
    };
    let verified = ping("rediss://127.0.0.1:7390").await;
    assert!(
        verified.is_err(),
        "a certificate of an untrusted CA was accepted"
    );
    assert_eq!(
        ping("rediss://127.0.0.1:7390/#insecure").await.unwrap(),
        "PONG"
    );
    // Plain text to a TLS port does not answer.
    assert!(ping("redis://127.0.0.1:7390").await.is_err());
    drop(servers);
}

#[tokio::test]
async fn rediss_cluster_to_a_tls_cluster() {
    let ports = [7391, 7392, 7393];
    let Some(servers) = TlsServers::start(&ports, true) else {
        return;
    };
    let nodes: Vec<String> = ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    let mut args = vec!["--cluster", "create"];
    args.extend(nodes.iter().map(String::as_str));
    args.push("--cluster-yes");
    servers.cli(ports[0], &args).unwrap();
    let ok = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        ports.iter().all(|port| {
            servers
                .cli(*port, &["cluster", "info"])
                .is_some_and(|info| info.contains("cluster_state:ok"))
        })
    });
    assert!(ok, "the TLS cluster did not come up");
    let url = format!("rediss+cluster://{}", nodes.join(","));
    assert!(ping(&url).await.is_err(), "an untrusted CA was accepted");
    let mut connection =
        RedisConnection::connect(&format!("{url}#insecure"), Duration::from_secs(2))
            .await
            .unwrap();
    // Keys on every primary's slots: the client follows the slot map over TLS.
    for i in 0..30 {
        let () = redis::cmd("SET")
            .arg(format!("tls-test:{i}"))
            .arg(i)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
    let got: i64 = redis::cmd("GET")
        .arg("tls-test:29")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(got, 29);
    drop(servers);
}
