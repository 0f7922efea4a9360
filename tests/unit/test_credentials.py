"""Credentials in settings: a child process gets them in its environment, never on its command
line (which any user of the machine can read), and a URL is never shown with its password."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection

from sagashop import config
from sagashop.chaos.processes import Child
from sagashop.credentials import RedisRefused, check_redis, redact
from sagashop.logs import ConsoleFormatter, JsonFormatter
from tests.unit.helpers import logging_to_text

SECRET = "hunter2" * 6
REDIS_URL = f"rediss://shop:{SECRET}@redis.internal:6380/0"
DATABASE_URL = f"postgres://shop:{SECRET}@db.internal/shop"


def sample(env: str) -> str:
    """A value for the setting read from `env` that holds `SECRET`."""
    return f"redis://user:{SECRET}@h:6379/0" if env.endswith("_URL") else f"k1:{SECRET}"


SECRET_SETTINGS = [
    source.env for source in config._SOURCES.values() if source.env.endswith(("_URL", "_KEYS"))
]


def loaded(argv: list[str], env: dict[str, str]) -> config.Settings:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.load(parser.parse_args(argv), env)


def child_of(settings: config.Settings) -> Child:
    return Child("child", "all", settings, Path("child.log"), port=4000)


@pytest.mark.parametrize("env", SECRET_SETTINGS)
def test_no_secret_setting_reaches_a_child_s_command_line(env: str) -> None:
    settings = loaded([], {env: sample(env)})

    assert not any(SECRET in arg for arg in child_of(settings).argv())
    assert SECRET in config.child_environment(settings, {})[env]


def test_a_child_gets_the_same_credentials_back_from_its_environment() -> None:
    settings = loaded(["--redis-url", REDIS_URL, "--database-url", DATABASE_URL], {})
    child = child_of(settings)

    again = loaded(child.argv()[3:], config.child_environment(settings, {}))

    assert (again.redis_url, again.database_url, again.port) == (REDIS_URL, DATABASE_URL, 4000)


def test_a_child_does_not_inherit_this_process_s_own_secrets() -> None:
    settings = loaded(["--redis-url", REDIS_URL], {})
    inherited = {"REDIS_URL": "redis://old", "DATABASE_URL": "postgres://old", "HOME": "/root"}

    env = config.child_environment(settings, inherited)

    assert (env["REDIS_URL"], env.get("DATABASE_URL"), env["HOME"]) == (REDIS_URL, None, "/root")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (REDIS_URL, "rediss://shop:***@redis.internal:6380/0"),
        (f"redis://:{SECRET}@h/0", "redis://:***@h/0"),
        (f"redis://u:{SECRET}@x@h:1/0 then", "redis://u:***@h:1/0 then"),
        (f"at {DATABASE_URL}, and {REDIS_URL}", "at postgres://shop:***@db.internal/shop, and "
         "rediss://shop:***@redis.internal:6380/0"),
        ("redis://h:6379/0 mail@example.org", "redis://h:6379/0 mail@example.org"),
        ("unix:///srv/data/redis.sock", "unix:///srv/data/redis.sock"),
    ],
)  # fmt: skip
def test_a_url_is_shown_without_its_password(text: str, shown: str) -> None:
    assert redact(text) == shown


@pytest.mark.parametrize("formatter", [ConsoleFormatter(), JsonFormatter()])
def test_a_logged_url_shows_its_user_but_not_its_password(formatter: logging.Formatter) -> None:
    logger = logging.getLogger("sagashop.test-credentials")
    with logging_to_text(formatter, logger.name) as out:
        logger.warning("cannot reach %s", REDIS_URL, extra={"database": DATABASE_URL})
        try:
            raise ConnectionError(f"lost {REDIS_URL}")
        except ConnectionError:
            logger.exception("gave up")

    assert "rediss://shop:***@redis.internal:6380/0" in out.getvalue()
    assert SECRET not in out.getvalue()


def test_a_rediss_url_keeps_its_user_password_and_tls_on_the_way_to_the_client() -> None:
    settings = loaded([], config.child_environment(loaded(["--redis-url", REDIS_URL], {}), {}))

    pool = Redis.from_url(settings.redis_url or "", decode_responses=True).connection_pool

    assert pool.connection_class is SSLConnection
    assert (pool.connection_kwargs["username"], pool.connection_kwargs["password"]) == (
        "shop",
        SECRET,
    )


async def test_an_unreachable_redis_is_one_line_that_names_it_without_its_password() -> None:
    redis = Redis.from_url(f"redis://shop:{SECRET}@127.0.0.1:1/0")  # nothing listens on port 1
    try:
        with pytest.raises(RedisRefused) as refused:
            await check_redis(redis, f"redis://shop:{SECRET}@127.0.0.1:1/0")
    finally:
        await redis.aclose()

    assert str(refused.value).startswith(
        "Redis at redis://shop:***@127.0.0.1:1/0 cannot be reached"
    )
    assert SECRET not in str(refused.value)
