"""Production refuses the plain sealer and opener: no key file, no start."""

from __future__ import annotations

from pathlib import Path

import pytest
from collector.bootstrap import command_opener
from collector.domain import PlainCommandOpener, SealedCommandOpener
from collector.settings import CollectorSettings
from control.bootstrap import command_sealer
from control.domain import EnvelopeSealer, PlainCommandSealer
from control.settings import ControlSettings
from prepaid_common.sealing import MissingMasterKey
from pydantic import SecretStr

STRONG = SecretStr("a-production-secret-of-enough-length-0123456789")


def test_production_without_a_key_file_refuses_to_start() -> None:
    with pytest.raises(MissingMasterKey, match="PREPAID_COMMAND_MASTER_KEY_FILE"):
        command_sealer(ControlSettings(environment="production", token_secret=STRONG))
    with pytest.raises(MissingMasterKey, match="PREPAID_COMMAND_MASTER_KEY_FILE"):
        command_opener(CollectorSettings(environment="production", token_secret=STRONG))


def test_a_key_file_gives_the_sealed_pair(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"1 {bytes(range(16)).hex()}\n")
    for environment in ("production", "development"):
        control = ControlSettings(
            environment=environment, token_secret=STRONG, command_master_key_file=keys
        )
        collector = CollectorSettings(
            environment=environment, token_secret=STRONG, command_master_key_file=keys
        )
        assert isinstance(command_sealer(control), EnvelopeSealer)
        assert isinstance(command_opener(collector), SealedCommandOpener)


def test_development_keeps_the_plain_pair() -> None:
    assert isinstance(
        command_sealer(ControlSettings(environment="development")), PlainCommandSealer
    )
    opener = command_opener(CollectorSettings(environment="development"))
    assert isinstance(opener, PlainCommandOpener)


def test_a_bad_key_file_never_shows_the_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    secret = "00112233445566778899aabbccddee"  # one byte short
    keys.write_text(f"1 {secret}\n")
    with pytest.raises(ValueError, match="master key") as error:
        command_sealer(ControlSettings(environment="development", command_master_key_file=keys))
    assert secret not in str(error.value)


def test_the_keys_may_come_from_a_secret_environment_variable() -> None:
    keys = SecretStr(f"1 {bytes(range(16)).hex()};2 {bytes(range(1, 17)).hex()}")
    control = ControlSettings(
        environment="production", token_secret=STRONG, command_master_keys=keys
    )
    sealer = command_sealer(control)
    assert isinstance(sealer, EnvelopeSealer)
    assert sealer.ring.current == 2
    assert bytes(range(16)).hex() not in repr(control)
    collector = CollectorSettings(
        environment="production", token_secret=STRONG, command_master_keys=keys
    )
    assert isinstance(command_opener(collector), SealedCommandOpener)
