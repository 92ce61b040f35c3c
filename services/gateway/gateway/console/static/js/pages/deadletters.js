// Dead letters (admins): a queue's dead letters filtered, each inspectable and replayable; the
// matching ones replayed or purged in bulk; and the audit trail of who did which, and when.

import { h, replace, field, select, table, statusLine, confirmDialog } from "../dom.js";
import { when, pretty, localInputToMs, localInputToIso } from "../format.js";

const PAGE_SIZE = 50;

export function mountDeadLetters({ api }, main, params) {
  const filters = {
    queue: params.get("queue") ?? "",
    type: params.get("type") ?? "",
    reason: params.get("reason") ?? "",
    owner: params.get("owner") ?? "",
    after: params.get("after") ?? "",
    before: params.get("before") ?? "",
  };
  const status = statusLine();
  const queueSelect = select([], filters.queue, { name: "queue" });
  const form = h(
    "form",
    { class: "filters", "aria-label": "Filter dead letters" },
    field("Queue", queueSelect),
    field("Type", h("input", { name: "type", value: filters.type, placeholder: "demo.fail" })),
    field("Reason contains", h("input", { name: "reason", value: filters.reason })),
    field("Owner", h("input", { name: "owner", value: filters.owner })),
    field("Dead since", h("input", { type: "datetime-local", name: "after", value: filters.after })),
    field("Dead before", h("input", { type: "datetime-local", name: "before", value: filters.before })),
    h("button", { type: "submit" }, "Apply"),
  );
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const audit = h("div", { class: "audit" });
  const body = h("tbody");
  let cursor = null;
  let shown = 0;

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value) query.set(name, value);
    location.hash = `#/dead-letters?${query}`;
  });

  const base = () => `/v1/queues/${encodeURIComponent(filters.queue)}/dead-letters`;

  // The filter as the bulk routes take it: epoch ms, nulls left out.
  function bulkFilter() {
    const filter = {
      type: filters.type || undefined,
      reason: filters.reason || undefined,
      owner: filters.owner || undefined,
      since_ms: localInputToMs(filters.after),
      until_ms: localInputToMs(filters.before),
    };
    return Object.fromEntries(Object.entries(filter).filter(([, value]) => value !== undefined));
  }

  function describeFilter() {
    const parts = Object.entries(bulkFilter()).map(([name, value]) => `${name} ${name.endsWith("_ms") ? when(value) : value}`);
    return parts.length ? `matching ${parts.join(", ")}` : "(every one)";
  }

  async function load(next = null) {
    try {
      const page = await api.get(base(), {
        type: filters.type,
        reason: filters.reason,
        owner: filters.owner,
        after: localInputToIso(filters.after),
        before: localInputToIso(filters.before),
        limit: PAGE_SIZE,
        cursor: next,
      });
      if (!next) {
        body.replaceChildren();
        shown = 0;
      }
      body.append(...page.items.flatMap(letterRow));
      shown += page.items.length;
      cursor = page.next;
      more.hidden = !cursor;
      status.textContent = shown ? `${shown} dead letter${shown === 1 ? "" : "s"} shown on ${filters.queue}` : `No dead letters match on ${filters.queue}.`;
    } catch (error) {
      status.textContent = error.message;
    }
  }

  function letterRow(letter) {
    const detailsRow = h("tr", { class: "letter-details", hidden: true }, h("td", { colspan: "7" }));
    const inspect = h("button", { type: "button", "aria-expanded": "false" }, "Inspect");
    inspect.addEventListener("click", async () => {
      const opening = detailsRow.hidden;
      detailsRow.hidden = !opening;
      inspect.setAttribute("aria-expanded", String(opening));
      if (opening) {
        try {
          renderLetter(detailsRow.firstChild, await api.get(`${base()}/${encodeURIComponent(letter.id)}`));
        } catch (error) {
          replace(detailsRow.firstChild, error.message);
        }
      }
    });
    const replay = h("button", { type: "button" }, "Replay");
    replay.addEventListener("click", async () => {
      try {
        const answer = await api.post(`${base()}/${encodeURIComponent(letter.id)}/replay`);
        status.textContent = `Replayed: job ${answer.job_id} runs again`;
        await Promise.all([load(), loadAudit()]);
      } catch (error) {
        status.textContent = `Could not replay: ${error.message}`;
      }
    });
    const row = h(
      "tr",
      { dataset: { letter: letter.id, jobId: letter.job_id ?? "" } },
      h("td", {}, h("code", {}, letter.id)),
      h("td", {}, letter.job_id ? h("a", { href: `#/jobs/${letter.job_id}` }, h("code", {}, letter.job_id.slice(0, 8))) : "—"),
      h("td", {}, letter.type ?? "—"),
      h("td", {}, letter.owner ?? "—"),
      h("td", {}, letter.reason),
      h("td", {}, when(letter.at_ms)),
      h("td", { class: "actions" }, inspect, letter.job_id && replay),
    );
    return [row, detailsRow];
  }

  function renderLetter(cell, letter) {
    replace(
      cell,
      h("h3", {}, "Payload"),
      h("pre", { class: "json", tabindex: "0" }, letter.payload === null ? "(none)" : pretty(letter.payload)),
      h("h3", {}, `Attempts ${letter.attempt ?? "?"} of ${letter.max_attempts ?? "?"}: errors`),
      h(
        "ol",
        { class: "errors" },
        letter.errors.map((error) =>
          h("li", {}, h("strong", {}, `Attempt ${error.attempt}`), ` at ${when(error.at_ms)}: ${error.message}`, error.detail && h("details", {}, h("summary", {}, "Traceback"), h("pre", { tabindex: "0" }, error.detail))),
        ),
      ),
      letter.raw && [h("h3", {}, "Raw entry"), h("pre", { tabindex: "0" }, letter.raw)],
    );
  }

  async function loadAudit() {
    try {
      const entries = await api.get(`${base()}/audit`, { limit: 20 });
      replace(
        audit,
        table(
          `Audit trail of ${filters.queue}, newest first`,
          ["When", "Action", "By", "Count", "Filter or entries"],
          entries.map(({ record }) =>
            h(
              "tr",
              { dataset: { action: record.action } },
              h("td", {}, when(record.at_ms)),
              h("td", {}, record.action),
              h("td", {}, record.by),
              h("td", { class: "num" }, String(record.count)),
              h("td", {}, h("code", {}, record.filter ? JSON.stringify(record.filter) : record.entries.join(", "))),
            ),
          ),
        ),
        entries.length === 0 && h("p", {}, "Nobody has replayed or purged anything here yet."),
      );
    } catch (error) {
      replace(audit, error.message);
    }
  }

  async function bulk(action) {
    const verb = action === "replay" ? "Replay" : "Purge";
    const warning = action === "purge" ? " They are deleted for good." : "";
    if (!(await confirmDialog(`${verb} the dead letters of ${filters.queue} ${describeFilter()}?${warning}`, verb))) return;
    try {
      const outcome = await api.post(`${base()}/${action}`, bulkFilter());
      status.textContent = `${verb}: ${outcome.done} of ${outcome.matched} matching${outcome.skipped ? `, ${outcome.skipped} skipped` : ""}${outcome.more ? "; more remain" : ""}`;
      await Promise.all([load(), loadAudit()]);
    } catch (error) {
      status.textContent = `Could not ${action}: ${error.message}`;
    }
  }

  more.addEventListener("click", () => load(cursor));

  async function start() {
    try {
      const queues = await api.get("/v1/queues");
      filters.queue ||= queues[0]?.name ?? "default";
      replace(queueSelect, queues.map((queue) => h("option", { value: queue.name, selected: queue.name === filters.queue }, `${queue.name} (${queue.dead})`)));
    } catch (error) {
      status.textContent = error.message;
      return;
    }
    await Promise.all([load(), loadAudit()]);
  }

  replace(
    main,
    h("h1", {}, "Dead letters"),
    form,
    h(
      "div",
      { class: "toolbar" },
      h("button", { type: "button", onclick: () => bulk("replay") }, "Replay matching"),
      h("button", { type: "button", class: "danger", onclick: () => bulk("purge") }, "Purge matching"),
    ),
    status,
    h(
      "table",
      { class: "dead-letters" },
      h("caption", {}, "Dead letters, newest first"),
      h("thead", {}, h("tr", {}, ["Letter", "Job", "Type", "Owner", "Reason", "Dead at", "Actions"].map((name) => h("th", { scope: "col" }, name)))),
      body,
    ),
    more,
    h("h2", {}, "Audit trail"),
    audit,
  );
  start();
  return () => {};
}
