// The notification center every user has: the bell's unread count, toasts as the user's jobs
// move, and the page listing the last 50 notifications.
//
// Notifications are stored by the notifiers when a user's job completes or dies, a moment after
// the event is pushed, so the count is asked again shortly after each such event, and after
// every reconnect (events missed while away were stored meanwhile).

import { ApiError } from "./api.js";
import { h, replace, statusLine } from "./dom.js";
import { when } from "./format.js";

const LIST_SIZE = 50;
// After an event that stores a notification: when to ask for the count again, in ms.
const RECOUNT_AFTER_MS = [300, 1200, 3000];
const TOAST_KEEP_MS = 8000;
// A slow recount besides the pushes: read or dismissed in another tab, or stored late.
const RECOUNT_EVERY_MS = 30_000;
// Recovered events come in a burst; the summary waits until it is over.
const MISSED_QUIET_MS = 400;
const FINISHING = new Set(["job.completed", "job.dead_lettered", "job.cancelled"]);

/** What a user reads about an event: a title, a line, and how it looks. */
export function describe(event) {
  const name = event.type;
  switch (event.event) {
    case "job.queued":
      return { title: `${name} queued`, line: event.run_at_ms ? `runs at ${when(event.run_at_ms)}` : "waiting for a worker", tone: "info" };
    case "job.started":
      return { title: `${name} running`, line: `attempt ${event.attempt}`, tone: "info" };
    case "job.progress":
      return { title: `${name} running`, line: event.message || `${Math.round(event.progress * 100)} %`, tone: "info" };
    case "job.retrying":
      return { title: `${name} will retry`, line: `${event.error.message}; next try at ${when(event.retry_at_ms)}`, tone: "warn" };
    case "job.completed":
      return { title: `${name} completed`, line: `after ${event.attempt} attempt${event.attempt === 1 ? "" : "s"}`, tone: "ok" };
    case "job.dead_lettered":
      return { title: `${name} failed`, line: event.error.message, tone: "bad" };
    case "job.cancelled":
      return { title: `${name} cancelled`, line: `by ${event.by}`, tone: "info" };
    default:
      return { title: `${name}: ${event.event}`, line: "", tone: "info" };
  }
}

export class NotificationCenter {
  constructor({ api, live, session, toasts, bell, badge }) {
    this.api = api;
    this.session = session;
    this.toasts = toasts;
    this.bell = bell;
    this.badge = badge;
    this.unread = 0;
    this.toastsByJob = new Map();
    this.listeners = new Set();
    this.missed = new Map();
    this.missedTimer = null;
    this.recountTimers = [];
    live.addEventListener("event", (event) => this.#onPush(event.detail));
    live.addEventListener("welcome", () => this.#afterConnect());
    live.addEventListener("resync", () => this.changed());
    live.addEventListener("expiring", (event) => this.#onExpiring(event.detail));
    this.poll = setInterval(() => this.refreshCount(), RECOUNT_EVERY_MS);
  }

  /** Stop the timers (at sign-out). */
  stop() {
    clearInterval(this.poll);
    for (const timer of this.recountTimers) clearTimeout(timer);
    clearTimeout(this.missedTimer);
  }

  /** Ask the unread count now. */
  async refreshCount() {
    try {
      const { unread } = await this.api.get("/v1/notifications/unread-count");
      this.#showCount(unread);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
    }
  }

  /** Something changed the stored notifications: recount and tell open lists. */
  changed() {
    this.refreshCount();
    for (const listener of this.listeners) listener();
  }

  /** Call `listener` whenever the stored notifications may have changed; returns an unsubscribe. */
  onChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  #showCount(unread) {
    this.unread = unread;
    this.badge.textContent = String(unread);
    this.badge.hidden = unread === 0;
    this.bell.setAttribute("aria-label", `Notifications, ${unread} unread`);
  }

  #afterConnect() {
    // Notifications of events missed while away were stored meanwhile.
    this.changed();
  }

  /** Missed events come first after a reconnect, marked recovered: one toast sums them up. */
  #recovered(event) {
    this.missed.set(event.job_id, describe(event).title);
    clearTimeout(this.missedTimer);
    this.missedTimer = setTimeout(() => {
      const titles = [...this.missed.values()];
      const shown = titles.slice(0, 3).join("; ");
      const more = titles.length > 3 ? `; and ${titles.length - 3} more` : "";
      this.toast({ title: "While you were away", line: shown + more, tone: "info" });
      this.missed.clear();
    }, MISSED_QUIET_MS);
  }

