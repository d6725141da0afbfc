"""Passwords, tokens, visibility, new users and the login throttle."""

from __future__ import annotations

from datetime import timedelta

import pytest
from gateway.auth import hash_password, issue_token, read_token, verify_password
from gateway.domain import LoginThrottle, Principal, check_new_user
from prepaid_common.errors import Invalid


def test_password_hash_is_argon2id_and_verifies() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "wrong horse")
    assert not verify_password("not-a-hash", "correct horse")


def test_token_round_trip_and_refusals() -> None:
    token = issue_token(username="u", role="operator", secret="s" * 32, ttl=timedelta(minutes=5))
    assert read_token(token, secret="s" * 32) == ("u", "operator")
    assert read_token(token, secret="t" * 32) is None
    expired = issue_token(username="u", role="admin", secret="s" * 32, ttl=timedelta(seconds=-1))
    assert read_token(expired, secret="s" * 32) is None
    assert read_token("garbage", secret="s" * 32) is None


def test_tenants_see_only_their_accounts() -> None:
    tenant = Principal("t", "tenant", frozenset({"A1"}))
    assert tenant.may_see_account("A1")
    assert not tenant.may_see_account("A2")
    assert Principal("o", "operator").may_see_account("A2")
    assert not tenant.may_see_account(None)  # a meter bound to no account
    assert Principal("o", "operator").may_see_account(None)


def test_login_throttle_blocks_after_repeated_failures_and_forgets_later() -> None:
    throttle = LoginThrottle(max_failures=3, window_seconds=60)
    for moment in (0.0, 1.0, 2.0):
        assert not throttle.blocked("u", now=moment)
        throttle.failed("u", now=moment)
    assert throttle.blocked("u", now=3.0)
    assert not throttle.blocked("other", now=3.0)
    assert not throttle.blocked("u", now=100.0)


def test_a_new_user_needs_a_known_role_and_eight_characters_of_password() -> None:
    check_new_user(role="tenant", password="12345678")
    with pytest.raises(Invalid, match="role must be one of admin, operator, tenant"):
        check_new_user(role="root", password="12345678")
    with pytest.raises(Invalid, match="at least 8 characters"):
        check_new_user(role="admin", password="1234567")
