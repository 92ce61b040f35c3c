// Settings (admins): every runtime setting with its value, default and schema; a change is
// checked by the gateway, and its 422 problem is shown next to the field it is about.

import { h, replace, uid, statusLine } from "../dom.js";
import { when } from "../format.js";

/** The control that edits a value of `schema`: a list, a number, or JSON text. */
function control(setting) {
  const { schema, value } = setting;
  if (Array.isArray(schema.enum)) {
    return { input: h("select", {}, schema.enum.map((option) => h("option", { value: option, selected: option === value }, option))), read: (input) => input.value };
  }
  if (schema.type === "integer" || schema.type === "number") {
    // No min/max attributes: the gateway is the one judge, and says why a value is refused.
    return { input: h("input", { type: "number", step: schema.type === "integer" ? "1" : "any", value: String(value) }), read: (input) => (input.value === "" ? null : Number(input.value)) };
  }
  return {
    input: h("textarea", { rows: "2", spellcheck: "false" }, JSON.stringify(value)),
    read: (input) => {
      try {
        return JSON.parse(input.value);
      } catch (error) {
        throw new SyntaxError(`not JSON: ${error.message}`);
      }
    },
  };
}

function bounds(schema) {
  const parts = [];
  if (schema.minimum !== undefined) parts.push(`at least ${schema.minimum}`);
  if (schema.exclusiveMinimum !== undefined) parts.push(`above ${schema.exclusiveMinimum}`);
  if (schema.maximum !== undefined) parts.push(`at most ${schema.maximum}`);
  if (schema.type === "array") parts.push(`a JSON list of ${schema.minItems ?? 0} to ${schema.maxItems ?? "any number of"} items`);
  if (schema.anyOf) parts.push("JSON; null for none");
  return parts.join(", ");
}

export function mountSettings({ api }, main) {
  const status = statusLine();
  const list = h("div", { class: "settings" });

  function form(setting, message = "") {
    const { input, read } = control(setting);
    const inputId = uid("setting");
    const errorId = uid("setting-error");
    const descriptionId = uid("setting-description");
    input.id = inputId;
    input.name = setting.key;
    input.setAttribute("aria-describedby", `${descriptionId} ${errorId}`);
    const error = h("p", { id: errorId, class: "field-error", role: "alert", hidden: true });
    const saved = h("span", { role: "status", class: "saved" }, message);

    function showError(message) {
      error.textContent = message;
      error.hidden = !message;
      input.setAttribute("aria-invalid", message ? "true" : "false");
    }

    async function submit(call, done) {
      showError("");
      saved.textContent = "";
      try {
        const view = await call();
        const next = form(view, done);
        section.replaceWith(next);
        next.elements[view.key]?.focus();
      } catch (problem) {
        showError(problem.message);
        input.focus();
      }
    }

    const section = h(
      "form",
      { class: "setting card", dataset: { key: setting.key }, novalidate: true, "aria-label": `Setting ${setting.key}` },
      h("label", { for: inputId }, h("code", {}, setting.key)),
      h(
        "div",
        { id: descriptionId, class: "hint" },
        h("p", {}, setting.description),
        h("p", {}, bounds(setting.schema) && `Allowed: ${bounds(setting.schema)}. `, `Default: ${JSON.stringify(setting.default)}.`),
      ),
      input,
      error,
      h(
        "p",
        { class: "meta" },
        setting.updated_by ? `Set by ${setting.updated_by} at ${when(setting.updated_at)}` : "Not set: services use their environment or the default.",
      ),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit" }, "Save"),
        h(
          "button",
          {
            type: "button",
            disabled: !setting.updated_by,
            onclick: () => submit(() => api.del(`/v1/settings/${encodeURIComponent(setting.key)}`), "Reset to default"),
          },
          "Reset",
        ),
        saved,
      ),
    );
    section.addEventListener("submit", (event) => {
      event.preventDefault();
      let value;
      try {
        value = read(input);
      } catch (problem) {
        showError(problem.message);
        input.focus();
        return;
      }
      submit(() => api.put(`/v1/settings/${encodeURIComponent(setting.key)}`, { value }), "Saved");
    });
    return section;
  }

  async function load() {
    try {
      const settings = await api.get("/v1/settings");
      replace(list, settings.map((setting) => form(setting)));
    } catch (error) {
      status.textContent = error.message;
    }
  }

  replace(main, h("h1", {}, "Settings"), h("p", {}, "Applied by every running service without a restart."), status, list);
  load();
  return () => {};
}
