// The console's entry point: sign-in, the header (pages, connection state, bell), and a hash
// router that mounts one page at a time. A page's mount function returns its cleanup.

import { createApi } from "./api.js";
import { h, replace } from "./dom.js";
import { LiveConnection, notifierUrl } from "./live.js";
import { NotificationCenter, mountNotifications } from "./notifications.js";
import { mountDeadLetters } from "./pages/deadletters.js";
import { mountJob, mountJobs } from "./pages/jobs.js";
import { mountQueues } from "./pages/queues.js";
import { mountSettings } from "./pages/settings.js";
import { mountSystem } from "./pages/system.js";
import { clearSession, loadSession, saveToken } from "./session.js";
import { mountSignIn } from "./signin.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const sessionBar = document.getElementById("session");
const connection = document.getElementById("connection");
const who = document.getElementById("who");

// Path pattern, page, title, whether only admins may open it.
const ROUTES = [
  [/^\/notifications$/, mountNotifications, "Notifications", false],
  [/^\/jobs$/, mountJobs, "Jobs", true],
  [/^\/jobs\/([^/]+)$/, (ctx, node, _params, match) => mountJob(ctx, node, decodeURIComponent(match[1])), "Job", true],
  [/^\/dead-letters$/, mountDeadLetters, "Dead letters", true],
  [/^\/queues$/, mountQueues, "Queues", true],
  [/^\/system$/, mountSystem, "System", true],
  [/^\/settings$/, mountSettings, "Settings", true],
];

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting",
  closed: "Disconnected",
  offline: "Offline",
};

let config = null;
let app = null;

async function boot() {
  try {
    const answer = await fetch("/console/api/config");
    config = await answer.json();
  } catch (error) {
    replace(main, h("p", { class: "error", role: "alert" }, `The gateway did not answer: ${error.message}`));
    return;
  }
  const session = loadSession();
  if (session) start(session);
  else showSignIn();
}

function showSignIn(message) {
  nav.hidden = true;
  sessionBar.hidden = true;
  document.title = "Sign in · Conduit console";
  mountSignIn(main, {
    config,
    message,
    api: (token) => createApi({ token: () => token }),
    signedIn: (token) => start(saveToken(token)),
  });
}

function start(session) {
  let current = session;
  const api = createApi({
    token: () => current.token,
    onUnauthorized: () => signOut("Your session has ended: sign in again."),
  });
  // On a dev stack a token about to run out is replaced by a new one for the same user.
  const renew = config.dev_sign_in
    ? async () => {
        const minted = await createApi({ token: () => null }).post("/console/api/dev-token", { sub: current.sub, role: current.role });
        current = saveToken(minted.token);
        return minted.token;
      }
    : null;
  const live = new LiveConnection({
    url: notifierUrl(config.notifier_url),
    token: () => current.token,
    renew,
    storageKey: `conduit.console.offsets.${session.sub}`,
  });
  const notifications = new NotificationCenter({
    api,
    live,
    session,
    toasts: document.getElementById("toasts"),
    bell: document.getElementById("bell"),
    badge: document.getElementById("unread"),
  });
  live.addEventListener("state", ({ detail }) => {
    connection.dataset.state = detail.state;
    connection.textContent = CONNECTION_TEXT[detail.state] ?? detail.state;
    connection.title = detail.detail ?? "";
  });
  live.addEventListener("closed", ({ detail }) => {
    if (detail.code === 4401) signOut("Your session has ended: sign in again.");
  });
  app = { session, api, live, notifications, config, unmount: null };
  for (const link of nav.querySelectorAll("[data-admin]")) link.hidden = !session.isAdmin;
  who.textContent = `${session.sub} (${session.role})`;
  nav.hidden = false;
  sessionBar.hidden = false;
  live.start();
  notifications.refreshCount();
  route();
}

function signOut(message) {
  if (!app) return;
  const leaving = app;
  app = null;
  leaving.unmount?.();
  leaving.live.stop();
  leaving.notifications.stop();
  document.getElementById("toasts").replaceChildren();
  clearSession();
  showSignIn(message);
}

function route() {
  if (!app) return;
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const wanted = path && path !== "/" ? path : app.session.isAdmin ? "/jobs" : "/notifications";
  let found = null;
  for (const [pattern, mount, title, adminOnly] of ROUTES) {
    const match = wanted.match(pattern);
    if (match) found = { mount, title, adminOnly, match };
  }
  app.unmount?.();
  app.unmount = null;
  if (!found) {
    replace(main, h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/notifications" }, "Notifications")));
    return;
  }
  document.title = `${found.title} · Conduit console`;
  for (const link of nav.querySelectorAll("a")) {
    const current = wanted.startsWith(new URL(link.href).hash.slice(1));
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (found.adminOnly && !app.session.isAdmin) {
    replace(main, h("h1", {}, found.title), h("p", {}, "This page is for admins."));
    return;
  }
  app.unmount = found.mount(app, main, new URLSearchParams(query), found.match) ?? null;
}

window.addEventListener("hashchange", () => {
  route();
  // Move focus to the new page, as a full page load would, for keyboard and screen readers.
  main.focus({ preventScroll: false });
});
document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
boot();
