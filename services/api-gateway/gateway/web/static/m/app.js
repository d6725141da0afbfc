// The tenant's phone site: balance and supply at a glance, usage charts, top-up, history, alerts.
import { createApi } from "/web/api.js";
import { barChart } from "/web/chart.js";
import { lang, otherLang, setLang, t } from "/web/i18n.js";
import { actionForm, ago, badge, errorText, field, h, isoDate, kwh, money, mount, owed, timeline, when } from "/web/ui.js";

const api = createApi("prepaid.m.token");
const root = document.getElementById("app");
const REFRESH_MS = 5000;
// The tab bar's icons: SVG paths on a 24-unit grid, drawn in the text colour.
const TABS = [
  ["home", "M3 11 12 3l9 8M5 10v10h5v-6h4v6h5V10"],
  ["usage", "M4 20h16M6 16v-4M10 16V8M14 16v-6M18 16V5"],
  ["topup", "M6 4l6 7 6-7M12 11v9M7 12h10M7 16h10"],
  ["history", "M5 6h14M5 12h14M5 18h9"],
  ["alerts", "M6 17V11a6 6 0 0 1 12 0v6l2 2H4zM10 21h4"],
];

function icon(path) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "path");
  line.setAttribute("d", path);
  svg.append(line);
  return svg;
}
let me = null;
let timer = null;
let paying = null; // the order being paid, polled until it settles

// A WeChat menu may open /m/#token=<token>: sign in with it and drop it from the address bar.
function takeTokenFromLink() {
  const match = location.hash.match(/token=([^&]+)/);
  if (!match) return;
  api.setToken(decodeURIComponent(match[1]));
  history.replaceState(null, "", location.pathname + location.search);
}

