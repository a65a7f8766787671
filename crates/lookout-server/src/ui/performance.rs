//! Performance: transactions with percentiles and failure rate, per-stage latency of
//! `order.pipeline` over time, where a transaction's time goes (its profiles merged into one
//! flame graph, and the functions with the most self time against the previous window), and
//! the waterfall of one trace with the profile inside each span.

use super::flame::{self, FrameLabel};
use super::issues::{pick_project, project_select};
use super::{LIVE_EVERY_SECS, Page, Viewer, charts, clip, empty, layout, ms, pct, urlencode, when};
use crate::http::state::AppState;
use crate::services::blocking;
use crate::services::profiles::{self, Flamegraph, FunctionStat, ProfileView};
use crate::store::read::{
    LatencySummary, RecentTransaction, SketchSeries, SpanRow, TraceError, TransactionFilter,
};
use crate::time::parse_period;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use lookout_protocol::sketch::DDSketch;
use maud::html;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/performance", get(page))
        .route("/performance/traces/{trace_id}", get(trace))
}

/// The stages of the agent library's order pipeline, in order.
const STAGES: &[&str] = &[
    "signal.validate",
    "risk.check",
    "order.size",
    "http.client",
    "order.confirm",
];
const PIPELINE: &str = "order.pipeline";

#[derive(Debug, Deserialize)]
struct PerfQuery {
    project: Option<String>,
    period: Option<String>,
    q: Option<f64>,
    /// Only the recent transactions of this name.
    transaction: Option<String>,
    /// With `transaction`: the profiles' samples inside spans of this op only.
    op: Option<String>,
}

/// The labels `flame::flame_graph` draws a profile service graph with.
fn labels(g: &Flamegraph) -> Vec<FrameLabel<'_>> {
    g.frames
        .iter()
        .map(|f| FrameLabel {
            name: &f.name,
            file: &f.module_or_file,
            in_app: f.in_app,
        })
        .collect()
}

/// `g` drawn as a flame graph.
fn draw(id: &str, label: &str, g: &Flamegraph, empty_text: &str) -> maud::Markup {
    flame::flame_graph(
        id,
        label,
        &labels(g),
        g.stacks.iter().map(|s| (s.frames.as_slice(), s.weight_ns)),
        empty_text,
    )
}

/// Self time against the previous window, as `+12 %` (red: slower) or `−8 %`.
fn change(f: &FunctionStat) -> maud::Markup {
    match f.change() {
        None => html! { span.muted { "new" } },
        Some(c) if c.abs() < 0.005 => html! { span.muted { "±0 %" } },
        Some(c) => html! {
            span class=(if c > 0.0 { "delta up" } else { "delta down" }) {
                (if c > 0.0 { "+" } else { "−" }) (format!("{:.0} %", c.abs() * 100.0))
            }
        },
    }
}

/// The top functions by self time, with their change against the previous window.
fn top_table(functions: &[FunctionStat]) -> maud::Markup {
    html! {
        @if functions.is_empty() { (empty("No profiled sample in this window.")) } @else {
            table.grid id="top-functions" {
                thead { tr { th { "Function" } th { "Module or file" } th.num { "Self time" } th.num { "Samples" } th.num { "Previous window" } th.num { "Change" } } }
                tbody { @for f in functions {
                    tr {
                        td { code { (clip(&f.name, 160)) } @if f.in_app { " " span.pill { "app" } } }
                        td.muted { (clip(&f.module_or_file, 120)) }
                        td.num { (flame::dur(f.self_ns)) }
                        td.num { (f.samples) }
                        td.num { @if f.previous_self_ns > 0 { (flame::dur(f.previous_self_ns)) } @else { "–" } }
                        td.num { (change(f)) }
                    }
                } }
            }
        }
    }
}