  #onPush(push) {
    const event = push.event;
    if (event.owner !== this.session.sub) return; // admins get everyone's events: pages use them
    if (FINISHING.has(event.event)) this.#recountSoon();
    if (push.recovered) {
      this.#recovered(event);
      return;
    }
    if (event.event === "job.queued") return;
    this.#jobToast(event);
  }

  #recountSoon() {
    // Not pushed back by further events: a steady stream of completions still updates the count.
    if (this.recountTimers.length) return;
    const last = RECOUNT_AFTER_MS.length - 1;
    this.recountTimers = RECOUNT_AFTER_MS.map((ms, index) =>
      setTimeout(() => {
        if (index === last) this.recountTimers = [];
        this.changed();
      }, ms),
    );
  }

  #onExpiring({ expires_in_s: seconds, refreshed }) {
    if (refreshed) return;
    this.toast({ title: "Your session ends soon", line: `in ${seconds} s: sign in again with a new token`, tone: "warn" });
  }

  /** One toast per job, updated in place as its events arrive, with a progress bar. */
  #jobToast(event) {
    const { title, line, tone } = describe(event);
    let toast = this.toastsByJob.get(event.job_id);
    if (!toast) {
      toast = this.toast({ title, line, tone, keep: true });
      toast.dataset.jobId = event.job_id;
      this.toastsByJob.set(event.job_id, toast);
      toast.addEventListener("toast-closed", () => this.toastsByJob.delete(event.job_id));
    }
    toast.dataset.tone = tone;
    toast.dataset.event = event.event;
    toast.querySelector(".toast-title").textContent = title;
    toast.querySelector(".toast-line").textContent = line;
    let bar = toast.querySelector("progress");
    if (event.event === "job.progress" || event.event === "job.started") {
      if (!bar) {
        bar = h("progress", { max: "1", "aria-label": `${event.type} progress` });
        toast.querySelector(".toast-body").append(bar);
      }
      if (event.event === "job.progress") bar.value = event.progress;
    } else {
      bar?.remove();
    }
    if (FINISHING.has(event.event)) this.#closeLater(toast);
  }

  /** Show a toast; it closes by itself after a while unless `keep`. */
  toast({ title, line, tone = "info", keep = false }) {
    const close = h("button", { type: "button", class: "toast-close", "aria-label": `Close: ${title}` }, "×");
    const toast = h(
      "div",
      { class: "toast", role: tone === "bad" ? "alert" : "status", dataset: { tone } },
      h("div", { class: "toast-body" }, h("strong", { class: "toast-title" }, title), h("span", { class: "toast-line" }, line)),
      close,
    );
    close.addEventListener("click", () => this.#close(toast));
    this.toasts.append(toast);
    if (!keep) this.#closeLater(toast);
    return toast;
  }

  #closeLater(toast) {
    clearTimeout(toast.closeTimer);
    toast.closeTimer = setTimeout(() => this.#close(toast), TOAST_KEEP_MS);
  }

  #close(toast) {
    clearTimeout(toast.closeTimer);
    toast.remove();
    toast.dispatchEvent(new Event("toast-closed"));
  }
}

/** The notifications page: the last 50, each readable and dismissable, and "read all". */
export function mountNotifications({ api, notifications, session }, main) {
  const status = statusLine();
  const unreadOnly = h("input", { type: "checkbox", id: "unread-only" });
  const list = h("ul", { class: "notifications", "aria-label": "Notifications" });
  const readAll = h("button", { type: "button" }, "Mark all read");

  async function load() {
    try {
      const page = await api.get("/v1/notifications", { limit: LIST_SIZE, unread: unreadOnly.checked ? "true" : undefined });
      replace(list, page.items.length ? page.items.map(item) : h("li", { class: "empty" }, "No notifications."));
    } catch (error) {
      status.textContent = error.message;
    }
  }

  function item(notification) {
    const unread = notification.read_at === null;
    const actions = [
      unread && h("button", { type: "button", onclick: () => act(`/v1/notifications/${notification.id}/read`, "Marked read") }, "Mark read"),
      h("button", { type: "button", onclick: () => act(`/v1/notifications/${notification.id}/dismiss`, "Dismissed") }, "Dismiss"),
    ];
    const jobId = notification.data?.job_id;
    return h(
      "li",
      { class: unread ? "notification unread" : "notification", dataset: { id: notification.id, kind: notification.kind } },
      h("div", {}, [
        h("strong", {}, notification.title, unread && h("span", { class: "visually-hidden" }, " (unread)")),
        notification.body && h("p", {}, notification.body),
        h(
          "small",
          {},
          h("time", { datetime: notification.created_at }, when(notification.created_at)),
          jobId && " · job ",
          jobId && (session.isAdmin ? h("a", { href: `#/jobs/${jobId}` }, h("code", {}, jobId)) : h("code", {}, jobId)),
        ),
      ]),
      h("div", { class: "actions" }, actions),
    );
  }

  async function act(path, done) {
    try {
      await api.post(path);
      status.textContent = done;
      notifications.changed();
    } catch (error) {
      status.textContent = error.message;
    }
  }

  readAll.addEventListener("click", async () => {
    try {
      const { marked } = await api.post("/v1/notifications/read-all");
      status.textContent = `${marked} marked read`;
      notifications.changed();
    } catch (error) {
      status.textContent = error.message;
    }
  });
  unreadOnly.addEventListener("change", load);

  replace(
    main,
    h("h1", {}, "Notifications"),
    h("div", { class: "toolbar" }, readAll, h("label", { for: "unread-only" }, unreadOnly, " Unread only")),
    status,
    list,
  );
  load();
  return notifications.onChange(load);
}
