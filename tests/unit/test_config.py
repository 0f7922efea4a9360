"""Settings: flags win over the environment, which wins over the defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sagashop import config


def load(argv: list[str], env: dict[str, str] | None = None) -> config.Settings:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.load(parser.parse_args(argv), env or {})


def test_defaults_run_everything_locally_on_sqlite() -> None:
    settings = load([])
    assert (settings.port, settings.services, settings.redis_url) == (
        3000,
        config.SERVICE_NAMES,
        None,
    )
    assert settings.payment_failure_rate == 0.1
    assert settings.database_url_for("user").startswith("sqlite://data/user.sqlite3?")


def test_flags_win_over_the_environment() -> None:
    env = {"PORT": "4000", "PAYMENT_FAILURE_RATE": "0.5", "SERVICES": "order"}
    settings = load(["--port", "5000"], env)
    assert (settings.port, settings.payment_failure_rate, settings.services) == (
        5000,
        0.5,
        ("order",),
    )


def test_a_service_can_have_its_own_database() -> None:
    env = {"DATABASE_URL": "postgres://db/shop", "DATABASE_URL_PAYMENT": "postgres://pay/ments"}
    settings = load(["--data-dir", "/srv"], env)
    assert settings.database_url_for("payment") == "postgres://pay/ments"
    assert settings.database_url_for("user") == "postgres://db/shop"
    assert settings.data_dir == Path("/srv")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("all", config.SERVICE_NAMES), ("none", ()), ("item, order", ("order", "item"))],
)
def test_services_are_named_in_a_list(value: str, expected: tuple[str, ...]) -> None:
    assert config.parse_services(value) == expected


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--services", "order,shipping"], "shipping"),
        (["--port", "70000"], "--port"),
        (["--payment-failure-rate", "1.5"], "--payment-failure-rate"),
        (["--payment-seed", "x"], "--payment-seed"),
    ],
)
def test_bad_settings_are_named(argv: list[str], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        load(argv)


@pytest.mark.parametrize(
    ("given", "seconds"),
    [("30d", 30 * 86_400.0), ("12h", 43_200.0), ("90m", 5_400.0), ("7200", 7_200.0)],
)
def test_retention_is_read_in_days_hours_minutes_or_seconds(given: str, seconds: float) -> None:
    assert load(["--retain", given]).retain == seconds


@pytest.mark.parametrize("given", ["59m", "10", "soon"])
def test_retention_shorter_than_an_hour_or_unreadable_is_refused(given: str) -> None:
    with pytest.raises(ValueError, match="--retain"):
        load(["--retain", given])


def test_retention_is_thirty_days_unless_set() -> None:
    assert load([]).retain == 30 * 86_400.0


def test_rabbitmq_is_refused_without_its_url_which_no_default_guesses() -> None:
    with pytest.raises(ValueError, match="AMQP_URL"):
        config.check_bus(load(["--bus", "rabbitmq"]))
    config.check_bus(load(["--bus", "rabbitmq"], {"AMQP_URL": "amqp://shop:pw@broker:5672/"}))
    config.check_bus(load(["--bus", "streams"]))
