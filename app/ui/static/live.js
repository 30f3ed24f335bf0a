// Live progress: every element with data-job whose job is still queued or running polls
// /ui/jobs/{id}/progress.json once a second and updates its status, stage and progress bar.
// A job page (data-reload) reloads once its job has finished, to show the report.
"use strict";
const FINISHED = ["succeeded", "failed", "cancelled"];

function watch(row) {
  const show = (name, value) => row.querySelectorAll(`[data-live=${name}]`).forEach((el) => { el.textContent = value; });
  const timer = setInterval(async () => {
    const response = await fetch(`/ui/jobs/${encodeURIComponent(row.dataset.job)}/progress.json`, { cache: "no-store" });
    if (response.status === 401) { window.location.assign("/ui/login"); return; }
    if (!response.ok) return;
    const job = await response.json();
    row.dataset.status = job.status;
    show("status", job.status);
    row.querySelectorAll("[data-live=status]").forEach((el) => { el.className = `status status-${job.status}`; });
    show("stage", job.stage || "—");
    show("percent", `${Math.round(job.progress * 100)} %`);
    row.querySelectorAll("[data-live=bar]").forEach((el) => { el.value = job.progress; });
    if (FINISHED.includes(job.status)) {
      clearInterval(timer);
      if (row.dataset.reload) window.location.reload();
    }
  }, 1000);
}

document.querySelectorAll("[data-job]").forEach((row) => {
  if (!FINISHED.includes(row.dataset.status)) watch(row);
});
