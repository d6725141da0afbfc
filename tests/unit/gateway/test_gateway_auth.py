"""Passwords, tokens, visibility, new users and the login throttle."""

from __future__ import annotations

from datetime import timedelta

import pytest
from gateway.auth import TokenClaims, hash_password, issue_token, read_token, verify_password
from gateway.domain import LoginThrottle, Principal, check_new_user, check_password
from prepaid_common.errors import Invalid


def test_password_hash_is_argon2id_and_verifies() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "wrong horse")
    assert not verify_password("not-a-hash", "correct horse")


def test_token_round_trip_and_refusals() -> None:
    token = issue_token(username="u", role="operator", secret="s" * 32, ttl=timedelta(minutes=5))
    assert read_token(token, secret="s" * 32) == TokenClaims("u", "operator", 0)
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
    throttle = LoginThrottle(per_pair=3, window_seconds=60)
    for moment in (0.0, 1.0, 2.0):
        assert not throttle.retry_after("u", "10.0.0.1", now=moment)
        throttle.failed("u", "10.0.0.1", now=moment)
    assert throttle.retry_after("u", "10.0.0.1", now=2.5)
    assert not throttle.retry_after("other", "10.0.0.1", now=2.5)
    assert not throttle.retry_after("u", "10.0.0.1", now=100.0)


def test_a_new_user_needs_a_known_role_and_eight_characters_of_password() -> None:
    check_new_user(username="u", role="tenant", password="12345678")
    with pytest.raises(Invalid, match="role must be one of admin, operator, tenant"):
        check_new_user(username="u", role="root", password="12345678")
    with pytest.raises(Invalid, match="at least 8 characters"):
        check_new_user(username="u", role="admin", password="1234567")


def test_an_attacker_slows_only_itself_and_never_locks_the_user_out_of_a_known_place() -> None:
    throttle = LoginThrottle()
    throttle.succeeded("admin", "office", now=0.0)
    for second in range(1, 1001):
        throttle.failed("admin", "attacker", now=float(second))
    assert throttle.retry_after("admin", "attacker", now=1001.0) == throttle.max_delay_seconds - 1
    assert throttle.retry_after("admin", "office", now=1001.0) == 0
    # From a place it never signed in from, the user waits at most the per-user cap.
    assert 0 < throttle.retry_after("admin", "hotel", now=1001.0) <= throttle.max_user_delay
    # Back-off: each failure over the allowance doubles the wait.
    fresh = LoginThrottle(per_pair=2)
    waits = []
    for second in range(6):
        fresh.failed("u", "a", now=float(second * 1000))
        waits.append(fresh.retry_after("u", "a", now=float(second * 1000)))
    assert waits == [0, 1, 2, 4, 8, 16]


def test_the_throttle_forgets_the_oldest_keys_beyond_its_bound() -> None:
    throttle = LoginThrottle(max_keys=10)
    for n in range(100):
        throttle.failed(f"user{n}", f"10.0.0.{n}", now=1.0)
    assert throttle.pairs_remembered() == 10  # the bound is the point of the test


def test_common_passwords_and_the_user_name_are_refused() -> None:
    common = {"password123"}
    with pytest.raises(Invalid, match="too common"):
        check_password(username="u", password="PassWord123", common=common)
    with pytest.raises(Invalid, match="too common"):
        check_password(username="meter-reader", password="Meter-Reader", common=common)
    check_password(username="u", password="a quiet orange lamp", common=common)
