"""compose.yaml, alone or with an override file, as Docker Compose reads it: each file's `${…}`
filled from an environment (the secrets `.env.example` names), the files merged, so that tests
can check their settings and run their commands."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
RABBITMQ_OVERRIDE = ROOT / "compose.rabbitmq.yaml"
VARIANTS = {"streams": (COMPOSE,), "rabbitmq": (COMPOSE, RABBITMQ_OVERRIDE)}
"""What `docker compose` runs: `up` alone, and `-f compose.yaml -f compose.rabbitmq.yaml up`."""
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[?-])([^}]*))?\}|\$\$")


class MissingVariable(KeyError):
    """A `${NAME:?why}` with NAME unset, which stops `docker compose up`."""


def example_names() -> list[str]:
    """The variables `.env.example` lists (the values there are placeholders)."""
    lines = [line.strip() for line in ENV_EXAMPLE.read_text().splitlines()]
    return [line.split("=", 1)[0] for line in lines if line and not line.startswith("#")]


def made_up_secrets() -> dict[str, str]:
    """A value of the right form for each variable of `.env.example`, as an operator makes them:
    `id:secret` for key lists, a long random secret otherwise."""
    made = {}
    for name in example_names():
        secret = secrets.token_urlsafe(32)
        made[name] = f"k1:{secret}" if name.endswith("_KEYS") else secret
    return made


def interpolated(value: Any, environ: dict[str, str]) -> Any:
    """`value` with every `${NAME}`, `${NAME:?why}`, `${NAME:-default}` and `$$` filled in."""
    if isinstance(value, dict):
        return {key: interpolated(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolated(item, environ) for item in value]
    if not isinstance(value, str):
        return value

    def fill(match: re.Match[str]) -> str:
        name, kind, word = match.groups()
        if name is None:
            return "$"
        if environ.get(name):
            return environ[name]
        if kind == ":?":
            raise MissingVariable(f"{name}: {word}")
        return word if kind == ":-" else ""

    return VARIABLE.sub(fill, value)


def merged(base: Any, override: Any) -> Any:
    """`override` over `base` as compose merges files, for what an override here holds:
    mappings merged key by key (services, `environment`, `depends_on`), anything else replaced."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    both = {**base, **override}
    return {
        key: merged(base[key], override[key]) if key in base and key in override else value
        for key, value in both.items()
    }


def compose(
    environ: dict[str, str] | None = None, files: tuple[Path, ...] = (COMPOSE,)
) -> dict[str, Any]:
    """The files as compose runs them, each filled with `environ` (by default, made-up
    secrets), then merged in order."""
    environ = made_up_secrets() if environ is None else environ
    result: dict[str, Any] = {}
    for file in files:
        result = merged(result, interpolated(yaml.safe_load(file.read_text()), environ))
    return result


def required(files: tuple[Path, ...]) -> set[str]:
    """The variables whose absence stops `docker compose up` with these files (`${NAME:?…}`)."""
    return {name for file in files for name in re.findall(r"\$\{(\w+):\?", file.read_text())}


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split(maxsplit=1) for line in lines if line and not line.startswith("#")]
    return [(word.upper(), rest) for word, rest in pairs]


def instruction(name: str) -> list[str]:
    return [rest for word, rest in instructions() if word == name]


def image_environment() -> dict[str, str]:
    """What the image's `ENV` sets, under every container's own environment."""
    pairs = [pair for rest in instruction("ENV") for pair in rest.split()]
    return dict(pair.split("=", 1) for pair in pairs)
