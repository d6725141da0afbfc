// DTUs and meters: link state, last reading, read now, trip and close, hold-power, outcomes.
import { barChart, shortNumber } from "/web/chart.js";
import { t } from "/web/i18n.js";
import { actionForm, ago, badge, csvButton, errorText, field, h, isoDate, kwh, money, mount, table, timeline, toast, when } from "/web/ui.js";

export function relayBadge(relay) {
  if (relay === "closed") return badge(t("relay.closed"), "ok");
  if (relay === "open") return badge(t("relay.open"), "bad");
  return badge(t("relay.none"), "neutral");
}

export function onlineBadge(online) {
  return online ? badge(t("state.online"), "ok") : badge(t("state.offline"), "bad");
}

function statusBadge(status) {
  const kind = { succeeded: "ok", failed: "bad", expired: "bad", sent: "warn", queued: "warn" }[status] || "neutral";
  return badge(t(`status.${status}`) === `status.${status}` ? status : t(`status.${status}`), kind);
}

export async function metersPage(content, { api, actions, every }) {
  const filter = { text: "", state: "" };
  const box = h("div", {});
  mount(
    actions,
    h("button", { type: "button", onclick: async () => {
      try {
        await api.post("/meters/read-all");
        toast(t("meter.read_all_queued"));
      } catch (error) {
        toast(errorText(error), "error");
      }
    } }, t("meter.read_all")),
  );
  let meters = [];
  let rows = [];
  const columns = [
    { label: t("col.meter"), value: (m) => h("a", { href: `#/meters/${encodeURIComponent(m.id)}` }, m.id) },
    { label: t("col.dtu"), value: (m) => m.dtu_id },
    { label: t("col.account"), value: (m) => (m.account_id ? h("a", { href: `#/accounts/${encodeURIComponent(m.account_id)}` }, m.account_id) : "—") },
    { label: t("col.link"), value: (m) => onlineBadge(m.online) },
    { label: t("col.relay"), value: (m) => relayBadge(m.relay) },
    { label: t("col.energy"), value: (m) => kwh(m.last_reading?.energy_kwh, 3), class: "num" },
    { label: t("col.power"), value: (m) => (m.last_reading?.power_kw == null ? "—" : `${Number(m.last_reading.power_kw).toFixed(3)} kW`), class: "num" },
    { label: t("col.read_at"), value: (m) => ago(m.last_reading?.read_at) },
  ];
  const search = h("input", { type: "search", id: "meter-search", placeholder: t("meter.search"), oninput: (e) => { filter.text = e.target.value.trim().toLowerCase(); draw(); } });
  const state = h(
    "select",
    { id: "meter-state", onchange: (e) => { filter.state = e.target.value; draw(); } },
    [["", t("meter.all")], ["offline", t("state.offline")], ["open", t("relay.open")], ["unbound", t("meter.unbound")]].map(([v, l]) => h("option", { value: v }, l)),
  );
  mount(
    content,
    h("div", { class: "filters" }, h("label", { class: "sr-only", for: "meter-search" }, t("meter.search")), search, h("label", { class: "sr-only", for: "meter-state" }, t("col.state")), state, csvButton("meters.csv", columns, () => rows)),
    box,
  );
  function draw() {
    rows = meters.filter((m) => {
      if (filter.text && !`${m.id} ${m.dtu_id} ${m.account_id || ""}`.toLowerCase().includes(filter.text)) return false;
      if (filter.state === "offline") return !m.online;
      if (filter.state === "open") return m.relay === "open";
      if (filter.state === "unbound") return !m.account_id;
      return true;
    });
    mount(box, table(columns, rows), h("p", { class: "muted" }, t("common.count", { n: rows.length, total: meters.length })));
  }
  const load = async () => { meters = await api.all("/meters"); draw(); };
  await load();
  every(10000, load);
}

