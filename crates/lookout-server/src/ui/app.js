// Lookout's only script: auto-refresh of live pages and confirmation of destructive forms.
// No page content is ever turned into markup here.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const live = document.querySelector("[data-autorefresh]");
  if (live) {
    const secs = Math.max(5, parseInt(live.getAttribute("data-autorefresh"), 10) || 15);
    setInterval(() => {
      if (document.visibilityState === "visible") {
        window.location.reload();
      }
    }, secs * 1000);
  }
  // console-objects: the issue page's breadcrumb category filter applies on change (the
  // server filters, through the `crumbs` query parameter, so counts and the fold stay true).
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
