"""The test lanes (tests/lanes.py): a test's lane follows from what it imports, and the unit lane refuses
processes, sockets and moto."""

import multiprocessing
import os
import socket
import subprocess

import pytest
from moto import mock_aws

from tests.lanes import LaneViolation, function_lane, in_process_only, module_lane

pytestmark = pytest.mark.integration  # the guard is tried here, outside the unit lane

MODULES = {
    "from lambdas.domain import money\n": "unit",
    "from moto import mock_aws\n": "integration",
    "import subprocess\n": "integration",
    "from stacks.app import build_app\n": "infra",  # stacks.app imports the provider bindings
    "def test_synth():\n    from stacks.app import build_app\n": "unit",  # only that test needs them, when it runs
}


@pytest.mark.parametrize(("source", "lane"), MODULES.items())
def test_a_modules_lane_is_what_importing_it_needs(tmp_path, source, lane):
    path = tmp_path / "test_example.py"
    path.write_text(source)
    assert module_lane(path) == lane


def test_a_tests_lane_counts_what_it_and_the_modules_functions_it_calls_import_when_they_run(tmp_path):
    path = tmp_path / "test_example.py"
    path.write_text(
        "def synthesize():\n    from stacks.app import build_app\n\n\n"
        "def test_synth():\n    synthesize()\n\n\n"
        "def test_money():\n    from lambdas.domain import money\n"
    )
    assert (function_lane(path, "test_synth"), function_lane(path, "test_money")) == ("infra", "unit")


@pytest.mark.parametrize(
    ("attempt", "violation"),
    [
        (lambda: subprocess.run(["true"], check=False), "started a process"),
        (lambda: socket.create_connection(("127.0.0.1", 9), timeout=1), "opened a socket"),
        (lambda: os.system("true"), "started a process"),
        (lambda: os.posix_spawnp("true", ["true"], os.environ), "started a process"),
        (lambda: multiprocessing.get_context("fork").Process(target=print).start(), "started a process"),
        (lambda: mock_aws().start(), "started moto"),
    ],
    ids=["process", "socket", "shell", "spawn", "fork", "moto"],
)
def test_the_unit_lane_refuses_and_names_what_a_test_tried(monkeypatch, attempt, violation):
    with in_process_only(monkeypatch) as violations, pytest.raises(LaneViolation):
        attempt()
    assert violations == [violation]
