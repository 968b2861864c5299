"""Test lanes: every test runs in one of three, chosen by what it needs.

- ``unit``: fakes, the domain, the edge and the SDK, in this process alone (`make test-unit`).
- ``integration``: moto (in process or as a server), the Sparkle sandbox, other processes, sockets.
- ``infra``: the synthesized app, Terraform and checkov.

A test's lane is the heaviest of: a lane mark set on it by hand, the lane its fixtures need
(``LANE_FIXTURES``), the lane its module's imports need (``module_lane``) and the lane of what the test
function (and the module's functions it calls) imports when it runs. Nothing is imported to decide: the
sources are read. In the unit lane, a test that starts a process, opens a socket or starts moto fails,
naming the lane it belongs in; mark such a test by hand (``pytest.mark.integration``)."""

import ast
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest
from moto.core.models import MockAWS

REPO = Path(__file__).resolve().parent.parent
LANES = ("unit", "integration", "infra")  # lightest first

# A fixture, with every fixture that uses it, puts a test in its lane at least.
LANE_FIXTURES = {
    "synthesized": "infra",
    "moto_world": "integration",
    "sandbox_url": "integration",
    "atomic_requests": "integration",
}
# The marks that name a slow end-to-end test; both apply the app with Terraform.
LANE_OF_MARK = {"deploy": "infra", "local": "infra"}
# A module importing one of these (directly, or through ``stacks`` or ``tests``) loads jsii and the provider bindings.
INFRA_IMPORTS = ("cdktf", "cdktf_cdktf_provider_aws", "constructs", "jsii", "tools.terraform")
# A module importing one of these (directly, or through a helper in ``tests``) talks to a process or a socket.
INTEGRATION_IMPORTS = (
    "moto",
    "subprocess",
    "socket",
    "socketserver",
    "http.client",
    "http.server",
    "stacks.lambda_bundle",  # builds the functions' bundle with pip
    "tools.emulator",
    "tools.function_resources",
    "tools.local_process",
)
# Plugins: the lane of what they provide follows from the fixtures a test uses.
FIXTURE_MODULES = {"tests.conftest", "tests.service_fixtures", "tests.lanes"}


def _names(imported: str, prefixes: tuple[str, ...]) -> bool:
    return any(imported == prefix or imported.startswith(prefix + ".") for prefix in prefixes)


def _source(module: str) -> Path | None:
    """The file of a module of this repository, or None for one installed or absent."""
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_by(nodes) -> set[str]:
    imported = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    return imported


def _outside_functions(tree: ast.AST):
    """The nodes that run when the module is imported: all but the bodies of functions."""
    for child in ast.iter_child_nodes(tree):
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield child
            yield from _outside_functions(child)


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


@cache
def _imports(path: Path) -> frozenset[str]:
    """The modules that importing ``path`` imports."""
    return frozenset(_imported_by(_outside_functions(_tree(path))))


@cache
def _functions(path: Path) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    functions = {}
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            functions.setdefault(node.name, node)
    return functions


@cache
def _imports_when_called(path: Path, name: str) -> frozenset[str]:
    """The modules that the function ``name`` of ``path`` imports when it runs, and the module's functions it calls."""
    functions, imported, seen, pending = _functions(path), set(), set(), [name]
    while pending:
        function = functions.get(pending.pop())
        if function is None or function.name in seen:
            continue
        seen.add(function.name)
        imported |= _imported_by(ast.walk(function))
        pending += [node.id for node in ast.walk(function) if isinstance(node, ast.Name) and node.id in functions]
    return frozenset(imported)


@cache
def _loads_jsii(module: str) -> bool:
    if _names(module, INFRA_IMPORTS):
        return True
    followed = module.partition(".")[0] in {"stacks", "tests"} and module not in FIXTURE_MODULES
    path = _source(module) if followed else None
    return path is not None and any(_loads_jsii(name) for name in _imports(path) - {module})


@cache
def _talks_out(module: str) -> bool:
    if _names(module, INTEGRATION_IMPORTS):
        return True
    path = _source(module) if module.startswith("tests.") and module not in FIXTURE_MODULES else None
    return path is not None and any(_talks_out(name) for name in _imports(path) - {module})


def lane_of_imports(imported: frozenset[str]) -> str:
    if any(_loads_jsii(name) for name in imported):
        return "infra"
    if any(_talks_out(name) for name in imported):
        return "integration"
    return "unit"


@cache
def module_lane(path: Path) -> str:
    """The lane that importing a test module needs."""
    return lane_of_imports(_imports(path))


def function_lane(path: Path, name: str) -> str:
    """The lane that running the function ``name`` of a test module needs, by what it imports when it runs."""
    return lane_of_imports(_imports_when_called(path, name))


def item_lane(item: pytest.Item) -> str:
    lanes = {mark.name for mark in item.iter_markers() if mark.name in LANES}
    lanes |= {LANE_OF_MARK[mark.name] for mark in item.iter_markers() if mark.name in LANE_OF_MARK}
    lanes |= {lane for fixture, lane in LANE_FIXTURES.items() if fixture in getattr(item, "fixturenames", ())}
    path = Path(item.path)
    lanes.add(module_lane(path))
    lanes.add(function_lane(path, getattr(item, "originalname", item.name)))
    return max(lanes, key=LANES.index)


@pytest.hookimpl(tryfirst=True)  # before conftest's order for mutmut, which then has the last word
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks each test with its lane, and puts the slowest modules first, each kept whole: the end-to-end tests,
    then infra, integration and unit, so that parallel workers (`make test`) end together."""
    rank_of_module: dict[Path, int] = {}
    for item in items:
        lane = item_lane(item)
        item.add_marker(lane)
        rank = 0 if any(item.get_closest_marker(mark) for mark in LANE_OF_MARK) else len(LANES) - LANES.index(lane)
        rank_of_module[item.path] = min(rank, rank_of_module.get(item.path, rank))
    items.sort(key=lambda item: rank_of_module[item.path])


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m unit`` alone, modules of the other lanes are not even imported (the provider bindings cost ~20 s)."""
    if config.getoption("markexpr") != "unit" or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    return module_lane(collection_path) != "unit" or None


class LaneViolation(Exception):
    pass


@contextmanager
def in_process_only(monkeypatch) -> Iterator[list[str]]:
    """Starting a process, opening a socket or starting moto raises ``LaneViolation``; yields what was tried."""
    violations: list[str] = []

    def forbid(what: str):
        def refuse(*args, **kwargs):
            violations.append(what)
            raise LaneViolation(f"a unit test {what}: mark it pytest.mark.integration")

        return refuse

    with monkeypatch.context() as patched:
        patched.setattr(subprocess.Popen, "_execute_child", forbid("started a process"))
        for function in ("system", "posix_spawn", "posix_spawnp", "fork"):  # what subprocess and multiprocessing skip
            patched.setattr(os, function, forbid("started a process"))
        for method in ("connect", "connect_ex", "bind"):
            patched.setattr(socket.socket, method, forbid("opened a socket"))
        patched.setattr(MockAWS, "start", forbid("started moto"))
        yield violations


@pytest.fixture(autouse=True)
def unit_lane_stays_in_process(request, monkeypatch):
    """A unit test that starts a process, opens a socket or starts moto fails: it belongs in another lane."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    with in_process_only(monkeypatch) as violations:
        yield
    if violations:
        pytest.fail(f"a unit test {violations[0]}: it belongs in another lane (mark it, see tests/lanes.py)")
