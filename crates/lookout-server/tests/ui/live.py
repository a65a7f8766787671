"""Pages that update in place (issue 22, point 6), in Debian's headless Chromium through
Playwright: performance (its charts take new data without being drawn again), the issues
list and an issue's header, a release, the crons list and a monitor, the alerts list and an
incident. For each, data is sent with the official Python SDK (or a webhook delivery is let
through) while the page is open, and the page must show it without a navigation, keeping the
scroll position, the focus and what was typed in a form field, open <details>, and a chart's
zoom, hidden series and hover.

Run by tests/ui_live_browser.rs:  python live.py
Environment: LOOKOUT_URL, LOOKOUT_PASSWORD, LOOKOUT_ARTIFACTS, LOOKOUT_CHROMIUM, LOOKOUT_DSN
(the project's DSN), LOOKOUT_RELEASE (the release the Rust side fed), LOOKOUT_MONITOR (its
monitor's slug) and LOOKOUT_GATE (POST there and the webhook receiver, which answers 503
until then, accepts deliveries).
Prints one JSON object with what it saw; a failed expectation raises (exit status 1).

Synchronisation is on the page's own refreshes: `app.js` stamps `data-live-at` on <html> after
each one; a check waits for a stamp newer than the one before the data was sent that shows
the new data. Nothing waits on a clock. The refresh period is lowered to one second before
the pages load (`window.lookoutLiveEveryMs`); the pages themselves ask for 10 s.
"""
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request

from playwright.sync_api import expect, sync_playwright

from driver import ARGS, BASE, CHROMIUM, shot, sign_in

DSN = os.environ["LOOKOUT_DSN"]
RELEASE = os.environ["LOOKOUT_RELEASE"]
MONITOR = os.environ["LOOKOUT_MONITOR"]
GATE = os.environ["LOOKOUT_GATE"]
STAGES = ["signal.validate", "risk.check", "order.size", "http.client", "order.confirm"]
# How long a check waits for the page to show new data: the digest and a refresh or two.
LIVE_TIMEOUT = 60_000


def sdk(body, *args):
    """Run `body` with the official Python SDK initialised on the project (release RELEASE),
    in a process of its own, then flush; `argv[1:]` are `args`."""
    script = (
        "import sys, time, sentry_sdk\n"
        "sentry_sdk.init(dsn=%r, release=%r, environment='paper', traces_sample_rate=1.0,\n"
        "                default_integrations=False)\n" % (DSN, RELEASE)
        + body
        + "\nsentry_sdk.flush(10)\n"
    )
    subprocess.run([sys.executable, "-c", script, *args], check=True)


def send_message(text):
    sdk("sentry_sdk.capture_message(sys.argv[1], level='error')", text)


def send_pipelines(n, stage_ms):
    """`n` order pipelines, each stage taking about `stage_ms`."""
    sdk(
        "for _ in range(int(sys.argv[1])):\n"
        "    with sentry_sdk.start_transaction(op='order.pipeline', name='Order Pipeline: BTC buy'):\n"
        "        for op in %r:\n"
        "            with sentry_sdk.start_span(op=op, name=op):\n"
        "                time.sleep(float(sys.argv[2]) / 1000)\n" % (STAGES,),
        str(n), str(stage_ms),
    )


def send_check_in(status):
    sdk(
        "from sentry_sdk.crons import capture_checkin\n"
        "capture_checkin(monitor_slug=sys.argv[1], status=sys.argv[2])",
        MONITOR, status,
    )


def send_margin_call():
    """A new InsufficientMargin issue: the "Critical trade failure" preset fires on it."""
    sdk(
        "class InsufficientMargin(Exception):\n"
        "    pass\n"
        "try:\n"
        "    raise InsufficientMargin('live: margin below maintenance on SOL')\n"
        "except InsufficientMargin:\n"
        "    sentry_sdk.capture_exception()\n"
    )


def stamp(page):
    return page.evaluate("document.documentElement.getAttribute('data-live-at')")


def after_refresh(page, last, condition, arg=None):
    """Wait until a refresh newer than stamp `last` has run and `condition` (a JS function of
    `arg`) holds on the page."""
    page.wait_for_function(
        "([last, arg]) => document.documentElement.getAttribute('data-live-at') !== last"
        " && (%s)(arg)" % condition,
        arg=[last, arg],
        timeout=LIVE_TIMEOUT,
    )


def mark(page):
    """What must survive an update: no navigation, so the page's own script state."""
    page.evaluate("window.__marker = 'still here'")


def kept(page, before_scroll):
    return {
        "navigations": page.evaluate("performance.getEntriesByType('navigation').length"),
        "marker": page.evaluate("window.__marker || null"),
        "scroll_before": before_scroll,
        "scroll_after": page.evaluate("window.scrollY"),
    }


def scroll_some(page):
    """A short window, scrolled half way down the page: the update must not move it."""
    for height in (300, 240, 180, 140):
        page.set_viewport_size({"width": 1400, "height": height})
        if page.evaluate("document.documentElement.scrollHeight - window.innerHeight > 40"):
            break
    return scroll_to(page, page.evaluate(
        "Math.floor((document.documentElement.scrollHeight - window.innerHeight) / 2)"))


