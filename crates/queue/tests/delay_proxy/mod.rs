//! A TCP proxy on 127.0.0.1 in front of an engine that holds every reply for a delay (a stalled
//! or overloaded server, a slow network) and can drop every connection ("the engine is down").
//! Requests pass at once, so the engine applies a call whose reply the client then waits for in
//! vain: what a timeout after a commit looks like.
#![allow(dead_code)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// A proxy to `upstream` that holds every reply for `delay_ms`, and drops every connection
/// while `down`.
pub struct DelayProxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
    down: watch::Sender<bool>,
    accepted: Arc<AtomicU64>,
}

impl DelayProxy {
    /// Listens on a free port of 127.0.0.1 and relays to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (down, _) = watch::channel(false);
        let accepted = Arc::new(AtomicU64::new(0));
        let (delay, watch_down, count) = (delay_ms.clone(), down.clone(), accepted.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if *watch_down.borrow() {
                    drop(client);
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let (upstream, delay, down) =
                    (upstream.clone(), delay.clone(), watch_down.subscribe());
                tokio::spawn(relay(client, upstream, delay, down));
            }
        });
        Self {
            port,
            delay_ms,
            down,
            accepted,
        }
    }

    /// `127.0.0.1:PORT`, to put in an engine URL in place of the engine's address.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How many connections it accepted.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Every reply from now on is held for `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(u64::try_from(delay.as_millis()).unwrap(), Ordering::SeqCst);
    }

    /// While `down`, every connection is dropped and new ones are refused.
    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

/// One client connection: requests pass at once, replies after the delay; both ends close when
/// the proxy goes down.
async fn relay(
    client: TcpStream,
    upstream: String,
    delay: Arc<AtomicU64>,
    mut down: watch::Receiver<bool>,
) {
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
                    let hold = delay.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(hold)).await;
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