function route() {
  const [, accountId, page] = location.hash.match(/^#\/([^/]+)\/(\w+)/) || [];
  return { accountId: accountId && decodeURIComponent(accountId), page: page || "home" };
}

function go(accountId, page) {
  location.hash = `#/${encodeURIComponent(accountId)}/${page}`;
}

function langButton() {
  return h(
    "button",
    { type: "button", class: "lang-toggle", onclick: () => { setLang(otherLang()); render(); } },
    t("lang.switch"),
  );
}

function loginView(message) {
  document.title = t("m.title");
  mount(
    root,
    h(
      "main",
      { id: "main", class: "login" },
      h("div", { class: "row", style: "justify-content:flex-end" }, langButton()),
      h("h1", {}, t("m.title")),
      h("p", { class: "muted", style: "text-align:center" }, t("m.login_hint")),
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
  if (me.role !== "tenant") {
    mount(
      root,
      h(
        "main",
        { id: "main", class: "login" },
        h("h1", {}, t("m.title")),
        h("p", { class: "alert alert-warn" }, t("m.staff_here")),
        h("p", {}, h("a", { class: "button primary", href: "/console/" }, t("m.open_console"))),
        h("button", { type: "button", onclick: logout }, t("nav.logout")),
      ),
    );
    return;
  }
  if (!route().accountId && me.account_ids.length) {
    const remembered = localStorage.getItem("prepaid.m.account");
    go(me.account_ids.includes(remembered) ? remembered : me.account_ids[0], "home");
    return;
  }
  render();
}

function logout() {
  api.setToken(null);
  me = null;
  location.hash = "";
  loginView();
}

function shell(accountId, page, content) {
  const choose =
    me.account_ids.length > 1
      ? h(
          "select",
          { "aria-label": t("m.account"), onchange: (e) => go(e.target.value, page) },
          me.account_ids.map((id) => h("option", { value: id, selected: id === accountId }, id)),
        )
      : h("span", {}, accountId);
  return [
    h(
      "header",
      { class: "top" },
      h(
        "div",
        { class: "row" },
        h("h1", {}, t("m.title")),
        h(
          "div",
          { class: "row" },
          langButton(),
          h("a", { class: "button header-link", href: `#/${encodeURIComponent(accountId)}/password` }, t("m.password")),
          h("button", { type: "button", onclick: logout }, t("nav.logout")),
        ),
      ),
      h("div", { class: "row", style: "margin-top:6px;justify-content:flex-start" }, h("span", { class: "sr-only" }, t("m.account")), choose),
    ),
    h("main", { id: "main" }, content),
    h(
      "nav",
      { class: "tabs", "aria-label": t("m.tabs") },
      TABS.map(([name, path]) =>
        h(
          "a",
          { href: `#/${encodeURIComponent(accountId)}/${name}`, "aria-current": name === page ? "page" : undefined, dataset: { tab: name } },
          icon(path),
          t(`m.tab.${name}`),
        ),
      ),
    ),
  ];
}

async function render() {
  clearInterval(timer);
  if (!me) return start();
  const { accountId, page } = route();
  if (!accountId) {
    mount(root, h("main", { id: "main", class: "login" }, h("p", { class: "alert alert-warn" }, t("m.no_account")), h("button", { type: "button", onclick: logout }, t("nav.logout"))));
    return;
  }
  localStorage.setItem("prepaid.m.account", accountId);
  document.title = `${t(page === "password" ? "m.password" : `m.tab.${page}`)} · ${t("m.title")}`;
  const content = h("div", { "aria-busy": "true" });
  mount(root, shell(accountId, page, content));
  const pages = { home: homePage, usage: usagePage, topup: topUpPage, history: historyPage, alerts: alertsPage, password: passwordPage };
  try {
    await (pages[page] || homePage)(content, accountId);
  } catch (error) {
    mount(content, h("p", { class: "alert alert-bad", role: "alert", dataset: { testid: "page-error" } }, errorText(error)));
  }
  content.removeAttribute("aria-busy");
}

// Alerts from the account's state; "restored" is seen by this phone as off -> on.
function alertsOf(account) {
  const alerts = [];
  const memoryKey = `prepaid.m.supply.${account.id}`;
  const memory = JSON.parse(localStorage.getItem(memoryKey) || "{}");
  if (memory.supply === "off" && account.supply === "on") memory.restoredAt = new Date().toISOString();
  memory.supply = account.supply;
  localStorage.setItem(memoryKey, JSON.stringify(memory));
  if (account.supply === "off") alerts.push(["bad", t("alert.cut")]);
  else if (Number(account.balance) <= Number(account.warning_line)) {
    alerts.push(["warn", t("alert.low", { balance: money(account.balance), line: money(account.warning_line) })]);
  }
  if (owed(account.arrears) > 0) alerts.push(["warn", t("alert.arrears", { amount: money(owed(account.arrears)) })]);
  if (memory.restoredAt && account.supply === "on" && Date.now() - new Date(memory.restoredAt) < 86400000) {
    alerts.push(["ok", t("alert.restored", { at: when(memory.restoredAt) })]);
  }
  return alerts;
}

function alertBoxes(alerts) {
  return alerts.map(([kind, text]) => h("div", { class: `alert alert-${kind}`, role: kind === "bad" ? "alert" : undefined }, text));
}

async function homePage(content, accountId) {
  const paint = async () => {
    const account = await api.get(`/accounts/${encodeURIComponent(accountId)}`);
    const readings = new Map(
      (await Promise.all(account.meter_ids.map((id) => api.get(`/meters/${encodeURIComponent(id)}`).catch(() => null))))
        .filter(Boolean)
        .map((meter) => [meter.id, meter]),
    );
    const low = Number(account.balance) <= Number(account.warning_line);
    mount(
      content,
      h(
        "section",
        { class: "balance-card", "aria-labelledby": "balance-label" },
        h("div", { class: "spread" }, h("span", { id: "balance-label", class: "stat-label" }, t("m.balance")), supplyBadge(account.supply)),
        h("div", { class: `stat${Number(account.balance) < 0 ? " neg" : ""}`, dataset: { testid: "balance" } }, money(account.balance)),
        h(
          "dl",
          { class: "facts" },
          fact(t("m.arrears"), money(owed(account.arrears)), "arrears"),
          fact(t("m.warning_line"), money(account.warning_line)),
          fact(t("m.name"), account.name),
          fact(t("m.mode"), t(`mode.${account.mode}`)),
        ),
        h("p", { style: "margin:14px 0 0" }, h("a", { class: `button ${low || account.supply === "off" ? "primary" : ""} pay-button`, href: `#/${encodeURIComponent(accountId)}/topup` }, t("m.topup_now"))),
      ),
      alertBoxes(alertsOf(account)),
      h(
        "section",
        { class: "card", "aria-labelledby": "meters-h" },
        h("h2", { id: "meters-h" }, t("m.meters")),
        h(
          "ul",
          { class: "list" },
          account.meters.map((m) =>
            h("li", { dataset: { meter: m.meter_id } }, h("span", { class: "what" }, m.meter_id, meterLine(readings.get(m.meter_id))), supplyBadge(m.supply)),
          ),
        ),
      ),
      h("p", { class: "muted", style: "font-size:.8rem;text-align:center" }, t("m.updated", { at: new Date().toLocaleTimeString(lang(), { hour12: false }) })),
    );
  };
  await paint();
  timer = setInterval(() => { if (!document.hidden) paint().catch(() => {}); }, REFRESH_MS);
}

// What the meter last said: its register, its power now, and how long ago.
function meterLine(meter) {
  const reading = meter?.last_reading;
  if (!reading) return null;
  const power = reading.power_kw == null ? "" : ` · ${t("m.power", { kw: Number(reading.power_kw).toFixed(2) })}`;
  return h("small", {}, `${kwh(reading.energy_kwh)}${power} · ${ago(reading.read_at)}`);
}

function fact(label, value, testid) {
  return h("div", {}, h("dt", {}, label), h("dd", { dataset: testid ? { testid } : undefined }, value));
}

function supplyBadge(supply) {
  return supply === "on"
    ? badge(t("supply.on"), "ok")
    : badge(t("supply.off"), "bad");
}

async function usagePage(content, accountId) {
  const account = await api.get(`/accounts/${encodeURIComponent(accountId)}`);
  const state = { meter: "", granularity: "day", metric: "cost" };
  const chartBox = h("div", {});
  const tableBox = h("div", {});
  const segmented = (key, options) =>
    h(
      "div",
      { class: "segmented", role: "group" },
      options.map(([value, label]) =>
        h("button", { type: "button", "aria-pressed": String(state[key] === value), onclick: (e) => {
          state[key] = value;
          for (const b of e.target.parentNode.children) b.setAttribute("aria-pressed", String(b === e.target));
          draw();
        } }, label),
      ),
    );
  async function draw() {
    const now = new Date();
    const from = state.granularity === "day"
      ? isoDate(new Date(now.getFullYear(), now.getMonth(), now.getDate() - 29))
      : isoDate(new Date(now.getFullYear(), now.getMonth() - 11, 1));
    const path = state.meter ? `/meters/${encodeURIComponent(state.meter)}/usage` : `/accounts/${encodeURIComponent(accountId)}/usage`;
    const report = await api.get(path, { granularity: state.granularity, from, to: isoDate(now) });
    const points = timeline(report.items, state.granularity, (p) => (state.metric === "cost" ? p.cost : p.metered_kwh));
    const format = state.metric === "cost" ? (v) => `¥${trim(v)}` : (v) => `${trim(v)}`;
    const title = t(`usage.title.${state.granularity}.${state.metric}`);
    mount(chartBox, h("h2", {}, title), barChart(points, { title, format, empty: t("common.empty"), width: 360, height: 230 }));
    const total = report.items.reduce((sum, p) => ({ kwh: sum.kwh + Number(p.metered_kwh), cost: sum.cost + Number(p.cost) }), { kwh: 0, cost: 0 });
    mount(
      tableBox,
      h("p", {}, t("usage.total", { kwh: kwh(total.kwh), cost: money(total.cost) })),
      h(
        "ul",
        { class: "list" },
        [...report.items].reverse().map((p) =>
          h("li", {}, h("span", { class: "what" }, p.period, h("small", {}, kwh(p.metered_kwh))), h("span", { class: "num" }, money(p.cost))),
        ),
      ),
    );
  }
  mount(
    content,
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "controls" },
        h("label", { class: "sr-only", for: "usage-meter" }, t("usage.meter")),
        h(
          "select",
          { id: "usage-meter", onchange: (e) => { state.meter = e.target.value; draw(); } },
          h("option", { value: "" }, t("usage.all_meters")),
          account.meter_ids.map((id) => h("option", { value: id }, id)),
        ),
        segmented("granularity", [["day", t("usage.daily")], ["month", t("usage.monthly")]]),
        segmented("metric", [["cost", t("usage.cost")], ["kwh", t("usage.energy")]]),
      ),
      chartBox,
    ),
    h("section", { class: "card" }, tableBox),
  );
  await draw();
}

