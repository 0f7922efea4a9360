"""Signed bus messages: what one process signs another opens; anything else is refused, with a
reason, before any JSON is parsed."""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sagashop import config
from sagashop.actors.payment import PaymentMock, configure
from sagashop.errors import Forbidden
from sagashop.transport.signing import (
    KEY_FILE,
    MAX_REPLY_BYTES,
    MAX_WIRE_BYTES,
    BadSignature,
    BusKeys,
    NoBusKeys,
    Oversized,
    Signer,
    Stale,
    UnknownKey,
    Unsigned,
    keys_for,
)

OLD = "old:the-old-secret-of-the-bus"
NEW = "new:the-new-secret-of-the-bus"
CHANNEL = "shop:event:order.created"


def signer(keys: str = f"{NEW},{OLD}", namespace: str = "shop", now: float = 1e9) -> Signer:
    return Signer(BusKeys.parse(keys), namespace, clock=lambda: now)


def test_what_one_signs_another_opens() -> None:
    wire = signer().sign(CHANNEL, '{"a": 1}')
    assert wire.startswith("v1.new.")
    assert signer().open(CHANNEL, wire) == '{"a": 1}'


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (lambda wire: wire.replace('"a": 1', '"a": -1000000000'), BadSignature),
        (lambda wire: wire.replace(".new.", ".old."), BadSignature),
        (lambda wire: wire.replace(".new.", ".gone."), UnknownKey),
        (lambda wire: wire.split(".", 4)[4], Unsigned),
        (lambda wire: "\x00\xff" * 20, Unsigned),
        (lambda wire: "[" * 100_000, Oversized),
    ],
    ids=["tampered", "wrong key", "unknown key", "unsigned", "random bytes", "depth bomb"],
)
def test_anything_altered_is_refused(change: object, refusal: type[Exception]) -> None:
    wire = signer().sign(CHANNEL, '{"a": 1}')
    with pytest.raises(refusal):
        signer().open(CHANNEL, change(wire))  # type: ignore[operator]


def test_a_message_is_bound_to_its_channel_and_namespace() -> None:
    wire = signer().sign(CHANNEL, "{}")
    with pytest.raises(BadSignature):
        signer().open("shop:event:balance.reserved", wire)
    with pytest.raises(BadSignature):
        signer(namespace="other").open(CHANNEL, wire)


def test_size_is_checked_before_the_signature() -> None:
    wire = signer().sign(CHANNEL, "x" * MAX_WIRE_BYTES)
    with pytest.raises(Oversized):
        signer().open(CHANNEL, wire)


def test_a_reply_may_be_larger_than_an_event_or_a_request() -> None:
    """A reply carries what was asked for: the audit's facts are whole tables. The chaos run's
    audit never came back while replies were held to 64 KiB."""
    table = "x" * (4 * MAX_WIRE_BYTES)
    wire = signer().sign(CHANNEL, table)
    assert signer().open(CHANNEL, wire, max_bytes=MAX_REPLY_BYTES) == table
    with pytest.raises(Oversized):
        signer().open(
            CHANNEL, signer().sign(CHANNEL, "x" * MAX_REPLY_BYTES), max_bytes=MAX_REPLY_BYTES
        )


def test_an_old_message_is_refused_only_where_age_matters() -> None:
    wire = signer(now=1e9).sign(CHANNEL, "{}")
    later = signer(now=1e9 + 61)
    with pytest.raises(Stale):
        later.open(CHANNEL, wire, max_age=60)
    assert later.open(CHANNEL, wire) == "{}"  # a stream entry may wait


def test_keys_rotate_without_downtime() -> None:
    ahead, behind = signer(f"{NEW},{OLD}"), signer(f"{OLD},{NEW}")
    assert behind.open(CHANNEL, ahead.sign(CHANNEL, "1")) == "1"
    assert ahead.open(CHANNEL, behind.sign(CHANNEL, "2")) == "2"
    with pytest.raises(UnknownKey):
        signer(NEW).open(CHANNEL, behind.sign(CHANNEL, "3"))


def test_refusals_are_counted_by_reason() -> None:
    seen: list[str] = []
    counting = Signer(BusKeys.parse(NEW), "shop", seen.append)
    counting.reject(CHANNEL, Unsigned("no signature"), "{}")
    counting.reject(CHANNEL, RecursionError("too deep"), "[[[")
    assert seen == ["unsigned", "invalid"]
    assert counting.rejected == {"unsigned": 1, "invalid": 1}


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "no key"),
        ("nokey", "shorter than 16"),
        ("a.b:long-enough-secret-here", "key id"),
        ("k:short", "shorter than 16"),
        (f"{NEW},{NEW}", "twice"),
    ],
)
def test_bad_keys_are_refused(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        BusKeys.parse(text)


def test_secrets_never_show_in_a_repr() -> None:
    keys = BusKeys.parse(f"{NEW},{OLD}")
    assert "secret" not in repr(keys)
    assert "secret" not in str(keys)
    assert "secret" not in repr(config.Settings(bus_keys=keys))
    assert BusKeys.parse(keys.text()) == keys


def test_a_redis_over_tcp_needs_keys() -> None:
    with pytest.raises(NoBusKeys, match="BUS_KEYS"):
        keys_for("redis://redis.example:6379/0", None)
    given = BusKeys.parse(NEW)
    assert keys_for("redis://redis.example:6379/0", given) is given


def test_the_server_refuses_to_start_on_a_tcp_redis_without_keys(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "BUS_KEYS"}
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"  # never reached: the keys are looked at first
    argv = [sys.executable, "-m", "sagashop", "--port", "0", "--data-dir", str(tmp_path)]
    done = subprocess.run(argv, env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "set BUS_KEYS" in done.stderr.decode()


def test_the_embedded_redis_gets_a_private_key_file(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/redis.sock"
    first, again = keys_for(url, None), keys_for(url, None)
    assert first == again
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [tmp_path / KEY_FILE]


def test_a_rabbitmq_on_this_machine_gets_a_private_key_file_in_the_data_directory(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    url = "amqp://guest:guest@127.0.0.1:5672/"
    first, again = keys_for(url, None, data), keys_for(url, None, data)
    assert first == again
    assert stat.S_IMODE((data / KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    with pytest.raises(NoBusKeys, match="BUS_KEYS"):
        keys_for("amqps://sagashop:secret@rabbit.example:5671/shop", None, data)


def test_keys_come_from_the_environment_and_go_to_children_only_there() -> None:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    settings = config.load(parser.parse_args([]), {"BUS_KEYS": f"{NEW},{OLD}"})
    assert settings.bus_keys == BusKeys.parse(f"{NEW},{OLD}")
    assert not any("secret" in flag for flag in config.to_flags(settings))
    assert "--bus-keys" not in config.to_flags(settings)
    assert config.service_environment(settings)["BUS_KEYS"] == f"{NEW},{OLD}"


def test_test_controls_are_off_unless_switched_on() -> None:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    assert config.load(parser.parse_args([]), {}).test_controls is False
    assert config.load(parser.parse_args(["--test-controls", "on"]), {}).test_controls is True
    with pytest.raises(Forbidden, match="test-controls"):
        asyncio.run(configure(1.0, payments=PaymentMock(0.0)))
    changed = asyncio.run(configure(1.0, payments=PaymentMock(0.0, test_controls=True)))
    assert changed["failureRate"] == 1.0
