//! Charts. Time series are drawn in the browser by uPlot (from the npm registry, see
//! `build.rs`) from data the page carries in an attribute, with a text summary and a data
//! table beside them; sparklines in lists are small inline SVGs drawn here by `plotters`.

use maud::{Markup, html};
use plotters::prelude::*;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};

fn hhmm(ms: &i64) -> String {
    chrono::DateTime::from_timestamp_millis(*ms)
        .map(|d| d.format("%H:%M").to_string())
        .unwrap_or_default()
}

/// What the values of a chart measure: how the axis, the hover values and the data table
/// print them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    /// Durations in milliseconds (shown as ms or s).
    Ms,
    /// Percentages, 0 to 100.
    Percent,
    /// Counts per minute.
    PerMinute,
}

impl Unit {
    fn key(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::Percent => "percent",
            Unit::PerMinute => "per_minute",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Unit::Ms => "milliseconds",
            Unit::Percent => "percent",
            Unit::PerMinute => "per minute",
        }
    }

    /// A value as the page prints it (`charts.js` prints hover values the same way).
    pub(super) fn format(self, v: f64) -> String {
        match self {
            Unit::Ms if v >= 1000.0 => format!("{:.2} s", v / 1000.0),
            Unit::Ms if v >= 10.0 => format!("{v:.0} ms"),
            Unit::Ms if v >= 1.0 => format!("{v:.1} ms"),
            Unit::Ms => format!("{v:.2} ms"),
            Unit::Percent => format!("{v:.1} %"),
            Unit::PerMinute if v.fract() == 0.0 => format!("{v:.0}/min"),
            Unit::PerMinute if v >= 1.0 => format!("{v:.1}/min"),
            Unit::PerMinute => format!("{v:.2}/min"),
        }
    }
}

/// One chart of values over time. The browser draws it with uPlot (`charts.js`): hover
/// values, drag to zoom (double-click to reset), a legend whose entries toggle their series,
/// axis units, times in UTC, the page's full width. Readers without a canvas get a summary
/// (`aria-label`) and the data as a table.
#[derive(Debug, Clone)]
pub(super) struct TimeSeries<'a> {
    /// The element id (also the page's anchor for the chart).
    pub(super) id: &'a str,
    /// What the chart shows, as its caption.
    pub(super) title: &'a str,
    /// The unit of every series.
    pub(super) unit: Unit,
    /// The window shown (ms since the epoch), whatever part of it has data.
    pub(super) from: i64,
    /// The window's end (ms).
    pub(super) to: i64,
    /// Named series of (bucket start in ms since the epoch, value). Names may come from
    /// events: they reach the page escaped, and the chart library sets them as text.
    pub(super) series: Vec<(String, Vec<(i64, f64)>)>,
}

/// The chart's markup: a figure with its caption, the canvas host carrying the data as JSON
/// in an attribute (no inline script, as the CSP wants), and the data table.
pub(super) fn time_series(chart: &TimeSeries<'_>) -> Markup {
    let xs: Vec<i64> = chart
        .series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.0))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let columns: Vec<Vec<Option<f64>>> = chart
        .series
        .iter()
        .map(|(_, pts)| {
            let by_x: HashMap<i64, f64> = pts.iter().copied().collect();
            xs.iter().map(|x| by_x.get(x).copied()).collect()
        })
        .collect();
    // The window on whole minutes: its end is "now", and a live refresh must not find a
    // changed chart every few seconds when no bucket has moved (buckets start on minutes).
    let (from, to) = minute_window(chart.from, chart.to);
    let spec = json!({
        "unit": chart.unit.key(),
        "from": from / 1000,
        "to": to / 1000,
        "x": xs.iter().map(|x| x / 1000).collect::<Vec<_>>(),
        "series": chart.series.iter().zip(&columns).map(|((name, _), values)| json!({
            "label": name,
            "values": values,
        })).collect::<Vec<_>>(),
    });
    html! {
        figure.chart id=(chart.id) {
            figcaption {
                strong { (chart.title) }
                span.muted { " · " (chart.unit.label()) ", times in UTC · drag across to zoom, double-click to reset, click a legend entry to hide or show its series" }
            }
            div.chart-canvas data-chart=(spec.to_string()) role="img" aria-label=(summarise(chart, &xs)) {}
            details.chart-data {
                summary { "Data as a table" }
                div.table-wrap tabindex="0" { table.grid {
                    thead { tr { th { "Time (UTC)" } @for (name, _) in &chart.series { th.num { (super::clip(name, 60)) } } } }
                    tbody { @for (i, x) in xs.iter().enumerate() {
                        tr { td { (hhmm(x)) } @for col in &columns {
                            td.num { @match col[i] { Some(v) => (chart.unit.format(v)), None => "–" } }
                        } }
                    } }
                } }
            }
        }
    }
}

/// `from..to` (ms) widened to whole minutes: `from` down, `to` up.
fn minute_window(from: i64, to: i64) -> (i64, i64) {
    let from = from - from.rem_euclid(60_000);
    let to = to + (60_000 - to.rem_euclid(60_000)).rem_euclid(60_000);
    (from, to.max(from))
}

/// One bucket of one stage of a pipeline: its start (ms), the runs that ended in it, the
/// failed ones, and the latency to show (a percentile, ms), if any.
#[derive(Debug, Clone, Copy)]
pub(super) struct StagePoint {
    pub(super) start: i64,
    pub(super) count: i64,
    pub(super) failed: i64,
    pub(super) latency: Option<f64>,
}