function trim(value) {
  return Number(value).toLocaleString(lang(), { maximumFractionDigits: 2 });
}

// The providers this site takes ("wechat", "alipay"); none when online payment is not set up.
async function enabledProviders() {
  try {
    const channels = await api.get("/payment-channels");
    return channels.filter((c) => c.enabled).map((c) => (c.provider === "wechatpay" ? "wechat" : "alipay"));
  } catch (error) {
    if (error.status === 404 || error.status === 405) return [];
    throw error;
  }
}

// Which channel fits this device: a QR code on a PC, H5 on a phone, JSAPI inside WeChat.
function channelFor(provider) {
  const phone = matchMedia("(max-width: 820px)").matches || /Mobi|Android|iPhone/i.test(navigator.userAgent);
  if (provider === "wechat") {
    if (/MicroMessenger/i.test(navigator.userAgent)) return "wechat_jsapi";
    return phone ? "wechat_h5" : "wechat_native";
  }
  return phone ? "alipay_wap" : "alipay_qr";
}

async function topUpPage(content, accountId) {
  const [account, enabled] = await Promise.all([api.get(`/accounts/${encodeURIComponent(accountId)}`), enabledProviders()]);
  if (!enabled.length) {
    mount(
      content,
      h("section", { class: "card" }, h("h2", {}, t("m.tab.topup")), h("p", { class: "alert alert-warn", dataset: { testid: "topup-unavailable" } }, t("topup.unavailable"))),
      await receiptsCard(accountId),
    );
    return;
  }
  const choice = { amount: "50.00", provider: enabled[0] };
  const status = h("div", { role: "status", "aria-live": "polite" });
  const custom = h("input", { id: "amount", name: "amount", inputmode: "decimal", value: choice.amount, autocomplete: "off", oninput: () => {
    for (const b of amounts.children) b.setAttribute("aria-pressed", String(`¥${Number(custom.value)}` === b.textContent));
  } });
  const pressed = (group, button) => { for (const b of group.children) b.setAttribute("aria-pressed", String(b === button)); };
  const amounts = h(
    "div",
    { class: "amounts", role: "group", "aria-label": t("topup.presets") },
    ["20.00", "50.00", "100.00", "200.00"].map((value) =>
      h("button", { type: "button", "aria-pressed": String(value === choice.amount), onclick: (e) => { custom.value = value; pressed(amounts, e.currentTarget); } }, `¥${Number(value)}`),
    ),
  );
  const channels = h(
    "div",
    { class: "channels", role: "group", "aria-label": t("topup.channel") },
    enabled.map((value) => [value, t(`channel.${value}`)]).map(([value, label]) =>
      h("button", { type: "button", "aria-pressed": String(value === choice.provider), dataset: { provider: value }, onclick: (e) => { choice.provider = value; pressed(channels, e.currentTarget); } }, label),
    ),
  );
  const payButton = h("button", { type: "submit", class: "primary pay-button" }, t("topup.pay"));
  const form = h(
    "form",
    { "aria-label": t("m.tab.topup") },
    h("p", {}, t("m.balance"), ": ", h("strong", {}, money(account.balance)), " ", account.supply === "off" ? badge(t("supply.off"), "bad") : null),
    amounts,
    h("div", { class: "field" }, h("label", { for: "amount" }, t("topup.amount")), custom),
    h("p", { class: "stat-label" }, t("topup.channel")),
    channels,
    payButton,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const amount = custom.value.trim();
    if (!/^\d+(\.\d{1,2})?$/.test(amount) || Number(amount) <= 0) {
      mount(status, h("p", { class: "alert alert-bad" }, t("topup.bad_amount")));
      return;
    }
    payButton.disabled = true;
    try {
      const order = await api.post(`/accounts/${encodeURIComponent(accountId)}/orders`, {
        channel: channelFor(choice.provider),
        amount: Number(amount).toFixed(2),
      });
      showOrder(status, order, accountId);
    } catch (error) {
      const unavailable = error.status === 404 || error.status === 405 || error.status === 501;
      mount(status, h("p", { class: "alert alert-bad", role: "alert" }, unavailable ? t("topup.unavailable") : errorText(error)));
    } finally {
      payButton.disabled = false;
    }
  });
  mount(content, h("section", { class: "card" }, h("h2", {}, t("m.tab.topup")), form), status, await receiptsCard(accountId));
}

