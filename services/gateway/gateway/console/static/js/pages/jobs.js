// Jobs (admins): counts per state, a filtered list newest first, and one job's whole story with
// retry, cancel and remove; both follow the notifier's events as they arrive.

import { h, replace, field, select, statusLine, confirmDialog } from "../dom.js";
import { when, duration, pretty, localInputToIso } from "../format.js";

const STATES = ["queued", "active", "delayed", "retrying", "completed", "dead", "cancelled"];
const CANCELLABLE = new Set(["delayed", "queued", "retrying"]);
const REMOVABLE = new Set(["completed", "dead", "cancelled"]);
// The state a job is in after each event.
const STATE_AFTER = {
  "job.queued": (event) => (event.run_at_ms ? "delayed" : "queued"),
  "job.started": () => "active",
  "job.progress": () => "active",
  "job.retrying": () => "retrying",
  "job.completed": () => "completed",
  "job.dead_lettered": () => "dead",
  "job.cancelled": () => "cancelled",
};
const PAGE_SIZE = 50;
const RECOUNT_MS = 1000;
// A job's page reads the job again at most this often while its events arrive.
const RELOAD_MS = 250;

/** A job's state as a badge whose text says it (colour is only a second cue). */
export function stateBadge(state) {
  return h("span", { class: `badge state-${state}` }, state);
}

