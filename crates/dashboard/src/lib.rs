//! The operator's dashboard over the AgentSync webhooks delivery record: a web page in your own
//! app where deliveries are watched, read, replayed, discarded and forgotten.
//!
//! [`Dashboard`] is a tower [`Service`](tower_service::Service) over `http` 1 requests, built from a
//! [`Queue`]: its pages come from the queue's record API alone (indexed, paged queries; no
//! second data path), so it shows the same on SQLite, Redis and PostgreSQL.
//!
//! | page | path (under the mount prefix) | |
//! |---|---|---|
//! | overview | `/` | counts by state, oldest waiting age, the last hour and day by type, a chart by hour, the engine's kind |
//! | deliveries | `/deliveries?state=&type=&since=&until=&id=&after=` | every filter of the record's query as a parameter, paged by cursor |
//! | delivery | `/deliveries/{webhook-id}` | headers (signature shortened), the payload pretty-printed, every history entry, the actions for its state |
//! | dead letters | `/dead?type=&since=&until=&id=` | with "replay all matching", its count shown before it acts |
//!
//! Actions (`replay`, `discard`, `forget`, and the dead letters' bulk replay) are `POST`s,
//! refused with 403 unless the request is same-origin (`Sec-Fetch-Site: same-origin`, or an
//! `Origin` that matches the `Host`), and recorded as asked by `dashboard` in the delivery's
//! history. [`read_only`](Dashboard::read_only) hides them and answers every `POST` with 403.
//! Everything from a payload is HTML-escaped, and pages carry a `Content-Security-Policy` that
//! runs only the dashboard's own script. No secret is ever shown: the signature is shortened, the
//! queue's URL never reaches a page (only the engine's kind you name with
//! [`engine`](Dashboard::engine)). The dashboard does not authenticate anyone by itself
//! (unless given [`basic_auth`](Dashboard::basic_auth)): mount it behind your app's own auth.
//!
//! The overview and the lists refresh on their own every few seconds
//! ([`refresh_every`](Dashboard::refresh_every)), stop while the tab is hidden, and have a
//! button to stop. Style and script are written for this crate and served from it: nothing is
//! fetched from the internet at build or run time.
//!
//! # Mounting it
//!
//! With axum, `nest_service` (the `axum` feature reads the prefix axum strips, so links work
//! under any path), behind your own auth layer:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use agentsync_webhooks_dashboard::Dashboard;
//! use agentsync_webhooks_queue::Queue;
//!
//! # let dir = tempfile::tempdir()?;
//! let queue = Queue::sqlite(dir.path().join("queue.sqlite3")).await?;
//! let dashboard = Dashboard::new(queue.clone()).engine("SQLite").title("billing webhooks");
//! let app: axum::Router = axum::Router::new().nest_service("/admin/webhooks", dashboard);
//! # let _ = app;
//! # Ok(()) }
//! ```
//!
//! With hyper or any tower stack that does not strip a prefix (or behind a reverse proxy that
//! does), name the prefix: [`Dashboard::mount_path`]. warp has no `nest_service`: its users
//! serve `warp::service(routes)` through hyper, and the service they give hyper sends the
//! requests under the prefix to the dashboard (its answer's body turned into warp's with
//! `Body::from(bytes)`), every other to warp's; `examples/warp.rs` does it behind basic auth.
//! Beside an app whose server is not tower's
//! (actix-web), serve it on a port of its own with `serve` (feature `server`), bound to
//! 127.0.0.1, as the CLI's `agentsync-webhooks dashboard --queue URL` does.
//!
//! ```
//! # async fn run(queue: agentsync_webhooks_queue::Queue) {
//! use std::time::Duration;
//! use agentsync_webhooks_dashboard::Dashboard;
//!
//! let dashboard = Dashboard::new(queue)
//!     .mount_path("/admin/webhooks")
//!     .read_only(true)
//!     .refresh_every(Duration::from_secs(10));
//! # let _ = dashboard;
//! # }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod format;
mod pages;
mod query;
mod security;
#[cfg(feature = "server")]
mod server;

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use agentsync_webhooks_core::handoff::now_ms;
use agentsync_webhooks_queue::{
    Queue, QueueUrl, StoreError,
    record::{DeliveryFilter, DeliveryState, MAX_BULK, TypeFilter},
};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use maud::Markup;
use percent_encoding::percent_decode_str;

