//! One connection type for a single Redis and a Redis Cluster, named by URL.
//!
//! | URL | connection |
//! |---|---|
//! | `redis://[user:password@]host:port[/db]`, `rediss://...`, `redis+unix://...`, `unix://...` | a single Redis (or a primary behind a proxy), through the `redis` crate's auto-reconnecting [`ConnectionManager`] |
//! | `redis+cluster://[user:password@]host:port[,host:port...]`, `rediss+cluster://...` (TLS) | a Redis Cluster, through the `redis` crate's cluster client: the hosts are seed nodes, the rest of the cluster is discovered, `MOVED` and `ASK` are followed, the slot map is refreshed after a failover |
//!
//! A cluster URL takes no database number (a cluster has only database 0). `rediss://` and
//! `rediss+cluster://` need this crate's `tls` feature (the `redis` crate's
//! `tokio-native-tls-comp`: the system's OpenSSL and trusted roots, `SSL_CERT_FILE` honoured),
//! or another of the `redis` crate's TLS features in the build; without one, connecting fails
//! naming TLS. `#insecure` at the end of the URL skips verifying the certificate (every seed
//! node of a cluster URL).
//!
//! ```
//! use agentsync_webhooks_redis::connection::{cluster_nodes, is_cluster_url};
//!
//! assert!(is_cluster_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7000"));
//! assert!(!is_cluster_url("redis://127.0.0.1:6379"));
//! assert_eq!(
//!     cluster_nodes("redis+cluster://:s3cret@a:7000,b:7001")?,
//!     ["redis://:s3cret@a:7000", "redis://:s3cret@b:7001"]
//! );
//! # Ok::<(), agentsync_webhooks_core::idempotency::StoreError>(())
//! ```

use std::time::Duration;

use agentsync_webhooks_core::idempotency::{StoreError, StoreErrorKind};
use redis::{
    Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
    cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo},
};

use crate::shared::{open, store_error};

/// A connection to a single Redis or to a Redis Cluster: cheap to clone (one multiplexed
/// connection, or one per cluster node, shared), reconnecting on its own.
#[derive(Clone)]
pub enum RedisConnection {
    /// A single Redis.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither shows credentials; the addresses are left out too.
        f.write_str(match self {
            Self::Single(_) => "RedisConnection::Single",
            Self::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(cmd, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

impl RedisConnection {
    /// Connects to `url` (see the module's table), each connection attempt and response bounded
    /// by `timeout`, failing if Redis (for a cluster: the seed nodes) does not answer now.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let connect = async {
            if is_cluster_url(url) {
                let client = cluster_client(url, timeout)?;
                client
                    .get_async_connection()
                    .await
                    .map(Self::Cluster)
                    .map_err(|err| store_error("connect to the cluster", err))
            } else {
                let client = open(url)?;
                ConnectionManager::new_with_config(client, manager_config(timeout))
                    .await
                    .map(Self::Single)
                    .map_err(|err| store_error("connect", err))
            }
        };
        // A cluster's discovery talks to several nodes: allow it a few timeouts.
        let bound = if is_cluster_url(url) {
            timeout.saturating_mul(3)
        } else {
            timeout
        };
        match tokio::time::timeout(bound, connect).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::new(
                StoreErrorKind::Timeout,
                format!("connecting to Redis took longer than {bound:?}"),
            )),
        }
    }

