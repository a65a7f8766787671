// Lookout's only script: live regions updated in place, flame graph zoom, and confirmation
// of destructive forms. Live regions swap in markup the server rendered (and escaped) for the same URL,
// exactly as a reload would show it; nothing from page content is ever turned into markup
// here.
"use strict";

// Live regions: every element with an id and `data-live="<seconds>"` is refreshed in place
// by fetching the page's own URL and bringing the region to the fresh markup of the same id,
// while the tab is visible. Only the nodes whose markup changed are replaced: the rest stay
// as they are, with their focus, scroll, open <details> and selection, and a chart whose data
// changed is handed its new data (charts.js) rather than drawn again.
const Live = {
  timer: null,
  busy: false,
  // Each region's markup as the server last sent it, by id: the page's own nodes carry what
  // scripts and the operator did to them (a drawn chart, an open <details>), so changes are
  // found by comparing markup with markup.
  last: new Map(),

  regions() {
    return Array.from(document.querySelectorAll("[data-live][id]"));
  },

  every() {
    // A test may shorten the period before the page loads; pages ask for 10–15 s.
    const forced = Number(window.lookoutLiveEveryMs);
    if (forced > 0) return Math.max(200, forced);
    const secs = this.regions()
      .map((el) => parseInt(el.getAttribute("data-live"), 10))
      .filter((n) => n > 0);
    return Math.max(2, secs.length ? Math.min(...secs) : 15) * 1000;
  },

  // Two nodes that hold the same place: the same kind, and for elements the same tag and id.
  alike(a, b) {
    return a.nodeType === b.nodeType && (a.nodeType !== 1 || (a.tagName === b.tagName && a.id === b.id));
  },

  // The attributes of `fresh` on `el`; whether a <details> is open is the operator's.
  attributes(el, fresh) {
    for (const { name } of Array.from(el.attributes)) {
      if (!fresh.hasAttribute(name) && !(name === "open" && el.tagName === "DETAILS")) el.removeAttribute(name);
    }
    for (const { name, value } of Array.from(fresh.attributes)) {
      if (name !== "open" && el.getAttribute(name) !== value) el.setAttribute(name, value);
    }
  },

  // Brings the children of `el` (in the page) from `prev` (the markup they were built from)
  // to `fresh`. Where the nodes still line up, each is compared and only a changed one is
  // touched; otherwise the children are replaced, drawn charts kept.
  morph(el, prev, fresh) {
    const cur = Array.from(el.childNodes);
    const old = Array.from(prev.childNodes);
    const next = Array.from(fresh.childNodes);
    const lined = cur.length === next.length && old.length === next.length &&
      next.every((n, i) => this.alike(n, old[i]) && this.alike(n, cur[i]));
    if (!lined) {
      this.replace(el, fresh);
      return;
    }
    next.forEach((n, i) => {
      if (n.isEqualNode(old[i])) return;
      if (n.nodeType !== 1) {
        cur[i].nodeValue = n.nodeValue;
      } else if (n.hasAttribute("data-chart") && window.LookoutCharts) {
        window.LookoutCharts.update(cur[i], n);
      } else {
        this.attributes(cur[i], n);
        this.morph(cur[i], old[i], n);
      }
    });
  },

  // Replaces the children of `el` with those of `fresh`, keeping each chart already drawn
  // (matched by its figure's id) with the fresh data handed to it, and restoring the open
  // <details>, scroll positions and focus the old children had.
  replace(el, fresh) {
    const open = new Set();
    el.querySelectorAll("details").forEach((d, i) => {
      if (d.open) open.add(d.id ? "#" + d.id : "@" + i);
    });
    const scrolled = [];
    el.querySelectorAll("[id]").forEach((n) => {
      if (n.scrollTop || n.scrollLeft) scrolled.push([n.id, n.scrollTop, n.scrollLeft]);
    });
    const active = document.activeElement;
    const focusId = active && el.contains(active) && active.id ? active.id : null;
    const drawn = new Map();
    el.querySelectorAll("figure[id] [data-chart]").forEach((h) => {
      if (h.uplot) drawn.set(h.closest("figure[id]").id, h);
    });
    const nodes = Array.from(fresh.childNodes, (n) => document.importNode(n, true));
    for (const n of nodes) {
      if (n.nodeType !== 1) continue;
      for (const h of n.querySelectorAll("figure[id] [data-chart]")) {
        const kept = drawn.get(h.closest("figure[id]").id);
        if (kept && window.LookoutCharts) {
          window.LookoutCharts.update(kept, h);
          h.replaceWith(kept);
        }
      }
    }
    el.replaceChildren(...nodes);
    for (const h of drawn.values()) {
      if (!h.isConnected && window.LookoutCharts) window.LookoutCharts.drop(h);
    }
    el.querySelectorAll("details").forEach((d, i) => {
      if (open.has(d.id ? "#" + d.id : "@" + i)) d.open = true;
    });
    for (const [id, top, left] of scrolled) {
      const n = document.getElementById(id);
      if (n) {
        n.scrollTop = top;
        n.scrollLeft = left;
      }
    }
    if (focusId && document.activeElement !== active) {
      const n = document.getElementById(focusId);
      if (n) n.focus({ preventScroll: true });
    }
  },

  // Brings region `el` to `fresh`; whether anything changed.
  swap(el, fresh) {
    const prev = this.last.get(el.id);
    this.last.set(el.id, fresh);
    const same = (name) => el.getAttribute(name) === fresh.getAttribute(name);
    if (prev && prev.innerHTML === fresh.innerHTML && same("class") && same("title")) return false;
    const x = window.scrollX;
    const y = window.scrollY;
    for (const name of ["class", "title"]) {
      const v = fresh.getAttribute(name);
      if (v === null) el.removeAttribute(name);
      else el.setAttribute(name, v);
    }
    if (prev) this.morph(el, prev, fresh);
    else this.replace(el, fresh);
    // Content above the viewport may have grown or shrunk: the operator stays where they were.
    window.scrollTo(x, y);
    return true;
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
      for (const el of this.regions()) {
        const fresh = doc.getElementById(el.id);
        if (fresh && this.swap(el, fresh)) swapped += 1;
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
    const regions = this.regions();
    if (!regions.length) return;
    // The markup as served, before any script drew in it.
    for (const el of regions) this.last.set(el.id, el.cloneNode(true));
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

// Flame graphs (ui/flame.rs) are drawn by the server at full width; a click on a frame
// widens it and what it called to the whole graph (its callers stay above it, full width),
// and "Reset zoom" brings the whole back. Positions come from the frames' own data-x/data-w
// (shares of the whole), so nothing from page content is interpreted.
const Flame = {
  zoom(graph, frame) {
    const x = Number(frame.dataset.x);
    const w = Number(frame.dataset.w);
    const depth = Number(frame.dataset.depth);
    const eps = 1e-9;
    for (const f of graph.querySelectorAll(".flame-frame")) {
      const fx = Number(f.dataset.x);
      const fw = Number(f.dataset.w);
      const fd = Number(f.dataset.depth);
      if (fd < depth) {
        // A caller: shown across the whole width if it encloses the frame.
        const encloses = fx <= x + eps && fx + fw >= x + w - eps;
        f.hidden = !encloses;
        f.style.left = "0%";
        f.style.width = "100%";
      } else if (fx >= x - eps && fx + fw <= x + w + eps) {
        f.hidden = false;
        f.style.left = `${((fx - x) / w) * 100}%`;
        f.style.width = `${(fw / w) * 100}%`;
      } else {
        f.hidden = true;
      }
    }
    const reset = graph.querySelector(".flame-reset");
    if (reset) reset.hidden = false;
  },

  reset(graph) {
    for (const f of graph.querySelectorAll(".flame-frame")) {
      f.hidden = false;
      f.style.left = `${Number(f.dataset.x) * 100}%`;
      f.style.width = `${Number(f.dataset.w) * 100}%`;
    }
    const reset = graph.querySelector(".flame-reset");
    if (reset) reset.hidden = true;
  },

  start() {
    document.addEventListener("click", (e) => {
      const target = e.target instanceof Element ? e.target : null;
      const graph = target && target.closest("[data-flame]");
      if (!graph) return;
      if (target.closest(".flame-reset")) {
        this.reset(graph);
        return;
      }
      const frame = target.closest(".flame-frame");
      if (frame) this.zoom(graph, frame);
    });
  },
};

document.addEventListener("DOMContentLoaded", () => {
  Live.start();
  Flame.start();
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