async fn page(State(state): State<AppState>, viewer: Viewer, Query(pq): Query<PerfQuery>) -> Page {
    let period = pq.period.clone().unwrap_or_else(|| "1h".into());
    let span_ms = parse_period(&period)?.clamp(60_000, 30 * 86_400_000);
    let quantile = pq.q.filter(|q| (0.0..=1.0).contains(q)).unwrap_or(0.99);
    let now = state.clock.now_ms();
    let since = now - span_ms;
    // About 30 points whatever the window, on minute boundaries.
    let bucket = (span_ms / 30).max(60_000).div_euclid(60_000) * 60_000;
    let reader = state.reader.clone();
    let wanted = pq.project.clone();
    let only = pq
        .transaction
        .clone()
        .filter(|t| !t.trim().is_empty() && t.len() <= 500);
    let only_name = only.clone();
    let (projects, pid, slug, summaries, series, recent) = blocking(move || {
        let (all, (pid, slug)) = pick_project(&reader, wanted.as_deref())?;
        let summaries: Vec<LatencySummary> =
            reader.latency(pid, "transaction", since, now + 60_000)?;
        // (series name, bucket) → runs, failures and merged sketch
        let mut merged: BTreeMap<(String, i64), (i64, i64, DDSketch)> = BTreeMap::new();
        let from_minute = since - since.rem_euclid(60_000);
        for op in std::iter::once(PIPELINE).chain(STAGES.iter().copied()) {
            // Stage spans are keyed by op; pipeline transactions by op, whatever the agent
            // named them.
            let which = if op == PIPELINE {
                SketchSeries::TransactionOp(op)
            } else {
                SketchSeries::SpanOp(op)
            };
            for m in reader.latency_sketches(pid, which, since)? {
                let b = m.minute - (m.minute - from_minute).rem_euclid(bucket);
                let e = merged.entry((op.to_owned(), b)).or_default();
                e.0 += m.count;
                e.1 += m.errors;
                e.2.merge(&m.sketch);
            }
        }
        let mut series: Vec<(String, Vec<charts::StagePoint>)> = Vec::new();
        for name in std::iter::once(PIPELINE).chain(STAGES.iter().copied()) {
            let points: Vec<charts::StagePoint> = merged
                .range((name.to_owned(), i64::MIN)..=(name.to_owned(), i64::MAX))
                .map(|((_, start), (count, failed, sketch))| charts::StagePoint {
                    start: *start,
                    count: *count,
                    failed: *failed,
                    latency: sketch.quantile(quantile),
                })
                .collect();
            if !points.is_empty() {
                series.push((name.to_owned(), points));
            }
        }
        let recent = match only_name {
            None => reader.recent_transactions(pid, 25)?,
            Some(name) => {
                let filter = TransactionFilter {
                    name: Some(name),
                    ..TransactionFilter::default()
                };
                reader
                    .transactions(pid, &filter, 25)?
                    .into_iter()
                    .map(|t| RecentTransaction {
                        event_id: t.event_id,
                        name: t.transaction,
                        trace_id: t.trace_id,
                        timestamp: t.timestamp,
                        duration_ms: Some(t.duration_ms),
                        status: t.status,
                    })
                    .collect()
            }
        };
        Ok((all, pid, slug, summaries, series, recent))
    })
    .await?;
    let op = pq
        .op
        .clone()
        .filter(|o| !o.trim().is_empty() && o.len() <= 200);
    // Where the chosen transaction's time goes: its profiles in the window, merged.
    let profile = match &only {
        None => None,
        Some(name) => {
            let graph =
                profiles::flamegraph(&state.store, pid, Some(name), op.as_deref(), since, now)
                    .await?;
            let top =
                profiles::top_functions(&state.store, pid, Some(name), op.as_deref(), since, now)
                    .await?;
            Some((graph, top))
        }
    };
    let qlabel = format!("p{}", (quantile * 100.0).round());
    let body = html! {
        div.page-head { h1 { "Performance" } }
        form.filters method="get" action="/performance" {
            (project_select(&projects, &slug))
            label { "Window " select name="period" {
                @for p in ["15m", "1h", "6h", "24h", "7d"] { option value=(p) selected[p == period] { (p) } }
            } }
            label { "Percentile " select name="q" {
                @for (v, l) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] { option value=(v) selected[(v - quantile).abs() < 1e-9] { (l) } }
            } }
            button type="submit" { "Show" }
        }
        h2 { "order.pipeline, stage by stage" }
        // The filter form above stays out of the live regions: what is chosen in it is kept.
        div id="perf-charts-live" data-live=(LIVE_EVERY_SECS) {
            @if series.is_empty() {
                (empty("No order.pipeline transaction in this window."))
            } @else {
                (charts::stage_charts("", &format!("{qlabel} latency per stage"), &series, bucket, (since, now)))
            }
        }
        h2 { "Transactions" }
        div id="transactions-live" data-live=(LIVE_EVERY_SECS) {
            @if summaries.is_empty() { (empty("No transaction in this window.")) } @else {
                table.grid id="transactions" {
                    thead { tr { th { "Transaction" } th { "Op" } th.num { "Count" } th.num { "p50" } th.num { "p95" } th.num { "p99" } th.num { "Failure rate" } } }
                    tbody { @for s in &summaries {
                        tr { td { a.transaction-link href=(format!("/performance?project={}&period={}&transaction={}#recent-transactions", urlencode(&slug), urlencode(&period), urlencode(&s.name))) title="Its latest transactions, each linked to its trace" { (clip(&s.name, 120)) } } td { (clip(&s.op, 60)) } td.num { (s.count) }
                             td.num { (ms(s.p50)) } td.num { (ms(s.p95)) } td.num { (ms(s.p99)) } td.num { (pct(Some(s.failure_rate * 100.0))) } }
                    } }
                }
            }
        }
        @if let (Some(name), Some((graph, top))) = (&only, &profile) {
            h2 id="profiles-title" { "Where the time goes: " (clip(name, 120)) }
            form.filters method="get" action="/performance" {
                input type="hidden" name="project" value=(slug);
                input type="hidden" name="period" value=(period);
                input type="hidden" name="transaction" value=(name);
                label { "Samples inside " select name="op" {
                    option value="" selected[op.is_none()] { "the whole transaction" }
                    @for s in STAGES { option value=(s) selected[op.as_deref() == Some(*s)] { "spans of " (s) } }
                    @if let Some(o) = op.as_deref().filter(|o| !STAGES.contains(o)) { option value=(o) selected { "spans of " (clip(o, 60)) } }
                } }
                button type="submit" { "Show" }
            }
            p.muted {
                (graph.profiles) " profile" @if graph.profiles != 1 { "s" } " in the last " (period)
                @if let Some(o) = &op { ", samples inside " code { (clip(o, 60)) } " spans" }
                ". Self time is compared with the " (period) " before."
            }
            (draw("transaction-flame", &format!("Profiles of {}", clip(name, 120)), graph, "No profile of this transaction in this window (profiling samples a share of transactions: profiles_sample_rate)."))
            h3 { "Top functions by self time" }
            (top_table(top))
        }
        h2 id="recent-title" {
            "Recent transactions"
            @if let Some(name) = &only { ": " (clip(name, 120)) " " a.muted href=(format!("/performance?project={}&period={}", urlencode(&slug), urlencode(&period))) { "(all)" } }
        }
        div id="recent-live" data-live=(LIVE_EVERY_SECS) {
            @if recent.is_empty() { (empty("None yet.")) } @else {
                table.grid id="recent-transactions" {
                    thead { tr { th { "Transaction" } th { "When (UTC)" } th.num { "Duration" } th { "Status" } th { "Trace" } } }
                    tbody { @for t in &recent {
                        @let href = t.trace_id.as_ref().map(|tid| format!("/performance/traces/{}?project={}", urlencode(tid), urlencode(&slug)));
                        tr { td { @match &href { Some(h) => { a href=(h) { (clip(&t.name, 100)) } }, None => { (clip(&t.name, 100)) } } } td { (when(t.timestamp)) } td.num { (ms(t.duration_ms)) } td { (clip(&t.status, 30)) }
                             td { @if let Some(tid) = &t.trace_id { a.trace-link href=(format!("/performance/traces/{}?project={}", urlencode(tid), urlencode(&slug))) title=(t.event_id) { (clip(tid, 12)) } } } }
                    } }
                }
            }
        }
    };
    Ok(layout(&viewer, "performance", "Performance", body))
}