export async function meterPage(content, id, { api, heading, actions, every }) {
  const path = `/meters/${encodeURIComponent(id)}`;
  heading.textContent = `${t("col.meter")} ${id}`;
  const facts = h("div", {});
  const commands = h("div", {});
  const events = h("div", {});
  const anomalies = h("div", {});
  const usage = h("div", {});
  const holds = h("div", {});
  const history = h("div", {});
  const localCredit = h("div", {});

  async function paintFacts(meter) {
    meter = meter || (await api.get(path));
    mount(
      facts,
      h(
        "dl",
        { class: "kv" },
        [
          [t("col.dtu"), meter.dtu_id],
          [t("col.address"), meter.unit_id ?? meter.address],
          [t("col.profile"), meter.profile],
          [t("col.account"), meter.account_id ? h("a", { href: `#/accounts/${encodeURIComponent(meter.account_id)}` }, meter.account_id) : "—"],
          [t("col.link"), h("span", { dataset: { testid: "link" } }, onlineBadge(meter.online), " ", t("meter.dtu_link"), " ", onlineBadge(meter.dtu_online))],
          [t("col.relay"), h("span", { dataset: { testid: "relay" } }, relayBadge(meter.relay))],
          [t("col.energy"), kwh(meter.last_reading?.energy_kwh, 3)],
          [t("col.power"), meter.last_reading?.power_kw == null ? "—" : `${meter.last_reading.power_kw} kW`],
          [t("col.read_at"), meter.last_reading ? `${when(meter.last_reading.read_at)} (${ago(meter.last_reading.read_at)})` : "—"],
        ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      ),
    );
  }

  async function paintCommands() {
    const page = await api.get(`${path}/commands`, { limit: 20 });
    mount(
      commands,
      table(
        [
          { label: t("col.time"), value: (c) => when(c.created_at) },
          { label: t("col.action"), value: (c) => t(`action.${c.action}`) },
          { label: t("col.status"), value: (c) => statusBadge(c.status) },
          { label: t("col.origin"), value: (c) => c.origin },
          { label: t("col.reason"), value: (c) => c.reason || c.error || "" },
          { label: t("col.attempts"), value: (c) => c.attempts, class: "num" },
        ],
        page.items,
        { empty: t("meter.no_commands") },
      ),
    );
  }

  async function paintRest() {
    const [supply, anomaly, report, holdList, bindings, local] = await Promise.all([
      api.get(`${path}/supply-events`, { limit: 20 }),
      api.get("/anomalies", { meter_id: id, limit: 20 }),
      api.get(`${path}/usage`, { granularity: "day", from: isoDate(new Date(Date.now() - 29 * 86400000)) }),
      api.get("/holds"),
      api.get(`${path}/history`),
      // Only a local-prepaid meter has a credit of its own; any other answers 404.
      api.get(`${path}/local-credit`, { limit: 10 }).catch((error) => (error.status === 404 ? null : Promise.reject(error))),
    ]);
    mount(
      history,
      table(
        [
          { label: t("col.time"), value: (e) => when(e.at) },
          { label: t("col.action"), value: (e) => e.event },
          { label: t("col.account"), value: (e) => e.account_id },
          { label: t("swap.final"), value: (e) => (e.final_kwh == null ? "—" : kwh(e.final_kwh, 3)), class: "num" },
          { label: t("col.detail"), value: (e) => e.detail },
          { label: t("col.operator"), value: (e) => e.operator },
        ],
        bindings.items,
      ),
    );
    mount(localCredit, local ? localCreditView(local) : null);
    mount(
      events,
      table(
        [
          { label: t("col.time"), value: (e) => when(e.at) },
          { label: t("col.action"), value: (e) => t(`action.${e.action}`) },
          { label: t("col.account"), value: (e) => e.account_id },
          { label: t("col.reason"), value: (e) => e.reason },
        ],
        supply.items,
      ),
    );
    mount(
      anomalies,
      table(
        [
          { label: t("col.time"), value: (a) => when(a.at) },
          { label: t("col.kind"), value: (a) => a.kind },
          { label: t("col.times"), value: (a) => String(a.count) },
          { label: t("col.latest"), value: (a) => (a.count > 1 ? when(a.last_at) : "") },
          { label: t("col.detail"), value: (a) => a.detail },
        ],
        anomaly.items,
        { empty: t("meter.no_anomalies") },
      ),
    );
    mount(
      usage,
      barChart(timeline(report.items, "day", (p) => p.metered_kwh), { title: t("usage.title.day.kwh"), format: shortNumber, empty: t("common.empty"), height: 200 }),
      h("p", { class: "muted" }, report.items.map((p) => `${p.period}: ${kwh(p.metered_kwh)} ${money(p.cost)}`).slice(-3).join(" · ")),
    );
    const mine = holdList.items.filter((x) => !x.released_at && (x.scope === "global" || (x.scope === "meter" && x.target === id)));
    mount(
      holds,
      mine.length
        ? table(
            [
              { label: t("col.scope"), value: (x) => t(`scope.${x.scope}`) },
              { label: t("col.until"), value: (x) => (x.until ? when(x.until) : t("hold.no_end")) },
              { label: t("col.reason"), value: (x) => x.reason },
              { label: "", value: (x) => (x.scope === "meter" ? h("button", { type: "button", onclick: async () => { await api.del(`/holds/${x.id}`); toast(t("hold.released")); paintRest(); } }, t("hold.release")) : "") },
            ],
            mine,
          )
        : h("p", { class: "empty" }, t("hold.none")),
    );
  }

  // Two buttons, one form: trip or close the relay, each with the reason typed above.
  const commandStatus = h("p", { class: "form-status", role: "status", "aria-live": "polite" });
  const reason = field(t("col.reason"), { name: "reason", value: t("meter.default_reason"), maxlength: 200 });
  const commandForm = h(
    "form",
    { "aria-label": t("meter.remote_control") },
    reason,
    h(
      "div",
      { class: "form-actions" },
      h("button", { type: "submit", class: "danger", dataset: { action: "trip" } }, t("meter.trip")),
      h("button", { type: "submit", class: "primary", dataset: { action: "close" } }, t("meter.close")),
    ),
    commandStatus,
  );
  commandForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const action = event.submitter?.dataset.action || "trip";
    commandStatus.className = "form-status";
    commandStatus.textContent = "";
    try {
      const command = await api.post(`${path}/commands`, { action, reason: commandForm.elements.reason.value.trim() });
      commandStatus.className = "form-status ok";
      commandStatus.textContent = t("meter.command_sent", { action: t(`action.${action}`), status: t(`status.${command.status}`) });
      await paintCommands();
    } catch (error) {
      commandStatus.className = "form-status error";
      commandStatus.textContent = errorText(error);
    }
  });

  const holdForm = actionForm(
    { "aria-label": t("hold.title") },
    [
      field(t("col.until"), { name: "until", type: "datetime-local" }, t("hold.until_hint")),
      field(t("col.reason"), { name: "reason", required: true, value: "" }),
    ],
    async ({ until, reason }) => {
      await api.post("/holds", { scope: "meter", target: id, until: until ? new Date(until).toISOString() : null, reason: reason || t("hold.title") });
      await paintRest();
      return t("hold.created");
    },
    t("hold.create"),
  );

  function localCreditView(local) {
    const side = (x) => (x ? `${t("local.count")} ${x.purchase_count} · ${money(x.credit)} · ${kwh(x.energy_kwh, 3)} · ${when(x.read_at)}` : "—");
    return h(
      "section",
      { class: "card" },
      h("h2", {}, t("local.title")),
      h(
        "dl",
        { class: "kv" },
        [
          [t("account.local_price"), local.local_price],
          [t("local.baseline"), side(local.baseline)],
          [t("local.meter"), side(local.meter)],
          [t("local.count_check"), local.purchase_count_mismatch ? badge(t("local.mismatch"), "bad") : badge(t("local.match"), "ok")],
          [t("local.credit_check"), local.local_credit_mismatch ? badge(t("local.mismatch"), "bad") : badge(t("local.match"), "ok")],
        ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      ),
      table(
        [
          { label: t("col.time"), value: (p) => when(p.created_at) },
          { label: t("col.amount"), value: (p) => money(p.amount), class: "num" },
          { label: t("local.count"), value: (p) => p.purchase_count ?? "—", class: "num" },
          { label: t("col.status"), value: (p) => statusBadge(p.status) },
          { label: t("col.detail"), value: (p) => p.error || "" },
        ],
        local.purchases,
      ),
      h("button", { type: "button", onclick: async () => {
        try {
          await api.post(`${path}/local-credit/resync`);
          toast(t("local.resynced"));
          await paintRest();
        } catch (error) {
          toast(errorText(error), "error");
        }
      } }, t("local.resync")),
    );
  }

  const swapForm = actionForm(
    { "aria-label": t("swap.title") },
    [
      h(
        "div",
        { class: "form-grid" },
        field(t("swap.new_meter"), { name: "new_meter_id", required: true }),
        field(t("swap.final"), { name: "old_final_kwh", required: true, inputmode: "decimal" }, t("swap.final_hint")),
        field(t("swap.start"), { name: "new_start_kwh", required: true, inputmode: "decimal", value: "0" }),
      ),
    ],
    async (v) => {
      await api.post(`${path}/swap`, v);
      await paintRest();
      return t("swap.done", { meter: v.new_meter_id });
    },
    t("swap.title"),
  );

  mount(
    actions,
    h("button", { type: "button", class: "primary", onclick: async (e) => {
      e.target.disabled = true;
      try {
        await paintFacts(await api.post(`${path}/read`));
        toast(t("meter.read_done"));
      } catch (error) {
        toast(errorText(error), "error");
      } finally {
        e.target.disabled = false;
      }
    } }, t("meter.read_now")),
  );
  mount(
    content,
    h(
      "div",
      { class: "two" },
      h("section", { class: "card" }, h("h2", {}, t("meter.state")), facts),
      h("section", { class: "card" }, h("h2", {}, t("meter.remote_control")), commandForm),
    ),
    h("section", { class: "card" }, h("h2", {}, t("meter.commands")), commands),
    h("div", { class: "two" }, h("section", { class: "card" }, h("h2", {}, t("hold.title")), holds, holdForm), h("section", { class: "card" }, h("h2", {}, t("usage.daily")), usage)),
    h("section", { class: "card" }, h("h2", {}, t("meter.supply_events")), events),
    h("section", { class: "card" }, h("h2", {}, t("meter.anomalies")), anomalies),
    localCredit,
    h("section", { class: "card" }, h("h2", {}, t("swap.history")), history),
    h("details", { class: "card" }, h("summary", {}, t("swap.title")), h("p", { class: "muted" }, t("swap.explain")), swapForm),
  );
  await Promise.all([paintFacts(), paintCommands(), paintRest()]);
  every(3000, async () => { await Promise.all([paintFacts(), paintCommands()]); });
}

