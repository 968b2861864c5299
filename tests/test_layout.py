"""The house's layout: a test module imports shared helpers from tests/support/, never another test module; no
function of the service, the stacks or the SDK is longer than a screen; the README stays short; code and tests say
what is, not which issue asked for it."""

import ast
import re
from pathlib import Path

TESTS = Path(__file__).parent
REPO = TESTS.parent
MAX_FUNCTION_LINES = 60
MAX_README_LINES = 250


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


def test_no_function_of_the_service_the_stacks_or_the_sdk_is_longer_than_a_screen():
    too_long = [
        f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for root in ("lambdas", "stacks", "client")
        for path in sorted((REPO / root).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert too_long == [], f"split these (at most {MAX_FUNCTION_LINES} lines):\n" + "\n".join(too_long)


def test_the_readme_stays_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= MAX_README_LINES


def test_code_and_tests_name_no_issue_numbers():
    named = [
        f"{path.relative_to(REPO)}:{number}"
        for root in ("lambdas", "stacks", "client", "tools", "tests", "sparkle_sandbox")
        for path in sorted((REPO / root).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bissue #?\d+", line, re.IGNORECASE)
    ]
    assert named == [], "say what is, not which issue asked for it:\n" + "\n".join(named)
