// Sign-in: paste an access token, or, on a dev stack, pick a dev user to get one minted.

import { h, replace, field, select, statusLine } from "./dom.js";
import { sessionOf } from "./session.js";

/** Resolves `signedIn(token)` once the gateway has accepted a token. */
export function mountSignIn(main, { config, api, signedIn, message }) {
  const status = statusLine({ id: "sign-in-status" });
  status.textContent = message ?? "";
  const tokenInput = h("textarea", { name: "token", rows: "4", required: true, spellcheck: "false", autocomplete: "off" });
  const pasted = h(
    "form",
    { class: "card", "aria-labelledby": "paste-heading" },
    h("h2", { id: "paste-heading" }, "Sign in with a token"),
    field("Access token (JWT)", tokenInput, "From your identity provider, or from make token SUB=alice ROLE=USER on a dev stack."),
    h("button", { type: "submit" }, "Sign in"),
  );
  pasted.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = tokenInput.value.trim();
    const session = sessionOf(token);
    if (!session) {
      status.textContent = "That is not a Conduit access token: it needs `sub` and a role of USER or ADMIN.";
      tokenInput.setAttribute("aria-invalid", "true");
      tokenInput.focus();
      return;
    }
    await check(token);
  });

  // The gateway is the judge: a token it refuses (wrong secret, expired) is not kept.
  async function check(token) {
    try {
      await api(token).get("/v1/notifications/unread-count");
      signedIn(token);
    } catch (error) {
      status.textContent = `The gateway refused the token: ${error.message}`;
    }
  }

  const parts = [h("h1", {}, "Conduit console"), status, pasted];
  if (config.dev_sign_in) {
    const subInput = h("input", { name: "sub", required: true, pattern: "[A-Za-z0-9_.@-]+", maxlength: "64", autocomplete: "off" });
    const roleSelect = select(["USER", "ADMIN"], "USER", { name: "role" });
    const custom = h(
      "form",
      { class: "inline", "aria-label": "Sign in as another dev user" },
      field("User", subInput),
      field("Role", roleSelect),
      h("button", { type: "submit" }, "Sign in"),
    );
    custom.addEventListener("submit", (event) => {
      event.preventDefault();
      dev(subInput.value.trim(), roleSelect.value);
    });
    parts.push(
      h(
        "section",
        { class: "card", "aria-labelledby": "dev-heading" },
        h("h2", { id: "dev-heading" }, "Dev sign-in"),
        h("p", {}, "This stack runs in dev mode: pick a user and a token is minted for them."),
        h(
          "div",
          { class: "actions" },
          config.dev_users.map((user) =>
            h("button", { type: "button", onclick: () => dev(user.sub, user.role), dataset: { devUser: user.sub } }, `${user.sub} (${user.role})`),
          ),
        ),
        custom,
      ),
    );
  }

  async function dev(sub, role) {
    try {
      const minted = await api(null).post("/console/api/dev-token", { sub, role });
      signedIn(minted.token);
    } catch (error) {
      status.textContent = `Dev sign-in failed: ${error.message}`;
    }
  }

  replace(main, h("div", { class: "sign-in" }, parts));
  (config.dev_sign_in ? main.querySelector("[data-dev-user]") : tokenInput)?.focus();
}