use crate::{
    pages::{Context, Notice, Overview, TypeRow},
    query::ListQuery,
    security::BasicAuth,
};

#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use crate::server::serve;

/// The body of every answer: the whole page at once. axum, hyper and warp serve it as it is
/// (`http_body::Body<Data = Bytes, Error = Infallible>`).
pub type Body = Full<Bytes>;

/// Who the dashboard's actions are recorded as, in a delivery's history.
pub const ACTOR: &str = "dashboard";

/// Seconds between refreshes unless [`Dashboard::refresh_every`] says otherwise.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5);

/// The most event types the overview shows a row for (the most received in the last day).
pub const OVERVIEW_TYPES: usize = 12;

/// The overview counts the last day's dead, retrying and in-flight deliveries by type from
/// lists of at most this many (a count beyond it is shown as a lower bound, `200+`).
pub const OVERVIEW_TALLY: usize = 200;

/// The largest form body an action reads.
const MAX_FORM: usize = 16 * 1024;

const CSS: &str = include_str!("../assets/dashboard.css");
const JS: &str = include_str!("../assets/dashboard.js");

/// Every page's `Content-Security-Policy`: the dashboard's own style and script only, forms
/// only to itself, never in a frame. A payload that slipped through escaping could not run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The operator's dashboard: a tower [`Service`](tower_service::Service) answering HTML pages over a [`Queue`]'s
/// delivery record. Cheap to clone (an `Arc` inside).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use agentsync_webhooks_dashboard::Dashboard;
/// use agentsync_webhooks_queue::Queue;
/// use http_body_util::BodyExt as _;
///
/// # let dir = tempfile::tempdir()?;
/// let queue = Queue::sqlite(dir.path().join("queue.sqlite3")).await?;
/// let dashboard = Dashboard::new(queue).mount_path("/admin/webhooks");
/// let page = dashboard
///     .handle(http::Request::get("/admin/webhooks/deliveries?state=dead").body(String::new())?)
///     .await;
/// assert_eq!(page.status(), 200);
/// let html = String::from_utf8(page.into_body().collect().await?.to_bytes().to_vec())?;
/// assert!(html.contains(r#"href="/admin/webhooks/dead""#));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Queue,
    read_only: bool,
    refresh: Duration,
    title: String,
    mount_path: Option<String>,
    engine: Option<String>,
    basic_auth: Option<BasicAuth>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Dashboard")
            .field("read_only", &inner.read_only)
            .field("refresh", &inner.refresh)
            .field("title", &inner.title)
            .field("mount_path", &inner.mount_path)
            .field("engine", &inner.engine)
            .field("basic_auth", &inner.basic_auth)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// The dashboard of `queue`: actions on, refresh every [`DEFAULT_REFRESH`], titled
    /// "AgentSync webhooks", its prefix found from axum's `OriginalUri` (feature `axum`) or
    /// none.
    ///
    /// ```
    /// # async fn run(queue: agentsync_webhooks_queue::Queue) {
    /// let dashboard = agentsync_webhooks_dashboard::Dashboard::new(queue);
    /// assert!(!dashboard.is_read_only());
    /// # }
    /// ```
    pub fn new(queue: Queue) -> Self {
        Self {
            inner: Arc::new(Inner {
                queue,
                read_only: false,
                refresh: DEFAULT_REFRESH,
                title: "AgentSync webhooks".to_owned(),
                mount_path: None,
                engine: None,
                basic_auth: None,
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Inner)) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => change(inner),
            None => {
                let old = &self.inner;
                let mut inner = Inner {
                    queue: old.queue.clone(),
                    read_only: old.read_only,
                    refresh: old.refresh,
                    title: old.title.clone(),
                    mount_path: old.mount_path.clone(),
                    engine: old.engine.clone(),
                    basic_auth: old.basic_auth.clone(),
                };
                change(&mut inner);
                self.inner = Arc::new(inner);
            }
        }
        self
    }

    /// Read-only: no action is shown, and every `POST` is answered 403.
    ///
    /// ```
    /// # async fn run(queue: agentsync_webhooks_queue::Queue) {
    /// let dashboard = agentsync_webhooks_dashboard::Dashboard::new(queue).read_only(true);
    /// assert!(dashboard.is_read_only());
    /// # }
    /// ```
    pub fn read_only(self, read_only: bool) -> Self {
        self.with(|inner| inner.read_only = read_only)
    }

    /// Whether this dashboard is [read-only](Self::read_only).
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// How often the overview, the lists and an unsettled delivery's page refresh themselves
    /// (whole seconds, at least 1); [`Duration::ZERO`] for never. They never refresh while the
    /// tab is hidden, and the operator can stop it with one click.
    ///
    /// ```
    /// # async fn run(queue: agentsync_webhooks_queue::Queue) {
    /// use std::time::Duration;
    /// let dashboard = agentsync_webhooks_dashboard::Dashboard::new(queue)
    ///     .refresh_every(Duration::from_secs(15));
    /// # let _ = dashboard;
    /// # }
    /// ```
    pub fn refresh_every(self, every: Duration) -> Self {
        self.with(|inner| inner.refresh = every)
    }

    /// The name in every page's header and title (escaped like everything else).
    ///
    /// ```
    /// # async fn run(queue: agentsync_webhooks_queue::Queue) {
    /// let dashboard = agentsync_webhooks_dashboard::Dashboard::new(queue).title("billing webhooks");
    /// # let _ = dashboard;
    /// # }
    /// ```
    pub fn title(self, title: impl Into<String>) -> Self {
        let title = title.into();
        self.with(|inner| inner.title = title)
    }

    /// Where the dashboard is mounted (`/admin/webhooks`), for links. Requests may arrive with
    /// the prefix (a hyper service in front that dispatches on it) or without (a reverse proxy
    /// or router that strips it): both work. Without it, the prefix axum's `nest_service`
    /// strips is read from `OriginalUri` (feature `axum`), and otherwise links start at `/`.
    ///
    /// ```
    /// # async fn run(queue: agentsync_webhooks_queue::Queue) {
    /// let dashboard = agentsync_webhooks_dashboard::Dashboard::new(queue).mount_path("/admin/webhooks/");
    /// # let _ = dashboard;
    /// # }
    /// ```
    pub fn mount_path(self, prefix: impl Into<String>) -> Self {
        let prefix = normalize_prefix(&prefix.into());
        self.with(|inner| inner.mount_path = Some(prefix))
    }

    /// The queue's engine as the overview names it (`SQLite`, `Redis`, `PostgreSQL`): a kind,
    /// never a URL (which may hold a password). [`engine_name`] gives it from a [`QueueUrl`].
    ///
    /// ```
    /// # async fn run(queue: agentsync_webhooks_queue::Queue) -> Result<(), agentsync_webhooks_queue::StoreError> {
    /// use agentsync_webhooks_dashboard::{Dashboard, engine_name};
    /// use agentsync_webhooks_queue::QueueUrl;
    ///
    /// let url = std::env::var("AGENTSYNC_QUEUE_URL").unwrap_or_default();
    /// let dashboard = Dashboard::new(queue).engine(engine_name(&QueueUrl::parse(&url)?));
    /// # let _ = dashboard;
    /// # Ok(()) }
    /// ```
    pub fn engine(self, kind: impl Into<String>) -> Self {
        let kind = kind.into();
        self.with(|inner| inner.engine = Some(kind))
    }

    /// Asks for these credentials (HTTP basic auth) on every request, compared in constant
    /// time: for a dashboard served on its own (`serve`, the CLI). Inside your app, prefer
    /// your app's own auth in front of it. Use it over HTTPS only, or on 127.0.0.1.
    ///
    /// ```
    /// # async fn run(queue: agentsync_webhooks_queue::Queue) {
    /// let dashboard = agentsync_webhooks_dashboard::Dashboard::new(queue).basic_auth("ops", "a long password");
    /// assert!(!format!("{dashboard:?}").contains("a long password"));
    /// # }
    /// ```
    pub fn basic_auth(self, user: impl Into<String>, password: impl Into<String>) -> Self {
        let auth = BasicAuth::new(user.into(), password.into());
        self.with(|inner| inner.basic_auth = Some(auth))
    }

    /// Answers one request (what the [`Service`](tower_service::Service) impl calls).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let queue = agentsync_webhooks_queue::Queue::sqlite(dir.path().join("q.sqlite3")).await?;
    /// let dashboard = agentsync_webhooks_dashboard::Dashboard::new(queue).read_only(true);
    /// let refused = dashboard
    ///     .handle(http::Request::post("/deliveries/msg_1/replay").body(String::new())?)
    ///     .await;
    /// assert_eq!(refused.status(), 403);
    /// # Ok(()) }
    /// ```
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let inner = &*self.inner;
        if let Some(auth) = &inner.basic_auth
            && !auth.allows(request.headers())
        {
            return unauthorized();
        }
        let (prefix, path) = self.locate(&request);
        let ctx = Context {
            prefix,
            title: inner.title.clone(),
            read_only: inner.read_only,
            refresh_secs: inner.refresh.as_secs(),
            engine: inner.engine.clone(),
            now_ms: now_ms(),
        };
        let route = Route::of(&path);
        let query = request.uri().query().map(str::to_owned);
        let method = request.method().clone();
        match (&method, &route) {
            (&Method::GET | &Method::HEAD, Route::Asset(asset)) => asset_response(*asset),
            (&Method::GET | &Method::HEAD, Route::Overview) => self.overview(&ctx).await,
            (&Method::GET | &Method::HEAD, Route::Deliveries) => {
                self.deliveries(&ctx, query.as_deref()).await
            }
            (&Method::GET | &Method::HEAD, Route::Dead) => self.dead(&ctx, query.as_deref()).await,
            (&Method::GET | &Method::HEAD, Route::BulkReplay) => {
                self.confirm_bulk_replay(&ctx, query.as_deref()).await
            }
            (&Method::GET | &Method::HEAD, Route::Delivery(id)) => {
                self.delivery(&ctx, id, query.as_deref()).await
            }
            (&Method::POST, Route::Action(..) | Route::BulkReplay) => {
                if let Some(refused) = self.refuse_post(&ctx, &request) {
                    return refused;
                }
                let form = match read_form(request.into_body()).await {
                    Ok(form) => form,
                    Err(response) => return response,
                };
                match &route {
                    Route::Action(id, action) => self.act(&ctx, id, *action).await,
                    _ => self.bulk_replay(&ctx, query.as_deref(), &form).await,
                }
            }
            (&Method::POST, _) if inner.read_only => page(
                &ctx,
                StatusCode::FORBIDDEN,
                "Read-only",
                "This dashboard is read-only: it takes no action.",
            ),
            (_, Route::NotFound) => page(
                &ctx,
                StatusCode::NOT_FOUND,
                "Not found",
                "No such page on this dashboard.",
            ),
            _ => {
                let mut response = page(
                    &ctx,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Method not allowed",
                    "Pages are read with GET; actions are POSTs from the dashboard's buttons.",
                );
                let allow = if matches!(route, Route::BulkReplay) {
                    "GET, HEAD, POST"
                } else if matches!(route, Route::Action(..)) {
                    "POST"
                } else {
                    "GET, HEAD"
                };
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                response
            }
        }
    }

    /// The mount prefix and the path under it.
    fn locate<B>(&self, request: &Request<B>) -> (String, String) {
        let path = request.uri().path();
        if let Some(prefix) = &self.inner.mount_path {
            let rest = match path.strip_prefix(prefix.as_str()) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
                _ => path,
            };
            return (prefix.clone(), under(rest));
        }
        #[cfg(feature = "axum")]
        if let Some(original) = request.extensions().get::<axum::extract::OriginalUri>() {
            return (stripped_prefix(original.path(), path), under(path));
        }
        (String::new(), under(path))
    }

    /// A 403 for a `POST` that is not allowed: read-only, or not same-origin.
    fn refuse_post<B>(&self, ctx: &Context, request: &Request<B>) -> Option<Response<Body>> {
        if self.inner.read_only {
            return Some(page(
                ctx,
                StatusCode::FORBIDDEN,
                "Read-only",
                "This dashboard is read-only: it takes no action.",
            ));
        }
        security::same_origin(request.headers(), request.uri())
            .err()
            .map(|refused| page(ctx, StatusCode::FORBIDDEN, "Refused", refused.message()))
    }

    async fn overview(&self, ctx: &Context) -> Response<Body> {
        match self.overview_data(ctx.now_ms).await {
            Ok(data) => html(StatusCode::OK, pages::overview(ctx, &data)),
            Err(error) => store_failure(ctx, &error),
        }
    }

    /// The overview's queries, each served by an index and bounded whatever the record
    /// holds: the oldest waiting delivery (by bisection, see [`oldest_waiting`]), one count of
    /// everything with the last 24 hours beside it (`counts_since`: one pass over the record on
    /// the SQL engines), a count per type over the last hour, and three lists
    /// of at most [`OVERVIEW_TALLY`] (dead, retrying, in flight over the last 24 hours) for the
    /// day's states by type. A count by type over a whole day would read every delivery of the
    /// day on some engines; these do not.
    async fn overview_data(&self, now: i64) -> Result<Overview, StoreError> {
        let queue = &self.inner.queue;
        let day_start = now - format::DAY_MS;
        let hour_start = now - format::HOUR_MS;
        // At once: on an engine with a pool (PostgreSQL) or a multiplexed connection (Redis)
        // they overlap; on SQLite's one connection they queue as they would one by one.
        let tally = |states: &'static [DeliveryState]| -> PartFuture<'_> {
            let filter = DeliveryFilter::new()
                .states(states.iter().copied())
                .received_since(day_start);
            Box::pin(
                async move { Ok(Part::Page(queue.list(&filter, None, OVERVIEW_TALLY).await?)) },
            )
        };
        let counts = |filter: DeliveryFilter| -> PartFuture<'_> {
            Box::pin(async move { Ok(Part::Counts(queue.counts(&filter).await?)) })
        };
        // Now and over the last day from one count: one pass over the record, not two.
        let now_and_day: PartFuture<'_> = Box::pin(async move {
            let mut answers = queue
                .counts_since(&DeliveryFilter::new(), &[day_start])
                .await?
                .into_iter();
            let mut next = || answers.next().unwrap_or_default();
            let (now, day) = (next(), next());
            Ok(Part::Windows(now, day))
        });
        let mut parts = join_all(vec![
            Box::pin(async move { Ok(Part::Oldest(oldest_waiting(queue).await?)) }),
            now_and_day,
            tally(&[DeliveryState::Dead]),
            tally(&[DeliveryState::Retrying]),
            tally(&[DeliveryState::Waiting, DeliveryState::Running]),
        ])
        .await
        .into_iter();
        let mut next = || parts.next().unwrap_or(Ok(Part::Oldest(None)));
        let (
            Part::Oldest(oldest_waiting),
            Part::Windows(now_counts, day),
            Part::Page(dead),
            Part::Page(retrying),
            Part::Page(in_flight),
        ) = (next()?, next()?, next()?, next()?, next()?)
        else {
            unreachable!("join_all keeps the order of its futures")
        };
        let tallies = [
            Tally::of(&dead),
            Tally::of(&retrying),
            Tally::of(&in_flight),
        ];
        let mut by_day: Vec<(&String, &u64)> = day.by_type.iter().collect();
        by_day.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let more_types = by_day.len().saturating_sub(OVERVIEW_TYPES);
        let by_day: Vec<(&String, &u64)> = by_day.into_iter().take(OVERVIEW_TYPES).collect();
        let hours = join_all(
            by_day
                .iter()
                .map(|(event_type, _)| {
                    counts(DeliveryFilter {
                        event_type: Some(TypeFilter::Type((*event_type).clone())),
                        received_since_ms: Some(hour_start),
                        ..DeliveryFilter::new()
                    })
                })
                .collect(),
        )
        .await;
        let mut types = Vec::new();
        for ((event_type, received), hour) in by_day.into_iter().zip(hours) {
            let Part::Counts(hour) = hour? else {
                unreachable!("a count answers counts")
            };
            let [dead, retrying, in_flight] = [0, 1, 2].map(|i| tallies[i].of_type(event_type));
            types.push(TypeRow {
                event_type: event_type.clone(),
                hour,
                day_received: *received,
                day_dead: dead,
                day_retrying: retrying,
                day_done: match (dead, retrying, in_flight) {
                    ((dead, false), (retrying, false), (in_flight, false)) => {
                        Some(received.saturating_sub(dead + retrying + in_flight))
                    }
                    _ => None,
                },
            });
        }
        Ok(Overview {
            oldest_waiting,
            now: now_counts,
            day,
            types,
            more_types,
            tally_bound: OVERVIEW_TALLY,
        })
    }

    async fn deliveries(&self, ctx: &Context, query: Option<&str>) -> Response<Body> {
        let mut query = ListQuery::parse(query);
        let filter = query.filter(ctx.now_ms);
        if !query.errors.is_empty() {
            let markup = pages::deliveries(ctx, &query, &Default::default());
            return html(StatusCode::BAD_REQUEST, markup);
        }
        match self
            .inner
            .queue
            .list(&filter, query.after.as_ref(), query.limit)
            .await
        {
            Ok(page) => html(StatusCode::OK, pages::deliveries(ctx, &query, &page)),
            Err(error) => store_failure(ctx, &error),
        }
    }

    async fn dead(&self, ctx: &Context, query: Option<&str>) -> Response<Body> {
        let mut query = ListQuery::parse(query);
        query.states = vec![DeliveryState::Dead];
        let filter = query.filter(ctx.now_ms);
        if !query.errors.is_empty() {
            let markup = pages::dead(ctx, &query, &Default::default());
            return html(StatusCode::BAD_REQUEST, markup);
        }
        match self
            .inner
            .queue
            .list(&filter, query.after.as_ref(), query.limit)
            .await
        {
            Ok(page) => html(StatusCode::OK, pages::dead(ctx, &query, &page)),
            Err(error) => store_failure(ctx, &error),
        }
    }

    /// "Replay all matching", before it acts: how many it would replay (at most
    /// [`MAX_BULK`], counted by listing them: bounded, and through the state's index).
    async fn confirm_bulk_replay(&self, ctx: &Context, query: Option<&str>) -> Response<Body> {
        if ctx.read_only {
            return page(
                ctx,
                StatusCode::FORBIDDEN,
                "Read-only",
                "This dashboard is read-only: it takes no action.",
            );
        }
        let mut query = ListQuery::parse(query);
        query.states = vec![DeliveryState::Dead];
        let filter = query.filter(ctx.now_ms);
        if !query.errors.is_empty() {
            let markup = pages::confirm_replay(ctx, &query, pages::Matching::default());
            return html(StatusCode::BAD_REQUEST, markup);
        }
        match self.inner.queue.list(&filter, None, MAX_BULK).await {
            Ok(bounded) => {
                let matching = pages::Matching {
                    count: bounded.deliveries.len() as u64,
                    more: bounded.next.is_some(),
                };
                html(StatusCode::OK, pages::confirm_replay(ctx, &query, matching))
            }
            Err(error) => store_failure(ctx, &error),
        }
    }

    async fn delivery(
        &self,
        ctx: &Context,
        webhook_id: &str,
        query: Option<&str>,
    ) -> Response<Body> {
        match self.inner.queue.delivery(webhook_id).await {
            Ok(Some(record)) => {
                let notice = query.and_then(notice_of);
                html(
                    StatusCode::OK,
                    pages::delivery(ctx, &record, notice.as_ref()),
                )
            }
            Ok(None) => page(
                ctx,
                StatusCode::NOT_FOUND,
                "No such delivery",
                &format!(
                    "The record holds no delivery with the webhook-id {webhook_id} (never \
                     received, or past its retention)."
                ),
            ),
            Err(error) => store_failure(ctx, &error),
        }
    }

    async fn act(&self, ctx: &Context, webhook_id: &str, action: Action) -> Response<Body> {
        let queue = &self.inner.queue;
        let done = match action {
            Action::Replay => queue.replay_by(webhook_id, ACTOR).await,
            Action::Discard => queue.discard(webhook_id, ACTOR).await,
            Action::Forget => queue.forget(webhook_id, ACTOR).await,
        };
        match done {
            Ok(done) => {
                let outcome = if done { "done" } else { "failed" };
                see_other(&format!(
                    "{}?{outcome}={}",
                    ctx.delivery_link(webhook_id),
                    action.as_str()
                ))
            }
            Err(error) => store_failure(ctx, &error),
        }
    }

    async fn bulk_replay(
        &self,
        ctx: &Context,
        query: Option<&str>,
        form: &[(String, String)],
    ) -> Response<Body> {
        let mut query = ListQuery::parse(query);
        query.states = vec![DeliveryState::Dead];
        let filter = query.filter(ctx.now_ms);
        let expected = form
            .iter()
            .find(|(name, _)| name == "expected")
            .and_then(|(_, value)| value.parse::<usize>().ok());
        let Some(expected) = expected.filter(|_| query.errors.is_empty()) else {
            return page(
                ctx,
                StatusCode::BAD_REQUEST,
                "Nothing replayed",
                "A bulk replay needs the filters and the count shown on the dead letters page.",
            );
        };
        match self
            .inner
            .queue
            .replay_matching(&filter, ACTOR, expected.min(MAX_BULK))
            .await
        {
            Ok(replayed) => {
                let mut link = ctx.link("/dead");
                let shown = query.link_query(&[], None);
                link.push_str(if shown.is_empty() { "?" } else { &shown });
                if !shown.is_empty() {
                    link.push('&');
                }
                link.push_str(&format!("replayed={replayed}"));
                see_other(&link)
            }
            Err(error) => store_failure(ctx, &error),
        }
    }
}