def scroll_to(page, y):
    """Scroll the window to `y` (the page must be taller than the viewport)."""
    page.evaluate("(y) => window.scrollTo(0, y)", y)
    return page.evaluate("window.scrollY")


def performance(page):
    """The stage charts take new data by setData: the same chart, its zoom, hidden series
    and hover kept; the transactions table grows; the filter form and the chart's data table
    are left as the operator left them."""
    page.goto(BASE + "/performance")
    host_sel = "#stage-chart .chart-canvas"
    expect(page.locator("#stage-chart .uplot canvas")).to_be_visible()
    counts = page.locator("#transactions tbody tr td.num").first
    count_before = int(counts.inner_text())
    mark(page)
    # The chart's data table, opened; risk.check hidden from the legend.
    page.locator("#stage-chart details.chart-data summary").click()
    risk = page.locator("#stage-chart .u-legend .u-series", has_text="risk.check").first
    risk.click()
    # Zoom by a drag across the middle of the latency chart, the page scrolled a little.
    scroll_to(page, 150)
    over = page.locator("#stage-chart .u-over")
    over.scroll_into_view_if_needed()
    ob = over.bounding_box()
    page.mouse.move(ob["x"] + ob["width"] * 0.2, ob["y"] + ob["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(ob["x"] + ob["width"] * 0.8, ob["y"] + ob["height"] * 0.5, steps=5)
    page.mouse.up()
    scale = "(h) => [h.uplot.scales.x.min, h.uplot.scales.x.max]"
    full = page.locator(host_sel).evaluate(
        "(h) => [h.uplot.data[0][0], h.uplot.data[0][h.uplot.data[0].length - 1]]")
    zoomed = page.locator(host_sel).evaluate(scale)
    # Rest the cursor on the chart: the legend shows the values under it.
    page.mouse.move(ob["x"] + ob["width"] * 0.5, ob["y"] + ob["height"] * 0.4)
    # The window's menu, chosen by keyboard and not submitted.
    page.evaluate("document.querySelector('select[name=period]').focus({preventScroll: true})")
    page.keyboard.press("ArrowDown")
    chosen = page.eval_on_selector("select[name=period]", "s => s.value")
    page.locator(host_sel).evaluate(
        "(h) => { window.__plot = h.uplot; window.__data = JSON.stringify(h.uplot.data);"
        " window.__canvas = h.querySelector('canvas'); }")
    before_scroll = page.evaluate("window.scrollY")
    last = stamp(page)
    # Slower pipelines than the first ones: new latencies and counts.
    send_pipelines(2, 40)
    after_refresh(
        page, last,
        "(n) => { const h = document.querySelector('%s');"
        " const c = document.querySelector('#transactions tbody tr td.num');"
        " return h && h.uplot && JSON.stringify(h.uplot.data) !== window.__data"
        " && c && Number(c.textContent) === n; }" % host_sel,
        count_before + 2,
    )
    state = page.locator(host_sel).evaluate(
        "(h) => ({"
        " same_plot: h.uplot === window.__plot,"
        " same_canvas: h.querySelector('canvas') === window.__canvas,"
        " plots: document.querySelectorAll('#stage-chart .uplot').length,"
        " scale: [h.uplot.scales.x.min, h.uplot.scales.x.max],"
        " hidden: h.uplot.series.filter((s) => s.show === false).map((s) => s.label),"
        " hovering: h.uplot.cursor.left >= 0,"
        " details_open: document.querySelector('#stage-chart details.chart-data').open,"
        " focus: document.activeElement && document.activeElement.name,"
        " period: document.querySelector('select[name=period]').value,"
        " })")
    out = kept(page, before_scroll)
    out.update(state)
    out.update({
        "full": full, "zoomed": zoomed, "chosen": chosen,
        "count_before": count_before,
        "count_after": int(counts.inner_text()),
        "risk_off_class": "u-off" in (risk.get_attribute("class") or ""),
    })
    shot(page, "01-performance-live")
    return out


def issues(page):
    """The issues list takes a new issue while the search box keeps what is being typed."""
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(BASE + "/issues")
    expect(page.locator("#issues")).to_be_visible()
    mark(page)
    box = page.locator("#issue-filters input[name=query]")
    box.click()
    page.keyboard.type("stale pri")
    before_scroll = scroll_some(page)
    last = stamp(page)
    send_message("Live: order book desync")
    after_refresh(page, last, "(t) => document.querySelector('#issues').textContent.includes(t)",
                  "Live: order book desync")
    out = kept(page, before_scroll)
    out.update(page.evaluate(
        "() => ({ typed: document.querySelector('#issue-filters input[name=query]').value,"
        " focus: document.activeElement && document.activeElement.name })"))
    shot(page, "02-issues-live")
    return out


def issue(page):
    """An issue's header counts a new event; the focused Resolve button keeps the focus."""
    page.goto(BASE + "/issues")
    page.locator("#issues a.issue-title", has_text="Live: stale price feed").click()
    expect(page.locator("#issue-title")).to_have_text("Live: stale price feed")
    mark(page)
    page.evaluate("document.getElementById('resolve').focus()")
    counts_before = page.inner_text("#issue-counts")
    before_scroll = scroll_some(page)
    last = stamp(page)
    send_message("Live: stale price feed")
    after_refresh(page, last,
                  "(b) => document.querySelector('#issue-counts').textContent !== b", counts_before)
    out = kept(page, before_scroll)
    out.update({
        "counts_before": counts_before,
        "counts_after": page.inner_text("#issue-counts"),
        "focus": page.evaluate("document.activeElement && document.activeElement.id"),
    })
    shot(page, "03-issue-live")
    return out


def release(page):
    """A release's new issues take one first seen in it while the page is scrolled."""
    page.set_viewport_size({"width": 1400, "height": 420})
    page.goto(BASE + "/releases/" + urllib.parse.quote(RELEASE, safe=""))
    expect(page.locator("#release-title")).to_be_visible()
    mark(page)
    before_scroll = scroll_to(page, 200)
    last = stamp(page)
    send_message("Live: release regression")
    after_refresh(page, last,
                  "(t) => document.querySelector('#release-issues-live').textContent.includes(t)",
                  "Live: release regression")
    out = kept(page, before_scroll)
    out["new_issues"] = page.locator("#new-issues a.issue-title").all_inner_texts()
    page.set_viewport_size({"width": 1400, "height": 900})
    shot(page, "04-release-live")
    return out


def crons(page):
    """The crons list and a monitor's page take a check-in each."""
    page.goto(BASE + "/crons")
    expect(page.locator("#monitors")).to_be_visible()
    mark(page)
    dots = "#monitors .dot"
    dots_before = page.locator(dots).count()
    before_scroll = scroll_some(page)
    last = stamp(page)
    send_check_in("ok")
    after_refresh(page, last, "(n) => document.querySelectorAll('%s').length > n" % dots, dots_before)
    listed = kept(page, before_scroll)
    listed.update({"dots_before": dots_before, "dots_after": page.locator(dots).count()})
    shot(page, "05-crons-live")

    page.locator("#monitors a.monitor-link").first.click()
    expect(page.locator("#monitor-title")).to_be_visible()
    mark(page)
    rows = "#check-ins tbody tr"
    rows_before = page.locator(rows).count()
    before_scroll = scroll_some(page)
    last = stamp(page)
    send_check_in("error")
    after_refresh(page, last, "(n) => document.querySelectorAll('%s').length > n" % rows, rows_before)
    monitor = kept(page, before_scroll)
    monitor.update({
        "rows_before": rows_before,
        "rows_after": page.locator(rows).count(),
        "newest": page.locator(rows).first.inner_text(),
        "environment": page.inner_text("#monitor-environments"),
    })
    shot(page, "06-monitor-live")
    return {"list": listed, "monitor": monitor}


def alerts(page):
    """An alert fires while the alerts page is open; on its incident's page, its delivery
    goes from pending to delivered once the receiver accepts it."""
    page.goto(BASE + "/alerts")
    mark(page)
    before_scroll = scroll_some(page)
    last = stamp(page)
    send_margin_call()
    after_refresh(page, last,
                  "(t) => document.querySelector('#incidents-live').textContent.includes(t)",
                  "Critical trade failure")
    listed = kept(page, before_scroll)
    listed["deliveries"] = page.locator("#deliveries tr.delivery").count()
    shot(page, "07-alerts-live")

    page.locator("#incidents a[href^='/alerts/incidents/']", has_text="Critical trade failure").first.click()
    expect(page.locator("#incident-title")).to_be_visible()
    mark(page)
    pending = page.inner_text("#incident-deliveries-live")
    before_scroll = scroll_some(page)
    last = stamp(page)
    urllib.request.urlopen(urllib.request.Request(GATE, data=b"", method="POST"), timeout=10).read()
    after_refresh(page, last,
                  "() => document.querySelector('#incident-deliveries-live').textContent.includes('delivered')")
    incident = kept(page, before_scroll)
    incident.update({"before": pending, "after": page.inner_text("#incident-deliveries-live")})
    shot(page, "08-incident-live")
    return {"list": listed, "incident": incident}


def main():
    if not os.path.exists(CHROMIUM):
        raise SystemExit("Chromium is missing at %s: run scripts/setup-test-env" % CHROMIUM)
    seen = {}
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        # Refresh every second rather than every 10 s, so the test does not wait.
        context.add_init_script("window.lookoutLiveEveryMs = 1000;")
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            sign_in(page, "/performance")
            seen["performance"] = performance(page)
            seen["issues"] = issues(page)
            seen["issue"] = issue(page)
            seen["release"] = release(page)
            seen["crons"] = crons(page)
            seen["alerts"] = alerts(page)
        except Exception:
            shot(page, "failure")
            sys.stderr.write("failed on %s\n" % page.url)
            raise
        finally:
            seen["page_errors"] = errors
            browser.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
