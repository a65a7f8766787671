// Lookout's only script: live regions updated in place, and confirmation of destructive
// forms. Live regions swap in markup the server rendered (and escaped) for the same URL,
// exactly as a reload would show it; nothing from page content is ever turned into markup
// here.
"use strict";

// Live regions: every element with an id and `data-live="<seconds>"` is refreshed in place
// by fetching the page's own URL and swapping in the region of the same id, while the tab is
// visible. Scroll position, focus and open <details> survive the swap.
const Live = {
  timer: null,
  busy: false,

  regions() {
    return Array.from(document.querySelectorAll("[data-live][id]"));
  },

  every() {
    const secs = this.regions()
      .map((el) => parseInt(el.getAttribute("data-live"), 10))
      .filter((n) => n > 0);
    return Math.max(2, secs.length ? Math.min(...secs) : 15) * 1000;
  },

  // A key for a <details> inside `root`: its id, else its position among the region's.
  detailsKey(root, d, i) {
    return d.id ? "#" + d.id : "@" + i;
  },

  swap(current, fresh) {
    const open = new Set();
    current.querySelectorAll("details").forEach((d, i) => {
      if (d.open) open.add(this.detailsKey(current, d, i));
    });
    const scrolled = [];
    [current, ...current.querySelectorAll("[id]")].forEach((el) => {
      if (el.scrollTop || el.scrollLeft) scrolled.push([el.id, el.scrollTop, el.scrollLeft]);
    });
    const active = document.activeElement;
    const focusId = active && current.contains(active) && active.id ? active.id : null;
    const x = window.scrollX;
    const y = window.scrollY;

    current.replaceChildren(...Array.from(fresh.childNodes, (n) => document.importNode(n, true)));
    for (const name of ["class", "title"]) {
      const v = fresh.getAttribute(name);
      if (v === null) current.removeAttribute(name);
      else current.setAttribute(name, v);
    }

    current.querySelectorAll("details").forEach((d, i) => {
      if (open.has(this.detailsKey(current, d, i))) d.open = true;
    });
    for (const [id, top, left] of scrolled) {
      const el = id === current.id ? current : document.getElementById(id);
      if (el) {
        el.scrollTop = top;
        el.scrollLeft = left;
      }
    }
    if (focusId) {
      const el = document.getElementById(focusId);
      if (el) el.focus({ preventScroll: true });
    }
    window.scrollTo(x, y);
  },

  async refresh() {
    if (this.busy || document.visibilityState !== "visible") return;
    this.busy = true;
    try {
      const res = await fetch(window.location.href, {
        headers: { "X-Lookout-Live": "1" },
        cache: "no-store",
        credentials: "same-origin",
      });
      // Logged out or moved: leave the page as it is (a reload shows why).
      if (!res.ok || res.redirected) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      let swapped = 0;
      for (const current of this.regions()) {
        const fresh = doc.getElementById(current.id);
        if (fresh && fresh.innerHTML !== current.innerHTML) {
          this.swap(current, fresh);
          swapped += 1;
        }
      }
      document.documentElement.setAttribute("data-live-at", String(Date.now()));
      document.dispatchEvent(new CustomEvent("lookout:live", { detail: { swapped } }));
    } catch (e) {
      // Network hiccup: try again at the next tick.
    } finally {
      this.busy = false;
    }
  },

  start() {
    if (!this.regions().length) return;
    const every = this.every();
    const tick = () => {
      this.timer = window.setTimeout(async () => {
        await this.refresh();
        tick();
      }, every);
    };
    tick();
    // Back on the tab: refresh now rather than at the next tick.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.refresh();
    });
  },
};

document.addEventListener("DOMContentLoaded", () => {
  Live.start();
  // The issue page's breadcrumb category filter applies on change (the server filters,
  // through the `crumbs` query parameter, so counts and the fold stay true).
  const crumbSelect = document.getElementById("crumb-category");
  if (crumbSelect && crumbSelect.form) {
    const apply = document.getElementById("crumb-filter-apply");
    if (apply) {
      apply.hidden = true;
    }
    crumbSelect.addEventListener("change", () => crumbSelect.form.submit());
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        e.preventDefault();
      }
    });
  }
});
