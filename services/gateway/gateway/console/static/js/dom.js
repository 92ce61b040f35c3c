// Building DOM nodes from data. Text always goes in as text nodes, never as HTML, so nothing an
// API returns (a job's payload, an error's traceback, a log line) can inject markup or script.

/**
 * An element: `h("button", {type: "button", onclick: fn}, "Retry")`.
 * Props starting with "on" add listeners; `false`/`null`/`undefined` props are left out;
 * children may be nodes, strings, numbers, arrays of those, or null/false (skipped).
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      node.className = value;
    } else if (name === "value" || name === "checked" || name === "selected") {
      node[name] = value;
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

/** Append children (see `h`) to `node`. */
export function append(node, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace every child of `node` with `children`. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

let nextId = 0;

/** An id unique on the page, for `for`, `aria-describedby` and `aria-controls`. */
export function uid(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/** A labelled form control: the label's `for` points at the control, which gets an id. */
export function field(label, control, hint) {
  control.id ||= uid("field");
  const parts = [h("label", { for: control.id }, label), control];
  if (hint) {
    const hintNode = h("small", { id: uid("hint"), class: "hint" }, hint);
    control.setAttribute("aria-describedby", hintNode.id);
    parts.push(hintNode);
  }
  return h("div", { class: "field" }, parts);
}

/** A `<select>` of `options` (strings or [value, label] pairs) with `selected` chosen. */
export function select(options, selected, props = {}) {
  return h(
    "select",
    props,
    options.map((option) => {
      const [value, label] = Array.isArray(option) ? option : [option, option];
      return h("option", { value, selected: value === selected }, label);
    }),
  );
}

/** A table with a caption, column headers and rows of cells (nodes or text). */
export function table(caption, headers, rows, props = {}) {
  return h(
    "table",
    props,
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, rows),
  );
}

/** A status line that screen readers announce when its text changes. */
export function statusLine(props = {}) {
  return h("p", { role: "status", class: "status-line", ...props });
}

/**
 * Ask to confirm in a modal `<dialog>` (focus moves into it, Escape cancels): resolves to true
 * only when the confirming button was pressed.
 */
export function confirmDialog(message, confirmLabel = "Confirm") {
  return new Promise((resolve) => {
    const textId = uid("confirm");
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-labelledby": textId },
      h("form", { method: "dialog" }, [
        h("p", { id: textId }, message),
        h("div", { class: "actions" }, [
          h("button", { value: "cancel", type: "submit", autofocus: true }, "Cancel"),
          h("button", { value: "confirm", type: "submit", class: "danger" }, confirmLabel),
        ]),
      ]),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "confirm");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
