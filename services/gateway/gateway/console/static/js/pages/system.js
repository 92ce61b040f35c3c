// System (admins): the health document per check with its latency, and the services' recent log
// lines filtered by level and service; both refresh themselves while the toggle is on.

import { h, replace, field, select, table, statusLine } from "../dom.js";
import { when } from "../format.js";

const HEALTH_REFRESH_MS = 5000;
const LOG_REFRESH_MS = 3000;
const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
const SERVICES = ["gateway", "worker", "notifier", "health"];
const LOG_LINES = 200;

/** A check's observed value: latencies to a tenth of a ms, sizes in MiB, counts whole. */
function observed(value, unit) {
  if (unit === "bytes") return `${(value / 2 ** 20).toFixed(1)} MiB`;
  if (unit === "ms") return `${value.toFixed(1)} ms`;
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${unit}`;
}

export function mountSystem({ api }, main) {
  const healthStatus = statusLine();
  const health = h("div", { class: "health" });
  const logStatus = statusLine();
  // Scrolls by itself, so the health table stays in view; focusable to scroll by keyboard.
  const logs = h("div", { class: "logs scroller", role: "region", "aria-label": "Log lines", tabindex: "0" });
  const level = select(LEVELS, "INFO", { name: "level" });
  const service = select([["", "every service"], ...SERVICES], "", { name: "service" });
  const autoHealth = h("input", { type: "checkbox", checked: true, id: "auto-health" });
  const autoLogs = h("input", { type: "checkbox", checked: true, id: "auto-logs" });

  async function loadHealth() {
    try {
      const report = await api.get("/console/api/health");
      const rows = Object.entries(report.checks).flatMap(([name, entries]) =>
        entries.map((check) =>
          h(
            "tr",
            { dataset: { check: name, status: check.status } },
            h("th", { scope: "row" }, name),
            h("td", {}, h("span", { class: `badge status-${check.status}` }, check.status)),
            h("td", {}, check.componentType),
            h("td", { class: "num" }, observed(check.observedValue, check.observedUnit)),
            h("td", {}, when(check.time)),
            h("td", {}, check.output ?? ""),
          ),
        ),
      );
      replace(
        health,
        h("p", { class: `overall status-${report.status}` }, "Overall: ", h("strong", {}, report.status), ` · version ${report.version} · up ${Math.round(report.uptime_s)} s`),
        h(
          "table",
          { class: "checks" },
          h("caption", {}, `Checks at ${new Date().toLocaleTimeString()}`),
          h("thead", {}, h("tr", {}, ["Check", "Status", "Kind", "Latency or value", "Observed at", "Output"].map((name) => h("th", { scope: "col" }, name)))),
          h("tbody", {}, rows),
        ),
      );
      healthStatus.textContent = "";
    } catch (error) {
      healthStatus.textContent = `Health document unavailable: ${error.message}`;
    }
  }

  let logRequest = 0;

  async function loadLogs() {
    // A filter change while an auto-refresh is in flight: only the newest answer is shown.
    const request = ++logRequest;
    try {
      const lines = await api.get("/v1/system/logs", { level: level.value, source: service.value, limit: LOG_LINES });
      if (request !== logRequest) return;
      replace(
        logs,
        table(
          `Last ${lines.length} lines, newest first`,
          ["Time", "Level", "Service", "Logger", "Message"],
          lines.map((line) =>
            h(
              "tr",
              { class: `level-${line.level}`, dataset: { level: line.level, service: line.service } },
              h("td", {}, h("time", { datetime: line.time }, when(line.time))),
              h("td", {}, line.level),
              h("td", {}, line.service),
              h("td", {}, line.logger),
              h(
                "td",
                {},
                line.message,
                Object.keys(line.fields).length > 0 && h("details", {}, h("summary", {}, "fields"), h("pre", {}, JSON.stringify(line.fields, null, 2))),
              ),
            ),
          ),
          { class: "log-lines" },
        ),
      );
      logStatus.textContent = "";
    } catch (error) {
      logStatus.textContent = `Logs unavailable: ${error.message}`;
    }
  }

  // Someone reading a line's fields, or moving through the lines, would lose their place.
  function readingLogs() {
    return logs.querySelector("details[open]") !== null || (logs.contains(document.activeElement) && document.activeElement !== logs);
  }

  level.addEventListener("change", loadLogs);
  service.addEventListener("change", loadLogs);
  replace(
    main,
    h("h1", {}, "System"),
    h("section", { "aria-labelledby": "health-heading" }, [
      h("h2", { id: "health-heading" }, "Health"),
      h("label", { for: "auto-health" }, autoHealth, ` Refresh every ${HEALTH_REFRESH_MS / 1000} s`),
      healthStatus,
      health,
    ]),
    h("section", { "aria-labelledby": "logs-heading" }, [
      h("h2", { id: "logs-heading" }, "Logs"),
      h(
        "form",
        { class: "filters", "aria-label": "Filter log lines", onsubmit: (event) => event.preventDefault() },
        field("Level and above", level),
        field("Service", service),
        h("label", { for: "auto-logs" }, autoLogs, ` Refresh every ${LOG_REFRESH_MS / 1000} s`),
      ),
      logStatus,
      logs,
    ]),
  );
  loadHealth();
  loadLogs();
  const timers = [
    setInterval(() => autoHealth.checked && loadHealth(), HEALTH_REFRESH_MS),
    setInterval(() => autoLogs.checked && !readingLogs() && loadLogs(), LOG_REFRESH_MS),
  ];
  return () => timers.forEach(clearInterval);
}
