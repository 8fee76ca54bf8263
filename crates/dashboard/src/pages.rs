//! The pages, as maud templates: every value from the record goes through maud's escaping
//! (`(value)`), and nothing here writes raw HTML from data.

use agentsync_webhooks_queue::{
    QueueStats,
    record::{
        DeliveryCounts, DeliveryPage, DeliveryRecord, DeliveryState, DeliverySummary, HistoryEvent,
        MAX_BULK,
    },
};
use maud::{DOCTYPE, Markup, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::{format, query::ListQuery};

/// The crate's version, in asset URLs so that an upgrade is not served a cached script.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a path segment keeps unencoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// What every page knows of where and how it is served.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// The mount prefix, without a trailing `/` (`""` at the root).
    pub prefix: String,
    /// The page title's last part.
    pub title: String,
    /// Actions hidden (and refused).
    pub read_only: bool,
    /// Seconds between refreshes; 0 for none.
    pub refresh_secs: u64,
    /// The queue's engine kind (`SQLite`), never its URL.
    pub engine: Option<String>,
    /// Now, ms since the epoch.
    pub now_ms: i64,
}

impl Context {
    /// `path` (starting with `/`) under the mount prefix.
    pub(crate) fn link(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// The page of one delivery.
    pub(crate) fn delivery_link(&self, webhook_id: &str) -> String {
        self.link(&format!(
            "/deliveries/{}",
            utf8_percent_encode(webhook_id, SEGMENT)
        ))
    }
}

/// Which entry of the navigation is the page's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Deliveries,
    Dead,
}

/// One event type's counts over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TypeRow {
    pub event_type: String,
    pub hour: DeliveryCounts,
    pub day: DeliveryCounts,
}

/// One hour of the overview's chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub start_ms: i64,
    pub counts: DeliveryCounts,
}

/// What the overview shows.
#[derive(Debug, Clone)]
pub(crate) struct Overview {
    pub stats: QueueStats,
    pub now: DeliveryCounts,
    pub types: Vec<TypeRow>,
    /// Types received in the last day beyond those in `types`.
    pub more_types: usize,
    pub hours: Vec<Bucket>,
}

/// A notice at the top of a page, after an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub ok: bool,
    pub text: String,
}

/// The page frame: header, navigation, live toggle, then `body`.
fn layout(
    ctx: &Context,
    nav: Nav,
    heading: &str,
    live: bool,
    before: Markup,
    body: Markup,
) -> Markup {
    let refresh = if live { ctx.refresh_secs } else { 0 };
    let item = |target: Nav, path: &str, label: &str| {
        html! {
            a href=(ctx.link(path)) aria-current=[(target == nav).then_some("page")] { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (heading) " · " (ctx.title) }
                link rel="stylesheet" href=(ctx.link(&format!("/assets/dashboard.css?v={VERSION}")));
                script src=(ctx.link(&format!("/assets/dashboard.js?v={VERSION}"))) defer {}
            }
            body data-refresh=(refresh) {
                header.top {
                    a.brand href=(ctx.link("/")) { (ctx.title) }
                    nav {
                        (item(Nav::Overview, "/", "Overview"))
                        (item(Nav::Deliveries, "/deliveries", "Deliveries"))
                        (item(Nav::Dead, "/dead", "Dead letters"))
                    }
                    span.meta {
                        @if let Some(engine) = &ctx.engine { span.engine { "engine: " (engine) } }
                        @if ctx.read_only { span.badge.readonly { "read-only" } }
                        @if refresh > 0 {
                            button #live-toggle type="button" aria-pressed="true"
                                title=(format!("refresh every {refresh} s; stops while the tab is hidden")) {
                                "Live"
                            }
                        }
                    }
                }
                h1 { (heading) }
                (before)
                main #live {
                    (body)
                    p.rendered { "Rendered " (format::utc(ctx.now_ms)) }
                }
            }
        }
    }
}

fn state_badge(state: DeliveryState) -> Markup {
    html! { span class=(format!("state state-{state}")) { (state.as_str()) } }
}

