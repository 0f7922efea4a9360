"""The layout tells the architecture, and these keep it so: no import cycle, `actors/` holds the
six services and nothing else, only the store knows the database drivers (its errors
translate theirs, and its batches run on their connections), the saga runtime knows neither the
monitor nor the front door, and every error class is in the one tree of `sagashop.errors`."""

from __future__ import annotations

import ast
import importlib
from graphlib import TopologicalSorter
from pathlib import Path

import sagashop
from sagashop.actors import SERVICE_NAMES
from sagashop.errors import SagashopError

PACKAGE = Path(sagashop.__file__).parent


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__")
        found[name] = ast.parse(path.read_text())
    return found


def imported(tree: ast.Module, known: dict[str, ast.Module]) -> set[str]:
    """The sagashop modules a module imports (a name imported from a package counts as its
    module when it is one)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return {name for name in names if name in known}


def test_no_module_imports_itself_through_others() -> None:
    known = modules()
    graph = {name: imported(tree, known) - {name} for name, tree in known.items()}
    TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


def test_no_import_hides_behind_type_checking() -> None:
    hiding = [name for name, tree in modules().items() if "TYPE_CHECKING" in ast.dump(tree)]
    assert hiding == []


def test_actors_holds_the_six_services_and_nothing_else() -> None:
    files = {path.stem for path in (PACKAGE / "actors").glob("*.py")} - {"__init__"}
    assert files == set(SERVICE_NAMES)


def test_only_the_store_knows_the_database_drivers() -> None:
    known = modules()
    drivers = {"asyncpg", "tortoise.exceptions", "aiosqlite", "sqlite3"}
    knowing = sorted(
        name
        for name, tree in known.items()
        if any(
            (isinstance(node, ast.ImportFrom) and node.module in drivers)
            or (isinstance(node, ast.Import) and {a.name for a in node.names} & drivers)
            for node in ast.walk(tree)
        )
    )
    assert knowing == ["sagashop.store.batch", "sagashop.store.errors"]


def test_the_saga_runtime_knows_neither_the_monitor_nor_the_front_door() -> None:
    """The step log tells observers (`saga/observers.py`); which ones, the wiring decides."""
    known = modules()
    runtime = {name: tree for name, tree in known.items() if name.startswith("sagashop.saga")}
    reaching = {
        f"{name} -> {other}"
        for name, tree in runtime.items()
        for other in imported(tree, known)
        if other.startswith(("sagashop.monitor", "sagashop.http"))
    }
    assert reaching == set()


def test_every_error_sagashop_raises_on_purpose_is_in_one_tree() -> None:
    """Retrying and answering decide by class (`SagashopError`, `CallerError`): an error class
    outside the tree would be neither retried as it should nor answered as it should."""
    outside = []
    for name in modules():
        if name.endswith("__main__"):
            continue  # importing it runs the command line
        module = importlib.import_module(name)
        for value in vars(module).values():
            error = isinstance(value, type) and issubclass(value, BaseException)
            if error and value.__module__ == name and not issubclass(value, SagashopError):
                outside.append(f"{name}.{value.__qualname__}")
    assert outside == []
