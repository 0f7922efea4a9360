"""The limits' settings: read like every other setting, refused naming the flag."""

from __future__ import annotations

import argparse

import pytest

import sagashop.config as config
from sagashop.http.openapi import Tag, documented, operation_of
from tests.unit.test_openapi import handler


def load(*argv: str, environ: dict[str, str] | None = None) -> config.Settings:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.load(parser.parse_args(list(argv)), environ or {})


def test_the_defaults_limit_a_script_and_not_a_player() -> None:
    """Auth's rule: off on a developer's loopback without auth (the bench, the monitor page
    and the original project's clients come from one address), 50/second anywhere else."""
    assert config.rate_limit_for(load()) == "off"
    assert config.rate_limit_for(load("--host", "0.0.0.0")) == "50/second"
    assert config.rate_limit_for(load("--auth", "on")) == "50/second"
    assert config.rate_limit_for(load("--rate-limit", "5/second")) == "5/second"
    assert config.rate_limit_for(load("--host", "0.0.0.0", "--rate-limit", "off")) == "off"
    settings = load()
    assert settings.rate_limit_store == "memory"
    assert settings.body_timeout == 10.0
    assert settings.head_timeout == 20.0


def test_a_limit_comes_from_the_flag_or_the_environment_and_off_turns_it_off() -> None:
    assert load("--rate-limit", "50/second;1000/minute").rate_limit == "50/second;1000/minute"
    assert load(environ={"RATE_LIMIT": "OFF"}).rate_limit == "off"
    assert load(environ={"RATE_LIMIT_STORE": "redis"}).rate_limit_store == "redis"


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--rate-limit", "lots"),
        ("--rate-limit-store", "disk"),
        ("--body-timeout", "0"),
        ("--head-timeout", "-1"),
    ],
)
def test_a_bad_limit_setting_is_refused_naming_its_flag(flag: str, value: str) -> None:
    with pytest.raises(ValueError, match=flag):
        load(flag, value)


def test_a_limit_setting_travels_to_a_child_process() -> None:
    flags = config.to_flags(load("--rate-limit", "off", "--body-timeout", "3"))
    assert flags[flags.index("--rate-limit") + 1] == "off"
    assert flags[flags.index("--body-timeout") + 1] == "3.0"


def test_every_operation_documents_a_429_probes_too() -> None:
    """Probes have a limit of their own (per address), so they may answer 429 as well."""
    probe = documented("up", tag=Tag.OPERATIONS, responses={})(handler("probe"))
    other = documented("thing", tag=Tag.ITEMS, responses={})(handler("thing"))
    assert 429 in operation_of(probe).all_responses()  # type: ignore[union-attr]
    assert 429 in operation_of(other).all_responses()  # type: ignore[union-attr]
