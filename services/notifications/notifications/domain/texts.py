"""How each kind reads: a title, one line of text, and the ordered parameters an SMS
template takes (providers send only pre-approved templates filled with parameters)."""

from __future__ import annotations

from dataclasses import dataclass

from notifications.domain.kinds import Kind


@dataclass(frozen=True)
class Rendered:
    kind: Kind
    title: str
    text: str
    # The template's parameters, in the order a positional template (Tencent) takes them.
    params: tuple[tuple[str, str], ...]


_TEXTS: dict[Kind, tuple[str, str, tuple[str, ...]]] = {
    Kind.LOW_BALANCE_1: (
        "余额不足提醒 Low balance",
        "账户{account}余额{balance}元，已低于预警线{line}元，请及时充值。"
        " Account {account}: balance {balance}, below the warning line {line}.",
        ("account", "balance", "line"),
    ),
    Kind.LOW_BALANCE_2: (
        "余额耗尽提醒 Balance used up",
        "账户{account}余额{balance}元，已到断电线{line}元，请立即充值以免停电。"
        " Account {account}: balance {balance}, at the cut line {line}.",
        ("account", "balance", "line"),
    ),
    Kind.CUT_IMMINENT: (
        "即将停电 Supply cut imminent",
        "账户{account}余额{balance}元，友好时段结束后将停电，请尽快充值。"
        " Account {account}: balance {balance}; supply is cut when friendly hours end.",
        ("account", "balance"),
    ),
    Kind.SUPPLY_CUT: (
        "已停电 Supply cut",
        "账户{account}电表{meter}已停电：{reason}。充值后自动恢复供电。"
        " Account {account}, meter {meter}: supply cut ({reason}).",
        ("account", "meter"),
    ),
    Kind.SUPPLY_RESTORED: (
        "已恢复供电 Supply restored",
        "账户{account}电表{meter}已恢复供电。 Account {account}, meter {meter}: supply restored.",
        ("account", "meter"),
    ),
    Kind.TOP_UP_RECEIVED: (
        "充值到账 Top-up received",
        "账户{account}充值{amount}元已到账（{method}）。"
        " Account {account}: top-up of {amount} received ({method}).",
        ("account", "amount"),
    ),
    Kind.METER_OFFLINE: (
        "电表离线 Meter offline",
        "电表{meter}（集中器{dtu}）离线：{reason}。 Meter {meter} on DTU {dtu} offline.",
        ("meter", "dtu"),
    ),
    Kind.DTU_OFFLINE: (
        "集中器离线 DTU offline",
        "集中器{dtu}离线：{reason}。 DTU {dtu} offline: its meters are not read.",
        ("dtu",),
    ),
    Kind.PAYMENT_ATTENTION: (
        "支付待处理 Payment needs attention",
        "支付问题（{issue}，{provider}，订单{order}）：{detail}"
        " Payment issue {issue} at {provider}, order {order}.",
        ("issue", "order"),
    ),
}


class _Missing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "-"


def render(kind: Kind, params: dict[str, str]) -> Rendered:
    """Return the title, text and template parameters of a message."""
    title, text, names = _TEXTS[kind]
    values = _Missing(params)
    return Rendered(
        kind=kind,
        title=title,
        text=text.format_map(values),
        params=tuple((name, values[name]) for name in names),
    )
