"""compose.yaml as Docker Compose reads it: its `${…}` filled from an environment (the secrets
`.env.example` names), so that tests can check its settings and run its commands."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
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


def compose(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The file as compose runs it, with `environ` (by default, made-up secrets)."""
    raw = yaml.safe_load(COMPOSE.read_text())
    filled: dict[str, Any] = interpolated(raw, made_up_secrets() if environ is None else environ)
    return filled


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
