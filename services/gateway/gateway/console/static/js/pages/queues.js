// Queues (admins): what each queue holds, its lag and last hour's throughput; pause and resume.

import { h, replace, statusLine } from "../dom.js";
import { when, duration } from "../format.js";
import { throughputChart } from "../chart.js";

const REFRESH_MS = 5000;

export function mountQueues({ api }, main) {
  const status = statusLine();
  const list = h("div", { class: "queues" });

  async function load() {
    try {
      const queues = await api.get("/v1/queues");
      // The cards are drawn anew: a keyboard user's focus goes back to the same queue's button.
      const focused = document.activeElement?.closest?.("section.queue")?.dataset.queue;
      replace(list, queues.map(card));
      if (focused) list.querySelector(`section.queue[data-queue="${CSS.escape(focused)}"] header button`)?.focus();
    } catch (error) {
      status.textContent = error.message;
    }
  }

  async function toggle(queue) {
    const action = queue.paused ? "resume" : "pause";
    try {
      await api.post(`/v1/queues/${encodeURIComponent(queue.name)}/${action}`);
      status.textContent = `${queue.name} ${action === "pause" ? "paused" : "resumed"}`;
      await load();
    } catch (error) {
      status.textContent = `Could not ${action} ${queue.name}: ${error.message}`;
    }
  }

  function card(queue) {
    const headingId = `queue-${queue.name}`;
    const numbers = [
      ["Waiting", queue.waiting],
      ["Active", queue.active],
      ["Delayed", queue.delayed],
      ["Completed", queue.completed],
      ["Failed attempts", queue.failed],
      ["Dead", queue.dead],
      ["Lag", queue.lag],
      ["Oldest pending", duration(queue.oldest_pending_age_s * 1000)],
      ["Completed last minute", queue.jobs_per_minute],
    ];
    return h(
      "section",
      { class: "queue card", "aria-labelledby": headingId, dataset: { queue: queue.name, paused: String(queue.paused) } },
      h(
        "header",
        {},
        h("h2", { id: headingId }, queue.name),
        h("span", { class: queue.paused ? "badge state-dead" : "badge state-completed" }, queue.paused ? "paused" : "running"),
        queue.paused && h("small", {}, ` by ${queue.paused_by ?? "?"} since ${when(queue.paused_since_ms)}`),
        h("button", { type: "button", onclick: () => toggle(queue) }, queue.paused ? `Resume ${queue.name}` : `Pause ${queue.name}`),
      ),
      h("dl", { class: "numbers" }, numbers.map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", {}, String(value))))),
      h("h3", {}, "Throughput, last hour (per minute)"),
      throughputChart(queue.throughput, `Throughput of ${queue.name}`),
      h(
        "p",
        { class: "legend" },
        h("span", { class: "key completed" }, "completed"),
        " ",
        h("span", { class: "key failed" }, "failed"),
        queue.throughput.every((minute) => minute.completed + minute.failed === 0) && " · no job finished in the last hour",
      ),
      queue.lanes.length > 0 &&
        h(
          "table",
          {},
          h("caption", {}, `Lanes of ${queue.name}`),
          h("thead", {}, h("tr", {}, ["Priority", "Depth", "Waiting", "Active", "Oldest pending"].map((name, index) => h("th", { scope: "col", class: index > 0 ? "num" : undefined }, name)))),
          h("tbody", {}, queue.lanes.map((lane) => h("tr", {}, h("td", {}, lane.priority), h("td", { class: "num" }, String(lane.depth)), h("td", { class: "num" }, String(lane.waiting)), h("td", { class: "num" }, String(lane.active)), h("td", { class: "num" }, duration(lane.oldest_pending_age_s * 1000))))),
        ),
    );
  }

  replace(main, h("h1", {}, "Queues"), h("p", {}, `Refreshed every ${REFRESH_MS / 1000} s.`), status, list);
  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}
