"""The Lambda package: locked dependencies for the Lambda platform, reproducible."""

import json
import shutil

from stacks.config import FunctionSettings
from stacks.lambda_bundle import LOCK_FILE, build_bundle, locked_requirements, tree_hash
from tests.conftest import REPO

SETTINGS = FunctionSettings()


def test_requirements_are_the_locked_lambda_category_with_hashes():
    locked = json.loads(LOCK_FILE.read_text())["lambda"]
    lines = locked_requirements().splitlines()
    assert len(lines) == len(locked)
    for line in lines:
        name, _, rest = line.partition("==")
        assert name in locked and "--hash=sha256:" in rest
    assert "boto3" not in locked  # the Lambda runtime provides it


def test_same_inputs_give_the_same_hash_on_a_fresh_build(tmp_path):
    first, first_hash = build_bundle(REPO / "build" / "lambda", SETTINGS.architecture, SETTINGS.runtime)
    second, second_hash = build_bundle(tmp_path, SETTINGS.architecture, SETTINGS.runtime)  # installs anew
    assert first != second
    assert first_hash == second_hash == tree_hash(second)


def test_hash_ignores_location_and_times_but_not_contents(tmp_path):
    bundle, bundle_hash = build_bundle(REPO / "build" / "lambda", SETTINGS.architecture, SETTINGS.runtime)
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy, copy_function=shutil.copyfile)  # new mtimes
    assert tree_hash(copy) == bundle_hash
    (copy / "lambdas" / "handlers" / "read.py").write_text("changed = True\n")
    assert tree_hash(copy) != bundle_hash


def test_bundle_holds_the_handlers_and_platform_wheels_only(tmp_path):
    bundle, _ = build_bundle(REPO / "build" / "lambda", SETTINGS.architecture, SETTINGS.runtime)
    assert (bundle / "lambdas" / "handlers" / "charge.py").is_file()
    assert (bundle / "lambdas" / "storage_schema.py").is_file()
    native = list(bundle.glob("pydantic_core/_pydantic_core*.so"))
    assert len(native) == 1 and "aarch64" in native[0].name
    assert not list(bundle.rglob("__pycache__")) and not (bundle / "bin").exists()
    assert not (bundle / "boto3").exists()


def test_functions_deploy_the_bundle_by_its_hash(dev):
    _, bundle_hash = build_bundle(REPO / "build" / "lambda", SETTINGS.architecture, SETTINGS.runtime)
    for function in dev.resources("aws_lambda_function").values():
        assert function["source_code_hash"] == bundle_hash
        assert bundle_hash in function["filename"]
