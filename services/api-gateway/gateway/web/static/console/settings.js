// Tariffs and versions, hold-power and load shedding, site policy, users, the audit log.
import { t } from "/web/i18n.js";
import { actionForm, badge, field, h, mount, table, toast, when } from "/web/ui.js";

const ID_PATTERN = "[A-Za-z0-9_:\\-]{1,64}";
const WEEKDAYS = [0, 1, 2, 3, 4, 5, 6];

// A tariff definition from the simple form, or the JSON typed in the advanced box.
function definitionFrom(values) {
  if (values.definition) return JSON.parse(values.definition);
  return { kind: "flat", price_per_kwh: values.price_per_kwh };
}

function describe(definition) {
  if (definition.kind === "flat") return `${t("tariff.flat")} ¥${definition.price_per_kwh}/kWh`;
  const parts = [t(`tariff.${definition.kind}`)];
  if (definition.period_prices) parts.push(Object.entries(definition.period_prices).map(([p, v]) => `${t(`period.${p}`)} ¥${v}`).join(" · "));
  if (definition.price_per_kwh) parts.push(`¥${definition.price_per_kwh}/kWh`);
  if (definition.tiers?.length) parts.push(definition.tiers.map((x) => `≤${x.up_to_kwh ?? "∞"} kWh +¥${x.surcharge}`).join(" · "));
  return parts.join(" — ");
}

function tariffFields(withId) {
  return [
    h(
      "div",
      { class: "form-grid" },
      withId ? field(t("col.id"), { name: "id", required: true, pattern: ID_PATTERN }) : null,
      withId ? field(t("col.name"), { name: "name", required: true }) : null,
      field(t("tariff.flat_price"), { name: "price_per_kwh", inputmode: "decimal", placeholder: "1.2000" }),
      field(t("tariff.effective_from"), { name: "effective_from", type: "datetime-local" }, t("tariff.effective_hint")),
    ),
    field(t("tariff.advanced"), { name: "definition", type: "textarea", placeholder: '{"kind": "tou", "period_prices": {"peak": "1.2", "flat": "0.8", "valley": "0.4"}, "calendar": {"seasons": [{"months": [1,2,3,4,5,6,7,8,9,10,11,12], "workday": [{"start": "00:00", "period": "valley"}, {"start": "08:00", "period": "peak"}, {"start": "22:00", "period": "valley"}]}]}}' }, t("tariff.advanced_hint")),
  ];
}

export async function tariffsPage(content, { api, me, go }) {
  const tariffs = await api.get("/tariffs");
  const define =
    me.role === "admin"
      ? h(
          "details",
          { class: "card" },
          h("summary", {}, t("tariff.define")),
          actionForm(
            { "aria-label": t("tariff.define") },
            tariffFields(true),
            async (v) => {
              const body = { id: v.id, name: v.name, definition: definitionFrom(v) };
              if (v.effective_from) body.effective_from = new Date(v.effective_from).toISOString();
              await api.post("/tariffs", body);
              go("tariffs", v.id);
            },
            t("common.save"),
          ),
        )
      : null;
  mount(
    content,
    define,
    table(
      [
        { label: t("col.id"), value: (x) => h("a", { href: `#/tariffs/${encodeURIComponent(x.id)}` }, x.id) },
        { label: t("col.name"), value: (x) => x.name },
        { label: t("col.created"), value: (x) => when(x.created_at) },
      ],
      tariffs.items,
    ),
  );
}

