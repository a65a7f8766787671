//! Charts as inline SVG, drawn by `plotters`. Only numbers reach the chart library (axis
//! labels are formatted from them here); series names, which come from events, are shown
//! in an HTML legend where the page escapes them.

use plotters::prelude::*;

/// The colour of series `i`, as CSS, matching the line the chart draws.
pub(super) fn color_css(i: usize) -> String {
    let RGBAColor(r, g, b, _) = Palette99::pick(i).to_rgba();
    format!("rgb({r},{g},{b})")
}

fn hhmm(ms: &i64) -> String {
    chrono::DateTime::from_timestamp_millis(*ms)
        .map(|d| d.format("%H:%M").to_string())
        .unwrap_or_default()
}

/// Lines over time: x in ms since the epoch from `from` to `to`, y in `unit`. Returns the
/// SVG text, or an empty string when drawing failed.
pub(super) fn lines(
    series: &[Vec<(i64, f64)>],
    from: i64,
    to: i64,
    unit: &str,
    w: u32,
    h: u32,
) -> String {
    let mut svg = String::new();
    let ymax = series
        .iter()
        .flatten()
        .map(|p| p.1)
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.1;
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(from..to.max(from + 1), 0.0..ymax)?;
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&hhmm)
            .y_label_formatter(&|v| format!("{v:.0} {unit}"))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()?;
        for (i, points) in series.iter().enumerate() {
            let color = Palette99::pick(i);
            chart.draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?;
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 2, color.filled())))?;
        }
        root.present()?;
        Ok(())
    })();
    if drawn.is_err() {
        return String::new();
    }
    let peak = series
        .iter()
        .flatten()
        .map(|p| p.1)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let summary = format!(
        "Line chart of {} series from {} to {} UTC{}; the legend names the series.",
        series.len(),
        hhmm(&from),
        hhmm(&to),
        peak.map_or_else(String::new, |p| format!(", highest value {p:.0} {unit}"))
    );
    labelled(svg, &summary)
}

/// The chart as an image with a text alternative (`role="img"`, `aria-label`) for screen
/// readers. `label` is escaped.
fn labelled(svg: String, label: &str) -> String {
    let label = label
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    match svg.find("<svg") {
        Some(at) => format!(
            "{}<svg role=\"img\" aria-label=\"{label}\"{}",
            &svg[..at],
            &svg[at + 4..]
        ),
        None => svg,
    }
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
    let total: i64 = counts.iter().sum();
    let peak = counts.iter().copied().max().unwrap_or(0);
    labelled(
        svg,
        &format!(
            "Events over time: {total} in all, at most {peak} in one of {} intervals.",
            counts.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_carry_a_text_alternative() {
        let svg = sparkline(&[1, 4, 2], 120, 28);
        assert!(
            svg.contains(r#"<svg role="img" aria-label="Events over time: 7 in all, at most 4 in one of 3 intervals.""#),
            "{svg}"
        );
        let svg = lines(&[vec![(0, 5.0), (60_000, 12.0)]], 0, 60_000, "ms", 400, 200);
        assert!(
            svg.contains(r#"aria-label="Line chart of 1 series from 00:00 to 00:01 UTC, highest value 12 ms; the legend names the series.""#),
            "{}",
            &svg[..200.min(svg.len())]
        );
    }
}
