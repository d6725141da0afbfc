"""Schemathesis over the whole public OpenAPI, as an admin and as a tenant, against the
standalone product started on a free port (``make fuzz``; a short profile runs in
``make test``).

Every check is on. Left out are only the operations that would end the run's own session
(signing out, changing or resetting a password, disabling users): the fuzzer would revoke the
token it calls with, and the rest of the run would be 401s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from testkit.processes import wait_for_demo_data

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "fuzz admin passphrase 1"
# Operations whose success would revoke the fuzzer's own token (see the module's docstring):
# a tenant's own, and an admin's over users (a tenant is refused those, so it fuzzes them).
SESSION_ENDING = {
    "tenant": ("logout", "change_my_password"),
    "admin": ("logout", "change_my_password", "reset_password", "change_user", "delete_user"),
}


@dataclass(frozen=True)
class FuzzResult:
    """How one role's run went."""

    role: str
    exit_code: int
    report: Path
    output: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def standalone_product(data_dir: Path) -> Iterator[str]:
    """Run ``python -m standalone`` (small simulated field, demo data); yield its URL."""
    port = _free_port()
    env = {
        **os.environ,
        "PREPAID_DATA_DIR": str(data_dir),
        "PREPAID_HTTP_PORT": str(port),
        "PREPAID_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PREPAID_SIM_DTUS": "2",
        "PREPAID_SIM_METERS": "2",
        "PREPAID_SIM_BASE_PORT": "0",
        "PREPAID_COLLECTOR_LISTEN_PORT": "0",
        "PREPAID_LOG_FORMAT": "json",
        "PREPAID_LOG_LEVEL": "WARNING",
    }
    for name in ("PREPAID_DATABASE_URL", "PREPAID_AMQP_URL"):
        env.pop(name, None)
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "standalone.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "standalone"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"standalone did not start:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    wait_for_demo_data(process, log)
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _token(url: str, username: str, password: str) -> str:
    answer = httpx.post(
        f"{url}/api/v1/auth/token",
        data={"username": username, "password": password},
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


# The providers' notifications answer in each provider's protocol (Alipay's plain "failure"
# to an unsigned body): only a provider's signed body is valid, which no schema can say, so
# they are fuzzed apart, with every check but "a schema-valid request is accepted".
WEBHOOKS = "provider_notification"


def run_schemathesis(
    url: str,
    *,
    role: str,
    token: str,
    max_examples: int,
    seed: int,
    report_dir: Path,
) -> FuzzResult:
    """Fuzz every public operation with a role's token; return the run's outcome."""
    main = _schemathesis(
        url,
        name=role,
        role=role,
        token=token,
        max_examples=max_examples,
        seed=seed,
        report_dir=report_dir,
        extra=["--include-path-regex", "^/api/v1/", "--exclude-operation-id", WEBHOOKS],
    )
    webhooks = _schemathesis(
        url,
        name=f"{role}-webhooks",
        role=role,
        token=token,
        max_examples=max_examples,
        seed=seed,
        report_dir=report_dir,
        extra=[
            "--include-operation-id",
            WEBHOOKS,
            "--exclude-checks",
            "positive_data_acceptance",
        ],
    )
    return FuzzResult(
        role,
        main.exit_code or webhooks.exit_code,
        main.report,
        main.output + "\n--- webhooks\n" + webhooks.output,
    )


def _schemathesis(
    url: str,
    *,
    name: str,
    role: str,
    token: str,
    max_examples: int,
    seed: int,
    report_dir: Path,
    extra: Sequence[str],
) -> FuzzResult:
    report = report_dir / f"fuzz-{name}.json"
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--no-shrink",
        "--request-timeout",
        "30",
        "--phases",
        "examples,coverage,fuzzing",
        "--suppress-health-check",
        "all",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        *(arg for op in SESSION_ENDING[role] for arg in ("--exclude-operation-id", op)),
        *extra,
    ]
    finished = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    return FuzzResult(name, finished.returncode, report, finished.stdout + finished.stderr)


def fuzz(
    *, max_examples: int, seed: int, report_dir: Path, roles: Sequence[str] = ("admin", "tenant")
) -> list[FuzzResult]:
    """Start the product and fuzz it as each role."""
    report_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prepaid-fuzz-") as scratch:
        data_dir = Path(scratch) / "data"
        with standalone_product(data_dir) as url:
            tenant_password = (data_dir / "demo-tenant-password").read_text().strip()
            tokens = {
                "admin": _token(url, "admin", ADMIN_PASSWORD),
                "tenant": _token(url, "tenant1", tenant_password),
            }
            try:
                return [
                    run_schemathesis(
                        url,
                        role=role,
                        token=tokens[role],
                        max_examples=max_examples,
                        seed=seed,
                        report_dir=report_dir,
                    )
                    for role in roles
                ]
            finally:
                # The server's own log: where a 500's traceback is.
                shutil.copy(data_dir / "standalone.log", report_dir / "fuzz-server.log")


def main() -> None:
    """``make fuzz``: fuzz as admin and tenant; exit non-zero on any failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--report-dir", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--role", action="append", choices=["admin", "tenant"])
    options = parser.parse_args()
    results = fuzz(
        max_examples=options.max_examples,
        seed=options.seed,
        report_dir=options.report_dir,
        roles=options.role or ("admin", "tenant"),
    )
    for result in results:
        print(f"--- {result.role}: exit {result.exit_code}, report {result.report}")
        print(result.output[-60000:])
    summary = {r.role: r.exit_code for r in results}
    print(json.dumps(summary))
    sys.exit(0 if all(code == 0 for code in summary.values()) else 1)


if __name__ == "__main__":
    main()
