// Small DOM helpers: build elements from data (never from HTML strings), format money and time.
import { t, lang } from "./i18n.js";

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      node.className = value;
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else if (value === true) {
      node.setAttribute(key, "");
    } else {
      node.setAttribute(key, value);
    }
  }
  append(node, children);
  // A section headed by an h2 is a named region, so screen readers can jump between them.
  const title = node.firstElementChild;
  if (tag === "section" && !node.hasAttribute("aria-label") && !node.hasAttribute("aria-labelledby") && title?.tagName === "H2") {
    title.id ||= `h-${Math.random().toString(36).slice(2, 9)}`;
    node.setAttribute("aria-labelledby", title.id);
  }
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

export function mount(target, ...children) {
  target.replaceChildren();
  append(target, children);
}

export function money(value) {
  if (value === null || value === undefined || value === "") return "—";
  const number = Number(value);
  const sign = number < 0 ? "-" : "";
  return `${sign}¥${Math.abs(number).toLocaleString(lang(), { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

// Arrears come back as the arrears ledger's balance (negative while owed): the sum owed.
export function owed(arrears) {
  return Math.abs(Number(arrears || 0));
}

export function kwh(value, digits = 2) {
  if (value === null || value === undefined) return "—";
  return `${Number(value).toLocaleString(lang(), { maximumFractionDigits: digits })} kWh`;
}

export function when(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(lang(), { hour12: false });
}

export function ago(iso) {
  if (!iso) return "—";
  const seconds = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (seconds < 60) return t("ago.seconds", { n: seconds });
  if (seconds < 3600) return t("ago.minutes", { n: Math.round(seconds / 60) });
  if (seconds < 86400) return t("ago.hours", { n: Math.round(seconds / 3600) });
  return t("ago.days", { n: Math.round(seconds / 86400) });
}

export function badge(text, kind = "neutral") {
  return h("span", { class: `badge badge-${kind}` }, text);
}

// A table from column definitions: {label, value(row) -> node or text, class}.
export function table(columns, rows, { empty, caption } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty || t("common.empty"));
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)))),
      h(
        "tbody",
        {},
        rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.class }, c.value(row))))),
      ),
    ),
  );
}

// A button that saves `rows` (or what a function of none answers) as CSV (Excel opens it; the BOM tells it the text is UTF-8).
export function csvButton(filename, columns, rows) {
  const text = (value) => (value instanceof Node ? value.textContent : value ?? "").toString();
  const quote = (value) => `"${text(value).replace(/"/g, '""')}"`;
  return h("button", { type: "button", onclick: () => {
    const data = typeof rows === "function" ? rows() : rows;
    const lines = [columns.map((c) => quote(c.label)), ...data.map((row) => columns.map((c) => quote(c.value(row))))];
    const blob = new Blob(["\ufeff" + lines.map((l) => l.join(",")).join("\r\n")], { type: "text/csv;charset=utf-8" });
    const link = h("a", { href: URL.createObjectURL(blob), download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  } }, t("common.export"));
}

// A labelled form field; `input` attributes go to the control.
export function field(label, input = {}, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  let control;
  if (input.type === "select") {
    const { options = [], value, ...rest } = input;
    control = h(
      "select",
      { ...rest, type: undefined, id },
      options.map(([v, text]) => h("option", { value: v, selected: String(v) === String(value) }, text)),
    );
  } else if (input.type === "textarea") {
    const { value, ...rest } = input;
    control = h("textarea", { ...rest, type: undefined, id }, value ?? "");
  } else if (input.type === "checkbox") {
    control = h("input", { ...input, id });
    return h("div", { class: "field field-check" }, control, h("label", { for: id }, label));
  } else {
    control = h("input", { ...input, id });
  }
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? h("small", {}, hint) : null);
}

export function formValues(form) {
  const values = {};
  for (const element of form.elements) {
    if (!element.name) continue;
    values[element.name] = element.type === "checkbox" ? element.checked : element.value.trim();
  }
  return values;
}

// A form whose submit runs `action`; errors land in its status line, the button waits.
export function actionForm(attrs, children, action, submitLabel) {
  const status = h("p", { class: "form-status", role: "status", "aria-live": "polite" });
  const button = h("button", { type: "submit", class: "primary" }, submitLabel);
  const form = h("form", { ...attrs, novalidate: false }, children, h("div", { class: "form-actions" }, button), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    status.className = "form-status";
    status.textContent = "";
    try {
      const message = await action(formValues(form), form);
      if (message) {
        status.textContent = message;
        status.className = "form-status ok";
      }
    } catch (error) {
      status.textContent = errorText(error);
      status.className = "form-status error";
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

export function errorText(error) {
  if (error?.status === 0) return t("error.network");
  if (error?.status === 403) return t("error.forbidden");
  if (error?.status === 404) return t("error.not_found");
  if (error?.status === 409) return `${t("error.conflict")}: ${error.message}`;
  if (error?.status === 422) return `${t("error.invalid")}: ${error.message}`;
  return error?.message || String(error);
}

export function toast(message, kind = "ok") {
  let region = document.getElementById("toasts");
  if (!region) {
    region = h("div", { id: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(region);
  }
  const note = h("div", { class: `toast toast-${kind}` }, message);
  region.append(note);
  setTimeout(() => note.remove(), 4000);
}

export function today() {
  return isoDate(new Date());
}

export function isoDate(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

// Bars for a usage report: every day of the last 30 (or month of the last 12) gets one, an
// empty one where nothing was used; none at all when the report is empty.
export function timeline(items, granularity, valueOf) {
  if (!items.length) return [];
  const now = new Date();
  const byPeriod = new Map(items.map((item) => [item.period, item]));
  const periods =
    granularity === "day"
      ? Array.from({ length: 30 }, (_, i) => isoDate(new Date(now.getFullYear(), now.getMonth(), now.getDate() - 29 + i)))
      : Array.from({ length: 12 }, (_, i) => isoDate(new Date(now.getFullYear(), now.getMonth() - 11 + i, 1)).slice(0, 7));
  return periods.map((period) => ({
    label: granularity === "day" ? period.slice(5) : period,
    value: byPeriod.has(period) ? Number(valueOf(byPeriod.get(period))) : 0,
  }));
}

// A fresh key for one operator action, so a double click or a retry posts it once.
export function operationKey(prefix) {
  const stamp = new Date().toISOString().replace(/[-:TZ.]/g, "").slice(0, 14);
  return `${prefix}-${stamp}-${Math.random().toString(36).slice(2, 6).toUpperCase()}`;
}
