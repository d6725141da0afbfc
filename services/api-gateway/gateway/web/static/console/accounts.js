// Accounts: open, bind meters, terms, counter top-up with a printable receipt, refunds,
// reversals, arrears, statements, and the dunning list.
import { barChart, shortNumber } from "/web/chart.js";
import { t } from "/web/i18n.js";
import { actionForm, badge, csvButton, field, h, isoDate, kwh, money, mount, operationKey, owed, table, timeline, toast, when } from "/web/ui.js";

const ID_PATTERN = "[A-Za-z0-9_:\\-]{1,64}";

function supplyBadge(supply) {
  return supply === "on" ? badge(t("supply.on"), "ok") : badge(t("supply.off"), "bad");
}

function optionalMoney(value) {
  return value === "" || value === undefined ? undefined : value;
}

function kindText(kind) {
  const text = t(`kind.${kind}`);
  return text === `kind.${kind}` ? kind : text;
}

function methodText(method) {
  const text = t(`method.${method}`);
  return text === `method.${method}` ? method : text;
}

async function tariffOptions(api) {
  const tariffs = await api.get("/tariffs");
  return tariffs.items.map((x) => [x.id, `${x.id} · ${x.name}`]);
}

export async function accountsPage(content, { api, go, actions }) {
  const [accounts, tariffs] = await Promise.all([api.all("/accounts"), tariffOptions(api)]);
  const filter = { text: "", state: "" };
  const box = h("div", {});
  const openForm = actionForm(
    { "aria-label": t("account.open") },
    [
      h(
        "div",
        { class: "form-grid" },
        field(t("col.account"), { name: "id", required: true, pattern: ID_PATTERN, placeholder: "SHOP-101" }),
        field(t("col.name"), { name: "name", required: true }),
        field(t("col.tariff"), { name: "tariff_id", type: "select", options: [["", t("account.own_price")], ...tariffs] }),
        field(t("account.price"), { name: "price_per_kwh", inputmode: "decimal", placeholder: "1.5000" }, t("account.price_hint")),
        field(t("col.mode"), { name: "mode", type: "select", options: [["prepaid", t("mode.prepaid")], ["postpaid", t("mode.postpaid")]] }),
        field(t("account.warning_line"), { name: "warning_line", inputmode: "decimal", value: "10.00" }),
        field(t("account.trip_line"), { name: "trip_line", inputmode: "decimal", value: "0.00" }),
        field(t("account.overdraft"), { name: "overdraft_limit", inputmode: "decimal", value: "0.00" }),
        field(t("account.groups"), { name: "groups", placeholder: "B1,F2" }, t("account.groups_hint")),
      ),
      field(t("account.protected"), { name: "protected", type: "checkbox" }),
    ],
    async (v) => {
      const body = {
        id: v.id,
        name: v.name,
        mode: v.mode,
        warning_line: v.warning_line || "0",
        trip_line: v.trip_line || "0",
        overdraft_limit: v.overdraft_limit || "0",
        protected: v.protected,
        groups: v.groups ? v.groups.split(",").map((g) => g.trim()).filter(Boolean) : [],
      };
      if (v.tariff_id) body.tariff_id = v.tariff_id;
      else body.price_per_kwh = v.price_per_kwh || "1.0000";
      await api.post("/accounts", body);
      toast(t("account.opened", { id: v.id }));
      go("accounts", v.id);
    },
    t("account.open"),
  );
  mount(actions, h("a", { class: "button primary", href: "#/dunning" }, t("nav.dunning")));
  const search = h("input", { type: "search", id: "account-search", placeholder: t("account.search"), oninput: (e) => { filter.text = e.target.value.trim().toLowerCase(); draw(); } });
  const state = h(
    "select",
    { id: "account-state", onchange: (e) => { filter.state = e.target.value; draw(); } },
    [["", t("account.all")], ["off", t("supply.off")], ["low", t("dash.low_short")], ["arrears", t("col.arrears")]].map(([v, l]) => h("option", { value: v }, l)),
  );
  const columns = [
    { label: t("col.account"), value: (a) => h("a", { href: `#/accounts/${encodeURIComponent(a.id)}` }, a.id) },
    { label: t("col.name"), value: (a) => a.name },
    { label: t("col.balance"), value: (a) => h("span", { class: Number(a.balance) < 0 ? "neg" : "" }, money(a.balance)), class: "num" },
    { label: t("col.arrears"), value: (a) => money(owed(a.arrears)), class: "num" },
    { label: t("col.supply"), value: (a) => supplyBadge(a.supply) },
    { label: t("col.mode"), value: (a) => t(`mode.${a.mode}`) },
    { label: t("col.meters"), value: (a) => a.meter_ids.join(", ") || "—" },
  ];
  let rows = accounts;
  function draw() {
    rows = accounts.filter((a) => {
      if (filter.text && !`${a.id} ${a.name} ${a.meter_ids.join(" ")}`.toLowerCase().includes(filter.text)) return false;
      if (filter.state === "off") return a.supply === "off";
      if (filter.state === "low") return Number(a.balance) <= Number(a.warning_line);
      if (filter.state === "arrears") return owed(a.arrears) > 0;
      return true;
    });
    mount(box, table(columns, rows), h("p", { class: "muted" }, t("common.count", { n: rows.length, total: accounts.length })));
  }
  mount(
    content,
    h("details", { class: "card", id: "open-account" }, h("summary", {}, t("account.open")), openForm),
    h("div", { class: "filters" }, h("label", { class: "sr-only", for: "account-search" }, t("account.search")), search, h("label", { class: "sr-only", for: "account-state" }, t("col.state")), state, csvButton("accounts.csv", columns, () => rows)),
    box,
  );
  draw();
}