fn notice(notice: Option<&Notice>) -> Markup {
    html! {
        @if let Some(notice) = notice {
            p class=(if notice.ok { "notice ok" } else { "notice failed" }) role="status" { (notice.text) }
        }
    }
}

fn errors(errors: &[String]) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.notice.failed role="alert" {
                "This view's filters could not be read:"
                ul { @for error in errors { li { (error) } } }
            }
        }
    }
}

/// The overview: counts now, the oldest waiting age, the last hour and day by type, a chart.
pub(crate) fn overview(ctx: &Context, data: &Overview) -> Markup {
    let body = html! {
        section.cards {
            @for state in DeliveryState::ALL {
                a.card href=(ctx.link(&format!("/deliveries?state={state}"))) {
                    span.label { (state_badge(state)) }
                    span.value data-state=(state.as_str()) { (format::count(data.now.state(state))) }
                }
            }
            div.card {
                span.label { "oldest waiting" }
                span.value #oldest-waiting {
                    @match data.stats.oldest_age {
                        Some(age) => (format::duration_ms(u64::try_from(age.as_millis()).unwrap_or(u64::MAX))),
                        None => "none",
                    }
                }
            }
            div.card {
                span.label { "stored" }
                span.value { (format::count(data.now.total())) }
            }
        }
        section {
            h2 { "Last 24 hours, by hour received" }
            (chart(&data.hours))
            p.legend {
                span.key.key-done {} "done " span.key.key-retrying {} "retrying "
                span.key.key-dead {} "dead " span.key.key-waiting {} "waiting or running"
            }
        }
        section {
            h2 { "By event type" }
            @if data.types.is_empty() {
                p.empty { "Nothing received in the last 24 hours." }
            } @else {
                table.types {
                    thead {
                        tr { th rowspan="2" { "type" } th colspan="4" { "last hour" } th colspan="4" { "last 24 hours" } }
                        tr {
                            @for _ in 0..2 { th { "received" } th { "done" } th { "retrying" } th { "dead" } }
                        }
                    }
                    tbody {
                        @for row in &data.types {
                            tr {
                                td { a href=(ctx.link(&format!("/deliveries?{}", type_query(&row.event_type, None)))) { code { (row.event_type) } } }
                                @for (window, counts) in [("1h", &row.hour), ("24h", &row.day)] {
                                    td.num { (format::count(counts.total())) }
                                    td.num { (format::count(counts.state(DeliveryState::Done))) }
                                    td.num { (format::count(counts.state(DeliveryState::Retrying))) }
                                    td.num {
                                        @let dead = counts.state(DeliveryState::Dead);
                                        @if dead > 0 {
                                            a.dead href=(ctx.link(&format!("/dead?{}", type_query(&row.event_type, Some(window))))) { (format::count(dead)) }
                                        } @else { "0" }
                                    }
                                }
                            }
                        }
                    }
                }
                @if data.more_types > 0 {
                    p.more { (data.more_types) " more types in the last 24 hours: see " a href=(ctx.link("/deliveries?since=24h")) { "the deliveries" } "." }
                }
            }
        }
    };
    layout(ctx, Nav::Overview, "Overview", true, html! {}, body)
}

/// `type=...` (and `since=...`) as a query string.
fn type_query(event_type: &str, since: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("type", event_type);
    if let Some(since) = since {
        query.append_pair("since", since);
    }
    query.finish()
}

