"""The columns of an import file, by the names an operator writes in Chinese or English.

A header matches a field when it, or any part of it split at '/', '|', '(' or a space, is
one of the field's names (case, spaces, '_' and '-' ignored): ``表号``, ``meter_id``,
``Meter ID`` and ``表号/meter_id`` all name the meter's id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAIN_SHEET = "meters"
TARIFF_SHEET = "tariffs"


@dataclass(frozen=True)
class ImportColumn:
    """One field of an import sheet: its names, and what the template says of it."""

    field: str
    chinese: str
    english: str
    aliases: tuple[str, ...]
    example: str
    note: str

    @property
    def header(self) -> str:
        """The template's header: both names, so that either language reads it."""
        return f"{self.chinese}/{self.english}"


# The main sheet: one row per meter (or per account, or per DTU), each row naming what it can.
MAIN_COLUMNS: tuple[ImportColumn, ...] = (
    ImportColumn(
        "meter_id",
        "表号",
        "meter_id",
        ("电表号", "表计编号", "电表编号", "meter", "meterid"),
        "M-0001",
        "the meter's id (letters, digits, _ - :)",
    ),
    ImportColumn(
        "dtu_id",
        "集中器",
        "dtu_id",
        ("dtu", "集中器编号", "采集器", "网关", "gateway"),
        "DTU-A",
        "the DTU or gateway the meter is behind",
    ),
    ImportColumn(
        "dtu_name",
        "集中器名称",
        "dtu_name",
        ("dtuname",),
        "A栋配电房",
        "new DTU's name (default: its id)",
    ),
    ImportColumn(
        "dtu_kind",
        "接入方式",
        "dtu_kind",
        ("集中器类型", "dtukind", "kind"),
        "modbus-tcp",
        "modbus-tcp, rtu-over-tcp or dtu-client (default modbus-tcp)",
    ),
    ImportColumn(
        "host",
        "IP",
        "host",
        ("主机", "ip地址", "集中器ip"),
        "192.168.1.20",
        "where the collector dials a modbus-tcp or rtu-over-tcp DTU",
    ),
    ImportColumn("port", "端口", "port", (), "502", "the DTU's TCP port"),
    ImportColumn(
        "address",
        "地址",
        "address",
        ("表地址", "通讯地址", "busaddress"),
        "",
        "the meter's bus address: a DL/T 645 meter's 12 digits (format the column as text)",
    ),
    ImportColumn(
        "unit_id",
        "从站号",
        "unit_id",
        ("从站地址", "站号", "unitid", "slaveid", "slave"),
        "1",
        "a Modbus meter's unit id, 1 to 247 (or give it as the address)",
    ),
    ImportColumn(
        "profile",
        "型号",
        "profile",
        ("表型", "规约", "model"),
        "reference-prepaid",
        "the meter profile's name (docs/profiles.md)",
    ),
    ImportColumn(
        "account_id",
        "户号",
        "account_id",
        ("账户", "账号", "户号id", "account"),
        "A-101",
        "the account the meter is billed to",
    ),
    ImportColumn(
        "tenant_name",
        "户名",
        "tenant_name",
        ("用户名", "租户", "租户名称", "name", "tenant"),
        "一楼茶叶店",
        "the tenant's name (needed for a new account)",
    ),
    ImportColumn(
        "phone",
        "电话",
        "phone",
        ("手机", "手机号", "联系电话", "mobile"),
        "13800138000",
        "the tenant's phone (checked; not stored yet)",
    ),
    ImportColumn(
        "tariff",
        "电价",
        "tariff",
        ("费率", "单价", "tariffid", "price"),
        "0.85",
        "a tariff id, or a flat price in yuan/kWh (needed for a new account)",
    ),
    ImportColumn(
        "group",
        "分组",
        "group",
        ("楼栋", "区域", "groups"),
        "building:A",
        "the account's groups, separated by ';'",
    ),
    ImportColumn(
        "multiplier",
        "倍率",
        "multiplier",
        ("互感器倍率", "ctratio"),
        "1",
        "the meter's CT ratio (default 1)",
    ),
)

# The optional tariffs sheet (XLSX): flat tariffs an account's 电价 can name.
TARIFF_COLUMNS: tuple[ImportColumn, ...] = (
    ImportColumn(
        "tariff_id",
        "电价编号",
        "tariff_id",
        ("费率编号", "id"),
        "residential",
        "the tariff's id, for the accounts' 电价 column",
    ),
    ImportColumn(
        "tariff_name",
        "电价名称",
        "tariff_name",
        ("费率名称", "名称", "name"),
        "居民电价",
        "the tariff's name",
    ),
    ImportColumn(
        "price",
        "单价",
        "price",
        ("电价", "price_per_kwh", "priceperkwh"),
        "0.6",
        "yuan per kWh (flat), up to 4 decimals",
    ),
)

_SHEET_NAMES = {
    TARIFF_SHEET: ("tariffs", "tariff", "电价", "电价表", "费率", "费率表"),
    MAIN_SHEET: ("meters", "meter", "表计", "电表", "档案", "导入"),
}

_SPLIT = re.compile(r"[/|()（）\s]+")


def _normal(text: str) -> str:
    return re.sub(r"[\s_\-:：]+", "", text.strip().lower())


def _names(column: ImportColumn) -> set[str]:
    return {_normal(n) for n in (column.chinese, column.english, column.field, *column.aliases)}


def match_headers(
    headers: Sequence[str], columns: Sequence[ImportColumn]
) -> tuple[dict[str, int], list[str]]:
    """Return the field each header names (field -> column index) and the headers that
    name no field. The first header naming a field wins."""
    by_name = {name: column.field for column in columns for name in _names(column)}
    found: dict[str, int] = {}
    unknown: list[str] = []
    for index, header in enumerate(headers):
        candidates = [_normal(header), *(_normal(p) for p in _SPLIT.split(header) if p)]
        field = next((by_name[c] for c in candidates if c in by_name), None)
        if field is None:
            if header.strip():
                unknown.append(header)
        elif field not in found:
            found[field] = index
    return found, unknown


def sheet_role(name: str, names: Mapping[str, tuple[str, ...]] = _SHEET_NAMES) -> str | None:
    """Return which sheet a worksheet's name says it is (tariffs or meters), or None."""
    normal = _normal(name)
    for role, candidates in names.items():
        if normal in {_normal(c) for c in candidates}:
            return role
    return None