export async function tariffPage(content, id, { api, me, heading, rerender }) {
  heading.textContent = `${t("col.tariff")} ${id}`;
  const tariff = await api.get(`/tariffs/${encodeURIComponent(id)}`);
  const now = Date.now();
  const current = [...tariff.versions].filter((v) => new Date(v.effective_from) <= now).pop();
  mount(
    content,
    h("p", {}, h("strong", {}, tariff.name)),
    table(
      [
        { label: t("tariff.effective_from"), value: (v) => when(v.effective_from) },
        { label: t("tariff.definition"), value: (v) => describe(v.definition) },
        { label: t("col.state"), value: (v) => (v === current ? badge(t("tariff.current"), "ok") : new Date(v.effective_from) > now ? badge(t("tariff.scheduled"), "warn") : badge(t("tariff.past"), "neutral")) },
        { label: t("col.operator"), value: (v) => v.created_by },
        { label: "JSON", value: (v) => h("details", {}, h("summary", {}, t("common.show")), h("pre", { class: "json" }, JSON.stringify(v.definition, null, 2))) },
      ],
      tariff.versions,
    ),
    me.role === "admin"
      ? h(
          "section",
          { class: "card" },
          h("h2", {}, t("tariff.new_version")),
          actionForm(
            { "aria-label": t("tariff.new_version") },
            tariffFields(false),
            async (v) => {
              const body = { id, name: tariff.name, definition: definitionFrom(v) };
              if (v.effective_from) body.effective_from = new Date(v.effective_from).toISOString();
              await api.post("/tariffs", body);
              toast(t("common.saved"));
              rerender();
            },
            t("tariff.schedule"),
          ),
        )
      : null,
  );
}

export async function supplyPage(content, { api, every }) {
  const holdsBox = h("div", {});
  const shedsBox = h("div", {});
  async function paint() {
    const [holds, sheds] = await Promise.all([api.get("/holds"), api.get("/sheds")]);
    mount(
      holdsBox,
      table(
        [
          { label: t("col.scope"), value: (x) => t(`scope.${x.scope}`) },
          { label: t("col.target"), value: (x) => (x.scope === "meter" ? h("a", { href: `#/meters/${encodeURIComponent(x.target)}` }, x.target) : x.target || "—") },
          { label: t("col.until"), value: (x) => (x.until ? when(x.until) : t("hold.no_end")) },
          { label: t("col.reason"), value: (x) => x.reason },
          { label: t("col.operator"), value: (x) => x.operator },
          { label: "", value: (x) => h("button", { type: "button", onclick: async () => { await api.del(`/holds/${x.id}`); toast(t("hold.released")); paint(); } }, t("hold.release")) },
        ],
        holds.items.filter((x) => !x.released_at),
        { empty: t("hold.none") },
      ),
    );
    mount(
      shedsBox,
      table(
        [
          { label: t("col.group"), value: (x) => x.group_name },
          { label: t("col.reason"), value: (x) => x.reason },
          { label: t("shed.started"), value: (x) => when(x.started_at) },
          { label: t("col.operator"), value: (x) => x.operator },
          { label: "", value: (x) => h("button", { type: "button", onclick: async () => { await api.del(`/sheds/${x.id}`); toast(t("shed.ended")); paint(); } }, t("shed.end")) },
        ],
        sheds.items.filter((x) => !x.ended_at),
        { empty: t("shed.none") },
      ),
    );
  }
  mount(
    content,
    h(
      "div",
      { class: "two" },
      h(
        "section",
        { class: "card" },
        h("h2", {}, t("hold.title")),
        h("p", { class: "muted" }, t("hold.explain")),
        holdsBox,
        actionForm(
          { "aria-label": t("hold.create") },
          [
            h(
              "div",
              { class: "form-grid" },
              field(t("col.scope"), { name: "scope", type: "select", options: [["meter", t("scope.meter")], ["group", t("scope.group")], ["global", t("scope.global")]] }),
              field(t("col.target"), { name: "target" }, t("hold.target_hint")),
              field(t("col.until"), { name: "until", type: "datetime-local" }),
              field(t("col.reason"), { name: "reason", required: true }),
            ),
          ],
          async (v) => {
            await api.post("/holds", { scope: v.scope, target: v.scope === "global" ? "" : v.target, until: v.until ? new Date(v.until).toISOString() : null, reason: v.reason });
            await paint();
            return t("hold.created");
          },
          t("hold.create"),
        ),
      ),
      h(
        "section",
        { class: "card" },
        h("h2", {}, t("shed.title")),
        h("p", { class: "muted" }, t("shed.explain")),
        shedsBox,
        actionForm(
          { "aria-label": t("shed.start") },
          [h("div", { class: "form-grid" }, field(t("col.group"), { name: "group", required: true }), field(t("col.reason"), { name: "reason", required: true }))],
          async (v) => {
            await api.post("/sheds", { group: v.group, reason: v.reason });
            await paint();
            return t("shed.started_ok", { group: v.group });
          },
          t("shed.start"),
        ),
      ),
    ),
  );
  await paint();
  every(15000, paint);
}

