//! [`serve`]: the dashboard on a listener of its own (feature `server`).

use std::{future::Future, time::Duration};

use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;

use crate::Dashboard;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `dashboard` on `listener` (HTTP/1.1) until `shutdown` resolves; connections already
/// open finish on their own. For the CLI, and for apps whose server is not a tower one: bind
/// the listener to `127.0.0.1` (or put your own auth in front, or give the dashboard
/// [`basic_auth`](Dashboard::basic_auth)).
///
/// Beside an actix-web app, on the same runtime:
///
/// ```no_run
/// # async fn run(queue: agentsync_webhooks_queue::Queue) -> std::io::Result<()> {
/// use agentsync_webhooks_dashboard::{Dashboard, serve};
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
/// let dashboard = Dashboard::new(queue).engine("SQLite");
/// // In actix-web's `main` (`#[actix_web::main]` runs on tokio): `actix_web::rt::spawn`.
/// tokio::spawn(serve(listener, dashboard, std::future::pending()));
/// # Ok(()) }
/// ```
pub async fn serve(
    listener: TcpListener,
    dashboard: Dashboard,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // A connection that failed before it was accepted (reset, too many files)
                // does not stop the server.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let service = TowerToHyperService::new(dashboard.clone());
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}