#[derive(Debug, Deserialize)]
struct TraceQuery {
    project: Option<String>,
}

/// Ticks of the time ruler over `total_ms`: about five, on a round step (1, 2 or 5 × 10ⁿ ms).
fn ruler_ticks(total_ms: f64) -> Vec<f64> {
    if !(total_ms.is_finite() && total_ms > 0.0) {
        return vec![0.0];
    }
    let rough = total_ms / 5.0;
    let pow = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * pow)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * pow);
    (0..=((total_ms / step).floor() as usize).min(20))
        .map(|i| i as f64 * step)
        .collect()
}

/// A tick label: `0`, `250 ms`, `1.5 s`.
fn tick_label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 1000.0 {
        format!("{} s", (v / 1000.0 * 100.0).round() / 100.0)
    } else if v >= 1.0 {
        format!("{} ms", (v * 10.0).round() / 10.0)
    } else {
        format!("{} µs", (v * 1000.0).round())
    }
}

async fn trace(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(trace_id): Path<String>,
    Query(tq): Query<TraceQuery>,
) -> Page {
    trace_page(state, &viewer, trace_id, tq).await
}

async fn trace_page(state: AppState, viewer: &Viewer, trace_id: String, tq: TraceQuery) -> Page {
    if trace_id.is_empty() || trace_id.len() > 64 {
        return Err(super::UiError::missing(&format!(
            "trace {}",
            clip(&trace_id, 64)
        )));
    }
    let reader = state.reader.clone();
    let tid = trace_id.clone();
    let (pid, slug, spans, errors): (i64, String, Vec<SpanRow>, Vec<TraceError>) =
        blocking(move || {
            let (_, (pid, slug)) = pick_project(&reader, tq.project.as_deref())?;
            Ok((
                pid,
                slug,
                reader.trace(pid, &tid)?,
                reader.trace_errors(pid, &tid)?,
            ))
        })
        .await?;
    // The profiles of the trace's transactions, by transaction event id.
    let mut profiled: Vec<(String, ProfileView)> = Vec::new();
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let transactions = spans
        .iter()
        .map(|s| s.event_id.as_str())
        .filter(|e| seen.insert(e));
    for event_id in transactions.take(MAX_TRACE_PROFILES) {
        if let Some(p) = profiles::for_transaction(&state.store, pid, event_id).await? {
            profiled.push((event_id.to_owned(), p));
        }
    }
    // Each span's part of its transaction's profile.
    let mut windows: HashMap<&str, Flamegraph> = HashMap::new();
    for s in &spans {
        if windows.len() >= MAX_SPAN_PROFILES {
            break;
        }
        let Some((_, p)) = profiled.iter().find(|(e, _)| *e == s.event_id) else {
            continue;
        };
        // A transaction's root span is its whole profile, drawn once below the waterfall.
        if spans
            .iter()
            .find(|r| r.event_id == s.event_id)
            .map(|r| &r.span_id)
            == Some(&s.span_id)
        {
            continue;
        }
        let rel = |secs: f64| ((secs * 1000.0 - p.transaction_start_ms) * 1e6).max(0.0) as u64;
        let g = p.window(rel(s.start_timestamp), rel(s.timestamp));
        if !g.stacks.is_empty() {
            windows.insert(s.span_id.as_str(), g);
        }
    }
    if spans.is_empty() && errors.is_empty() {
        return Err(super::UiError::missing(&format!(
            "trace {}",
            clip(&trace_id, 64)
        )));
    }
    // The window: every span, and every error of the trace.
    let start_ms = spans
        .iter()
        .map(|s| s.start_timestamp * 1000.0)
        .chain(errors.iter().map(|e| e.timestamp as f64))
        .fold(f64::INFINITY, f64::min);
    let end_ms = spans
        .iter()
        .map(|s| s.timestamp * 1000.0)
        .chain(errors.iter().map(|e| e.timestamp as f64))
        .fold(f64::NEG_INFINITY, f64::max);
    let total = (end_ms - start_ms).max(1e-3);
    let at = |ms: f64| ((ms - start_ms) / total * 100.0).clamp(0.0, 100.0);
    let ticks = ruler_ticks(total);
    let mut depth: HashMap<&str, usize> = HashMap::new();
    let mut rows = Vec::with_capacity(spans.len());
    for s in &spans {
        let d = s
            .parent_span_id
            .as_deref()
            .and_then(|p| depth.get(p))
            .map_or(0, |d| d + 1)
            .min(30);
        depth.insert(s.span_id.as_str(), d);
        rows.push((d, s));
    }
    let failed_spans = spans
        .iter()
        .filter(|s| s.status.as_deref().is_some_and(|st| st != "ok"))
        .count();
    let issue_href = |e: &TraceError| e.issue_id.map(|i| format!("/issues/{i}"));
    let body = html! {
        div.page-head {
            h1 { "Trace " code { (clip(&trace_id, 64)) } }
            div.muted {
                (spans.len()) " spans · " (ms(Some(total))) " · started " (when(start_ms as i64)) " UTC"
                @if failed_spans > 0 { " · " span.error { (failed_spans) " failed" } }
                " · project " (slug)
            }
        }
        @if !errors.is_empty() {
            h2 { "Errors in this trace" }
            ul.trace-errors id="trace-errors" {
                @for e in &errors {
                    li {
                        span class=(format!("level {}", clip(&e.level, 10))) { (clip(&e.level, 10)) } " "
                        @match issue_href(e) {
                            Some(href) => { a.trace-error href=(href) { (clip(&e.title, 160)) } },
                            None => { span { (clip(&e.title, 160)) } },
                        }
                        " " span.muted { "+" (ms(Some((e.timestamp as f64 - start_ms).max(0.0)))) }
                    }
                }
            }
        }
        @if spans.is_empty() { (empty("No span of this trace is stored (its transaction may not have been sampled).")) } @else {
            div.waterfall id="waterfall" role="table" aria-label="Spans of the trace on a time ruler" {
                div.span-row.ruler role="row" {
                    div.span-label role="columnheader" { "Span" }
                    div.span-track role="columnheader" aria-label="Time since the trace started" {
                        @for t in &ticks {
                            span.tick style=(format!("left:{:.3}%", at(start_ms + t))) { (tick_label(*t)) }
                        }
                    }
                    div.span-dur role="columnheader" { "Duration" }
                    div.span-status role="columnheader" { "Status" }
                }
                @if !errors.is_empty() {
                    div.span-row.errors-row role="row" {
                        div.span-label role="cell" { span.error { "Errors (" (errors.len()) ")" } }
                        div.span-track role="cell" {
                            @for e in &errors {
                                @let left = at(e.timestamp as f64);
                                @let label = format!("{} at +{}", clip(&e.title, 120), ms(Some(e.timestamp as f64 - start_ms)));
                                @match issue_href(e) {
                                    Some(href) => { a.error-mark href=(href) style=(format!("left:{left:.3}%")) title=(label) aria-label=(label) { "!" } },
                                    None => { span.error-mark style=(format!("left:{left:.3}%")) title=(label) { "!" } },
                                }
                            }
                        }
                        div.span-dur role="cell" {}
                        div.span-status role="cell" {}
                    }
                }
                @for (d, s) in &rows {
                    @let left = at(s.start_timestamp * 1000.0);
                    @let width = bar_width(s.duration_ms, total, left);
                    @let status = s.status.as_deref().unwrap_or("ok");
                    @let failed = status != "ok";
                    div class=(if failed { "span-row failed" } else { "span-row" }) role="row" data-span-id=(clip(&s.span_id, 32)) {
                        div.span-label role="cell" style=(format!("padding-left:{}em", *d as f64 * 1.2)) title=(clip(s.description.as_deref().unwrap_or(&s.op), 300)) {
                            span.op { (clip(&s.op, 60)) }
                            @if let Some(desc) = s.description.as_deref().filter(|d| !d.is_empty() && *d != s.op) { " " span.desc { (clip(desc, 120)) } }
                        }
                        div.span-track role="cell" {
                            @for t in ticks.iter().skip(1) { span.grid style=(format!("left:{:.3}%", at(start_ms + t))) {} }
                            div.span-bar style=(format!("left:{left:.3}%;width:{width:.3}%")) title=(format!("+{} · {}", ms(Some(s.start_timestamp * 1000.0 - start_ms)), ms(Some(s.duration_ms)))) {}
                        }
                        div.span-dur role="cell" { (ms(Some(s.duration_ms))) }
                        div.span-status role="cell" { span class=(format!("pill {}", if failed { "error" } else { "ok" })) { (clip(status, 30)) } }
                    }
                    @if let Some(g) = windows.get(s.span_id.as_str()) {
                        div.span-row.span-profile role="row" {
                            details role="cell" {
                                summary { "Profile inside " (clip(&s.op, 60)) ": " (flame::dur(g.total_ns())) " sampled" }
                                (draw(&format!("flame-{}", clip(&s.span_id, 32)), &format!("Profile inside {}", clip(&s.op, 60)), g, "No sample inside this span."))
                            }
                        }
                    }
                }
            }
        }
        @for (event_id, p) in &profiled {
            // The transaction's first span is its root (spans come in start order).
            @let name = spans.iter().find(|s| &s.event_id == event_id).and_then(|s| s.description.clone().filter(|d| !d.is_empty()).or_else(|| Some(s.op.clone()))).unwrap_or_else(|| "the transaction".to_owned());
            h2 { "Profile of " (clip(&name, 120)) }
            p.muted { "Profile " code { (clip(&p.profile_id, 40)) } ". Each span above with samples opens onto its own part of it." }
            (draw(&format!("profile-{}", clip(&p.profile_id, 40)), &format!("Profile of {}", clip(&name, 120)), &p.flamegraph(), "No sample in this profile."))
        }
    };
    Ok(layout(viewer, "performance", "Trace", body))
}

