"""A synth loads the stacks and what they import from ``lambdas``: shared constants and types (``lambdas.routes``,
``lambdas.storage_schema``, ``lambdas.gateway_settings``, ...), never a Lambda adapter (``lambdas.adapters``) nor
``requests``, which only the functions need. Read off the source with ``ast``, without importing anything."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SYNTH_ENTRIES = ("main", *sorted(f"stacks.{path.stem}" for path in (REPO / "stacks").glob("*.py")))
FORBIDDEN = ("lambdas.adapters", "requests")


def _names(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def _source(module: str, root: Path) -> Path | None:
    """The file of a module of this repository, or None for one installed."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports when it runs (the packages on the way included), ``TYPE_CHECKING`` blocks
    aside; ``from a import b`` names both ``a`` and ``a.b``, which may be a module."""
    tree = ast.parse(path.read_text())
    type_checking_only = {
        id(statement)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for inner in node.body
        for statement in ast.walk(inner)
    }
    modules: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_checking_only:
            continue
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {".".join(module.split(".")[:end]) for module in modules for end in range(1, module.count(".") + 2)}


def loaded_by(entries: tuple[str, ...], root: Path = REPO) -> dict[str, str]:
    """Every module loading ``entries`` loads (this repository's followed, others only named), each with the module
    that first imports it."""
    importer = {entry: "" for entry in entries}
    pending = list(entries)
    while pending:
        module = pending.pop()
        path = _source(module, root)
        if path is None:
            continue
        for imported in sorted(_imported(path) - importer.keys()):
            importer[imported] = module
            pending.append(imported)
    return importer


def _chain(module: str, importer: dict[str, str]) -> str:
    links = [module]
    while importer.get(links[-1]):
        links.append(importer[links[-1]])
    return " <- ".join(links)


def test_a_synth_loads_no_lambda_adapter_and_not_requests():
    importer = loaded_by(SYNTH_ENTRIES)
    assert any(_names(module, ("lambdas",)) for module in importer), "the stacks import nothing from lambdas?"
    loaded = [_chain(module, importer) for module in sorted(importer) if _names(module, FORBIDDEN)]
    assert loaded == [], "a synth would load:\n" + "\n".join(loaded)