export async function dtusPage(content, { api, me }) {
  const list = await api.get("/dtus");
  const register = me.role === "admin"
    ? h(
        "details",
        { class: "card" },
        h("summary", {}, t("dtu.register")),
        actionForm(
          { "aria-label": t("dtu.register") },
          [
            h(
              "div",
              { class: "form-grid" },
              field(t("col.id"), { name: "id", required: true, pattern: "[A-Za-z0-9_:\\-]{1,64}" }),
              field(t("col.name"), { name: "name", maxlength: 128 }),
              field(t("col.kind"), { name: "kind", type: "select", options: [["modbus-tcp", "Modbus TCP"], ["rtu-over-tcp", "RTU over TCP"], ["dtu-client", t("dtu.dial_in")]] }),
              field(t("dtu.host"), { name: "host" }),
              field(t("dtu.port"), { name: "port", type: "number", min: 1, max: 65535 }),
            ),
            field(t("dtu.enabled"), { name: "enabled", type: "checkbox", checked: true }),
            field(t("dtu.meters"), { name: "meters", type: "textarea", placeholder: "M-101,1,acrel-dds1352\nM-102,2,acrel-dds1352" }, t("dtu.meters_hint")),
          ],
          async (v) => {
            const meters = v.meters.split("\n").map((line) => line.trim()).filter(Boolean).map((line) => {
              const [meterId, unit, profile] = line.split(",").map((s) => s.trim());
              const where = /^\d{12}$/.test(unit) ? { address: unit } : { unit_id: Number(unit) };
              return { id: meterId, ...where, profile };
            });
            const body = { id: v.id, name: v.name || v.id, kind: v.kind, enabled: v.enabled, meters };
            if (v.host) body.host = v.host;
            if (v.port) body.port = Number(v.port);
            await api.post("/dtus", body);
            return t("dtu.registered", { id: v.id });
          },
          t("dtu.save"),
        ),
      )
    : null;
  mount(
    content,
    register,
    table(
      [
        { label: t("col.dtu"), value: (d) => h("span", {}, h("strong", {}, d.id), h("br"), h("small", { class: "muted" }, d.name)) },
        { label: t("col.kind"), value: (d) => d.kind },
        { label: t("dtu.where"), value: (d) => (d.host ? `${d.host}:${d.port}` : d.registration || "—") },
        { label: t("col.link"), value: (d) => (d.enabled ? onlineBadge(d.online) : badge(t("dtu.disabled"), "neutral")) },
        { label: t("col.last_seen"), value: (d) => ago(d.last_seen_at) },
        { label: t("col.meters"), value: (d) => d.meter_ids.map((m, i) => [i ? ", " : "", h("a", { href: `#/meters/${encodeURIComponent(m)}` }, m)]) },
      ],
      list.items,
    ),
  );
}
