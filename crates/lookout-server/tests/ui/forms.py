"""Forms that guide, in a real browser (run by tests/ui_forms.rs):  python forms.py forms|incident

forms:    a channel, metric and issue rules and an API token made through the UI's forms, with
          the wrong input first (errors beside their fields, input kept, nothing saved), a
          reload after each creation (post/redirect/get), and the in-app 404 pages.
incident: the page of an incident the Rust side made fire: its rule in words, its deliveries
          with the channel's name.
Environment: LOOKOUT_URL, LOOKOUT_PASSWORD, LOOKOUT_ARTIFACTS, LOOKOUT_CHROMIUM, and
LOOKOUT_WEBHOOK (the receiver's URL) for `forms`. Prints one JSON object; a failed
expectation raises.
"""
import json
import os
import sys

from playwright.sync_api import expect, sync_playwright

from driver import ARGS, BASE, CHROMIUM, shot, sign_in


def login(page):
    sign_in(page, "/alerts")


def field_error(page, field_id):
    """The error shown beside field `field_id`, which must be marked invalid."""
    err = page.locator("#%s-error" % field_id)
    expect(err).to_be_visible()
    assert page.get_attribute("#" + field_id, "aria-invalid") == "true", field_id
    return err.inner_text()


def rule_count(page):
    page.goto(BASE + "/alerts")
    return page.locator("#rules tr.rule").count()


