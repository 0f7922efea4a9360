"""When auth is on, what it needs to start, and the tokens `run.py token` prints."""

from __future__ import annotations

import argparse

import pytest

from sagashop import cli, config, tokens


@pytest.fixture(autouse=True)
def _logging_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """`cli.main` configures logging for a process; here it would reconfigure the test run's."""
    monkeypatch.setattr(cli, "configure_logging", lambda _settings: None)


KEYS = "k2:the-new-key-that-signs-every-token-now,k1:the-old-key-still-listed-for-now"


def load(argv: list[str], env: dict[str, str] | None = None) -> config.Settings:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.load(parser.parse_args(argv), env or {})


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_auth_is_off_by_default_on_a_loopback_address(host: str) -> None:
    assert config.auth_enabled(load(["--host", host])) is False


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "shop.example"])
def test_auth_is_on_by_default_on_any_other_address(host: str) -> None:
    assert config.auth_enabled(load(["--host", host], {"AUTH_KEYS": KEYS})) is True


@pytest.mark.parametrize(
    ("argv", "env"),
    [(["--host", "0.0.0.0"], {}), (["--auth", "on"], {}), ([], {"AUTH": "on"})],
)
def test_auth_on_without_keys_refuses_to_start(argv: list[str], env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="AUTH_KEYS is empty"):
        config.check_auth(load(argv, env))


def test_the_server_exits_saying_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUTH_KEYS", raising=False)
    monkeypatch.delenv("AUTH", raising=False)
    with pytest.raises(SystemExit) as exited:
        cli.main(["--host", "0.0.0.0"])
    assert exited.value.code == 2
    assert "AUTH_KEYS is empty" in capsys.readouterr().err


def test_auth_off_on_a_reachable_address_starts_with_a_warning() -> None:
    settings = load(["--host", "0.0.0.0", "--auth", "off"])
    assert config.auth_enabled(settings) is False
    assert "AUTH IS OFF" in (config.auth_warning(settings) or "")
    assert config.auth_warning(load([])) is None


@pytest.mark.parametrize(
    ("text", "complaint"),
    [("k1", "KID:SECRET"), ("k1:short", "shorter than 32"), (f"{KEYS},k1:{'y' * 40}", "twice")],
)
def test_bad_keys_are_named_but_never_shown(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as refused:
        load([], {"AUTH_KEYS": text})
    assert "the-new-key" not in str(refused.value)


def test_keys_never_show_in_a_repr_and_travel_in_the_environment() -> None:
    settings = load([], {"AUTH_KEYS": KEYS})
    assert [key.kid for key in settings.auth_keys] == ["k2", "k1"]
    assert "the-new-key" not in repr(settings)
    assert "the-new-key" not in " ".join(config.to_flags(settings))
    assert config.service_environment(settings)["AUTH_KEYS"] == KEYS


def test_run_py_token_prints_a_token_the_keys_verify(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTH_KEYS", KEYS)
    user = "5b0f6a4e-9f0e-4c53-a0cf-8d3b1fb9c9a1"
    keys = tokens.parse_keys(KEYS)

    assert cli.main(["token", "--user", user]) == 0
    as_player = capsys.readouterr().out.strip()
    assert cli.main(["token", "--operator"]) == 0
    as_operator = capsys.readouterr().out.strip()

    ttl = config.Settings().token_ttl  # what run.py token issues by default, and the server takes
    assert tokens.verify(keys, as_player, ttl) == tokens.player(user)
    assert tokens.verify(keys, as_operator, ttl) == tokens.OPERATOR


@pytest.mark.parametrize(
    ("argv", "env", "complaint"),
    [
        (["token", "--operator"], {}, "no AUTH_KEYS"),
        (["token", "--user", "alice"], {"AUTH_KEYS": KEYS}, "not a user id"),
    ],
)
def test_run_py_token_says_why_it_cannot(
    argv: list[str],
    env: dict[str, str],
    complaint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("AUTH_KEYS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(argv) == 2
    assert complaint in capsys.readouterr().err


def test_a_token_lives_its_ttl_and_no_longer() -> None:
    keys = tokens.parse_keys(KEYS)
    issued = tokens.issue(keys, tokens.OPERATOR, 60, now=1_000_000)
    with pytest.raises(tokens.InvalidToken, match="expired"):
        tokens.verify(keys, issued, 60)
