"""Every page of the web UI for everyone (run by tests/ui_forms.rs):  python a11y.py

On each page of PAGES, at 1400x900 and at 768 px wide: axe-core (from npm, installed by
scripts/setup-test-env into tests/ui/node_modules) finds no `serious` or `critical`
violation; no table header or badge breaks inside a word; the page does not scroll sideways
(wide tables scroll in their own box). Screenshots of each page at both widths.
Environment: LOOKOUT_URL, LOOKOUT_PASSWORD, LOOKOUT_ARTIFACTS, LOOKOUT_CHROMIUM.
Prints one JSON object with what it checked; any failure raises, listing every problem.
"""
import json
import os
import sys

from playwright.sync_api import sync_playwright

from driver import ARGS, BASE, CHROMIUM, PASSWORD, shot

AXE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_modules", "axe-core", "axe.min.js")


def link(from_path, selector):
    """A page reached by the first link matching `selector` on `from_path`."""
    return (from_path, selector)


# Every page of the UI, in one place: a page added later gets one line here. An entry is
# (name, path) or (name, link(page that links to it, CSS selector of the link)).
PAGES = [
    ("login", "/login"),
    ("agents", "/"),
    ("agent", link("/", "#agents a[href^='/agents/']")),
    ("issues", "/issues"),
    ("issue", link("/issues", "#issues a.issue-title")),
    ("performance", "/performance"),
    ("trace", link("/performance", "a[href^='/performance/traces/']")),
    ("releases", "/releases"),
    ("release", link("/releases", "main a[href^='/releases/']")),
    ("crons", "/crons"),
    ("monitor", link("/crons", "main a[href^='/crons/']")),
    ("alerts", "/alerts"),
    ("incident", link("/alerts", "#incidents a[href^='/alerts/incidents/']")),
    ("metric-rule", link("/alerts", "#rules tr.rule:has-text('Slow pipeline') a")),
    ("issue-rule", link("/alerts", "#rules tr.rule:has-text('BTC via form') a")),
    ("new-metric-rule", "/alerts/rules/new"),
    ("new-issue-rule", "/alerts/rules/new?kind=issue"),
    ("settings", "/settings"),
    ("new-channel", "/settings/channels/new?provider=email"),
    ("not-found", "/nope"),
]

WIDTHS = [(1400, 900), (768, 1000)]

# Where a header, badge or cell breaks a line inside a word: the texts of the offenders.
MID_WORD = """(selector) => {
  const bad = [];
  for (const el of document.querySelectorAll(selector)) {
    if (!el.offsetParent) continue;
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let prevTop = null, prevCh = ' ', node;
    while ((node = walker.nextNode())) {
      const t = node.textContent;
      for (let i = 0; i < t.length; i++) {
        const r = document.createRange();
        r.setStart(node, i); r.setEnd(node, i + 1);
        const rect = r.getClientRects()[0];
        if (!rect || rect.width === 0) continue;
        const ch = t[i];
        if (prevTop !== null && Math.abs(rect.top - prevTop) > 2 && !/\\s/.test(ch) && !/[\\s\\-\\/_.,:]/.test(prevCh)) {
          bad.push(el.innerText.trim().slice(0, 60));
          break;
        }
        prevTop = rect.top; prevCh = ch;
      }
    }
  }
  return bad;
}"""

AXE_RUN = """async () => {
  const r = await axe.run(document, {resultTypes: ['violations']});
  return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 4).map(n => n.target.join(' ') + ' :: ' + (n.failureSummary || '').split('\\n').slice(0, 2).join(' '))}));
}"""


def resolve(page, target):
    if isinstance(target, str):
        return target
    from_path, selector = target
    page.goto(BASE + from_path)
    found = page.locator(selector).first
    assert found.count() == 1, "no link %s on %s" % (selector, from_path)
    return found.get_attribute("href")


def main():
    assert os.path.exists(AXE), "axe-core is missing at %s: run scripts/setup-test-env (npm ci)" % AXE
    problems = []
    checked = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        # The UI's CSP allows only its own scripts: axe is injected past it, in tests only.
        context = browser.new_context(bypass_csp=True, viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(BASE + "/login")
        page.fill("#username", "admin")
        page.fill("#password", PASSWORD)
        page.click("#login")
        page.wait_for_url(BASE + "/")
        paths = [(name, resolve(page, target)) for name, target in PAGES]
        for width, height in WIDTHS:
            page.set_viewport_size({"width": width, "height": height})
            for name, path in paths:
                page.goto(BASE + path)
                page.wait_for_load_state("load")
                page.add_script_tag(path=AXE)
                where = "%s (%s) at %d px" % (name, path, width)
                for v in page.evaluate(AXE_RUN):
                    if v["impact"] in ("serious", "critical"):
                        problems.append("%s: axe %s %s (%s): %s" % (where, v["impact"], v["id"], v["help"], v["nodes"]))
                for text in page.evaluate(MID_WORD, "th, .pill, .mark, .level, nav a, button"):
                    problems.append("%s: breaks inside a word: %r" % (where, text))
                overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
                if overflow > 1:
                    problems.append("%s: the page scrolls sideways by %d px" % (where, overflow))
                shot(page, "%s-%d" % (name, width))
                checked.append(where)
        browser.close()
    if problems:
        sys.stderr.write("\n".join(problems) + "\n")
        raise AssertionError("%d accessibility/layout problem(s), listed above" % len(problems))
    print(json.dumps({"checked": checked}))


if __name__ == "__main__":
    main()