export async function policyPage(content, { api, me }) {
  const policy = await api.get("/policy");
  const admin = me.role === "admin";
  mount(
    content,
    h(
      "section",
      { class: "card" },
      h("p", { class: "muted" }, t("policy.explain")),
      actionForm(
        { "aria-label": t("nav.policy") },
        [
          field(t("policy.timezone"), { name: "timezone", value: policy.timezone, required: true, disabled: !admin }),
          field(t("policy.windows"), { name: "windows", type: "textarea", value: policy.friendly_windows.map((w) => `${w.start.slice(0, 5)}-${w.end.slice(0, 5)}`).join("\n"), placeholder: "20:00-08:00", disabled: !admin }, t("policy.windows_hint")),
          h(
            "fieldset",
            { class: "field" },
            h("legend", {}, t("policy.weekdays")),
            h("div", { class: "row" }, WEEKDAYS.map((d) => field(t(`weekday.${d}`), { type: "checkbox", name: `weekday-${d}`, checked: policy.friendly_weekdays.includes(d), disabled: !admin }))),
          ),
          field(t("policy.holidays"), { name: "holidays", type: "textarea", value: policy.holidays.join("\n"), placeholder: "2027-01-01", disabled: !admin }, t("policy.holidays_hint")),
        ],
        async (v) => {
          if (!admin) throw new Error(t("error.forbidden"));
          const friendly_windows = v.windows.split("\n").map((s) => s.trim()).filter(Boolean).map((line) => {
            const [start, end] = line.split("-").map((s) => s.trim());
            return { start, end };
          });
          await api.put("/policy", {
            timezone: v.timezone,
            friendly_windows,
            friendly_weekdays: WEEKDAYS.filter((d) => v[`weekday-${d}`]),
            holidays: v.holidays.split(/[\s,]+/).filter(Boolean),
          });
          return t("common.saved");
        },
        t("common.save"),
      ),
    ),
  );
}

// The users, from GET /users; where the API has no list yet, the audit log's user.create entries.
async function userRows(api) {
  try {
    return { listed: true, items: await api.all("/users") };
  } catch (error) {
    if (error.status !== 404 && error.status !== 405) throw error;
    const created = (await api.all("/audit", {}, 2000)).filter((e) => e.action === "user.create");
    return { listed: false, items: created.map((e) => ({ username: e.target, role: e.detail.role, account_ids: [], created_at: e.at })) };
  }
}

