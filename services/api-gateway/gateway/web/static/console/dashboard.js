// The site at a glance, computed from the API's lists: field links, supply, money in today.
import { inBatches } from "/web/api.js";
import { barChart, shortNumber } from "/web/chart.js";
import { t } from "/web/i18n.js";
import { ago, badge, h, money, mount, table, today } from "/web/ui.js";

function tile(label, value, kind, href, testid) {
  return h(
    "a",
    { class: `tile ${kind}`, href, dataset: { testid } },
    h("div", { class: "stat-label" }, label),
    h("div", { class: "stat" }, value),
  );
}

function isToday(iso) {
  const date = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` === today();
}

export async function dashboardPage(content, { api, actions, every }) {
  const box = h("div", {});
  mount(content, box);
  mount(actions, h("button", { type: "button", onclick: () => paint() }, t("common.refresh")));
  async function paint() {
    const [meters, dtus, accounts] = await Promise.all([api.all("/meters"), api.get("/dtus"), api.all("/accounts")]);
    const offline = meters.filter((m) => !m.online);
    const dtusDown = dtus.items.filter((d) => d.enabled && !d.online);
    const tripped = accounts.filter((a) => a.supply === "off");
    const low = accounts.filter((a) => a.supply === "on" && Number(a.balance) <= Number(a.warning_line));
    const moneyTile = tile(t("dash.money_today"), "…", "ok", "#/accounts", "money-today");
    const moneyBox = h("div", { "aria-busy": "true" }, h("p", { class: "muted" }, "…"));
    mount(
      box,
      h(
        "div",
        { class: "tiles" },
        tile(t("dash.meters_online"), `${meters.length - offline.length} / ${meters.length}`, offline.length ? "warn" : "ok", "#/meters", "meters-online"),
        tile(t("dash.meters_offline"), offline.length, offline.length ? "bad" : "ok", "#/meters", "meters-offline"),
        tile(t("dash.dtus_down"), `${dtusDown.length} / ${dtus.items.length}`, dtusDown.length ? "bad" : "ok", "#/dtus", "dtus-down"),
        tile(t("dash.tripped"), tripped.length, tripped.length ? "bad" : "ok", "#/accounts", "tripped"),
        tile(t("dash.low"), low.length, low.length ? "warn" : "ok", "#/accounts", "low"),
        moneyTile,
      ),
      h(
        "div",
        { class: "two" },
        h(
          "section",
          { class: "card" },
          h("h2", {}, t("dash.money_by_channel")),
          moneyBox,
        ),
        h(
          "section",
          { class: "card" },
          h("h2", {}, t("dash.tripped_list")),
          table(
            [
              { label: t("col.account"), value: (a) => h("a", { href: `#/accounts/${encodeURIComponent(a.id)}` }, a.id) },
              { label: t("col.name"), value: (a) => a.name },
              { label: t("col.balance"), value: (a) => money(a.balance), class: "num" },
              { label: t("col.supply"), value: (a) => (a.supply === "off" ? badge(t("supply.off"), "bad") : badge(t("dash.low_short"), "warn")) },
            ],
            [...tripped, ...low].slice(0, 20),
            { empty: t("dash.none_tripped") },
          ),
        ),
        h(
          "section",
          { class: "card" },
          h("h2", {}, t("dash.link_problems")),
          table(
            [
              { label: t("col.id"), value: (x) => (x.meter_ids ? x.id : h("a", { href: `#/meters/${encodeURIComponent(x.id)}` }, x.id)) },
              { label: t("col.kind"), value: (x) => (x.meter_ids ? t("col.dtu") : t("col.meter")) },
              { label: t("col.last_seen"), value: (x) => ago(x.last_seen_at || x.last_reading?.read_at) },
            ],
            [...dtusDown, ...offline.filter((m) => !dtusDown.some((d) => d.id === m.dtu_id))].slice(0, 20),
            { empty: t("dash.all_online") },
          ),
        ),
      ),
    );
    // The field and supply show at once; money in today follows (the API has no site-wide
    // list of payments, so each account is asked for its latest ones).
    const pages = await inBatches(accounts, 8, (a) => api.get(`/accounts/${encodeURIComponent(a.id)}/payments`, { limit: 50 }));
    const byChannel = new Map();
    let total = 0;
    for (const page of pages) {
      for (const p of page?.items || []) {
        if (p.status !== "succeeded" || !isToday(p.created_at)) continue;
        byChannel.set(p.method, (byChannel.get(p.method) || 0) + Number(p.amount));
        total += Number(p.amount);
      }
    }
    const channels = [...byChannel.entries()].sort((a, b) => b[1] - a[1]);
    moneyTile.querySelector(".stat").textContent = money(total);
    moneyBox.removeAttribute("aria-busy");
    mount(
      moneyBox,
      channels.length
        ? barChart(channels.map(([method, amount]) => ({ label: t(`method.${method}`), value: amount })), { title: t("dash.money_by_channel"), format: (v) => `¥${shortNumber(v)}`, height: 180 })
        : null,
      table(
        [
          { label: t("col.channel"), value: ([method]) => t(`method.${method}`) },
          { label: t("col.amount"), value: ([, amount]) => money(amount), class: "num" },
        ],
        channels,
        { empty: t("dash.no_money") },
      ),
    );
  }
  await paint();
  // Money in today asks every account: every half minute is plenty.
  every(30000, paint);
}
