"""Signing in under attack: throttled per address and user without locking the real user
out, hashing off the event loop, the same work for unknown users, a password policy, token
revocation and the users' lifecycle."""

from __future__ import annotations

import threading
from pathlib import Path

import gateway.auth
import pytest
from gateway.__main__ import reset_admin_password
from testkit.gateway import ADMIN_PASSWORD, gateway_on, public_client, sign_in


async def test_an_attacker_cannot_keep_the_admin_out_from_another_address(
    tmp_path: Path,
) -> None:
    async with gateway_on(tmp_path) as service:
        app = service.public_app()
        async with public_client(service, address="10.0.0.2", app=app) as office:
            assert (await sign_in(office, "admin", ADMIN_PASSWORD)).status_code == 200
        async with public_client(service, address="203.0.113.9", app=app) as attacker:
            statuses = [
                (await sign_in(attacker, "admin", f"guess-{n}")).status_code for n in range(12)
            ]
            assert statuses[:5] == [401] * 5
            assert 429 in statuses
            refused = await sign_in(attacker, "admin", ADMIN_PASSWORD)
            assert refused.status_code == 429  # the right password does not help it now
            assert int(refused.headers["Retry-After"]) >= 1
            assert refused.headers["content-type"].startswith("application/problem+json")
        async with public_client(service, address="10.0.0.2", app=app) as office:
            assert (await sign_in(office, "admin", ADMIN_PASSWORD)).status_code == 200


async def test_hashing_runs_off_the_event_loop_and_unknown_users_cost_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[tuple[str, bool]] = []
    real = gateway.auth.verify_password

    def spy(password_hash: str, password: str) -> bool:
        checks.append((password_hash, threading.current_thread() is threading.main_thread()))
        return real(password_hash, password)

    async with gateway_on(tmp_path) as service:
        monkeypatch.setattr(gateway.auth, "verify_password", spy)
        async with public_client(service) as client:
            assert (await sign_in(client, "nobody-at-all", "whatever-1")).status_code == 401
            assert (await sign_in(client, "admin", "whatever-1")).status_code == 401
    assert len(checks) == 2
    assert all(hashed.startswith("$argon2id$") for hashed, _ in checks)
    assert not any(on_main for _, on_main in checks)


async def test_common_and_short_passwords_are_refused(tmp_path: Path) -> None:
    async with gateway_on(tmp_path) as service, public_client(service) as admin:
        await sign_in(admin, "admin", ADMIN_PASSWORD)
        for password in ("password123", "Qwerty123", "short", "operator1"):
            made = await admin.post(
                "/api/v1/users",
                json={"username": "operator1", "password": password, "role": "operator"},
            )
            assert made.status_code == 422, (password, made.text)


async def test_logout_password_change_and_disabling_revoke_tokens(tmp_path: Path) -> None:
    async with gateway_on(tmp_path) as service:
        app = service.public_app()
        async with (
            public_client(service, app=app) as admin,
            public_client(service, app=app) as operator,
            public_client(service, app=app) as second_session,
        ):
            await sign_in(admin, "admin", ADMIN_PASSWORD)
            made = await admin.post(
                "/api/v1/users",
                json={"username": "op1", "password": "first long secret", "role": "operator"},
            )
            assert made.status_code == 201
            await sign_in(operator, "op1", "first long secret")
            await sign_in(second_session, "op1", "first long secret")
            assert (await operator.post("/api/v1/auth/logout")).status_code == 204
            assert (await operator.get("/api/v1/me")).status_code == 401
            assert (await second_session.get("/api/v1/me")).status_code == 401

            await sign_in(operator, "op1", "first long secret")
            wrong = await operator.post(
                "/api/v1/me/password",
                json={"current_password": "not it", "new_password": "second long secret"},
            )
            assert wrong.status_code == 422
            changed = await operator.post(
                "/api/v1/me/password",
                json={
                    "current_password": "first long secret",
                    "new_password": "second long secret",
                },
            )
            assert changed.status_code == 204, changed.text
            assert (await operator.get("/api/v1/me")).status_code == 401
            assert (await sign_in(operator, "op1", "first long secret")).status_code == 401
            assert (await sign_in(operator, "op1", "second long secret")).status_code == 200

            disabled = await admin.patch("/api/v1/users/op1", json={"disabled": True})
            assert disabled.status_code == 204
            assert (await operator.get("/api/v1/me")).status_code == 401
            assert (await sign_in(operator, "op1", "second long secret")).status_code == 401
            assert (
                await admin.patch("/api/v1/users/op1", json={"disabled": None})
            ).status_code == 422

            users = (await admin.get("/api/v1/users")).json()
            assert [(u["username"], u["disabled"]) for u in users["items"]] == [
                ("admin", False),
                ("op1", True),
            ]
            assert (await admin.delete("/api/v1/users/admin")).status_code == 409
            assert (await admin.delete("/api/v1/users/op1")).status_code == 204
            assert (await admin.delete("/api/v1/users/op1")).status_code == 404
            actions = [e["action"] for e in (await admin.get("/api/v1/audit")).json()["items"]]
            assert actions[:3] == ["user.delete", "user.disable", "user.create"]


async def test_the_reset_command_gives_the_admin_a_new_password(
    tmp_path: Path,
) -> None:
    async with gateway_on(tmp_path) as service:
        settings = service.settings.model_copy(
            update={
                "database_url": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
                "admin_password": None,
            }
        )
        async with public_client(service) as before:
            await sign_in(before, "admin", ADMIN_PASSWORD)
            generated = await reset_admin_password(settings)
            assert generated
            assert (await before.get("/api/v1/me")).status_code == 401  # old tokens revoked
            assert (await sign_in(before, "admin", ADMIN_PASSWORD)).status_code == 401
            assert (await sign_in(before, "admin", generated)).status_code == 200