function receiptView(account, payment) {
  const box = h(
    "section",
    { class: "card receipt printable", dataset: { testid: "receipt" }, "aria-label": t("receipt.title") },
    h("h2", {}, t("receipt.title")),
    h(
      "dl",
      {},
      [
        [t("col.account"), account.id],
        [t("col.name"), account.name],
        [t("col.amount"), money(payment.amount)],
        [t("col.method"), methodText(payment.method)],
        [t("receipt.number"), payment.reference],
        [t("col.operator"), payment.operator],
        [t("col.time"), when(payment.created_at)],
        [t("receipt.payment_id"), payment.id.slice(0, 8)],
      ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    ),
    h("p", { class: "muted" }, payment.replayed ? t("receipt.replayed") : t("receipt.thanks")),
    h("button", { type: "button", onclick: () => window.print() }, t("receipt.print")),
  );
  return box;
}

export async function accountPage(content, id, { api, me, heading, every }) {
  const path = `/accounts/${encodeURIComponent(id)}`;
  heading.textContent = `${t("col.account")} ${id}`;
  const [account, tariffs, meters] = await Promise.all([api.get(path), tariffOptions(api), api.all("/meters")]);
  const summary = h("div", {});
  const ledgerBox = h("div", {});
  const paymentsBox = h("div", {});
  const receiptBox = h("div", {});
  const statementBox = h("div", {});
  const usageBox = h("div", {});
  const admin = me.role === "admin";

  async function paintSummary() {
    const a = await api.get(path);
    mount(
      summary,
      h(
        "div",
        { class: "tiles" },
        h("div", { class: `tile ${a.supply === "off" ? "bad" : Number(a.balance) <= Number(a.warning_line) ? "warn" : "ok"}` }, h("div", { class: "stat-label" }, t("col.balance")), h("div", { class: "stat", dataset: { testid: "balance" } }, money(a.balance))),
        h("div", { class: "tile" }, h("div", { class: "stat-label" }, t("col.supply")), h("div", { class: "stat", dataset: { testid: "supply" } }, supplyBadge(a.supply))),
        h("div", { class: `tile ${owed(a.arrears) > 0 ? "warn" : ""}` }, h("div", { class: "stat-label" }, t("col.arrears")), h("div", { class: "stat", dataset: { testid: "arrears" } }, money(owed(a.arrears)))),
      ),
      h(
        "dl",
        { class: "kv" },
        [
          [t("col.name"), a.name],
          [t("col.mode"), t(`mode.${a.mode}`)],
          [t("col.tariff"), h("a", { href: `#/tariffs/${encodeURIComponent(a.tariff_id)}` }, a.tariff_id)],
          [t("account.warning_line"), money(a.warning_line)],
          [t("account.trip_line"), money(a.trip_line)],
          [t("account.overdraft"), money(a.overdraft_limit)],
          [t("account.cap"), a.balance_cap ? money(a.balance_cap) : "—"],
          [t("account.protected"), a.protected ? t("common.yes") : t("common.no")],
          [t("account.groups"), a.groups.join(", ") || "—"],
          [t("col.meters"), a.meters.length ? a.meters.map((m, i) => [i ? " " : "", h("a", { href: `#/meters/${encodeURIComponent(m.meter_id)}` }, m.meter_id), " ", supplyBadge(m.supply)]) : "—"],
        ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      ),
    );
  }

  // The ledger and payments, then the balance, so a new balance never shows beside an old ledger.
  async function refresh() {
    await paintMoney();
    await paintSummary();
  }

  async function paintMoney() {
    if (ledgerBox.querySelector("form")) return; // a reversal is being typed: leave it be
    const [ledger, payments] = await Promise.all([api.get(`${path}/ledger`, { limit: 30 }), api.get(`${path}/payments`, { limit: 20 })]);
    const reversed = new Set(ledger.items.map((l) => l.reverses).filter(Boolean));
    mount(
      ledgerBox,
      table(
        [
          { label: t("col.time"), value: (l) => when(l.created_at) },
          { label: t("col.kind"), value: (l) => kindText(l.kind) },
          { label: t("col.amount"), value: (l) => h("span", { class: Number(l.amount) < 0 ? "neg" : "" }, money(l.amount)), class: "num" },
          { label: t("col.balance_after"), value: (l) => money(l.balance_after), class: "num" },
          { label: t("col.memo"), value: (l) => h("small", {}, l.memo, l.reverses ? ` (${t("ledger.reverses")} ${l.reverses.slice(0, 8)})` : "") },
          { label: t("col.operator"), value: (l) => l.operator },
          { label: "", value: (l) => (reversed.has(l.transaction_id) ? h("small", { class: "muted" }, t("ledger.reversed")) : admin && l.kind !== "consumption" && !l.reverses ? reverseButton(l) : "") },
        ],
        ledger.items,
      ),
    );
    mount(
      paymentsBox,
      table(
        [
          { label: t("col.time"), value: (p) => when(p.created_at) },
          { label: t("col.method"), value: (p) => methodText(p.method) },
          { label: t("col.amount"), value: (p) => money(p.amount), class: "num" },
          { label: t("receipt.number"), value: (p) => p.reference },
          { label: t("col.operator"), value: (p) => p.operator },
          { label: t("col.status"), value: (p) => p.status },
        ],
        payments.items,
      ),
    );
  }

  function reverseButton(line) {
    const cell = h("span", {});
    const button = h("button", { type: "button", onclick: () => {
      mount(
        cell,
        actionForm(
          { "aria-label": t("ledger.reverse") },
          [field(t("col.reason"), { name: "reason", required: true })],
          async ({ reason }) => {
            await api.post(`/transactions/${encodeURIComponent(line.transaction_id)}/reversal`, { reason });
            toast(t("ledger.reversed"));
            mount(cell, t("ledger.reversed"));
            setTimeout(refresh, 500);
          },
          t("ledger.reverse"),
        ),
      );
    } }, t("ledger.reverse"));
    cell.append(button);
    return cell;
  }

  const topUp = actionForm(
    { "aria-label": t("account.counter"), id: "counter-form" },
    [
      h(
        "div",
        { class: "form-grid" },
        field(t("col.amount"), { name: "amount", required: true, inputmode: "decimal", placeholder: "100.00" }),
        field(t("receipt.number"), { name: "receipt", required: true, value: operationKey("R") }, t("receipt.number_hint")),
      ),
    ],
    async ({ amount, receipt }, form) => {
      const payment = await api.post(`${path}/top-ups`, { amount, receipt });
      mount(receiptBox, receiptView(account, payment));
      form.elements.receipt.value = operationKey("R");
      form.elements.amount.value = "";
      setTimeout(refresh, 400);
      return t("account.topped_up", { amount: money(payment.amount) });
    },
    t("account.take_cash"),
  );

  const unbound = meters.filter((m) => !m.account_id).map((m) => m.id);
  const bind = actionForm(
    { "aria-label": t("account.bind") },
    [
      h(
        "div",
        { class: "form-grid" },
        field(t("col.meter"), { name: "meter_id", required: true, list: "unbound-meters" }),
        field(t("account.multiplier"), { name: "multiplier", inputmode: "decimal", value: "1" }, t("account.multiplier_hint")),
        field(t("account.local_price"), { name: "local_price", inputmode: "decimal" }),
      ),
      field(t("account.local_prepaid"), { name: "local_prepaid", type: "checkbox" }),
      h("datalist", { id: "unbound-meters" }, unbound.map((m) => h("option", { value: m }))),
    ],
    async (v) => {
      const body = { meter_id: v.meter_id, multiplier: v.multiplier || "1" };
      if (v.local_prepaid) {
        body.local_prepaid = true;
        if (v.local_price) body.local_price = v.local_price;
      }
      await api.post(`${path}/meters`, body);
      await paintSummary();
      return t("account.bound", { meter: v.meter_id });
    },
    t("account.bind"),
  );

  const terms = actionForm(
    { "aria-label": t("account.terms") },
    [
      h(
        "div",
        { class: "form-grid" },
        field(t("col.name"), { name: "name", value: account.name }),
        field(t("col.tariff"), { name: "tariff_id", type: "select", options: tariffs, value: account.tariff_id }),
        field(t("col.mode"), { name: "mode", type: "select", options: [["prepaid", t("mode.prepaid")], ["postpaid", t("mode.postpaid")]], value: account.mode }),
        field(t("account.warning_line"), { name: "warning_line", value: account.warning_line }),
        field(t("account.trip_line"), { name: "trip_line", value: account.trip_line }),
        field(t("account.overdraft"), { name: "overdraft_limit", value: account.overdraft_limit }),
        field(t("account.cap"), { name: "balance_cap", value: account.balance_cap ?? "" }, t("account.cap_hint")),
        field(t("account.debt_share"), { name: "debt_share", value: account.debt_share }, t("account.debt_share_hint")),
        field(t("account.debt_daily"), { name: "debt_daily", value: account.debt_daily }),
        field(t("account.groups"), { name: "groups", value: account.groups.join(",") }),
      ),
      field(t("account.protected"), { name: "protected", type: "checkbox", checked: account.protected }),
    ],
    async (v) => {
      const changes = { ...v, groups: v.groups ? v.groups.split(",").map((g) => g.trim()).filter(Boolean) : [] };
      changes.balance_cap = v.balance_cap === "" ? null : v.balance_cap;
      await api.patch(path, changes);
      await paintSummary();
      return t("common.saved");
    },
    t("common.save"),
  );

  const arrears = actionForm(
    { "aria-label": t("account.arrears") },
    [
      h("div", { class: "form-grid" }, field(t("col.amount"), { name: "amount", required: true, inputmode: "decimal" }), field(t("col.reason"), { name: "reason", required: true })),
    ],
    async ({ amount, reason }) => {
      await api.post(`${path}/arrears`, { amount, reason, key: operationKey("ARREARS") });
      setTimeout(refresh, 400);
      return t("common.saved");
    },
    t("account.record_arrears"),
  );

  const refund = admin
    ? actionForm(
        { "aria-label": t("account.refund") },
        [
          h(
            "div",
            { class: "form-grid" },
            field(t("col.amount"), { name: "amount", required: true, inputmode: "decimal" }),
            field(t("col.method"), { name: "method", type: "select", options: [["cash", t("method.cash")], ["transfer", t("method.transfer")]] }),
            field(t("col.reason"), { name: "reason", required: true }),
          ),
        ],
        async ({ amount, reason, method }) => {
          await api.post(`${path}/refunds`, { amount, reason, method, key: operationKey("REFUND") });
          setTimeout(refresh, 400);
          return t("account.refunded", { amount: money(amount) });
        },
        t("account.refund"),
      )
    : h("p", { class: "muted" }, t("account.refund_admin"));

  const month = new Date().toISOString().slice(0, 7);
  const statement = actionForm(
    { "aria-label": t("statement.title") },
    [field(t("statement.month"), { name: "month", type: "month", value: month, required: true })],
    async ({ month: chosen }) => {
      const s = await api.get(`${path}/statements/${chosen}`);
      mount(
        statementBox,
        h(
          "section",
          { class: "card receipt printable", "aria-label": t("statement.title") },
          h("h2", {}, t("statement.heading", { month: s.month })),
          h(
            "dl",
            {},
            [
              [t("col.account"), s.account_id],
              [t("col.name"), s.name],
              [t("statement.opening"), money(s.opening_balance)],
              ...Object.entries(s.movements).map(([k, v]) => [kindText(k), money(v)]),
              [t("statement.closing"), money(s.closing_balance)],
              [t("col.energy"), kwh(s.energy_kwh)],
              [t("col.arrears"), money(owed(s.arrears))],
              [t("statement.due"), money(s.amount_due)],
            ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
          ),
          h("button", { type: "button", onclick: () => window.print() }, t("receipt.print")),
        ),
      );
    },
    t("statement.show"),
  );

  mount(
    content,
    h("section", { class: "card" }, summary),
    h(
      "div",
      { class: "two" },
      h("section", { class: "card", id: "counter" }, h("h2", {}, t("account.counter")), topUp, receiptBox),
      h("section", { class: "card" }, h("h2", {}, t("usage.monthly")), usageBox),
    ),
    h("section", { class: "card" }, h("h2", {}, t("account.payments")), paymentsBox),
    h("section", { class: "card" }, h("h2", {}, t("account.ledger")), ledgerBox),
    h("details", { class: "card" }, h("summary", {}, t("account.bind")), bind),
    h("details", { class: "card" }, h("summary", {}, t("account.terms")), terms),
    h("details", { class: "card" }, h("summary", {}, t("account.arrears_refunds")), h("h3", {}, t("account.record_arrears")), arrears, h("h3", {}, t("account.refund")), refund),
    h("details", { class: "card" }, h("summary", {}, t("statement.title")), statement, statementBox),
  );
  const now = new Date();
  const report = await api.get(`${path}/usage`, { granularity: "month", from: isoDate(new Date(now.getFullYear(), now.getMonth() - 11, 1)) }).catch(() => ({ items: [] }));
  mount(
    usageBox,
    barChart(timeline(report.items, "month", (p) => p.cost), { title: t("usage.title.month.cost"), format: (v) => `¥${shortNumber(v)}`, empty: t("common.empty"), height: 200 }),
  );
  await Promise.all([paintSummary(), paintMoney()]);
  every(5000, refresh);
}

export async function dunningPage(content, { api, actions }) {
  const list = await api.get("/dunning");
  const columns = [
    { label: t("col.account"), value: (d) => h("a", { href: `#/accounts/${encodeURIComponent(d.account_id)}` }, d.account_id) },
    { label: t("col.name"), value: (d) => d.name },
    { label: t("col.mode"), value: (d) => t(`mode.${d.mode}`) },
    { label: t("col.balance"), value: (d) => money(d.balance), class: "num" },
    { label: t("col.arrears"), value: (d) => money(owed(d.arrears)), class: "num" },
    { label: t("statement.due"), value: (d) => h("strong", {}, money(d.amount_due)), class: "num" },
  ];
  mount(actions, csvButton("dunning.csv", columns, list.items), h("button", { type: "button", onclick: () => window.print() }, t("receipt.print")));
  mount(
    content,
    h(
      "div",
      { class: "printable" },
      h("p", { class: "muted" }, t("dunning.explain", { at: when(new Date().toISOString()) })),
      table(
        columns,
        list.items,
        { empty: t("dunning.none") },
      ),
    ),
  );
}
