// Online payments: a provider order looked up and refunded, the issues to look at, a bill check.
import { t } from "/web/i18n.js";
import { actionForm, badge, field, h, isoDate, money, mount, table, when } from "/web/ui.js";

function orderStatus(status) {
  const kind = { paid: "ok", pending: "warn", refunded: "neutral", closed: "neutral", expired: "neutral" }[status] || "neutral";
  return badge(t(`order.status.${status}`), kind);
}

export async function paymentsPage(content, { api }) {
  const orderBox = h("div", {});
  const issuesBox = h("div", {});
  const billBox = h("div", {});

  function showOrder(order) {
    const refundable = order.status === "paid" && Number(order.amount) > Number(order.refunded_amount || 0);
    mount(
      orderBox,
      h(
        "dl",
        { class: "kv" },
        [
          [t("order.out_trade_no"), order.out_trade_no],
          [t("col.account"), h("a", { href: `#/accounts/${encodeURIComponent(order.account_id)}` }, order.account_id)],
          [t("col.channel"), t(`method.${order.channel}`)],
          [t("col.amount"), money(order.amount)],
          [t("col.status"), orderStatus(order.status)],
          [t("order.paid_at"), when(order.paid_at)],
          [t("order.refunded"), money(order.refunded_amount)],
          [t("order.transaction"), order.transaction_id || "—"],
        ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      ),
      refundable
        ? actionForm(
            { "aria-label": t("order.refund"), style: "margin-top:12px" },
            [h("div", { class: "form-grid" }, field(t("col.amount"), { name: "amount", required: true, inputmode: "decimal" }), field(t("col.reason"), { name: "reason", required: true, maxlength: 80 }))],
            async ({ amount, reason }) => {
              const refund = await api.post(`/orders/${encodeURIComponent(order.out_trade_no)}/refunds`, { amount, reason });
              return t("order.refund_asked", { amount: money(refund.amount), status: t(`refund.status.${refund.status}`) });
            },
            t("order.refund"),
          )
        : null,
    );
  }

  async function paintIssues() {
    const page = await api.get("/payment-issues", { limit: 50 });
    mount(
      issuesBox,
      table(
        [
          { label: t("col.time"), value: (i) => when(i.created_at) },
          { label: t("col.kind"), value: (i) => i.kind },
          { label: t("order.provider"), value: (i) => t(`provider.${i.provider}`) },
          { label: t("order.out_trade_no"), value: (i) => i.out_trade_no || "—" },
          { label: t("col.detail"), value: (i) => i.detail },
        ],
        page.items,
        { empty: t("order.no_issues") },
      ),
    );
  }

  const yesterday = isoDate(new Date(Date.now() - 86400000));
  mount(
    content,
    h(
      "div",
      { class: "two" },
      h(
        "section",
        { class: "card" },
        h("h2", {}, t("order.find")),
        actionForm(
          { "aria-label": t("order.find") },
          [field(t("order.out_trade_no"), { name: "out_trade_no", required: true, placeholder: "PP2026..." })],
          async ({ out_trade_no }) => {
            showOrder(await api.get(`/orders/${encodeURIComponent(out_trade_no)}`));
          },
          t("order.look_up"),
        ),
        orderBox,
      ),
      h(
        "section",
        { class: "card" },
        h("h2", {}, t("order.bill")),
        h("p", { class: "muted" }, t("order.bill_explain")),
        actionForm(
          { "aria-label": t("order.bill") },
          [
            h(
              "div",
              { class: "form-grid" },
              field(t("order.provider"), { name: "provider", type: "select", options: [["wechatpay", t("provider.wechatpay")], ["alipay", t("provider.alipay")]] }),
              field(t("order.day"), { name: "day", type: "date", value: yesterday, required: true }),
            ),
          ],
          async ({ provider, day }) => {
            const check = await api.post(`/payment-bills/${provider}/${day}`);
            mount(billBox, h("p", {}, t("order.bill_result", { trades: check.trades, differences: check.differences.length })));
            await paintIssues();
          },
          t("order.check_bill"),
        ),
        billBox,
      ),
    ),
    h("section", { class: "card" }, h("h2", {}, t("order.issues")), issuesBox),
  );
  await paintIssues();
}