function payLinkOf(order) {
  return order.code_url || order.qr_code || order.h5_url || order.pay_url || order.mweb_url || order.url || "";
}

function showOrder(box, order, accountId) {
  const link = payLinkOf(order);
  const qrChannel = /native|qr/.test(order.channel || "");
  const state = h("p", { class: "alert alert-warn", dataset: { testid: "order-status" } }, t("order.pending"));
  mount(
    box,
    h(
      "section",
      { class: "card", dataset: { order: order.out_trade_no } },
      h("h2", {}, t("order.title", { amount: money(order.amount) })),
      qrChannel && link ? [h("img", { class: "qr", src: `/web/qr.svg?text=${encodeURIComponent(link)}`, alt: t("order.qr_alt") }), h("p", { class: "muted", style: "text-align:center" }, t("order.scan"))] : null,
      link ? h("p", { style: "text-align:center" }, h("a", { class: "button primary", href: link, target: "_blank", rel: "noopener", dataset: { testid: "pay-link" } }, qrChannel ? t("order.open_here") : t("order.go_pay"))) : null,
      state,
      h("p", { class: "muted" }, t("order.number", { id: order.out_trade_no })),
    ),
  );
  box.scrollIntoView({ block: "start", behavior: "smooth" });
  if (order.jsapi && window.WeixinJSBridge) {
    window.WeixinJSBridge.invoke("getBrandWCPayRequest", order.jsapi, () => {});
  }
  paying = order.out_trade_no;
  const started = Date.now();
  const check = async () => {
    if (paying !== order.out_trade_no || !state.isConnected) return;
    try {
      const latest = await api.get(`/orders/${encodeURIComponent(order.out_trade_no)}`);
      if (latest.status === "paid" || latest.status === "succeeded") {
        state.className = "alert alert-ok";
        state.textContent = t("order.paid");
        paying = null;
        const account = await api.get(`/accounts/${encodeURIComponent(accountId)}`);
        state.after(h("p", {}, t("m.balance"), ": ", h("strong", { dataset: { testid: "balance-after-pay" } }, money(account.balance)), " ", supplyBadge(account.supply), " ", h("a", { href: `#/${encodeURIComponent(accountId)}/home` }, t("m.tab.home"))));
        return;
      }
      if (latest.status !== "pending" && latest.status !== "created") {
        state.className = "alert alert-bad";
        state.textContent = t("order.failed", { status: latest.status });
        paying = null;
        return;
      }
    } catch {
      // A lost poll is retried on the next tick.
    }
    if (Date.now() - started < 15 * 60 * 1000) setTimeout(check, 2000);
  };
  setTimeout(check, 1500);
}

