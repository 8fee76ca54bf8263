//! The pages, as maud templates: every value from the record goes through maud's escaping
//! (`(value)`), and nothing here writes raw HTML from data.

use agentsync_webhooks_queue::record::{
    DeliveryCounts, DeliveryPage, DeliveryRecord, DeliveryState, DeliverySummary, HistoryEvent,
    MAX_BULK,
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

/// One event type's row of the overview.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TypeRow {
    pub event_type: String,
    /// Its deliveries received in the last hour, by state (exact).
    pub hour: DeliveryCounts,
    /// Received in the last 24 hours (exact).
    pub day_received: u64,
    /// Dead and retrying among them: the count, and whether it is only a lower bound.
    pub day_dead: (u64, bool),
    pub day_retrying: (u64, bool),
    /// Done among them, when the day's other states were counted exactly.
    pub day_done: Option<u64>,
}

/// What the overview shows.
#[derive(Debug, Clone)]
pub(crate) struct Overview {
    /// When the oldest waiting delivery was received.
    pub oldest_waiting: Option<i64>,
    /// Everything on record, by state.
    pub now: DeliveryCounts,
    /// Received in the last 24 hours, by state and by type.
    pub day: DeliveryCounts,
    pub types: Vec<TypeRow>,
    /// Types received in the last day beyond those in `types`.
    pub more_types: usize,
    /// The bound of the lists the day's dead, retrying and in-flight come from.
    pub tally_bound: usize,
}

