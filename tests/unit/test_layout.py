"""The layout tells the architecture, and these keep it so: no import cycle, `actors/` holds the
six services and nothing else, only the store knows the database drivers (its errors
translate theirs, and its batches run on their connections), the saga runtime knows neither the
monitor nor the front door, every error class is in the one tree of `sagashop.errors`, no
service or step is named by a bare string outside its declaration, and no task that may reach
the store starts without saying in which context."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from graphlib import TopologicalSorter
from pathlib import Path

import sagashop
from sagashop.actors import SERVICE_NAMES, SERVICES
from sagashop.errors import SagashopError
from sagashop.names import ServiceName

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
    assert knowing == ["sagashop.store.backup", "sagashop.store.batch", "sagashop.store.errors"]


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


COLUMNS_GIVEN_TO = {"table"}
"""Functions whose string arguments are column names (the store's format, not a step's name:
the inventory's bag has a column `free` and a step `free`)."""


def written_out(tree: ast.Module, names: set[str]) -> Iterator[tuple[int, str]]:
    """Where a module writes one of `names` as a string, leaving out what may: docstrings,
    a `StrEnum`'s values and the `SERVICE = Service(...)` declaration (where names are declared),
    a dict display's keys and a subscript (JSON fields and row columns: the wire format), and
    the columns a function of `COLUMNS_GIVEN_TO` takes."""
    allowed: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and _is_docstring(body[0]):
            allowed.add(id(body[0].value))
        if isinstance(node, ast.ClassDef) and any(_named(b) == "StrEnum" for b in node.bases):
            allowed |= {id(inner) for inner in ast.walk(node)}
        if isinstance(node, ast.Assign) and [_named(t) for t in node.targets] == ["SERVICE"]:
            allowed |= {id(inner) for inner in ast.walk(node.value)}
        if isinstance(node, ast.Dict):
            allowed |= {id(key) for key in node.keys if key is not None}
        if isinstance(node, ast.Subscript):
            allowed.add(id(node.slice))
        if isinstance(node, ast.Call) and _named(node.func) in COLUMNS_GIVEN_TO:
            allowed |= {id(arg) for arg in node.args}
    for node in ast.walk(tree):
        is_name = isinstance(node, ast.Constant) and isinstance(node.value, str)
        if is_name and node.value in names and id(node) not in allowed:
            yield node.lineno, node.value


def _is_docstring(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)


def _named(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def test_no_service_or_step_is_named_by_a_bare_string_outside_its_declaration() -> None:
    """A renamed service or step must not leave a string behind that now names nothing: the
    services are `ServiceName` members, the steps are named where they are declared (the order
    service's own in `StepName`). Migrations are history, written once, and left out."""
    names = set(SERVICE_NAMES) | {step.name for service in SERVICES for step in service.steps}
    found = [
        f"{name}:{line}: {text!r}"
        for name, tree in modules().items()
        if ".migrations." not in name
        for line, text in written_out(tree, names)
    ]
    assert found == []


def test_the_literal_finder_finds_a_service_or_step_written_out() -> None:
    tree = ast.parse("""ask("order", GET_ORDER)\nrepublish(order_id, "refund")\n{"user": 1}\n""")
    assert list(written_out(tree, {"order", "refund", "user"})) == [(1, "order"), (2, "refund")]


def test_the_service_names_are_the_declared_services_in_the_order_a_purchase_reaches_them() -> None:
    assert tuple(ServiceName) == SERVICE_NAMES


def test_a_task_that_may_reach_the_store_is_started_in_a_context_said_out_loud() -> None:
    """Tortoise finds the store through a ContextVar: a task started without its context fails
    at its first query (`OutsideTheStore`). So in the packages whose tasks may query, every
    `create_task` names its context (`LoopBridge.spawn` is the usual way)."""
    reaching = ("sagashop.actors", "sagashop.saga", "sagashop.store")
    bare = [
        f"{name}:{node.lineno}"
        for name, tree in modules().items()
        if name.startswith(reaching)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and _named(node.func) in {"create_task", "ensure_future"}
        and "context" not in {keyword.arg for keyword in node.keywords}
    ]
    assert bare == []