async function receiptsCard(accountId) {
  const payments = await api.get(`/accounts/${encodeURIComponent(accountId)}/payments`, { limit: 5 });
  return h("section", { class: "card" }, h("h2", {}, t("m.recent_payments")), paymentList(payments.items));
}

function paymentList(items) {
  if (!items.length) return h("p", { class: "empty" }, t("common.empty"));
  return h(
    "ul",
    { class: "list", dataset: { testid: "payments" } },
    items.map((p) =>
      h(
        "li",
        {},
        h("span", { class: "what" }, t(`method.${p.method}`) === `method.${p.method}` ? p.method : t(`method.${p.method}`), h("small", {}, `${when(p.created_at)} · ${p.reference}`)),
        h("span", { class: "num" }, money(p.amount), p.status !== "succeeded" ? h("small", {}, ` ${p.status}`) : null),
      ),
    ),
  );
}

async function historyPage(content, accountId) {
  const id = encodeURIComponent(accountId);
  const [payments, ledger] = await Promise.all([
    api.get(`/accounts/${id}/payments`, { limit: 20 }),
    api.get(`/accounts/${id}/ledger`, { limit: 30 }),
  ]);
  const ledgerList = h("ul", { class: "list", dataset: { testid: "ledger" } });
  let offset = 0;
  const more = h("button", { type: "button", onclick: async () => { await addLedger((await api.get(`/accounts/${id}/ledger`, { limit: 30, offset })).items); } }, t("common.more"));
  async function addLedger(items) {
    offset += items.length;
    ledgerList.append(
      ...items.map((line) =>
        h(
          "li",
          {},
          h("span", { class: "what" }, t(`kind.${line.kind}`) === `kind.${line.kind}` ? line.kind : t(`kind.${line.kind}`), h("small", {}, when(line.created_at))),
          h("span", { class: "num" }, h("span", { class: Number(line.amount) < 0 ? "neg" : "" }, money(line.amount)), h("br"), h("small", { class: "muted" }, t("m.after", { balance: money(line.balance_after) }))),
        ),
      ),
    );
    if (items.length < 30) more.remove();
  }
  mount(
    content,
    h("section", { class: "card" }, h("h2", {}, t("m.payments")), paymentList(payments.items)),
    h("section", { class: "card" }, h("h2", {}, t("m.ledger")), ledgerList, more),
  );
  await addLedger(ledger.items);
}