    /// A connection to `url` made on first use, so that a service can start while Redis is
    /// down. Must be called within a tokio runtime.
    pub fn connect_lazy(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        if is_cluster_url(url) {
            let client = cluster_client(url, timeout)?;
            Ok(Self::Cluster(
                client.get_pending_async_connection_with_config(Default::default()),
            ))
        } else {
            let client = open(url)?;
            ConnectionManager::new_lazy_with_config(client, manager_config(timeout))
                .map(Self::Single)
                .map_err(|err| store_error("configure", err))
        }
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Runs `cmd` on every primary (the one server of a single Redis): each one's address (`""`
    /// for a single Redis) and reply, a refusal as [`Value::ServerError`].
    pub async fn on_each_primary(&mut self, cmd: Cmd) -> redis::RedisResult<Vec<(String, Value)>> {
        match self {
            Self::Single(connection) => {
                let reply = match connection.req_packed_command(&cmd).await {
                    Ok(value) => value,
                    Err(err) => match redis::ServerError::try_from(err) {
                        Ok(server) => Value::ServerError(server),
                        Err(err) => return Err(err),
                    },
                };
                Ok(vec![(String::new(), reply)])
            }
            Self::Cluster(connection) => {
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let reply = connection.route_command(cmd, routing).await?;
                let Value::Map(replies) = reply else {
                    return Ok(vec![(String::new(), reply)]);
                };
                Ok(replies
                    .into_iter()
                    .map(|(address, value)| {
                        let address = match address {
                            Value::BulkString(bytes) => {
                                String::from_utf8_lossy(&bytes).into_owned()
                            }
                            Value::SimpleString(text) => text,
                            _ => String::new(),
                        };
                        (address, value)
                    })
                    .collect())
            }
        }
    }
}

/// The settings of a single Redis's connection manager: `timeout` to connect and per response,
/// two quick reconnection attempts, then the next call tries again.
pub fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
}

/// Whether `url` names a Redis Cluster (`redis+cluster://` or `rediss+cluster://`, any case).
pub fn is_cluster_url(url: &str) -> bool {
    url.trim().split_once("://").is_some_and(|(scheme, _)| {
        matches!(
            scheme.to_ascii_lowercase().as_str(),
            "redis+cluster" | "rediss+cluster"
        )
    })
}

/// The seed nodes of a cluster URL, each as a `redis://` (or `rediss://`) URL carrying the
/// URL's user and password. Errors never quote the URL.
pub fn cluster_nodes(url: &str) -> Result<Vec<String>, StoreError> {
    let invalid = |why: &str| {
        StoreError::new(
            StoreErrorKind::Other,
            format!("invalid Redis Cluster URL: {why} (redis+cluster://HOST:PORT[,HOST:PORT...])"),
        )
    };
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
    let node_scheme = match scheme.to_ascii_lowercase().as_str() {
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => return Err(invalid("not a cluster scheme")),
    };
    // `#insecure` (TLS without verifying the server's certificate) goes to every node.
    let insecure = if node_scheme == "rediss" && rest.ends_with("#insecure") {
        "/#insecure"
    } else {
        ""
    };
    // What follows the hosts: a path (`/` or `/0`) or a query is not for the nodes.
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !path.is_empty() && path != "0" {
        return Err(invalid("a cluster has only database 0"));
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(|host| match userinfo {
            Some(userinfo) => format!("{node_scheme}://{userinfo}@{host}{insecure}"),
            None => format!("{node_scheme}://{host}{insecure}"),
        })
        .collect();
    if nodes.is_empty() {
        return Err(invalid("no host"));
    }
    for node in &nodes {
        // Each must be a URL the client reads (host and port); the error keeps only its kind.
        redis::parse_redis_url(node).ok_or_else(|| invalid("a host is not HOST:PORT"))?;
    }
    Ok(nodes)
}

/// A cluster client on the seed nodes of `url`.
fn cluster_client(
    url: &str,
    timeout: Duration,
) -> Result<redis::cluster::ClusterClient, StoreError> {
    let nodes = cluster_nodes(url)?;
    ClusterClientBuilder::new(nodes)
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .retries(3)
        .min_retry_wait(50)
        .max_retry_wait(500)
        .build()
        .map_err(|err| {
            StoreError::new(
                StoreErrorKind::Other,
                format!("invalid Redis Cluster URL ({:?})", err.kind()),
            )
        })
}