/** The jobs list with its filters. `params.state` etc. come from the URL's query. */
export function mountJobs({ api, live }, main, params) {
  const filters = {
    state: params.get("state") ?? "",
    queue: params.get("queue") ?? "",
    type: params.get("type") ?? "",
    owner: params.get("owner") ?? "",
    created_after: params.get("created_after") ?? "",
    created_before: params.get("created_before") ?? "",
  };
  const counts = h("div", { class: "state-counts", role: "group", "aria-label": "Jobs by state" });
  const status = statusLine();
  const fresh = h("button", { type: "button", hidden: true, class: "notice", onclick: () => load() }, "");
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const queueSelect = select([["", "every queue"]], filters.queue, { name: "queue" });
  const stateSelect = select([["", "any state"], ...STATES], filters.state, { name: "state" });
  const form = h(
    "form",
    { class: "filters", "aria-label": "Filter jobs" },
    field("State", stateSelect),
    field("Queue", queueSelect),
    field("Type", h("input", { name: "type", value: filters.type, placeholder: "demo.sleep" })),
    field("Owner", h("input", { name: "owner", value: filters.owner, placeholder: "alice" })),
    field("Created after", h("input", { type: "datetime-local", name: "created_after", value: filters.created_after })),
    field("Created before", h("input", { type: "datetime-local", name: "created_before", value: filters.created_before })),
    h("button", { type: "submit" }, "Apply"),
  );
  const jobIdInput = h("input", { name: "job", placeholder: "job id", required: true, autocomplete: "off" });
  const open = h(
    "form",
    { class: "inline", role: "search", "aria-label": "Open a job by id" },
    field("Job id", jobIdInput),
    h("button", { type: "submit" }, "Open"),
  );
  open.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/jobs/${encodeURIComponent(jobIdInput.value.trim())}`;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const query = new URLSearchParams();
    for (const [name, value] of data) if (value) query.set(name, value);
    location.hash = `#/jobs?${query}`;
  });

  const rows = new Map();
  let cursor = null;
  let newJobs = 0;
  let recountTimer = null;

  function row(job) {
    const tr = h(
      "tr",
      { dataset: { jobId: job.id } },
      h("td", {}, h("a", { href: `#/jobs/${job.id}` }, h("code", {}, job.id.slice(0, 8)), h("span", { class: "visually-hidden" }, job.id))),
      h("td", {}, job.type),
      h("td", {}, job.queue),
      h("td", { class: "state" }, stateBadge(job.state)),
      h("td", {}, job.owner),
      h("td", { class: "num" }, `${job.attempt}/${job.max_attempts}`),
      h("td", {}, h("time", { datetime: new Date(job.created_at_ms).toISOString() }, when(job.created_at_ms))),
      h("td", { class: "num" }, job.finished_at_ms ? duration(job.finished_at_ms - job.created_at_ms) : "—"),
    );
    rows.set(job.id, tr);
    return tr;
  }

  async function load(next = null) {
    try {
      const page = await api.get("/v1/jobs", {
        state: filters.state,
        queue: filters.queue,
        type: filters.type,
        owner: filters.owner,
        created_after: localInputToIso(filters.created_after),
        created_before: localInputToIso(filters.created_before),
        limit: PAGE_SIZE,
        cursor: next,
      });
      if (!next) {
        rows.clear();
        body.replaceChildren();
        newJobs = 0;
        fresh.hidden = true;
      }
      body.append(...page.items.map(row));
      cursor = page.next;
      more.hidden = !cursor;
      status.textContent = rows.size ? `${rows.size} job${rows.size === 1 ? "" : "s"} shown` : "No jobs match.";
    } catch (error) {
      status.textContent = error.message;
    }
  }

  async function recount() {
    try {
      const queues = await api.get("/v1/queues");
      if (queueSelect.options.length === 1) {
        for (const queue of queues) queueSelect.append(h("option", { value: queue.name, selected: queue.name === filters.queue }, queue.name));
      }
      const sum = (key) => queues.reduce((total, queue) => total + queue[key], 0);
      const known = { queued: sum("waiting"), active: sum("active"), delayed: sum("delayed"), completed: sum("completed"), dead: sum("dead") };
      replace(
        counts,
        h("a", { href: "#/jobs", "aria-current": filters.state === "" ? "true" : undefined }, "All"),
        STATES.map((state) => {
          const query = new URLSearchParams({ ...Object.fromEntries(Object.entries(filters).filter(([, v]) => v)), state });
          return h(
            "a",
            { href: `#/jobs?${query}`, "aria-current": filters.state === state ? "true" : undefined, dataset: { state } },
            state,
            state in known ? h("span", { class: "count" }, String(known[state])) : null,
          );
        }),
      );
    } catch (error) {
      status.textContent = error.message;
    }
  }

  function onEvent({ detail: push }) {
    const event = push.event;
    const tr = rows.get(event.job_id);
    const state = STATE_AFTER[event.event]?.(event);
    if (tr && state) {
      replace(tr.querySelector(".state"), stateBadge(state));
      tr.classList.add("changed");
    } else if (!tr && event.event === "job.queued") {
      newJobs += 1;
      fresh.textContent = `${newJobs} new job${newJobs === 1 ? "" : "s"}: show`;
      fresh.hidden = false;
    }
    // At most one recount a second, however many events arrive.
    recountTimer ??= setTimeout(() => {
      recountTimer = null;
      recount();
    }, RECOUNT_MS);
  }

  more.addEventListener("click", () => load(cursor));
  live.addEventListener("event", onEvent);
  replace(
    main,
    h("h1", {}, "Jobs"),
    counts,
    h("div", { class: "toolbar" }, open),
    form,
    status,
    fresh,
    h(
      "table",
      { class: "jobs" },
      h("caption", {}, "Jobs, newest first"),
      h("thead", {}, h("tr", {}, ["Id", "Type", "Queue", "State", "Owner", "Attempt", "Created", "Took"].map((name) => h("th", { scope: "col" }, name)))),
      body,
    ),
    more,
  );
  recount();
  load();
  return () => {
    live.removeEventListener("event", onEvent);
    clearTimeout(recountTimer);
  };
}

