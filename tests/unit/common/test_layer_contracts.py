"""The layer contracts of `make lint` fail on a tree that breaks them, and pass on one that doesn't.

The contracts are read from the project's pyproject.toml and checked by import-linter against a
small package tree written into a temporary directory, one planted violation at a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parents[3]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# A clean miniature of the project: every root package exists (else the editable install would
# supply the real one), each service with a pure domain and an adapter that may use anything.
CLEAN_TREE = {
    "prepaid_common/__init__.py": "",
    "prepaid_common/contracts/__init__.py": "import pydantic\n",
    "prepaid_common/errors/__init__.py": "",
    "prepaid_common/db/__init__.py": "import sqlalchemy\n",
    "collector/__init__.py": "",
    "collector/domain/__init__.py": "from prepaid_common import contracts, errors\n",
    "collector/tables.py": "import sqlalchemy\nfrom prepaid_common import db\n",
    "billing/__init__.py": "",
    "billing/domain/__init__.py": "import decimal\n",
    "billing/api.py": "import fastapi\nfrom billing import domain\n",
    "billing/metrics.py": "from prometheus_client import Counter\n",
    "control/__init__.py": "",
    "control/domain.py": "",
    "payments/__init__.py": "",
    "payments/domain.py": "import datetime\n",
    "gateway/__init__.py": "",
    "gateway/api.py": "import fastapi\nimport httpx\nfrom prepaid_common import contracts\n",
    "simulator/__init__.py": "",
    "standalone/__init__.py": "import billing.api\nimport collector.tables\nimport simulator\n",
}

VIOLATIONS = {
    "domain imports an adapter": {"billing/domain/rules.py": "import sqlalchemy\n"},
    "domain imports an adapter through its own service": {
        "collector/domain/polling.py": "from collector import tables\n"
    },
    "domain imports the bus": {"payments/domain.py": "from prepaid_common import bus\n"},
    "a service imports another": {"gateway/api.py": "from billing.domain import rules\n"},
    "the collector imports the simulator": {"collector/listener.py": "import simulator\n"},
    "libs import a service": {"prepaid_common/db/__init__.py": "import collector.tables\n"},
    "contracts import a web framework": {"prepaid_common/contracts/api.py": "import fastapi\n"},
    "a cycle hidden in a function": {
        "billing/service.py": "def routers():\n    from billing import api\n    return api\n",
        "billing/api.py": "import fastapi\nfrom billing import domain, service\n",
    },
    "a metric declared outside a metrics module": {
        "billing/handlers.py": "from prometheus_client import Counter\n"
    },
    "errors import the database": {
        "prepaid_common/errors/__init__.py": "from prepaid_common import db\n"
    },
}


def _ini_value(value: Any) -> str:
    if isinstance(value, list):
        return "".join(f"\n    {item}" for item in value)
    return str(value)


def _contracts_as_ini() -> str:
    """Return the project's import-linter configuration, without its ignore_imports, as INI."""
    config = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = config.pop("contracts")
    lines = ["[importlinter]"]
    lines += [f"{key} = {_ini_value(value)}" for key, value in config.items()]
    for contract in contracts:
        contract = dict(contract)
        # A planted violation must be caught by the contract itself, not by a missing exception.
        contract.pop("ignore_imports", None)
        lines.append(f"\n[importlinter:contract:{contract.pop('id')}]")
        lines += [f"{key} = {_ini_value(value)}" for key, value in contract.items()]
    return "\n".join(lines) + "\n"


def _named_modules() -> dict[str, str]:
    """Return an empty file for every project module the contracts name, so that each exists."""
    config = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["importlinter"]
    roots = set(config["root_packages"])
    files = {}
    for contract in config["contracts"]:
        for key in ("source_modules", "forbidden_modules", "modules"):
            for module in contract.get(key, []):
                if module.split(".")[0] in roots and "*" not in module:
                    files[module.replace(".", "/") + "/__init__.py"] = ""
    return files


def _lint(tree: dict[str, str], root: Path) -> subprocess.CompletedProcess[str]:
    tree = {**_named_modules(), **tree}
    for name, text in tree.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "layers.ini").write_text(_contracts_as_ini())
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", "layers.ini"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_tree_that_keeps_the_layers_passes(tmp_path: Path) -> None:
    result = _lint(CLEAN_TREE, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize("planted", sorted(VIOLATIONS))
def test_a_planted_violation_breaks_a_contract(planted: str, tmp_path: Path) -> None:
    result = _lint({**CLEAN_TREE, **VIOLATIONS[planted]}, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert "1 broken" in result.stdout
