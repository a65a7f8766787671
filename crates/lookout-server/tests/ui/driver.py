"""Drives the Lookout web UI in Debian's headless Chromium through Playwright.

Run by tests/ui_browser.rs:  python driver.py walk|hostile
Environment: LOOKOUT_URL, LOOKOUT_PASSWORD, LOOKOUT_ARTIFACTS (screenshots), LOOKOUT_CHROMIUM,
and for `hostile` LOOKOUT_PAGES (newline-separated paths to visit).
Prints one JSON object with what it saw; any failed expectation raises (exit status 1).
"""
import json
import os
import sys

from playwright.sync_api import expect, sync_playwright

BASE = os.environ["LOOKOUT_URL"]
PASSWORD = os.environ["LOOKOUT_PASSWORD"]
ARTIFACTS = os.environ["LOOKOUT_ARTIFACTS"]
CHROMIUM = os.environ.get("LOOKOUT_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def shot(page, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, name + ".png"), full_page=True)


def sign_in(page, next_path="/"):
    """Log in as `admin` on the way to `next_path` (every page sends to the login first)."""
    page.goto(BASE + next_path)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(BASE + next_path)


def login(page, next_path="/"):
    page.goto(BASE + next_path)
    # Not logged in: every page sends the operator to the login form first.
    assert "/login" in page.url, page.url
    page.fill("#password", "wrong password!")
    page.click("#login")
    expect(page.locator("#login-error")).to_be_visible()
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(BASE + next_path)


def walk(p):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        return walk_pages(page, browser)
    except Exception:
        shot(page, "failure")
        err = page.locator(".error")
        if err.count():
            sys.stderr.write("page %s shows: %s\n" % (page.url, err.all_inner_texts()))
        raise


def walk_pages(page, browser):
    seen = {}
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    login(page, "/")
    # Agents overview.
    rows = page.locator("#agents tr.agent")
    expect(rows.first).to_be_visible()
    seen["agents"] = {
        r.locator("td").nth(0).inner_text().strip(): r.locator("td").nth(1).inner_text().strip()
        for r in rows.all()
    }
    shot(page, "01-agents")
    # Issues: list → detail → resolve.
    page.click("header nav >> text=Issues")
    expect(page.locator("#issues")).to_be_visible()
    seen["issue_titles"] = page.locator("#issues a.issue-title").all_inner_texts()
    assert page.locator("#issues td.spark svg").count() > 0, "a sparkline per issue"
    page.fill("input[name=asset]", "BTC")
    page.click("#issue-filters button[type=submit]")
    page.wait_for_load_state()
    seen["btc_titles"] = page.locator("#issues a.issue-title").all_inner_texts()
    shot(page, "02-issues")
    page.locator("#issues a.issue-title").first.click()
    expect(page.locator("#issue-title")).to_be_visible()
    seen["detail_title"] = page.inner_text("#issue-title")
    seen["trading_context"] = page.inner_text("#trading-context")
    seen["breadcrumb_marks"] = page.locator("#breadcrumbs .mark").all_inner_texts()
    seen["exception"] = page.locator(".exception h3").all_inner_texts()
    seen["tag_keys"] = page.locator(".tag-key").all_inner_texts()
    shot(page, "03-issue")
    if page.locator("#older-event").count():
        page.click("#older-event")
        expect(page.locator("#newer-event")).to_be_visible()
        seen["navigated_events"] = True
        page.click("#newer-event")
    page.click("#resolve")
    expect(page.locator("#issue-status")).to_have_text("resolved")
    seen["resolved_url"] = page.url
    shot(page, "04-resolved")
    # Performance: a chart with data, then a trace waterfall.
    page.click("header nav >> text=Performance")
    host = page.locator("#stage-chart .chart-canvas")
    expect(page.locator("#stage-chart .uplot canvas")).to_be_visible()
    box = host.bounding_box()
    main_box = page.locator("main").bounding_box()
    legend = page.locator("#stage-chart .u-legend .u-series")
    scale = "(() => { const u = document.querySelector('#stage-chart .chart-canvas').uplot; return [u.scales.x.min, u.scales.x.max]; })()"
    before = page.evaluate(scale)
    # Hover: the legend shows the values under the cursor.
    over = page.locator("#stage-chart .u-over")
    ob = over.bounding_box()
    page.mouse.move(ob["x"] + ob["width"] * 0.5, ob["y"] + ob["height"] * 0.5)
    hover_values = page.locator("#stage-chart .u-legend .u-value").all_inner_texts()
    # Zoom: drag across the middle third.
    page.mouse.move(ob["x"] + ob["width"] * 0.3, ob["y"] + ob["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(ob["x"] + ob["width"] * 0.6, ob["y"] + ob["height"] * 0.5, steps=5)
    page.mouse.up()
    zoomed = page.evaluate(scale)
    # Toggle: a click on a legend entry hides its series.
    risk = legend.filter(has_text="risk.check").first
    risk.click()
    risk_off = "u-off" in (risk.get_attribute("class") or "")
    shot(page, "05-performance")
    seen["chart"] = {
        "width": box["width"], "main_width": main_box["width"], "height": box["height"],
        "legend": page.locator("#stage-chart .u-legend .u-series .u-label").all_inner_texts(),
        "hover_values": hover_values,
        "x_before": before, "x_zoomed": zoomed,
        "risk_off": risk_off,
        "aria": host.get_attribute("aria-label"),
        "y_ticks": page.locator("#stage-chart .chart-canvas").evaluate("h => h.uplot.axes[1].values ? 'fn' : 'none'"),
        "others": [page.locator(sel + " .uplot canvas").count() for sel in ("#throughput-chart", "#error-rate-chart")],
        "table_rows": page.locator("#stage-chart details.chart-data tbody tr").count(),
    }
    seen["transactions"] = page.locator("#transactions tbody tr").all_inner_texts()
    shot(page, "05-performance")
    page.locator("#recent-transactions a.trace-link").first.click()
    expect(page.locator("#waterfall")).to_be_visible()
    seen["waterfall_ops"] = page.locator("#waterfall .span-row .op").all_inner_texts()
    bars = page.locator("#waterfall .span-bar")
    seen["waterfall_bar_widths"] = [b.bounding_box()["width"] for b in bars.all()]
    shot(page, "06-trace")
    # Releases and crons.
    page.click("header nav >> text=Releases")
    seen["releases"] = page.locator("#releases tbody tr td:first-child").all_inner_texts()
    shot(page, "07-releases")
    page.click("header nav >> text=Crons")
    seen["monitors"] = page.locator("#monitors tbody tr td:first-child code").all_inner_texts()
    seen["check_in_dots"] = page.locator("#monitors .dot").count()
    shot(page, "08-crons")
    # Alerts: create a rule from the page.
    page.click("header nav >> text=Alerts")
    seen["rules_before"] = page.locator("#rules tr.rule td:first-child a").all_inner_texts()
    page.click("#new-rule")
    page.fill("#rule-name", "BTC pipeline p95 over 1.5 s")
    page.fill("#aggregate", "p95(transaction.duration)")
    page.fill("#query", "transaction.op:order.pipeline")
    page.select_option("#time-window", "10")
    page.fill("#threshold", "1500")
    page.click("#save-rule")
    page.wait_for_url(BASE + "/alerts")
    seen["rules_after"] = page.locator("#rules tr.rule td:first-child a").all_inner_texts()
    shot(page, "09-alerts")
    # Edit it: the form comes back filled in; a new threshold is saved.
    page.click("#rules >> text=BTC pipeline p95 over 1.5 s")
    seen["edit_prefilled"] = {
        "name": page.input_value("#rule-name"),
        "aggregate": page.input_value("#aggregate"),
        "threshold": page.input_value("#threshold"),
    }
    page.fill("#threshold", "1800")
    page.click("#save-rule")
    page.wait_for_url(BASE + "/alerts")
    # A preset is edited the same way.
    page.click("#rules >> text=Error rate spike")
    seen["preset_aggregate"] = page.input_value("#aggregate")
    page.goto(BASE + "/alerts")
    # A bad value comes back with the reason, not a crash.
    page.click("#new-rule")
    page.fill("#rule-name", "broken")
    page.fill("#aggregate", "p95(transaction.duration)")
    page.fill("#threshold", "1")
    page.select_option("#time-window", "10")
    page.fill("#aggregate", "nonsense(")
    page.click("#save-rule")
    expect(page.locator("#form-error")).to_be_visible()
    seen["form_error"] = page.inner_text("#form-error")
    # Settings: a token shown once.
    page.click("header nav >> text=Settings")
    page.fill("#token-name", "ci")
    page.check("input[value='event:read']")
    page.click("#create-token")
    expect(page.locator("#new-token")).to_be_visible()
    seen["token"] = page.inner_text("#new-token code.token")
    # Log out: the pages are closed again.
    page.click("form.logout button")
    page.wait_for_url("**/login")
    page.goto(BASE + "/issues")
    seen["after_logout"] = page.url
    seen["page_errors"] = errors
    browser.close()
    return seen


HOSTILE_DOM = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      if (a.name.startsWith('on')) bad.push(el.tagName + '[' + a.name + ']');
      if ((a.name === 'href' || a.name === 'src' || a.name === 'action') && /^\\s*javascript:/i.test(a.value)) bad.push(el.tagName + '[' + a.name + '=javascript:]');
    }
  }
  for (const s of document.querySelectorAll('script')) {
    // Only the UI's own scripts, from this server.
    const own = ['/ui/app.js', '/ui/charts.js', '/ui/vendor/uplot.js'].map((p) => location.origin + p);
    if (!s.src || !own.includes(s.src)) bad.push('script ' + (s.src || 'inline'));
  }
  for (const el of document.querySelectorAll('iframe, object, embed, base, meta[http-equiv=refresh], form[action^="http"]')) bad.push(el.tagName);
  return {bad, pwned: window.__pwned === true, h1: (document.querySelector('h1') || {}).innerText || null};
}"""


def hostile(p):
    pages = [x for x in os.environ["LOOKOUT_PAGES"].split("\n") if x]
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    dialogs, errors, results = [], [], {}
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    login(page, "/")
    for i, path in enumerate(pages):
        resp = page.goto(BASE + path)
        page.wait_for_load_state("load")
        state = page.evaluate(HOSTILE_DOM)
        html = page.content()
        results[path] = {
            "status": resp.status if resp else None,
            "bad": state["bad"],
            "pwned": state["pwned"],
            "h1": state["h1"],
            "escaped_script_text": "&lt;script" in html,
            "bytes": len(html),
        }
        shot(page, "hostile-%02d" % i)
    results["_dialogs"] = dialogs
    results["_page_errors"] = errors
    browser.close()
    return results


def lockout(p):
    """Guess passwords as an attacker would through the login form, then log in as the
    owner once the lock's delay has passed."""
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    out = {"guesses": []}
    page.goto(BASE + "/login")
    for n in range(6):
        page.fill("#password", "guess-%d" % n)
        with page.expect_navigation() as nav:
            page.click("#login")
        resp = nav.value
        locked = page.locator("#login-locked")
        out["guesses"].append({
            "status": resp.status if resp else None,
            "retry_after": resp.headers.get("retry-after") if resp else None,
            "wrong": page.locator("#login-error").count() > 0,
            "locked": locked.inner_text() if locked.count() else None,
        })
    shot(page, "locked")
    # At once, the owner's right password, posted as the form posts it: refused too.
    right = page.request.post(BASE + "/login", form={"username": "admin", "password": PASSWORD, "next": "/"},
                              max_redirects=0)
    out["owner_during_lock"] = right.status
    page.click("text=Back to the login")
    # Then through the form: refused while the lock lasts, let through once it is over
    # (each refused attempt is answered at once; the lock's own delay is what is waited for).
    attempts = []
    for _ in range(100):
        page.fill("#password", PASSWORD)
        with page.expect_navigation() as nav:
            page.click("#login")
        resp = nav.value
        attempts.append(resp.status if resp else None)
        if "/login" not in page.url:
            break
        wait = int(resp.headers.get("retry-after", "1")) if resp else 1
        page.click("text=Back to the login")
        page.wait_for_timeout(min(wait, 5) * 250)
    out["owner_attempts"] = attempts
    out["final_url"] = page.url
    out["logged_in"] = page.locator("header nav").count() > 0
    shot(page, "after-lock")
    browser.close()
    return out


if __name__ == "__main__":
    mode = sys.argv[1]
    if not os.path.exists(CHROMIUM):
        raise SystemExit("Chromium is missing at %s: run scripts/setup-test-env (Debian: apt-get install chromium)" % CHROMIUM)
    with sync_playwright() as p:
        out = {"walk": walk, "hostile": hostile, "lockout": lockout}[mode](p)
    print(json.dumps(out))