/// A stacked bar per hour: done, retrying, dead, and the rest (waiting or running).
fn chart(hours: &[Bucket]) -> Markup {
    const WIDTH: u64 = 720;
    const HEIGHT: u64 = 120;
    let n = u64::try_from(hours.len().max(1)).unwrap_or(1);
    let slot = WIDTH / n;
    let max = hours
        .iter()
        .map(|h| h.counts.total())
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = |value: u64| (value.saturating_mul(HEIGHT - 16) / max).max(u64::from(value > 0));
    let bars = hours.iter().enumerate().map(|(i, hour)| {
        let counts = &hour.counts;
        let done = counts.state(DeliveryState::Done);
        let retrying = counts.state(DeliveryState::Retrying);
        let dead = counts.state(DeliveryState::Dead);
        let other = counts.total().saturating_sub(done + retrying + dead);
        let x = u64::try_from(i).unwrap_or(0) * slot + 1;
        let mut top = HEIGHT - 1;
        let mut rects = Vec::new();
        for (class, value) in [
            ("bar-done", done),
            ("bar-retrying", retrying),
            ("bar-dead", dead),
            ("bar-waiting", other),
        ] {
            let height = scale(value);
            if height > 0 {
                top = top.saturating_sub(height);
                rects.push((class, top, height));
            }
        }
        let title = format!(
            "{}: {} received, {done} done, {retrying} retrying, {dead} dead, {other} waiting or \
             running",
            format::utc(hour.start_ms),
            counts.total()
        );
        (x, title, rects)
    });
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) width=(WIDTH) height=(HEIGHT) role="img"
            aria-label="deliveries received per hour over the last 24 hours" {
            line.axis x1="0" y1=(HEIGHT - 1) x2=(WIDTH) y2=(HEIGHT - 1) {}
            text.max x="2" y="10" { (format::count(max)) " / h" }
            @for (x, title, rects) in bars {
                g {
                    title { (title) }
                    @for (class, y, height) in rects {
                        rect class=(class) x=(x) y=(y) width=(slot.saturating_sub(2).max(1)) height=(height) {}
                    }
                }
            }
        }
    }
}

/// The filter form of a list page (outside the live region, so a refresh never clears it).
fn filter_form(
    ctx: &Context,
    action: &str,
    query: &ListQuery,
    counts: &DeliveryCounts,
    states: bool,
) -> Markup {
    html! {
        form.filters method="get" action=(ctx.link(action)) {
            @if states {
                fieldset.states {
                    legend { "state" }
                    @for state in DeliveryState::ALL {
                        label {
                            input type="checkbox" name="state" value=(state.as_str()) checked[query.states.contains(&state)];
                            " " (state.as_str()) " " span.count { (format::count(counts.state(state))) }
                        }
                    }
                }
            }
            label { "type or group " input type="text" name="type" value=(query.event_type) list="types" placeholder="contract, producersync.updates_available"; }
            datalist #types {
                @for event_type in counts.by_type.keys() { option value=(event_type) {} }
                @for group in agentsync_webhooks_core::EventGroup::ALL { option value=(group.as_str()) {} }
            }
            label { "received since " input type="text" name="since" value=(query.since) placeholder="1h, 7d, 2026-12-06T20:57"; }
            label { "until " input type="text" name="until" value=(query.until) placeholder="UTC, or ms since the epoch"; }
            label { "id " input type="text" name="id" value=(query.id) placeholder="msg_... (a trailing * for a prefix)"; }
            @if query.limit != crate::query::DEFAULT_LIMIT { input type="hidden" name="limit" value=(query.limit); }
            button type="submit" { "Filter" }
            " " a href=(ctx.link(action)) { "clear" }
        }
    }
}

fn delivery_rows(ctx: &Context, deliveries: &[DeliverySummary]) -> Markup {
    html! {
        table.deliveries {
            thead { tr { th { "received" } th { "webhook-id" } th { "type" } th { "state" } th.num { "attempts" } th { "last error" } th { "next run" } } }
            tbody {
                @for delivery in deliveries {
                    tr data-id=(delivery.webhook_id) {
                        td title=(format::ago(delivery.received_at_ms, ctx.now_ms)) { (format::utc(delivery.received_at_ms)) }
                        td { a.id href=(ctx.delivery_link(&delivery.webhook_id)) { (delivery.webhook_id) } }
                        td { code { (delivery.event_type) } }
                        td { (state_badge(delivery.state)) }
                        td.num { (delivery.attempts) }
                        td.error { @if let Some(error) = &delivery.last_error { (format::truncate(error, 160)) } }
                        td { @if let Some(next) = delivery.next_run_at_ms { (format::ago(next, ctx.now_ms)) } }
                    }
                }
            }
        }
    }
}