export async function usersPage(content, { api, me }) {
  const listBox = h("div", {});
  async function paint() {
    const { listed, items } = await userRows(api);
    const actions = (u) => {
      if (!listed || u.username === me.username) return "";
      const cell = h("div", { class: "row" });
      const reset = actionForm(
        { "aria-label": t("user.reset_for", { name: u.username }), class: "row" },
        [h("label", { class: "sr-only", for: `pw-${u.username}` }, t("user.new_password")), h("input", { id: `pw-${u.username}`, name: "password", type: "password", minlength: 8, required: true, autocomplete: "new-password", placeholder: t("user.new_password"), style: "width:12em" })],
        async ({ password }) => {
          await api.put(`/users/${encodeURIComponent(u.username)}/password`, { password });
          return t("common.saved");
        },
        t("user.reset"),
      );
      cell.append(
        h("button", { type: "button", onclick: async () => {
          await api.patch(`/users/${encodeURIComponent(u.username)}`, { disabled: !u.disabled });
          toast(u.disabled ? t("user.enabled") : t("user.disabled"));
          paint();
        } }, u.disabled ? t("user.enable") : t("user.disable")),
        h("button", { type: "button", class: "danger", onclick: async (event) => {
          // A second click confirms: no modal dialog to trap the keyboard.
          if (event.currentTarget.dataset.armed !== "yes") {
            event.currentTarget.dataset.armed = "yes";
            event.currentTarget.textContent = t("user.delete_confirm");
            return;
          }
          await api.del(`/users/${encodeURIComponent(u.username)}`);
          toast(t("user.deleted", { name: u.username }));
          paint();
        } }, t("user.delete")),
        reset,
      );
      return cell;
    };
    mount(
      listBox,
      listed ? null : h("p", { class: "muted" }, t("user.from_audit")),
      table(
        [
          { label: t("login.username"), value: (u) => h("strong", {}, u.username) },
          { label: t("user.role"), value: (u) => t(`role.${u.role}`) },
          { label: t("user.accounts"), value: (u) => (u.account_ids || []).join(", ") || "—" },
          { label: t("col.state"), value: (u) => (u.disabled ? badge(t("user.is_disabled"), "bad") : badge(t("user.is_enabled"), "ok")) },
          { label: "", value: actions },
        ],
        items,
      ),
    );
  }
  mount(
    content,
    h(
      "section",
      { class: "card" },
      h("h2", {}, t("user.create")),
      actionForm(
        { "aria-label": t("user.create") },
        [
          h(
            "div",
            { class: "form-grid" },
            field(t("login.username"), { name: "username", required: true, pattern: ID_PATTERN, autocomplete: "off" }),
            field(t("login.password"), { name: "password", type: "password", required: true, minlength: 8, autocomplete: "new-password" }, t("user.password_hint")),
            field(t("user.role"), { name: "role", type: "select", options: [["operator", t("role.operator")], ["tenant", t("role.tenant")], ["admin", t("role.admin")]] }),
            field(t("user.accounts"), { name: "account_ids" }, t("user.accounts_hint")),
          ),
        ],
        async (v) => {
          await api.post("/users", { username: v.username, password: v.password, role: v.role, account_ids: v.account_ids ? v.account_ids.split(",").map((s) => s.trim()).filter(Boolean) : [] });
          await paint();
          return t("user.created", { name: v.username });
        },
        t("user.create"),
      ),
    ),
    h("section", { class: "card" }, h("h2", {}, t("user.list")), listBox),
    h("section", { class: "card" }, h("h2", {}, t("user.roles")), h("ul", {}, ["admin", "operator", "tenant"].map((r) => h("li", {}, h("strong", {}, t(`role.${r}`)), ": ", t(`role.${r}.may`))))),
  );
  await paint();
}

// An audit entry's detail as "key: value" pairs, the empty ones left out.
function describeDetail(detail) {
  return Object.entries(detail || {})
    .filter(([, value]) => value !== null && value !== "" && !(Array.isArray(value) && !value.length))
    .map(([key, value]) => `${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join(" · ");
}

export async function auditPage(content, { api }) {
  let offset = 0;
  const size = 50;
  const box = h("div", {});
  async function paint() {
    const page = await api.get("/audit", { limit: size, offset });
    mount(
      box,
      table(
        [
          { label: t("col.time"), value: (e) => when(e.at) },
          { label: t("col.operator"), value: (e) => e.actor },
          { label: t("col.action"), value: (e) => e.action },
          { label: t("col.target"), value: (e) => e.target },
          { label: t("col.detail"), value: (e) => h("small", { class: "detail" }, describeDetail(e.detail)) },
        ],
        page.items,
      ),
      h(
        "div",
        { class: "row" },
        h("button", { type: "button", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - size); paint(); } }, t("common.newer")),
        h("span", { class: "muted" }, t("common.range", { from: page.total ? offset + 1 : 0, to: offset + page.items.length, total: page.total })),
        h("button", { type: "button", disabled: offset + size >= page.total, onclick: () => { offset += size; paint(); } }, t("common.older")),
      ),
    );
  }
  mount(content, box);
  await paint();
}
