// The operator's console: sign in, a sidebar of areas, one page per hash route (#/meters/M1).
import { createApi } from "/web/api.js";
import { otherLang, setLang, t } from "/web/i18n.js";
import { actionForm, errorText, field, h, mount } from "/web/ui.js";
import { accountPage, accountsPage, dunningPage } from "./accounts.js";
import { dashboardPage } from "./dashboard.js";
import { dtusPage, meterPage, metersPage } from "./field.js";
import { paymentsPage } from "./payments.js";
import { auditPage, policyPage, supplyPage, tariffPage, tariffsPage, usersPage } from "./settings.js";

const api = createApi("prepaid.console.token");
const root = document.getElementById("app");

// [route, label key, page, who may see it]
const AREAS = [
  ["dashboard", "nav.dashboard", dashboardPage, "staff"],
  ["meters", "nav.meters", metersPage, "staff"],
  ["dtus", "nav.dtus", dtusPage, "staff"],
  ["accounts", "nav.accounts", accountsPage, "staff"],
  ["dunning", "nav.dunning", dunningPage, "staff"],
  ["payments", "nav.payments", paymentsPage, "staff"],
  ["tariffs", "nav.tariffs", tariffsPage, "staff"],
  ["supply", "nav.supply", supplyPage, "staff"],
  ["policy", "nav.policy", policyPage, "staff"],
  ["users", "nav.users", usersPage, "admin"],
  ["audit", "nav.audit", auditPage, "admin"],
];
const DETAIL = { meters: meterPage, accounts: accountPage, tariffs: tariffPage };
let me = null;
let cleanup = [];
let navigated = false; // true once the user has moved between pages

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  return { area: parts[0] || "dashboard", id: parts[1] };
}

function go(...parts) {
  location.hash = `#/${parts.map(encodeURIComponent).join("/")}`;
}

function langButton(extraClass = "") {
  return h("button", { type: "button", class: `lang-toggle ${extraClass}`, onclick: () => { setLang(otherLang()); render(); } }, t("lang.switch"));
}

function loginView(message) {
  document.title = t("console.title");
  mount(
    root,
    h(
      "main",
      { id: "main", class: "login" },
      h("div", { class: "row", style: "justify-content:flex-end" }, langButton()),
      h("h1", {}, t("console.title")),
      message ? h("p", { class: "alert alert-warn", role: "alert" }, message) : null,
      h(
        "div",
        { class: "card" },
        actionForm(
          { "aria-label": t("login.title") },
          [
            field(t("login.username"), { name: "username", autocomplete: "username", required: true }),
            field(t("login.password"), { name: "password", type: "password", autocomplete: "current-password", required: true }),
          ],
          async ({ username, password }) => {
            await api.login(username, password).catch((error) => {
              throw error.status === 401 ? new Error(t("login.failed")) : error;
            });
            await start();
          },
          t("login.submit"),
        ),
      ),
      h("p", { class: "muted", style: "text-align:center" }, t("console.tenant_hint"), " ", h("a", { href: "/m/" }, "/m/")),
    ),
  );
}

async function start() {
  try {
    me = await api.get("/me");
  } catch (error) {
    me = null;
    loginView(error.status === 401 ? null : errorText(error));
    return;
  }
  if (me.role === "tenant") {
    api.setToken(null);
    me = null;
    loginView(t("console.tenant_refused"));
    return;
  }
  render();
}

function logout() {
  api.setToken(null);
  me = null;
  loginView();
}

function allowed(who) {
  return who === "staff" || me.role === "admin";
}

async function render() {
  for (const stop of cleanup) stop();
  cleanup = [];
  if (!me) return start();
  const { area, id } = parseRoute();
  const entry = AREAS.find(([name]) => name === area) || AREAS[0];
  const [name, label, listPage, who] = entry;
  const content = h("div", { "aria-busy": "true" });
  const heading = h("h1", { tabindex: "-1" }, t(label));
  const actions = h("div", { class: "row" });
  document.title = `${t(label)} · ${t("console.title")}`;
  mount(
    root,
    h(
      "div",
      { class: "layout" },
      h(
        "aside",
        { class: "sidebar" },
        h("div", { class: "brand" }, t("console.title")),
        h(
          "nav",
          { "aria-label": t("console.areas") },
          AREAS.filter(([, , , w]) => allowed(w)).map(([n, l]) =>
            h("a", { href: `#/${n}`, "aria-current": n === name ? "page" : undefined }, t(l)),
          ),
        ),
        h(
          "div",
          { class: "who" },
          h("div", {}, `${me.username} · ${t(`role.${me.role}`)}`),
          h("div", { class: "row" }, h("button", { type: "button", onclick: logout }, t("nav.logout")), langButton()),
        ),
      ),
      h("main", { id: "main", class: "work" }, h("header", {}, heading, actions), content),
    ),
  );
  const context = {
    api,
    me,
    go,
    heading,
    actions,
    rerender: render,
    every: (ms, task) => {
      const timer = setInterval(() => { if (!document.hidden) task().catch(() => {}); }, ms);
      cleanup.push(() => clearInterval(timer));
    },
  };
  try {
    if (!allowed(who)) throw Object.assign(new Error(t("error.forbidden")), { status: 403 });
    await (id !== undefined && DETAIL[name] ? DETAIL[name](content, id, context) : listPage(content, context));
  } catch (error) {
    mount(content, h("p", { class: "alert alert-bad", role: "alert" }, errorText(error)));
  }
  content.removeAttribute("aria-busy");
  if (navigated) heading.focus({ preventScroll: true });
}

api.onLoggedOut(() => { me = null; loginView(t("login.expired")); });
window.addEventListener("hashchange", () => {
  navigated = true;
  if (me) render();
});
if (api.token()) start();
else loginView();
