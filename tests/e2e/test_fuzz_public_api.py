"""A short profile of ``make fuzz`` in ``make test``: schemathesis over the whole public
OpenAPI, as an admin and as a tenant, every check, against the standalone product; any
server error, schema violation or undocumented answer fails the build."""

from __future__ import annotations

from pathlib import Path

import pytest
from testkit.fuzz import fuzz

# Bounded and seeded: the same requests every run, a few minutes on a CI machine.
SHORT_PROFILE = {"max_examples": 3, "seed": 13}


@pytest.mark.timeout(900)
def test_the_public_api_holds_under_schemathesis(tmp_path: Path) -> None:
    results = fuzz(report_dir=tmp_path, **SHORT_PROFILE)
    failed = [r for r in results if r.exit_code != 0]
    assert not failed, "\n\n".join(f"--- {r.role}\n{r.output[-8000:]}" for r in failed)
