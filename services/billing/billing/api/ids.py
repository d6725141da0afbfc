"""Lists of ids in a query string."""

from __future__ import annotations

from prepaid_common.errors import Invalid

MAX_IDS = 1000


def split_ids(raw: str | None) -> list[str] | None:
    """Split ``a,b,c`` into ids (None when absent); refuse more than MAX_IDS."""
    if raw is None:
        return None
    ids = [part for part in raw.split(",") if part]
    if len(ids) > MAX_IDS:
        raise Invalid(f"at most {MAX_IDS} ids per request")
    return ids