impl<B> tower_service::Service<Request<B>> for Dashboard
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let dashboard = self.clone();
        Box::pin(async move { Ok(dashboard.handle(request).await) })
    }
}

/// The engine's kind as the overview names it, for [`Dashboard::engine`]: `SQLite`, `Redis` or
/// `PostgreSQL` (nothing of the URL itself).
///
/// ```
/// use agentsync_webhooks_dashboard::engine_name;
/// use agentsync_webhooks_queue::QueueUrl;
///
/// let url = QueueUrl::parse("postgres://app:s3cret@db/app")?;
/// assert_eq!(engine_name(&url), "PostgreSQL");
/// # Ok::<(), agentsync_webhooks_queue::StoreError>(())
/// ```
pub fn engine_name(url: &QueueUrl) -> &'static str {
    match url {
        QueueUrl::Sqlite(_) => "SQLite",
        QueueUrl::Redis(_) => "Redis",
        QueueUrl::Postgres(_) => "PostgreSQL",
    }
}

/// When the oldest waiting delivery was received (to the second), from pages of one
/// delivery: `list(waiting, received before t, 1)` says whether one was received before `t`,
/// so a bisection over `t` finds it in some forty tiny indexed queries, where a count or a
/// scan of the waiting deliveries would grow with them.
async fn oldest_waiting(queue: &Queue) -> Result<Option<i64>, StoreError> {
    let waiting = DeliveryFilter::new().state(DeliveryState::Waiting);
    let before = |until: i64| {
        let filter = waiting.clone().received_until(until);
        async move { queue.list(&filter, None, 1).await }
    };
    let Some(newest) = queue.list(&waiting, None, 1).await?.deliveries.pop() else {
        return Ok(None);
    };
    // One was received before `hi`; none before `lo` once the span stops growing.
    let mut hi = newest.received_at_ms.saturating_add(1);
    let mut span = 1_000_i64;
    let mut lo = hi.saturating_sub(span);
    while !before(lo).await?.deliveries.is_empty() {
        hi = lo;
        span = span.saturating_mul(2);
        lo = hi.saturating_sub(span);
        if lo == i64::MIN {
            break;
        }
    }
    while hi - lo > 1_000 {
        let mid = lo + (hi - lo) / 2;
        if before(mid).await?.deliveries.is_empty() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(before(hi)
        .await?
        .deliveries
        .pop()
        .map(|oldest| oldest.received_at_ms))
}

/// One answer among the overview's queries.
enum Part {
    Oldest(Option<i64>),
    Counts(agentsync_webhooks_queue::record::DeliveryCounts),
    /// The counts of everything, and of the last day.
    Windows(
        agentsync_webhooks_queue::record::DeliveryCounts,
        agentsync_webhooks_queue::record::DeliveryCounts,
    ),
    Page(agentsync_webhooks_queue::record::DeliveryPage),
}

type PartFuture<'a> = Pin<Box<dyn Future<Output = Result<Part, StoreError>> + Send + 'a>>;

/// Runs `futures` at once in this task; their outputs, in their order.
async fn join_all<T>(futures: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut futures: Vec<_> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Deliveries of one list, by type: exact unless the list was cut at its limit.
struct Tally {
    by_type: std::collections::HashMap<String, u64>,
    capped: bool,
}

impl Tally {
    fn of(page: &agentsync_webhooks_queue::record::DeliveryPage) -> Self {
        let mut by_type = std::collections::HashMap::new();
        for delivery in &page.deliveries {
            *by_type.entry(delivery.event_type.clone()).or_default() += 1;
        }
        Self {
            by_type,
            capped: page.next.is_some(),
        }
    }

    /// The count for `event_type`, and whether it is only a lower bound.
    fn of_type(&self, event_type: &str) -> (u64, bool) {
        (
            self.by_type.get(event_type).copied().unwrap_or(0),
            self.capped,
        )
    }
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Overview,
    Deliveries,
    Delivery(String),
    Action(String, Action),
    Dead,
    BulkReplay,
    Asset(Asset),
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Replay,
    Discard,
    Forget,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Self::Replay => "replay",
            Self::Discard => "discard",
            Self::Forget => "forget",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asset {
    Css,
    Js,
}

impl Route {
    /// The route of `path` (under the prefix, starting with `/`).
    fn of(path: &str) -> Self {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let decode = |segment: &str| {
            percent_decode_str(segment)
                .decode_utf8()
                .ok()
                .map(|id| id.into_owned())
        };
        match segments.as_slice() {
            [""] => Self::Overview,
            ["deliveries"] => Self::Deliveries,
            ["deliveries", id] => decode(id).map_or(Self::NotFound, Self::Delivery),
            ["deliveries", id, action] => {
                let action = match *action {
                    "replay" => Action::Replay,
                    "discard" => Action::Discard,
                    "forget" => Action::Forget,
                    _ => return Self::NotFound,
                };
                decode(id).map_or(Self::NotFound, |id| Self::Action(id, action))
            }
            ["dead"] => Self::Dead,
            ["dead", "replay"] => Self::BulkReplay,
            ["assets", "dashboard.css"] => Self::Asset(Asset::Css),
            ["assets", "dashboard.js"] => Self::Asset(Asset::Js),
            _ => Self::NotFound,
        }
    }
}

/// `/admin/webhooks/` as `/admin/webhooks`; `/` and `` as ``.
fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    }
}

/// A path under the prefix, starting with `/`.
fn under(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// The prefix a router stripped: `original` minus the `path` the service sees.
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
fn stripped_prefix(original: &str, path: &str) -> String {
    let prefix = match original.strip_suffix(path) {
        Some(prefix) => prefix,
        // axum hands `/admin/webhooks` on as `/`.
        None if path == "/" => original,
        None => "",
    };
    normalize_prefix(prefix)
}

/// The notice a delivery page shows after an action (`?done=replay`, `?failed=discard`).
fn notice_of(query: &str) -> Option<Notice> {
    form_urlencoded::parse(query.as_bytes()).find_map(|(name, value)| {
        let ok = match name.as_ref() {
            "done" => true,
            "failed" => false,
            _ => return None,
        };
        let text = match (value.as_ref(), ok) {
            ("replay", true) => "Replayed: it is waiting to run again now.",
            ("discard", true) => "Discarded: it is in the dead letters.",
            ("forget", true) => "Forgotten: the sender's next resend of this id runs as new.",
            ("replay", false) => "Not replayed: only a done or dead delivery can be.",
            ("discard", false) => "Not discarded: only a waiting or retrying delivery can be.",
            ("forget", false) => "Not forgotten: only a done or dead delivery's id can be.",
            _ => return None,
        };
        Some(Notice {
            ok,
            text: text.to_owned(),
        })
    })
}

/// A form body's pairs, read up to [`MAX_FORM`] bytes.
async fn read_form<B>(body: B) -> Result<Vec<(String, String)>, Response<Body>>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bytes = match Limited::new(body, MAX_FORM).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Err(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "an action's form is small; this one was too large or could not be read",
            ));
        }
    };
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// Every HTML answer's headers.
fn html(status: StatusCode, markup: Markup) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(markup.into_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(headers);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn secure(headers: &mut http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

fn page(ctx: &Context, status: StatusCode, heading: &str, text: &str) -> Response<Body> {
    html(status, pages::message(ctx, heading, text))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    secure(response.headers_mut());
    response
}

fn unauthorized() -> Response<Body> {
    let mut response = plain(
        StatusCode::UNAUTHORIZED,
        "this dashboard asks for a user and password",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"agentsync-webhooks dashboard\", charset=\"UTF-8\""),
    );
    response
}

fn see_other(location: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    secure(response.headers_mut());
    response
}

fn asset_response(asset: Asset) -> Response<Body> {
    let (body, content_type) = match asset {
        Asset::Css => (CSS, "text/css; charset=utf-8"),
        Asset::Js => (JS, "text/javascript; charset=utf-8"),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    secure(headers);
    response
}

/// A query that failed: 503, with the engine's message (any URL's password scrubbed).
fn store_failure(ctx: &Context, error: &StoreError) -> Response<Body> {
    let mut response = page(
        ctx,
        StatusCode::SERVICE_UNAVAILABLE,
        "The queue did not answer",
        &format!(
            "The queue's engine failed ({:?}): {}",
            error.kind(),
            format::scrub_urls(&error.to_string())
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

#[cfg(test)]
mod tests;