fn pager(
    ctx: &Context,
    path: &str,
    query: &ListQuery,
    states: &[DeliveryState],
    page: &DeliveryPage,
) -> Markup {
    html! {
        nav.pager {
            @if query.after.is_some() { a href=(ctx.link(&format!("{path}{}", query.link_query(states, None)))) { "« newest" } }
            @if let Some(next) = &page.next {
                a rel="next" href=(ctx.link(&format!("{path}{}", query.link_query(states, Some(next))))) { "older »" }
            }
        }
    }
}

/// The deliveries list: every filter as a parameter, paged by cursor.
pub(crate) fn deliveries(
    ctx: &Context,
    query: &ListQuery,
    page: &DeliveryPage,
    counts: &DeliveryCounts,
) -> Markup {
    // `counts` are over the filter's other parts, every state counted.
    let matching: u64 = if query.states.is_empty() {
        counts.total()
    } else {
        query.states.iter().map(|state| counts.state(*state)).sum()
    };
    let body = html! {
        (errors(&query.errors))
        p.summary {
            (format::count(matching))
            " deliveries match; newest first."
        }
        @if page.deliveries.is_empty() {
            p.empty { "No delivery matches." }
        } @else {
            (delivery_rows(ctx, &page.deliveries))
        }
        (pager(ctx, "/deliveries", query, &query.states, page))
    };
    let before = filter_form(ctx, "/deliveries", query, counts, true);
    layout(
        ctx,
        Nav::Deliveries,
        "Deliveries",
        query.after.is_none(),
        before,
        body,
    )
}

/// The dead letters, with "replay all matching" (the count shown on the button, bounded).
pub(crate) fn dead(
    ctx: &Context,
    query: &ListQuery,
    page: &DeliveryPage,
    counts: &DeliveryCounts,
) -> Markup {
    let dead = counts.state(DeliveryState::Dead);
    let bounded = dead.min(MAX_BULK as u64);
    let states = [DeliveryState::Dead];
    let body = html! {
        (errors(&query.errors))
        @if let Some(replayed) = query.replayed {
            p.notice.ok role="status" { "Replayed " (format::count(replayed)) " dead letters: they run again now." }
        }
        p.summary { (format::count(dead)) " dead letters match; newest first." }
        @if !ctx.read_only && dead > 0 && query.errors.is_empty() {
            form.bulk method="post" action=(ctx.link(&format!("/dead/replay{}", query.link_query(&states, None)))) {
                input type="hidden" name="expected" value=(bounded);
                button.action.replay type="submit" #replay-all {
                    @if dead > bounded {
                        "Replay the newest " (format::count(bounded)) " of the " (format::count(dead)) " matching"
                    } @else {
                        "Replay all " (format::count(dead)) " matching"
                    }
                }
                span.hint { " at most " (format::count(MAX_BULK as u64)) " at once; each is recorded as replayed by the dashboard" }
            }
        }
        @if page.deliveries.is_empty() {
            p.empty { "No dead letter matches." }
        } @else {
            (delivery_rows(ctx, &page.deliveries))
        }
        (pager(ctx, "/dead", query, &states, page))
    };
    let before = filter_form(ctx, "/dead", query, counts, false);
    layout(
        ctx,
        Nav::Dead,
        "Dead letters",
        query.after.is_none(),
        before,
        body,
    )
}