/** One job: state, timings, result, every attempt's error with its traceback; actions. */
export function mountJob({ api, live }, main, jobId) {
  const status = statusLine({ id: "job-status" });
  const view = h("div", { class: "job" });
  let job = null;
  let reloadTimer = null;

  async function load() {
    try {
      job = await api.get(`/v1/jobs/${encodeURIComponent(jobId)}`);
      render();
    } catch (error) {
      replace(view, h("p", { class: "error" }, error.message));
    }
  }

  async function act(label, call, after) {
    try {
      await call();
      status.textContent = after;
      if (label === "remove") {
        location.hash = "#/jobs";
        return;
      }
      await load();
    } catch (error) {
      status.textContent = `Could not ${label}: ${error.message}`;
    }
  }

  function render() {
    const started = job.started_at_ms;
    const finished = job.finished_at_ms;
    const path = `/v1/jobs/${encodeURIComponent(job.id)}`;
    const actions = [
      job.state === "dead" &&
        h("button", { type: "button", onclick: () => act("retry", () => api.post(`${path}/retry`), "Retried: the job runs again, with a fresh round of attempts") }, "Retry"),
      CANCELLABLE.has(job.state) &&
        h("button", { type: "button", onclick: () => act("cancel", () => api.post(`${path}/cancel`), "Cancelled") }, "Cancel"),
      REMOVABLE.has(job.state) &&
        h(
          "button",
          {
            type: "button",
            class: "danger",
            onclick: async () => {
              if (await confirmDialog(`Remove job ${job.id} and its record for good?`, "Remove")) {
                act("remove", () => api.del(path), "Removed");
              }
            },
          },
          "Remove",
        ),
    ];
    replace(
      view,
      h("div", { class: "actions" }, actions),
      h("dl", { class: "facts" }, [
        fact("State", stateBadge(job.state)),
        fact("Type", job.type),
        fact("Queue", job.queue),
        fact("Priority", job.priority),
        fact("Owner", job.owner),
        fact("Attempt", `${job.attempt} of ${job.max_attempts}`),
        job.progress !== null && fact("Progress", h("progress", { max: "1", value: job.progress, "aria-label": "Progress" })),
        fact("Created", when(job.created_at_ms)),
        fact("Started", when(started)),
        fact("Finished", when(finished)),
        fact("Waited", started ? duration(started - job.created_at_ms) : "—"),
        fact("Ran", started && finished ? duration(finished - started) : "—"),
      ]),
      h("h2", {}, "Payload"),
      job.payload === null ? h("p", {}, "Not kept.") : h("pre", { class: "json", tabindex: "0" }, pretty(job.payload)),
      h("h2", {}, "Result"),
      job.result === null ? h("p", {}, REMOVABLE.has(job.state) ? "None." : "None yet.") : h("pre", { class: "json", tabindex: "0" }, pretty(job.result)),
      h("h2", {}, `Errors (${job.errors.length})`),
      job.errors.length === 0
        ? h("p", {}, "No attempt failed.")
        : h(
            "ol",
            { class: "errors" },
            job.errors.map((error) =>
              h(
                "li",
                { dataset: { attempt: error.attempt } },
                h("strong", {}, `Attempt ${error.attempt}`),
                ` at ${when(error.at_ms)}: `,
                error.message,
                error.detail && h("details", {}, h("summary", {}, "Traceback"), h("pre", { tabindex: "0" }, error.detail)),
              ),
            ),
          ),
    );
  }

  function onEvent({ detail: push }) {
    if (push.event.job_id !== jobId) return;
    reloadTimer ??= setTimeout(() => {
      reloadTimer = null;
      load();
    }, RELOAD_MS);
  }

  live.addEventListener("event", onEvent);
  replace(
    main,
    h("p", {}, h("a", { href: "#/jobs" }, "← Jobs")),
    h("h1", {}, "Job ", h("code", {}, jobId)),
    status,
    view,
  );
  load();
  return () => {
    live.removeEventListener("event", onEvent);
    clearTimeout(reloadTimer);
  };
}

function fact(name, value) {
  return [h("dt", {}, name), h("dd", {}, value)];
}