/// How many dead letters "replay all matching" would replay: at most `MAX_BULK`, and whether
/// there are more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Matching {
    pub count: u64,
    pub more: bool,
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
                    @match data.oldest_waiting {
                        Some(received) => (format::duration_ms(ctx.now_ms.saturating_sub(received).unsigned_abs())),
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
            h2 { "Last 24 hours" }
            p.day #day {
                (format::count(data.day.total())) " received: "
                @for (i, state) in DeliveryState::ALL.into_iter().enumerate() {
                    @if i > 0 { ", " }
                    a href=(ctx.link(&format!("/deliveries?state={state}&since=24h"))) { (format::count(data.day.state(state))) " " (state.as_str()) }
                }
            }
        }
        section {
            h2 { "Last hour, by event type" }
            @if data.types.is_empty() {
                p.empty { "Nothing received in the last 24 hours." }
            } @else {
                (chart(&data.types))
                p.legend {
                    span.key.key-done {} "done " span.key.key-retrying {} "retrying "
                    span.key.key-dead {} "dead " span.key.key-waiting {} "waiting or running"
                }
            }
        }
        section {
            h2 { "By event type" }
            @if !data.types.is_empty() {
                table.types {
                    thead {
                        tr { th rowspan="2" { "type" } th colspan="4" { "last hour" } th colspan="4" { "last 24 hours" } }
                        tr {
                            @for _ in 0..2 { th { "received" } th { "done" } th { "retrying" } th { "dead" } }
                        }
                    }
                    tbody {
                        @for row in &data.types {
                            tr data-type=(row.event_type) {
                                td { a href=(ctx.link(&format!("/deliveries?{}", type_query(&row.event_type, None)))) { code { (row.event_type) } } }
                                td.num { (format::count(row.hour.total())) }
                                td.num { (format::count(row.hour.state(DeliveryState::Done))) }
                                td.num { (format::count(row.hour.state(DeliveryState::Retrying))) }
                                td.num { (dead_link(ctx, &row.event_type, "1h", (row.hour.state(DeliveryState::Dead), false))) }
                                td.num { (format::count(row.day_received)) }
                                td.num {
                                    @match row.day_done {
                                        Some(done) => (format::count(done)),
                                        None => span title=(format!("more than {} of the day's deliveries are in flight, retrying or dead: counting the done ones would read the whole day", data.tally_bound)) { "…" },
                                    }
                                }
                                td.num { (bounded(row.day_retrying)) }
                                td.num { (dead_link(ctx, &row.event_type, "24h", row.day_dead)) }
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

/// A count that may be a lower bound: `1,000+`.
fn bounded((n, capped): (u64, bool)) -> String {
    if capped {
        format!("{}+", format::count(n))
    } else {
        format::count(n)
    }
}

/// A type's dead count, linked to its dead letters when there are any.
fn dead_link(ctx: &Context, event_type: &str, since: &str, dead: (u64, bool)) -> Markup {
    html! {
        @if dead.0 > 0 {
            a.dead href=(ctx.link(&format!("/dead?{}", type_query(event_type, Some(since))))) { (bounded(dead)) }
        } @else { (bounded(dead)) }
    }
}

/// A stacked bar per type over the last hour: done, retrying, dead, and the rest (waiting or
/// running), scaled to the busiest type.
fn chart(types: &[TypeRow]) -> Markup {
    const WIDTH: u64 = 720;
    const LABEL: u64 = 250;
    const ROW: u64 = 22;
    let height = ROW * u64::try_from(types.len()).unwrap_or(0) + 4;
    let max = types
        .iter()
        .map(|t| t.hour.total())
        .max()
        .unwrap_or(0)
        .max(1);
    let scale =
        |value: u64| (value.saturating_mul(WIDTH - LABEL - 60) / max).max(u64::from(value > 0));
    let bars = types.iter().enumerate().map(|(i, row)| {
        let counts = &row.hour;
        let done = counts.state(DeliveryState::Done);
        let retrying = counts.state(DeliveryState::Retrying);
        let dead = counts.state(DeliveryState::Dead);
        let other = counts.total().saturating_sub(done + retrying + dead);
        let y = u64::try_from(i).unwrap_or(0) * ROW + 2;
        let mut x = LABEL;
        let mut rects = Vec::new();
        for (class, value) in [
            ("bar-done", done),
            ("bar-retrying", retrying),
            ("bar-dead", dead),
            ("bar-waiting", other),
        ] {
            let width = scale(value);
            if width > 0 {
                rects.push((class, x, width));
                x += width;
            }
        }
        let title = format!(
            "{}: {} received in the last hour, {done} done, {retrying} retrying, {dead} dead, \
             {other} waiting or running",
            row.event_type,
            counts.total()
        );
        (y, row.event_type.as_str(), title, rects, x, counts.total())
    });
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {height}")) width=(WIDTH) height=(height) role="img"
            aria-label="deliveries received in the last hour, by event type and state" {
            @for (y, event_type, title, rects, end, total) in bars {
                g {
                    title { (title) }
                    text.label x=(LABEL - 8) y=(y + 14) text-anchor="end" { (format::truncate(event_type, 34)) }
                    @for (class, x, width) in rects {
                        rect class=(class) x=(x) y=(y) width=(width) height=(ROW - 6) {}
                    }
                    text.total x=(end + 6) y=(y + 14) { (format::count(total)) }
                }
            }
        }
    }
}

/// The filter form of a list page (outside the live region, so a refresh never clears it).
fn filter_form(ctx: &Context, action: &str, query: &ListQuery, states: bool) -> Markup {
    html! {
        form.filters method="get" action=(ctx.link(action)) {
            @if states {
                fieldset.states {
                    legend { "state" }
                    @for state in DeliveryState::ALL {
                        label {
                            input type="checkbox" name="state" value=(state.as_str()) checked[query.states.contains(&state)];
                            " " (state.as_str())
                        }
                    }
                }
            }
            label { "type or group " input type="text" name="type" value=(query.event_type) list="types" placeholder="contract, producersync.updates_available"; }
            datalist #types {
                @for event_type in agentsync_webhooks_core::EventType::ALL { option value=(event_type.as_str()) {} }
                @for group in agentsync_webhooks_core::EventGroup::ALL { option value=(group.as_str()) {} }
            }
            label { "received since " input type="text" name="since" value=(query.since) placeholder="1h, 7d, 2026-12-06T20:57"; }
            label { "until " input type="text" name="until" value=(query.until) placeholder="UTC, or ms since the epoch"; }
            label { "id " input type="text" name="id" value=(query.id) placeholder="msg_... (a trailing * for a prefix)"; }
            label { "delayed over " input type="text" name="delayed" value=(query.delayed) placeholder="15m, 1h, 2d"; }
            @if query.limit != crate::query::DEFAULT_LIMIT { input type="hidden" name="limit" value=(query.limit); }
            button type="submit" { "Filter" }
            " " a href=(ctx.link(action)) { "clear" }
        }
    }
}

fn delivery_rows(ctx: &Context, deliveries: &[DeliverySummary]) -> Markup {
    html! {
        table.deliveries {
            thead { tr { th { "received" } th { "webhook-id" } th { "type" } th { "state" } th.num title="received minus when the event occurred" { "delay" } th.num { "attempts" } th { "last error" } th { "next run" } } }
            tbody {
                @for delivery in deliveries {
                    tr data-id=(delivery.webhook_id) {
                        td title=(format::ago(delivery.received_at_ms, ctx.now_ms)) { (format::utc(delivery.received_at_ms)) }
                        td { a.id href=(ctx.delivery_link(&delivery.webhook_id)) { (delivery.webhook_id) } }
                        td { code { (delivery.event_type) } }
                        td { (state_badge(delivery.state)) }
                        (delay_cell(delivery))
                        td.num { (delivery.attempts) }
                        td.error { @if let Some(error) = &delivery.last_error { (format::truncate(error, 160)) } }
                        td { @if let Some(next) = delivery.next_run_at_ms { (format::ago(next, ctx.now_ms)) } }
                    }
                }
            }
        }
    }
}

/// A row's delay (received minus occurred), the occurred-at in its title; empty when the
/// record has none for it (stored before occurred-at was kept, or not an envelope).
fn delay_cell(delivery: &DeliverySummary) -> Markup {
    html! {
        @match (delivery.delay_ms(), delivery.occurred_at_ms) {
            (Some(delay), Some(occurred)) => {
                td.num.delay title=(format!("occurred {}", format::utc(occurred))) {
                    @if delay < 0 { "−" }
                    (format::duration_ms(delay.unsigned_abs()))
                }
            }
            _ => { td.num.delay {} }
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
pub(crate) fn deliveries(ctx: &Context, query: &ListQuery, page: &DeliveryPage) -> Markup {
    let body = html! {
        (errors(&query.errors))
        @if page.deliveries.is_empty() {
            p.empty { "No delivery matches." }
        } @else {
            p.summary { "Newest first, " (query.limit) " a page." }
            (delivery_rows(ctx, &page.deliveries))
        }
        (pager(ctx, "/deliveries", query, &query.states, page))
    };
    let before = filter_form(ctx, "/deliveries", query, true);
    layout(
        ctx,
        Nav::Deliveries,
        "Deliveries",
        query.after.is_none(),
        before,
        body,
    )
}

/// The dead letters, with a link to "replay all matching" (which shows its count first).
pub(crate) fn dead(ctx: &Context, query: &ListQuery, page: &DeliveryPage) -> Markup {
    let states = [DeliveryState::Dead];
    let body = html! {
        (errors(&query.errors))
        @if let Some(replayed) = query.replayed {
            p.notice.ok role="status" { "Replayed " (format::count(replayed)) " dead letters: they run again now." }
        }
        @if page.deliveries.is_empty() {
            p.empty { "No dead letter matches." }
        } @else {
            @if !ctx.read_only && query.errors.is_empty() {
                p.bulk {
                    a.action.replay #replay-all href=(ctx.link(&format!("/dead/replay{}", query.link_query(&states, None)))) {
                        "Replay all matching…"
                    }
                    span.hint { " shows how many first (at most " (format::count(MAX_BULK as u64)) " at once)" }
                }
            }
            p.summary { "Newest first, " (query.limit) " a page." }
            (delivery_rows(ctx, &page.deliveries))
        }
        (pager(ctx, "/dead", query, &states, page))
    };
    let before = filter_form(ctx, "/dead", query, false);
    layout(
        ctx,
        Nav::Dead,
        "Dead letters",
        query.after.is_none(),
        before,
        body,
    )
}

/// "Replay all matching": the count, then the button that acts on that many.
pub(crate) fn confirm_replay(ctx: &Context, query: &ListQuery, matching: Matching) -> Markup {
    let states = [DeliveryState::Dead];
    let back = ctx.link(&format!("/dead{}", query.link_query(&[], None)));
    let body = html! {
        (errors(&query.errors))
        p.summary #matching {
            @if matching.more {
                "More than " (format::count(matching.count)) " dead letters match these filters; a replay takes the newest "
                (format::count(matching.count)) " (run it again for the rest)."
            } @else {
                (format::count(matching.count)) " dead letters match these filters."
            }
        }
        @if matching.count > 0 && query.errors.is_empty() {
            form.bulk method="post" action=(ctx.link(&format!("/dead/replay{}", query.link_query(&states, None)))) {
                input type="hidden" name="expected" value=(matching.count);
                button.action.replay type="submit" #replay-confirm {
                    @if matching.more {
                        "Replay the newest " (format::count(matching.count)) " matching"
                    } @else {
                        "Replay all " (format::count(matching.count)) " matching"
                    }
                }
                span.hint { " each is recorded as replayed by the dashboard" }
            }
        }
        p { a href=(back) { "Back to the dead letters" } }
    };
    layout(ctx, Nav::Dead, "Replay dead letters", false, html! {}, body)
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
