"""Drives the object pages of the Lookout web UI (issue page cause first, trace waterfall,
release and monitor pages, 404s in the layout) in headless Chromium through Playwright.

Run by tests/ui_objects.rs:  python objects.py
Environment: LOOKOUT_URL, LOOKOUT_PASSWORD, LOOKOUT_ARTIFACTS, LOOKOUT_CHROMIUM, and
LOOKOUT_ISSUE (path of the issue with the stack trace), LOOKOUT_RELEASE (its release),
LOOKOUT_MONITOR (a monitor slug).
Prints one JSON object with what it saw; a failed expectation raises (exit status 1).
"""
import json
import os
import sys

from playwright.sync_api import expect, sync_playwright

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from driver import ARGS, BASE, CHROMIUM, login, shot  # noqa: E402

ARTIFACTS = os.environ["LOOKOUT_ARTIFACTS"]
ISSUE = os.environ["LOOKOUT_ISSUE"]
RELEASE = os.environ["LOOKOUT_RELEASE"]
MONITOR = os.environ["LOOKOUT_MONITOR"]


def view(page, name):
    """A screenshot of what the viewport shows (no scrolling): the fold."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, name + ".png"), full_page=False)


def bottom(locator):
    box = locator.bounding_box()
    return box["y"] + box["height"]


def issue_page(page, seen):
    page.goto(BASE + ISSUE)
    expect(page.locator("#issue-title")).to_be_visible()
    view(page, "10-issue-fold-1400")
    shot(page, "11-issue-full-1400")
    exc = page.locator("#exception-0")
    seen["exception"] = exc.locator("h3").inner_text()
    app_frames = exc.locator("li.frame.in-app")
    seen["app_frames"] = app_frames.all_inner_texts()
    seen["app_frames_visible"] = all(f.is_visible() for f in app_frames.all())
    lib = exc.locator("details.lib-frames")
    seen["lib_runs"] = lib.count()
    seen["lib_open"] = [d.evaluate("d => d.open") for d in lib.all()]
    seen["lib_frames_visible_before"] = sum(1 for f in exc.locator("details.lib-frames li.frame").all() if f.is_visible())
    seen["lib_summaries"] = lib.locator("summary").all_inner_texts()
    # The cause above the fold at 1400x900: the exception and its first in-app frame.
    seen["fold"] = {
        "exception_bottom": bottom(exc.locator("h3")),
        "first_app_frame_bottom": bottom(app_frames.first),
        "failing_summary_bottom": bottom(page.locator("#failing-summary")),
    }
    lib.first.locator("summary").click()
    seen["lib_frames_visible_after"] = sum(1 for f in lib.first.locator("li.frame").all() if f.is_visible())
    # Breadcrumbs: newest first, 20 shown, the rest one click away.
    shown = page.locator("#breadcrumbs > li.crumb")
    seen["crumbs_shown"] = shown.count()
    seen["first_crumb"] = shown.first.inner_text()
    seen["second_crumb"] = shown.nth(1).inner_text()
    older = page.locator("#older-breadcrumbs li.crumb")
    seen["older_total"] = older.count()
    seen["older_visible_before"] = sum(1 for c in older.all()[:5] if c.is_visible())
    page.click("#show-older-breadcrumbs")
    seen["older_visible_after"] = sum(1 for c in older.all() if c.is_visible())
    seen["last_crumb"] = older.last.inner_text()
    failing = page.locator("#failing-call")
    seen["failing_call"] = failing.inner_text()
    seen["failing_calls"] = page.locator("li.failing-call").count()
    seen["failing_summary"] = page.inner_text("#failing-summary")
    seen["trading"] = {
        d.locator("dt").inner_text(): d.locator("dd").inner_text()
        for d in page.locator("#trading-context dl.trading-grid > div").all()
    }
    seen["categories"] = page.locator("#crumb-category option").all_inner_texts()
    # Category filter: choosing one applies at once (app.js submits the form).
    page.select_option("#crumb-category", "http")
    page.wait_for_url("**crumbs=http**")
    expect(page.locator("#crumb-category")).to_have_value("http")
    visible = [c for c in page.locator("li.crumb").all() if c.is_visible()]
    seen["filtered_categories"] = sorted({c.get_attribute("data-category") for c in page.locator("li.crumb").all()})
    seen["filtered_visible"] = len(visible)
    seen["filtered_failing"] = page.locator("#breadcrumbs li.failing-call").count()
    # 768 px wide.
    page.set_viewport_size({"width": 768, "height": 900})
    page.goto(BASE + ISSUE)
    seen["issue_768_overflow"] = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    view(page, "12-issue-fold-768")
    shot(page, "13-issue-full-768")
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(BASE + ISSUE)
    # The trace, from the issue.
    page.click("#trace-link")
    expect(page.locator("#waterfall")).to_be_visible()
    rows = page.locator("#waterfall .span-row:not(.ruler):not(.errors-row)")
    seen["waterfall_ops"] = rows.locator(".op").all_inner_texts()
    seen["waterfall_status"] = rows.locator(".span-status").all_inner_texts()
    seen["waterfall_lefts"] = [r.locator(".span-bar").bounding_box()["x"] for r in rows.all()]
    seen["ruler_ticks"] = page.locator("#waterfall .ruler .tick").all_inner_texts()
    seen["trace_errors"] = page.locator("#trace-errors a.trace-error").all_inner_texts()
    seen["error_marks"] = page.locator("#waterfall a.error-mark").count()
    shot(page, "14-trace-1400")
    page.set_viewport_size({"width": 768, "height": 900})
    shot(page, "15-trace-768")
    seen["trace_768_overflow"] = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    page.set_viewport_size({"width": 1400, "height": 900})
    page.locator("#trace-errors a.trace-error").first.click()
    expect(page.locator("#issue-title")).to_be_visible()
    seen["error_link_lands_on"] = page.url


def issues_list(page, seen):
    page.goto(BASE + "/issues")
    expect(page.locator("#issues")).to_be_visible()
    seen["list"] = [
        {
            "title": r.locator("a.issue-title").inner_text(),
            "chips": r.locator(".chip").all_inner_texts(),
        }
        for r in page.locator("#issues tr.issue").all()
    ]
    shot(page, "20-issues")


def performance(page, seen):
    page.goto(BASE + "/performance")
    link = page.locator("#transactions a.transaction-link").first
    seen["perf_transaction"] = link.inner_text()
    link.click()
    page.wait_for_url("**transaction=**")
    seen["perf_recent_title"] = page.inner_text("#recent-title")
    seen["perf_recent_names"] = page.locator("#recent-transactions tbody tr td:first-child").all_inner_texts()
    page.locator("#recent-transactions tbody tr td:first-child a").first.click()
    expect(page.locator("#waterfall")).to_be_visible()
    seen["perf_trace_ops"] = page.locator("#waterfall .span-row:not(.ruler):not(.errors-row) .op").all_inner_texts()


def release(page, seen):
    page.goto(BASE + "/releases")
    row = page.locator("#releases tbody tr", has=page.locator("a.release-link", has_text=RELEASE))
    seen["release_row"] = [c.inner_text() for c in row.locator("td").all()]
    page.locator("#releases a.release-link", has_text=RELEASE).click()
    expect(page.locator("#release-title")).to_be_visible()
    seen["release_url"] = page.url
    seen["release_title"] = page.inner_text("#release-title")
    seen["deploys"] = page.locator("#deploys tbody tr").all_inner_texts()
    seen["new_issues"] = page.locator("#new-issues a.issue-title").all_inner_texts()
    seen["crash_free"] = page.inner_text("#crash-free-sessions")
    seen["adoption"] = page.inner_text("#adoption")
    shot(page, "30-release-1400")
    page.set_viewport_size({"width": 768, "height": 900})
    shot(page, "31-release-768")
    seen["release_768_overflow"] = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    page.set_viewport_size({"width": 1400, "height": 900})
    # The issue page links its release here.
    page.goto(BASE + ISSUE)
    page.locator(".issue-meta a.release-link").click()
    expect(page.locator("#release-title")).to_be_visible()
    seen["release_from_issue"] = page.url


def monitor(page, seen):
    page.goto(BASE + "/crons")
    page.locator("#monitors a.monitor-link").first.click()
    expect(page.locator("#monitor-title")).to_be_visible()
    seen["monitor_url"] = page.url
    seen["monitor_schedule"] = page.inner_text("#monitor-schedule")
    seen["check_ins"] = [
        [c.inner_text() for c in r.locator("td").all()]
        for r in page.locator("#check-ins tbody tr").all()
    ]
    shot(page, "40-monitor-1400")
    page.set_viewport_size({"width": 768, "height": 900})
    shot(page, "41-monitor-768")
    seen["monitor_768_overflow"] = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    page.set_viewport_size({"width": 1400, "height": 900})


def seen_release(page, seen):
    """A release named only by events (never created through the API) has a page too."""
    resp = page.goto(BASE + "/releases/vol-arb%402.0.0")
    seen["seen_release"] = {
        "status": resp.status,
        "title": page.inner_text("#release-title"),
        "head": page.inner_text(".page-head .muted"),
        "new_issues": page.locator("#new-issues a.issue-title").count(),
        "deploys": page.locator("#deploys").count(),
    }


def missing(page, seen):
    out = {}
    for path in ["/releases/no-such-release", "/crons/no-such-monitor",
                 "/performance/traces/0123456789abcdef0123456789abcdef", "/issues/abc", "/issues/99999999"]:
        resp = page.goto(BASE + path)
        out[path] = {
            "status": resp.status,
            "heading": page.inner_text("h1") if page.locator("h1").count() else None,
            "nav": page.locator("header.top nav a").count(),
        }
    shot(page, "50-not-found")
    seen["missing"] = out


def main():
    seen = {}
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            login(page, "/")
            issue_page(page, seen)
            issues_list(page, seen)
            performance(page, seen)
            release(page, seen)
            monitor(page, seen)
            seen_release(page, seen)
            missing(page, seen)
        except Exception:
            shot(page, "failure")
            sys.stderr.write("failed on %s\n" % page.url)
            raise
        seen["page_errors"] = errors
        browser.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
