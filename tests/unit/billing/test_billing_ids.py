"""Batch ids are random version-4 UUIDs written as uuid4 writes them."""

from __future__ import annotations

import re
import uuid

from billing.ids import new_ids


def test_new_ids_are_version_4_uuids() -> None:
    ids = new_ids(2000)
    assert len(set(ids)) == 2000
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == value
        assert re.fullmatch(
            r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", value
        )
    # Every variant nibble and every random position takes more than one value.
    assert {value[19] for value in ids} == set("89ab")
    assert all(
        len({value[i] for value in ids}) > 1 for i in range(36) if i not in (8, 13, 14, 18, 23)
    )
    assert new_ids(0) == []