async function alertsPage(content, accountId) {
  const account = await api.get(`/accounts/${encodeURIComponent(accountId)}`);
  const alerts = alertsOf(account);
  mount(
    content,
    h("h2", {}, t("m.tab.alerts")),
    alerts.length ? alertBoxes(alerts) : h("p", { class: "alert alert-ok" }, t("alert.none")),
    h("p", { class: "muted" }, t("alert.explain", { line: money(account.warning_line) })),
  );
}

// A tenant changes their own password; every token of theirs stops working, so sign in again.
async function passwordPage(content) {
  mount(
    content,
    h(
      "section",
      { class: "card" },
      h("h2", {}, t("m.password")),
      actionForm(
        { "aria-label": t("m.password") },
        [
          field(t("m.current_password"), { name: "current_password", type: "password", required: true, autocomplete: "current-password" }),
          field(t("m.new_password"), { name: "new_password", type: "password", required: true, minlength: 8, autocomplete: "new-password" }, t("user.password_hint")),
        ],
        async (values) => {
          await api.post("/me/password", values);
          api.setToken(null);
          me = null;
          loginView(t("m.password_changed"));
        },
        t("common.save"),
      ),
    ),
  );
}

api.onLoggedOut(() => { me = null; loginView(t("login.expired")); });
window.addEventListener("hashchange", () => { if (me) render(); });
takeTokenFromLink();
if (api.token()) start();
else loginView();