/// A pipeline's stages over `from..to` in buckets of `bucket_ms`, as three charts with one
/// series per stage: `latency_title`'s latency, throughput per minute, and the share of runs
/// that failed. Chart ids are `<id_prefix>stage-chart`, `<id_prefix>throughput-chart` and
/// `<id_prefix>error-rate-chart`.
pub(super) fn stage_charts(
    id_prefix: &str,
    latency_title: &str,
    stages: &[(String, Vec<StagePoint>)],
    bucket_ms: i64,
    (from, to): (i64, i64),
) -> Markup {
    let per_minute = bucket_ms as f64 / 60_000.0;
    let series = |value: &dyn Fn(&StagePoint) -> Option<f64>| {
        stages
            .iter()
            .map(|(name, points)| {
                let pts: Vec<(i64, f64)> = points
                    .iter()
                    .filter_map(|p| value(p).map(|v| (p.start, v)))
                    .collect();
                (name.clone(), pts)
            })
            .filter(|(_, pts)| !pts.is_empty())
            .collect::<Vec<_>>()
    };
    let chart = |suffix: &str, title: &str, unit: Unit, series| {
        time_series(&TimeSeries {
            id: &format!("{id_prefix}{suffix}"),
            title,
            unit,
            from,
            to,
            series,
        })
    };
    html! {
        (chart("stage-chart", latency_title, Unit::Ms, series(&|p| p.latency)))
        (chart("throughput-chart", "Throughput per stage", Unit::PerMinute,
            series(&|p| (p.count > 0).then(|| p.count as f64 / per_minute))))
        (chart("error-rate-chart", "Error rate per stage (failed spans and transactions)", Unit::Percent,
            series(&|p| (p.count > 0).then(|| p.failed as f64 * 100.0 / p.count as f64))))
    }
}

/// The text alternative: what the chart shows and its highest point, in words.
fn summarise(chart: &TimeSeries<'_>, xs: &[i64]) -> String {
    let (Some(first), Some(last)) = (xs.first(), xs.last()) else {
        return format!("{}: no data", chart.title);
    };
    let mut out = format!(
        "{}: {} series from {} to {} UTC",
        chart.title,
        chart.series.len(),
        hhmm(first),
        hhmm(last)
    );
    let top = chart
        .series
        .iter()
        .flat_map(|(name, pts)| pts.iter().map(move |p| (name, p)))
        .max_by(|a, b| a.1.1.total_cmp(&b.1.1));
    if let Some((name, (at, v))) = top {
        out.push_str(&format!(
            "; highest {} ({}, at {})",
            chart.unit.format(*v),
            super::clip(name, 60),
            hhmm(at)
        ));
    }
    out
}

/// A sparkline of counts per bucket (no axes), for lists.
pub(super) fn sparkline(counts: &[i64], w: u32, h: u32) -> String {
    let mut svg = String::new();
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = counts.len().max(2) as i64;
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .margin(1)
            .build_cartesian_2d(0..n - 1, 0.0..max)?;
        chart.draw_series(
            AreaSeries::new(
                counts
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (i as i64, *c as f64)),
                0.0,
                RGBColor(124, 92, 214).mix(0.25),
            )
            .border_style(RGBColor(124, 92, 214)),
        )?;
        root.present()?;
        Ok(())
    })();
    if drawn.is_err() {
        return String::new();
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_aligned_on_one_time_axis_and_summarised() {
        let chart = TimeSeries {
            id: "c",
            title: "p99 per stage",
            unit: Unit::Ms,
            from: 0,
            to: 240_000,
            series: vec![
                ("risk.check".into(), vec![(60_000, 12.0), (120_000, 2500.0)]),
                ("<b>x</b>".into(), vec![(120_000, 3.0), (180_000, 4.0)]),
            ],
        };
        let html = time_series(&chart).into_string();
        // One x axis (seconds) for both series, gaps as null.
        assert!(html.contains("&quot;x&quot;:[60,120,180]"), "{html}");
        assert!(html.contains("[12.0,2500.0,null]"), "{html}");
        assert!(html.contains("[null,3.0,4.0]"), "{html}");
        // Names from events stay text, in the attribute and in the table.
        assert!(!html.contains("<b>x</b>"), "{html}");
        assert!(
            html.contains("highest 2.50 s (risk.check, at 00:02)"),
            "{html}"
        );
    }

    #[test]
    fn the_window_moves_only_when_a_minute_passes() {
        let at = |from: i64, to: i64| {
            time_series(&TimeSeries {
                id: "c",
                title: "t",
                unit: Unit::Ms,
                from,
                to,
                series: vec![("a".into(), vec![(120_000, 1.0)])],
            })
            .into_string()
        };
        // Ten seconds later, same minute: the same markup, so a live refresh leaves it alone.
        assert_eq!(at(65_000, 185_000), at(75_000, 195_000));
        let html = at(65_000, 185_000);
        assert!(html.contains("&quot;from&quot;:60,"), "{html}");
        assert!(html.contains("&quot;to&quot;:240,"), "{html}");
        // A minute boundary passed: the window moved.
        assert_ne!(at(65_000, 185_000), at(125_000, 245_000));
        assert_eq!(minute_window(120_000, 180_000), (120_000, 180_000));
    }

    #[test]
    fn units_print_for_reading() {
        assert_eq!(Unit::Ms.format(2512.0), "2.51 s");
        assert_eq!(Unit::Ms.format(42.4), "42 ms");
        assert_eq!(Unit::Ms.format(1.25), "1.2 ms");
        assert_eq!(Unit::Percent.format(40.55), "40.5 %");
        assert_eq!(Unit::PerMinute.format(12.0), "12/min");
        // Small values keep two decimals rather than all reading 0.0.
        assert_eq!(Unit::Ms.format(0.04), "0.04 ms");
        assert_eq!(Unit::PerMinute.format(0.27), "0.27/min");
    }
}
