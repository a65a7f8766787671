"""Issue 22, agents part: the agents overview and an agent's page in Debian's headless
Chromium through Playwright, with live updates in place.

Run by tests/ui_agents_browser.rs:  python agents.py
Environment: LOOKOUT_URL, LOOKOUT_PASSWORD, LOOKOUT_ARTIFACTS, LOOKOUT_CHROMIUM, LOOKOUT_DSN
(the project's DSN: a new error is sent with the official Python SDK while a page is open).
Prints one JSON object with what it saw; any failed expectation raises (exit status 1).
"""
import json
import os
import subprocess
import sys
import time

from playwright.sync_api import expect, sync_playwright

from driver import ARGS, BASE, CHROMIUM, shot
from driver import sign_in as login

DSN = os.environ["LOOKOUT_DSN"]


def send_error(agent, message):
    """An error from the official Python SDK, in a process of its own."""
    script = (
        "import sentry_sdk, sys\n"
        "sentry_sdk.init(dsn=sys.argv[1], default_integrations=False,\n"
        "                release=sys.argv[2] + '@2.0.0', environment='paper')\n"
        "sentry_sdk.set_tag('agent_id', sys.argv[2])\n"
        "sentry_sdk.capture_message(sys.argv[3], level='error')\n"
        "sentry_sdk.flush(10)\n"
    )
    subprocess.run([sys.executable, "-c", script, DSN, agent, message], check=True)


def live_check(page, region, text, what):
    """Send an error while the page is open; it must appear in `region` in place."""
    page.evaluate("window.__marker = 'still here'")
    page.evaluate("window.scrollTo(0, 160)")
    before = page.evaluate("window.scrollY")
    send_error("ag_fail", text)
    appeared = True
    try:
        expect(page.locator(region)).to_contain_text(text, timeout=40_000)
    except AssertionError:
        appeared = False
    return {
        "appeared": appeared,
        "navigations": page.evaluate("performance.getEntriesByType('navigation').length"),
        "marker": page.evaluate("window.__marker || null"),
        "scroll_before": before,
        "scroll_after": page.evaluate("window.scrollY"),
        "what": what,
    }


def run(p):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    seen = {}
    try:
        login(page, "/")
        rows = page.locator("#agents tr.agent")
        expect(rows.first).to_be_visible()
        seen["overview"] = {"order": [r.get_attribute("data-agent") for r in rows.all()]}
        for r in rows.all():
            cell = r.locator("td.status-cell")
            expect(cell).to_be_visible()
            seen["overview"][r.get_attribute("data-agent")] = " ".join(cell.inner_text().split())
        expect(page.locator("tr[data-agent=ag_fail] ul.reasons li").first).to_be_visible()
        shot(page, "01-overview")
        page.set_viewport_size({"width": 768, "height": 900})
        shot(page, "02-overview-768")
        page.set_viewport_size({"width": 1400, "height": 500})

        # Live on the overview: ag_fail's open issues count grows in place.
        page.evaluate("window.__marker = 'still here'")
        send_error("ag_fail", "Live overview: margin call on SOL")
        overview_live = True
        try:
            expect(page.locator("tr[data-agent=ag_fail] td.top-issue")).to_contain_text("2 open", timeout=40_000)
        except AssertionError:
            overview_live = False
        nav_overview = page.evaluate("performance.getEntriesByType('navigation').length")
        marker_overview = page.evaluate("window.__marker || null")

        # The agent page, from the overview's link.
        page.set_viewport_size({"width": 1400, "height": 900})
        page.click("tr[data-agent=ag_fail] a.agent-link")
        page.wait_for_url(BASE + "/agents/ag_fail")
        expect(page.locator("#agent-title")).to_have_text("ag_fail")
        seen["agent_page"] = {
            "status": page.inner_text("#agent-status"),
            "reasons": page.locator("#agent-reasons li").all_inner_texts(),
            "timeline": page.locator("#agent-timeline li").all_inner_texts(),
            "issues": page.locator("#agent-issues a.issue-title").all_inner_texts(),
            "decision_marks": page.locator("#agent-decisions .mark").all_inner_texts(),
            "stages": page.locator("#agent-stages tbody tr").all_inner_texts(),
        }
        # The pipeline's charts, drawn by the chart library, each naming the stages.
        charts = {}
        for chart in ("agent-stage-chart", "agent-throughput-chart", "agent-error-rate-chart"):
            expect(page.locator("#%s .uplot canvas" % chart)).to_be_visible()
            charts[chart] = page.locator("#%s .u-legend .u-series .u-label" % chart).all_inner_texts()
        seen["agent_page"]["charts"] = charts
        # Zoom the latency chart, then let a live update refresh the region: the zoom stays.
        scale = ("(() => { const u = document.querySelector('#agent-stage-chart .chart-canvas').uplot;"
                 " return [u.scales.x.min, u.scales.x.max]; })()")
        page.wait_for_function(
            "() => { const h = document.querySelector('#agent-stage-chart .chart-canvas');"
            " return h && h.uplot; }",
            timeout=60000,
        )
        page.evaluate("document.querySelector('#agent-stage-chart .chart-canvas').dataset.before = '1'")
        full = page.evaluate(scale)
        # The mouse acts on what is in the viewport: bring the chart into it first.
        page.locator("#agent-stage-chart .u-over").scroll_into_view_if_needed()
        ob = page.locator("#agent-stage-chart .u-over").bounding_box()
        page.mouse.move(ob["x"] + ob["width"] * 0.3, ob["y"] + ob["height"] * 0.5)
        page.mouse.down()
        page.mouse.move(ob["x"] + ob["width"] * 0.6, ob["y"] + ob["height"] * 0.5, steps=5)
        page.mouse.up()
        zoomed = page.evaluate(scale)
        # The next live update leaves the chart where it is: the same host, still zoomed (a
        # chart whose data changed takes it with setData; tests/ui/live.py checks that).
        last = page.evaluate("document.documentElement.getAttribute('data-live-at')")
        page.wait_for_function(
            "(last) => document.documentElement.getAttribute('data-live-at') !== last",
            arg=last,
            timeout=60000,
        )
        seen["agent_page"]["zoom"] = {
            "full": full, "zoomed": zoomed, "after_live": page.evaluate(scale),
            "same_host": page.evaluate(
                "document.querySelector('#agent-stage-chart .chart-canvas').dataset.before === '1'"),
        }
        shot(page, "03-agent")
        page.set_viewport_size({"width": 768, "height": 900})
        shot(page, "04-agent-768")
        # Short window so the page scrolls; the new error must appear where the operator is.
        page.set_viewport_size({"width": 1400, "height": 500})
        live = live_check(page, "#agent-issues", "Live agent page: stale price feed", "agent page")
        live["overview_appeared"] = overview_live and nav_overview == 1 and marker_overview == "still here"
        seen["live"] = live
        page.set_viewport_size({"width": 1400, "height": 900})
        shot(page, "05-agent-live")
    except Exception:
        shot(page, "failure")
        raise
    finally:
        seen["page_errors"] = errors
        browser.close()
    return seen


if __name__ == "__main__":
    if not os.path.exists(CHROMIUM):
        raise SystemExit("Chromium is missing at %s: run scripts/setup-test-env" % CHROMIUM)
    with sync_playwright() as p:
        out = run(p)
    print(json.dumps(out))
