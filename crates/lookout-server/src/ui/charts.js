// Lookout's charts: every element with a `data-chart` attribute (written by ui/charts.rs)
// becomes an interactive uPlot chart: hover values in the legend, drag across to zoom,
// double-click to reset, click a legend entry to hide or show its series, times in UTC.
// uPlot (from the npm registry, served at /ui/vendor/) is loaded only by pages that have a
// chart. Series names come from events: uPlot sets them as text, never as markup.
"use strict";
(() => {
  const HEIGHT = 300;
  // Distinguishable on white and for the common colour-vision deficiencies (Okabe–Ito).
  const COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];
  const FORMAT = {
    // The same rules as `Unit::format` in charts.rs (two decimals below 1, so small
    // values do not all read 0.0).
    ms: (v) =>
      v >= 1000 ? (v / 1000).toFixed(2) + " s" : v >= 10 ? v.toFixed(0) + " ms" : v >= 1 ? v.toFixed(1) + " ms" : v.toFixed(2) + " ms",
    percent: (v) => v.toFixed(1) + " %",
    per_minute: (v) => (Number.isInteger(v) ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2)) + "/min",
  };
  const AXIS = { ms: "Latency", percent: "Error rate", per_minute: "Throughput" };
  let loading = null;
  // The time range an operator zoomed each chart to, by its figure's id: a live update
  // redraws a chart from fresh data, and the zoom must survive it.
  const zooms = new Map();

  function loadLibrary() {
    if (window.uPlot) return Promise.resolve();
    if (!loading) {
      loading = new Promise((resolve, reject) => {
        const css = document.createElement("link");
        css.rel = "stylesheet";
        css.href = "/ui/vendor/uplot.css";
        document.head.appendChild(css);
        const js = document.createElement("script");
        js.src = "/ui/vendor/uplot.js";
        js.onload = resolve;
        js.onerror = () => reject(new Error("the chart library did not load"));
        document.head.appendChild(js);
      });
    }
    return loading;
  }

  function two(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function utc(secs) {
    const d = new Date(secs * 1000);
    return d.getUTCFullYear() + "-" + two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate()) + " " +
      two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + " UTC";
  }

  // The chart's columns: the whole window the page asked for, even where it has no data (its
  // two ends are points without values). A drag zooms in; a double-click comes back to it.
  function columns(spec) {
    const ends = (vals, a, b) => [a].concat(vals, [b]);
    const lo = spec.x.length ? Math.min(spec.from, spec.x[0]) : spec.from;
    const hi = spec.x.length ? Math.max(spec.to, spec.x[spec.x.length - 1]) : spec.to;
    return { lo, hi, data: [ends(spec.x, lo, hi)].concat(spec.series.map((s) => ends(s.values, null, null))) };
  }

  function parse(text) {
    try {
      return JSON.parse(text);
    } catch (e) {
      return null;
    }
  }

  function draw(host) {
    if (host.dataset.drawn) return;
    host.dataset.drawn = "1";
    const spec = parse(host.getAttribute("data-chart"));
    if (!spec) return;
    const fmt = FORMAT[spec.unit] || ((v) => String(v));
    const opts = {
      width: Math.max(320, host.clientWidth),
      height: HEIGHT,
      tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      cursor: { drag: { x: true, y: false, setScale: true } },
      legend: { live: true },
      scales: { x: { time: true } },
      axes: [
        {
          label: "Time (UTC)",
          labelSize: 20,
          // Room for "MM-DD HH:MM" between ticks.
          space: 100,
          font: "13px system-ui, sans-serif",
          labelFont: "13px system-ui, sans-serif",
          // 24-hour UTC times; dates too once the visible range spans days.
          values: (u, splits) => {
            const span = u.scales.x.max - u.scales.x.min;
            return splits.map((v) => {
              if (v == null) return "";
              const d = new Date(v * 1000);
              const day = two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate());
              const hm = two(d.getUTCHours()) + ":" + two(d.getUTCMinutes());
              return span > 3 * 86400 ? day : span > 86400 ? day + " " + hm : hm;
            });
          },
        },
        {
          label: AXIS[spec.unit] || "",
          labelSize: 20,
          size: 80,
          font: "13px system-ui, sans-serif",
          labelFont: "13px system-ui, sans-serif",
          values: (u, vals) => vals.map((v) => (v == null ? "" : fmt(v))),
        },
      ],
      series: [{ label: "Time", value: (u, v) => (v == null ? "–" : utc(v)) }].concat(
        spec.series.map((s, i) => ({
          label: s.label,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          spanGaps: false,
          points: { show: true, size: 5 },
          value: (u, v) => (v == null ? "–" : fmt(v)),
        })),
      ),
    };
    const { lo, hi, data } = columns(spec);
    host.chartWindow = { lo, hi };
    host.chartSpec = spec;
    const figure = host.closest("figure[id]");
    const key = figure ? figure.id : null;
    // Read before drawing: the new chart's first scale (its whole window) would clear it.
    const zoom = key && zooms.get(key);
    opts.hooks = {
      setScale: [
        (u, scale) => {
          if (scale !== "x" || !key) return;
          const { min, max } = u.scales.x;
          if (min <= host.chartWindow.lo && max >= host.chartWindow.hi) zooms.delete(key);
          else zooms.set(key, { min, max });
        },
      ],
    };
    const plot = new window.uPlot(opts, data, host);
    host.uplot = plot;
    if (zoom) plot.setScale("x", zoom);
    if (window.ResizeObserver) {
      host.resizer = new ResizeObserver(() => {
        const w = Math.max(320, host.clientWidth);
        if (w !== plot.width) plot.setSize({ width: w, height: HEIGHT });
      });
      host.resizer.observe(host);
    }
  }

  // The same series (names and unit) in the same order: the chart can take new data as is.
  function sameSeries(a, b) {
    return a.unit === b.unit && a.series.length === b.series.length &&
      a.series.every((s, i) => s.label === b.series[i].label);
  }

  // A live update brought `next`, the fresh markup of the chart `host` draws. New data goes
  // into the chart already drawn (uPlot's setData), so the zoom, the series hidden from the
  // legend and the hover stay; only new or vanished series draw the chart again (the zoom is
  // kept by figure id). Data that did not change touches nothing.
  function update(host, next) {
    const label = next.getAttribute("aria-label");
    if (label !== null && host.getAttribute("aria-label") !== label) host.setAttribute("aria-label", label);
    const text = next.getAttribute("data-chart");
    if (text === host.getAttribute("data-chart")) return;
    host.setAttribute("data-chart", text);
    const plot = host.uplot;
    // Not drawn yet: the drawing to come reads the new data.
    if (!plot) return;
    const spec = parse(text);
    if (!spec) return;
    if (!sameSeries(host.chartSpec, spec)) {
      plot.destroy();
      if (host.resizer) host.resizer.disconnect();
      host.uplot = null;
      host.replaceChildren();
      delete host.dataset.drawn;
      draw(host);
      return;
    }
    const key = host.closest("figure[id]") ? host.closest("figure[id]").id : null;
    const zoom = key && zooms.get(key);
    const { lo, hi, data } = columns(spec);
    host.chartWindow = { lo, hi };
    host.chartSpec = spec;
    // Scales kept as they are, then set once: to the zoom the operator chose, else to the
    // new window (the y axis fits what is shown either way). Drawn at once, not at the next
    // microtask, so that the values under a resting cursor can follow the new data.
    plot.batch(() => {
      plot.setData(data, false);
      plot.setScale("x", zoom || { min: lo, max: hi });
    });
    if (plot.cursor.left >= 0) plot.setCursor({ left: plot.cursor.left, top: plot.cursor.top });
  }

  // Charts left out of the page (their region was redrawn without them) stop observing it.
  function drop(host) {
    if (host.uplot) host.uplot.destroy();
    if (host.resizer) host.resizer.disconnect();
    host.uplot = null;
  }

  window.LookoutCharts = { update, drop };

  function render(root) {
    const hosts = root.querySelectorAll ? root.querySelectorAll("[data-chart]") : [];
    if (!hosts.length) return;
    loadLibrary().then(() => hosts.forEach(draw), (e) => {
      for (const h of hosts) h.textContent = e.message + "; the data table below has the figures.";
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    render(document);
    // Regions replaced in place by live updates bring new charts with them.
    new MutationObserver((changes) => {
      for (const c of changes) {
        for (const n of c.addedNodes) {
          if (n.nodeType === 1) render(n.matches("[data-chart]") ? n.parentNode : n);
        }
      }
    }).observe(document.body, { childList: true, subtree: true });
  });
})();
