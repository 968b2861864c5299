"""Each stack's Terraform JSON against its reviewed snapshot.

After a deliberate change: ``make snapshots``, review the diff, commit it."""

import difflib
import json
import os
import re
from pathlib import Path

from lambdas.routes import Function
from tests.conftest import REPO

SNAPSHOTS = Path(__file__).parent / "snapshots"
ASSET_HASH = re.compile(r"assets/lambda-code/([0-9a-f]{64})/")


def normalized(config: dict) -> str:
    """Stable text of a stack: the code asset's hash and this checkout's path replaced."""
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    for asset_hash in set(ASSET_HASH.findall(text)):
        text = text.replace(asset_hash, "<asset-hash>")
    return text.replace(str(REPO), "<repo>")


def test_stack_matches_its_reviewed_snapshot(stack):
    snapshot = SNAPSHOTS / f"{stack.name}.json"
    actual = normalized(stack.config)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        snapshot.write_text(actual)
    assert snapshot.exists(), f"no snapshot for {stack.name}: run `make snapshots` and review it"
    expected = snapshot.read_text()
    diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), "snapshot", "synth", n=2))
    assert actual == expected, f"{stack.name} changed; if intended, run `make snapshots` and review:\n{diff[:6000]}"


def test_normalizing_replaces_only_the_code_asset_hash(dev):
    text = normalized(dev.config)
    functions = dev.resources("aws_lambda_function")
    # Each function names its code twice (file name and source_code_hash); nothing else is rewritten.
    assert text.count("<asset-hash>") == 2 * len(functions) == 2 * len(Function)
    assert "<repo>" not in text
