// The import progress page: reads the job's status (the API's, through the page's session) every second and
// updates the numbers and the bar in place; reloads the page when the job has ended. Without JavaScript the page
// refreshes itself instead (<noscript><meta http-equiv="refresh">).
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box) { return; }
  var url = box.getAttribute("data-status-url");
  var fields = ["rows_read", "total_rows", "deposited", "rejected"];
  function set(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = text; }
  }
  function show(job) {
    fields.forEach(function (name) {
      set("job-" + name, job[name] === null || job[name] === undefined ? "\u2014" : String(job[name]));
    });
    set("job-duplicates", String((job.duplicates || 0) + (job.updated || 0)));
    var bar = document.getElementById("job-bar");
    if (job.percent !== null && job.percent !== undefined) {
      bar.value = job.percent;
      set("job-percent", String(job.percent));
    }
    var left = job.seconds_left;
    set("job-seconds_left", left === null || left === undefined ? "\u2014"
        : left < 1 ? box.getAttribute("data-under-a-second")
        : box.getAttribute("data-seconds").replace("{n}", String(left)));
    if (job.status === "running") { set("job-status", box.getAttribute("data-running-text")); }
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (job) {
        show(job);
        if (job.status === "done" || job.status === "failed") { window.location.reload(); }
        else { window.setTimeout(poll, 1000); }
      })
      .catch(function () { window.setTimeout(function () { window.location.reload(); }, 5000); });
  }
  window.setTimeout(poll, 500);
})();
