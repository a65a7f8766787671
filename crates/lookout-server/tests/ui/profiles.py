"""Drives the profile views of the Lookout web UI in headless Chromium through Playwright: the
aggregated flame graph of a transaction with its top functions, zoom by click, the stage
filter, and the trace page's per-span profiles.

Run by tests/ui_profiles_browser.rs:  python profiles.py
Environment: LOOKOUT_URL, LOOKOUT_PASSWORD, LOOKOUT_ARTIFACTS, LOOKOUT_CHROMIUM, and
LOOKOUT_TRANSACTION (the profiled transaction's name), LOOKOUT_TRACE (its trace page path),
LOOKOUT_FUNCTION (the CPU-bound function's name).
Prints one JSON object with what it saw; a failed expectation raises (exit status 1).
"""
import json
import os
import sys
import urllib.parse

from playwright.sync_api import expect, sync_playwright

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from driver import ARGS, BASE, CHROMIUM, shot, sign_in  # noqa: E402

TRANSACTION = os.environ["LOOKOUT_TRANSACTION"]
TRACE = os.environ["LOOKOUT_TRACE"]
FUNCTION = os.environ["LOOKOUT_FUNCTION"]


def width(locator):
    return locator.bounding_box()["width"]


def run(page):
    seen = {}
    q = urllib.parse.urlencode({"period": "1h", "transaction": TRANSACTION})
    sign_in(page, "/performance?" + q)
    graph = page.locator("#transaction-flame")
    expect(graph).to_be_visible()
    shot(page, "10-transaction-flame")
    frames = graph.locator(".flame-frame")
    seen["frames"] = frames.count()
    hot = graph.locator(".flame-frame", has_text=FUNCTION).first
    expect(hot).to_be_visible()
    seen["hot_title"] = hot.get_attribute("title")
    canvas_w = width(graph.locator(".flame-canvas"))
    seen["hot_share_before"] = width(hot) / canvas_w
    seen["top_functions"] = page.locator("#top-functions tbody tr td:first-child").all_inner_texts()
    # Zoom: the function's frame fills the graph; a frame outside it is hidden; reset undoes.
    hot.click()
    expect(graph.locator(".flame-reset")).to_be_visible()
    seen["hot_share_zoomed"] = width(hot) / canvas_w
    seen["hidden_after_zoom"] = graph.locator(".flame-frame[hidden]").count()
    shot(page, "11-transaction-flame-zoomed")
    graph.locator(".flame-reset").click()
    expect(graph.locator(".flame-reset")).to_be_hidden()
    seen["hot_share_reset"] = width(hot) / canvas_w
    seen["hidden_after_reset"] = graph.locator(".flame-frame[hidden]").count()

    # Only the samples inside risk.check spans.
    page.select_option("select[name=op]", "risk.check")
    page.locator("select[name=op]").locator("xpath=ancestor::form").locator("button[type=submit]").click()
    page.wait_for_url("**op=risk.check**")
    graph = page.locator("#transaction-flame")
    expect(graph).to_be_visible()
    seen["risk_frames_with_function"] = graph.locator(".flame-frame", has_text=FUNCTION).count()
    seen["risk_top_functions"] = page.locator("#top-functions tbody tr td:first-child").all_inner_texts()
    # signal.validate only sleeps: the function is not in it.
    page.select_option("select[name=op]", "signal.validate")
    page.locator("select[name=op]").locator("xpath=ancestor::form").locator("button[type=submit]").click()
    page.wait_for_url("**op=signal.validate**")
    seen["validate_frames_with_function"] = page.locator("#transaction-flame .flame-frame", has_text=FUNCTION).count()

    # The trace: the risk.check span opens onto its own profile.
    page.goto(BASE + TRACE)
    expect(page.locator("#waterfall")).to_be_visible()
    rows = page.locator("#waterfall .span-profile")
    seen["span_profiles"] = rows.all_inner_texts()
    risk = page.locator("#waterfall .span-profile", has_text="risk.check").first
    graph = risk.locator(".flame")
    seen["risk_graph_visible_closed"] = graph.is_visible()
    risk.locator("summary").click()
    expect(graph).to_be_visible()
    seen["risk_span_frames_with_function"] = graph.locator(".flame-frame", has_text=FUNCTION).count()
    seen["whole_profile"] = page.locator("[id^=profile-] .flame-frame", has_text=FUNCTION).count()
    shot(page, "12-trace-span-profile")
    return seen


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            seen = run(page)
        except Exception:
            shot(page, "failure")
            raise
        finally:
            browser.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
