"""docs/pci.md, the PCI DSS control map, holds: every requirement the service carries has a row, and every row
names a test that exists, so a renamed or deleted test cannot leave a control unproven on paper."""

import ast
import re

from tests.conftest import REPO
from tests.support.cases import assert_holds_for_each

PCI = REPO / "docs" / "pci.md"
REQUIRED = (
    "1.3.2", "3.3.1", "3.4.1", "3.5.1", "3.5.1.1", "3.6.1", "3.7.1", "3.7.2", "3.7.3", "3.7.4", "3.7.5", "4.2.1",
    "6.4.1", "6.4.2", "7.2.1", "7.2.2", "8.6.3", "10.2.1", "10.2.2", "10.3.2", "10.4.1", "10.5.1", "10.7.2", "12.3.4",
)  # fmt: skip
ROW = re.compile(r"^\| (?P<requirement>[\d.]+) \| (?P<control>[^|]+) \| (?P<where>[^|]+) \| `(?P<test>[^`]+)` \|$")


def rows() -> list[dict[str, str]]:
    lines = [line for line in PCI.read_text().splitlines() if re.match(r"^\| \d", line)]
    parsed = [ROW.match(line) for line in lines]
    assert all(parsed), [line for line, match in zip(lines, parsed, strict=True) if not match]
    return [match.groupdict() for match in parsed if match]


def test_every_required_requirement_has_a_row():
    covered = {row["requirement"] for row in rows()}
    assert set(REQUIRED) - covered == set()


def _exists(test: str) -> bool:
    """``test`` (``path::name``) names a test function in a module of the repository."""
    path, _, name = test.partition("::")
    module = REPO / path
    if not module.is_file():
        return False
    tests = {node.name for node in ast.walk(ast.parse(module.read_text())) if isinstance(node, ast.FunctionDef)}
    return name.startswith("test_") and name in tests


def test_every_row_names_a_test_that_exists():
    named = [(row["requirement"], row["test"]) for row in rows()]
    assert_holds_for_each(named, lambda requirement_and_test: _exists(requirement_and_test[1]), "no such test")


def test_every_place_a_row_names_exists():
    for row in rows():
        for place in re.findall(r"`([\w/.-]+\.(?:py|md))", row["where"]) + re.findall(r"`([\w/]+/)`", row["where"]):
            assert (REPO / place).exists(), f"{row['requirement']}: {place} does not exist"