/// Most transactions of one trace whose profiles the trace page reads.
const MAX_TRACE_PROFILES: usize = 20;
/// Most spans the trace page draws a profile for.
const MAX_SPAN_PROFILES: usize = 60;

/// A span bar's width in percent of the ruler: its share of the trace, at least 0.3 % so a
/// short span stays visible, and never past the ruler's end. (`min`/`max` rather than
/// `clamp`: a bar starting at 99.7 % leaves `100.0 - 99.7`, which is just under 0.3 in
/// floating point, and `clamp` panics when its bounds cross.)
fn bar_width(duration_ms: f64, total_ms: f64, left: f64) -> f64 {
    let room = (100.0 - left.min(99.7)).max(0.3);
    (duration_ms / total_ms * 100.0).max(0.3).min(room)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bar_at_the_ruler_end_keeps_its_minimum_width() {
        assert!((super::bar_width(0.0, 10.0, 99.7) - 0.3).abs() < 1e-9);
        assert!((super::bar_width(5.0, 10.0, 0.0) - 50.0).abs() < 1e-9);
        assert!((super::bar_width(10.0, 10.0, 90.0) - 10.0).abs() < 1e-9);
        assert!(super::bar_width(1.0, 0.0, 100.0).is_finite());
    }

    use super::*;

    #[test]
    fn ruler_ticks_are_round() {
        assert_eq!(ruler_ticks(43.0), vec![0.0, 10.0, 20.0, 30.0, 40.0]);
        assert_eq!(
            ruler_ticks(2_500.0),
            vec![0.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0]
        );
        assert_eq!(ruler_ticks(0.0), vec![0.0]);
        assert!(ruler_ticks(f64::NAN).len() == 1);
        assert_eq!(tick_label(1500.0), "1.5 s");
        assert_eq!(tick_label(20.0), "20 ms");
        assert_eq!(tick_label(0.5), "500 µs");
    }
}