/// One delivery: its state, the actions for it, headers, payload, history.
pub(crate) fn delivery(ctx: &Context, record: &DeliveryRecord, notice_: Option<&Notice>) -> Markup {
    let delivery = &record.delivery;
    let state = record.state;
    let actions: Vec<(&str, &str, &str)> = [
        (state.replayable(), "replay", "Replay: run it again now"),
        (
            matches!(state, DeliveryState::Waiting | DeliveryState::Retrying),
            "discard",
            "Discard: move it to the dead letters",
        ),
        (
            state.replayable(),
            "forget",
            "Forget its id: the sender's next resend runs as new",
        ),
    ]
    .into_iter()
    .filter_map(|(applies, action, label)| applies.then_some((action, label, action)))
    .collect();
    let body = html! {
        (notice(notice_))
        section.summary {
            dl {
                dt { "state" } dd #state { (state_badge(state)) }
                dt { "type" } dd { code { (delivery.event_type) } }
                dt { "received" } dd { (format::utc(delivery.received_at_ms)) " (" (format::ago(delivery.received_at_ms, ctx.now_ms)) ")" }
                dt { "attempts" } dd #attempts { (record.attempts) }
                @if let Some(next) = record.next_run_at_ms { dt { "next run" } dd { (format::utc(next)) " (" (format::ago(next, ctx.now_ms)) ")" } }
                @if let Some(done) = record.done_at_ms { dt { "done" } dd { (format::utc(done)) } }
                @if let Some(died) = record.died_at_ms { dt { "died" } dd { (format::utc(died)) } }
                @if let Some(worker) = &record.worker { dt { "worker" } dd { code { (worker) } } }
                @if let Some(error) = &record.last_error { dt { "last error" } dd.error { pre { (error) } } }
            }
        }
        @if !ctx.read_only && !actions.is_empty() {
            section.actions {
                @for (action, label, class) in &actions {
                    form method="post" action=(format!("{}/{action}", ctx.delivery_link(&delivery.webhook_id))) {
                        button type="submit" class=(format!("action {class}")) name="action" value=(action) { (label) }
                    }
                }
            }
        }
        section {
            h2 { "Headers" }
            table.headers {
                tr { th { "webhook-id" } td { code { (delivery.webhook_id) } } }
                tr { th { "webhook-timestamp" } td { code { (delivery.webhook_timestamp) } " (" (format::utc(delivery.webhook_timestamp.saturating_mul(1000))) ")" } }
                tr { th { "webhook-signature" } td { code.signature title="shortened" { (format::short_signature(&delivery.signature)) } } }
            }
        }
        section {
            h2 { "Payload" " " span.size { "(" (format::count(delivery.body.len() as u64)) " bytes)" } }
            @match format::pretty_json(&delivery.body) {
                Some(json) => pre.payload.json { (json) },
                None => {
                    p.hint { "Not JSON; shown as text." }
                    pre.payload { (format::body_text(&delivery.body)) }
                }
            }
        }
        section {
            h2 { "History" }
            @if record.history_dropped > 0 {
                p.hint { (format::count(record.history_dropped)) " entries between the first and these were not kept." }
            }
            table.history {
                thead { tr { th { "at" } th { "what" } th.num { "attempt" } th.num { "duration" } th { "outcome" } th { "error" } th { "by / worker" } } }
                tbody {
                    @for entry in &record.history {
                        tr class=(format!("entry-{}", entry.event.kind())) {
                            td { (format::utc(entry.at_ms)) }
                            @match &entry.event {
                                HistoryEvent::Attempt { number, duration_ms, outcome, error, worker } => {
                                    td { "attempt" }
                                    td.num { (number) }
                                    td.num { (format::duration_ms(*duration_ms)) }
                                    td { span class=(format!("outcome outcome-{outcome}")) { (outcome.as_str()) } }
                                    td.error { @if let Some(error) = error { pre { (error) } } }
                                    td { code { (worker) } }
                                }
                                HistoryEvent::Replayed { by } => { td { "replayed" } td {} td {} td {} td {} td { (by) } }
                                HistoryEvent::Resent => { td { "resent by the sender" } td {} td {} td {} td {} td {} }
                                HistoryEvent::Discarded { by } => { td { "discarded" } td {} td {} td {} td {} td { (by) } }
                                HistoryEvent::Forgotten { by } => { td { "id forgotten" } td {} td {} td {} td {} td { (by) } }
                            }
                        }
                    }
                }
            }
        }
    };
    let live = !matches!(state, DeliveryState::Done | DeliveryState::Dead);
    let heading = format!("Delivery {}", delivery.webhook_id);
    layout(ctx, Nav::Deliveries, &heading, live, html! {}, body)
}

/// A page that only says something (not found, refused, failed).
pub(crate) fn message(ctx: &Context, heading: &str, text: &str) -> Markup {
    layout(
        ctx,
        Nav::Overview,
        heading,
        false,
        html! {},
        html! { p.message { (text) } p { a href=(ctx.link("/")) { "Back to the overview" } } },
    )
}
