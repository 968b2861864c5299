"""The tests' own layout: a test module imports shared helpers from tests/support/, never another test module."""

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def _is_test_module(dotted: str) -> bool:
    return dotted.rsplit(".", 1)[-1].startswith("test_")


def _imported_modules(tree: ast.Module) -> list[str]:
    """Every module an import statement names, including ``from package import module`` forms."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def test_no_test_module_imports_another_test_module():
    offenders = [
        f"{path.relative_to(TESTS)} imports {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for name in _imported_modules(ast.parse(path.read_text(), str(path)))
        if _is_test_module(name)
    ]
    assert offenders == [], "move the shared helpers into tests/support/:\n" + "\n".join(offenders)