def forms(page):
    seen = {}
    webhook = os.environ["LOOKOUT_WEBHOOK"]
    login(page)

    # A channel: a URL that is not one is refused beside its field, the name kept.
    page.goto(BASE + "/settings")
    page.click("#add-webhook")
    page.fill("#channel-name", "desk-hook")
    page.fill("#channel-url", "localhost/hook")
    page.click("#save-channel")
    seen["channel_url_error"] = field_error(page, "channel-url")
    assert page.input_value("#channel-name") == "desk-hook"
    assert page.input_value("#channel-url") == "localhost/hook"
    shot(page, "01-channel-refused")
    page.fill("#channel-url", webhook)
    page.click("#save-channel")
    page.wait_for_url(BASE + "/settings#channels")
    seen["channels"] = page.locator("#channels td.channel-name").all_inner_texts()

    # Metric rule: a negative latency threshold is refused beside the field, nothing saved.
    before = rule_count(page)
    page.goto(BASE + "/alerts/rules/new")
    page.fill("#rule-name", "Slow pipeline")
    page.fill("#aggregate", "p99(transaction.duration)")
    page.fill("#query", "transaction.op:order.pipeline")
    page.select_option("#time-window", "5")
    page.fill("#threshold", "-5")
    page.click("#save-rule")
    seen["threshold_error"] = field_error(page, "threshold")
    assert page.input_value("#threshold") == "-5", "the input is kept"
    assert page.input_value("#rule-name") == "Slow pipeline"
    seen["threshold_unit"] = page.inner_text("#threshold-unit")
    shot(page, "02-threshold-refused")
    # An invalid query: the error says where.
    page.fill("#threshold", "2000")
    page.fill("#query", "trade.asset:")
    page.click("#save-rule")
    seen["query_error"] = field_error(page, "query")
    assert page.input_value("#query") == "trade.asset:"
    shot(page, "03-query-refused")
    seen["rules_after_refusals"] = rule_count(page) - before
    # Right this time: saved, and shown in words.
    page.goto(BASE + "/alerts/rules/new")
    page.fill("#rule-name", "Slow pipeline")
    page.fill("#aggregate", "p99(transaction.duration)")
    page.fill("#query", "transaction.op:order.pipeline")
    page.select_option("#time-window", "5")
    page.fill("#threshold", "2000")
    page.uncheck("#act-all")
    page.check("label.check:has-text('desk-hook') input")
    page.click("#save-rule")
    page.wait_for_url(BASE + "/alerts")
    page.reload()  # a GET: repeats nothing
    seen["rules_after_metric"] = page.locator("#rules tr.rule").count() - before
    row = page.locator("#rules tr.rule", has_text="Slow pipeline")
    seen["metric_words"] = row.locator("td.rule-words").inner_text()

    # Issue rule by the form: a new issue with trade.asset = BTC → the webhook.
    page.goto(BASE + "/alerts/rules/new?kind=issue")
    page.fill("#rule-name", "BTC via form")
    # Nothing ticked to notify: refused beside the actions, the rest kept.
    page.uncheck("#act-all")
    page.fill("#tag-key-0", "trade.asset")
    page.select_option("#tag-match-0", "eq")
    page.fill("#tag-value-0", "BTC")
    page.check("#cond-first_seen")
    page.click("#save-rule")
    expect(page.locator("#actions-error")).to_be_visible()
    seen["actions_error"] = page.inner_text("#actions-error")
    assert page.input_value("#tag-value-0") == "BTC"
    shot(page, "04-issue-rule-refused")
    page.check("label.check:has-text('desk-hook') input")
    page.fill("#frequency", "5")
    page.click("#save-rule")
    page.wait_for_url(BASE + "/alerts")
    row = page.locator("#rules tr.rule", has_text="BTC via form")
    seen["issue_words"] = row.locator("td.rule-words").inner_text()
    seen["issue_rule_id"] = int(row.get_attribute("data-rule"))
    shot(page, "05-rules")
    # Its form shows it back, and its JSON is one click away.
    row.locator("a").first.click()
    assert page.is_checked("#cond-first_seen")
    assert page.input_value("#tag-key-0") == "trade.asset"
    assert page.locator("#expert").get_attribute("open") is None, "the JSON is folded"
    page.click("#expert summary")
    seen["issue_json"] = json.loads(page.input_value("#spec"))
    shot(page, "06-issue-rule-form")

    # Token: created once, shown once; a reload creates no second one.
    page.goto(BASE + "/settings")
    page.click("#create-token")
    seen["token_name_error"] = field_error(page, "token-name")
    page.fill("#token-name", "ci-forms")
    page.check("label.check:has-text('project:read') input")
    page.click("#create-token")
    page.wait_for_url(BASE + "/settings#new-token")
    expect(page.locator("#new-token")).to_be_visible()
    seen["token_shown"] = len(page.inner_text("#new-token code.token").strip())
    assert "new-token" not in page.url.split("#")[0], "the token is not in the URL"
    shot(page, "07-token-created")
    page.reload()
    seen["token_after_reload"] = page.locator("#new-token").count()
    seen["token_rows"] = page.locator("#tokens tr.token", has_text="ci-forms").count()

    # Unknown addresses: in-app 404 pages with the navigation.
    for path, key in [("/nope", "nope"), ("/issues/abc", "issue_abc"), ("/alerts/incidents/999999", "incident_missing")]:
        resp = page.goto(BASE + path)
        expect(page.locator("#error-page")).to_be_visible()
        expect(page.locator("header.top nav a", has_text="Issues")).to_be_visible()
        seen[key] = {"status": resp.status, "message": page.inner_text("#error-message"),
                     "user": page.locator("header.top .user").count()}
        shot(page, "08-404-" + key)
    return seen


def incident(page):
    seen = {}
    login(page)
    page.goto(BASE + "/alerts")
    link = page.locator("#incidents a[href^='/alerts/incidents/']", has_text="BTC via form").first
    link.click()
    expect(page.locator("#incident-facts")).to_be_visible()
    seen["rule"] = page.inner_text("#incident-rule")
    seen["opened"] = page.inner_text("#incident-opened")
    seen["resolved"] = page.inner_text("#incident-resolved")
    seen["channels"] = page.locator("#deliveries td.channel").all_inner_texts()
    seen["outcomes"] = page.locator("#deliveries td .pill").all_inner_texts()
    shot(page, "09-incident")
    page.set_viewport_size({"width": 768, "height": 900})
    shot(page, "10-incident-768")
    return seen


def main():
    mode = sys.argv[1]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            seen = {"forms": forms, "incident": incident}[mode](page)
        except Exception:
            shot(page, "failure-" + mode)
            sys.stderr.write("failed at %s\n" % page.url)
            raise
        finally:
            browser.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
