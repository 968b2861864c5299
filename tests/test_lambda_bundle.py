"""The Lambda package: locked dependencies for the Lambda platform, reproducible."""

import hashlib
import json
import zipfile

from stacks.config import FunctionSettings
from stacks.lambda_bundle import LOCK_FILE, build_bundle, locked_requirements
from tests.conftest import REPO

SETTINGS = FunctionSettings()
BUILD = REPO / "build" / "lambda"


def test_requirements_are_the_locked_lambda_category_with_hashes():
    locked = json.loads(LOCK_FILE.read_text())["lambda"]
    lines = locked_requirements().splitlines()
    assert len(lines) == len(locked)
    for line in lines:
        name, _, rest = line.partition("==")
        assert name in locked and "--hash=sha256:" in rest
    assert "boto3" not in locked  # the Lambda runtime provides it


def test_same_inputs_give_the_same_bytes_on_a_fresh_build(tmp_path):
    first, first_hash = build_bundle(BUILD, SETTINGS.architecture, SETTINGS.runtime)
    second, second_hash = build_bundle(tmp_path, SETTINGS.architecture, SETTINGS.runtime)  # installs anew
    assert first != second
    assert first_hash == second_hash == hashlib.sha256(second.read_bytes()).hexdigest()


def test_a_source_change_gives_a_new_hash(tmp_path):
    import shutil

    import stacks.lambda_bundle as bundle_module

    source = tmp_path / "lambdas"
    shutil.copytree(bundle_module.LAMBDA_SOURCE, source)
    _, before = build_bundle(BUILD, SETTINGS.architecture, SETTINGS.runtime)
    original = bundle_module.LAMBDA_SOURCE
    try:
        bundle_module.LAMBDA_SOURCE = source
        _, same = build_bundle(tmp_path / "build", SETTINGS.architecture, SETTINGS.runtime)
        (source / "handlers" / "read.py").write_text("changed = True\n")
        _, changed = build_bundle(tmp_path / "build", SETTINGS.architecture, SETTINGS.runtime)
    finally:
        bundle_module.LAMBDA_SOURCE = original
    assert same == before and changed != before


def test_bundle_holds_the_handlers_and_platform_wheels_only():
    archive, _ = build_bundle(BUILD, SETTINGS.architecture, SETTINGS.runtime)
    names = zipfile.ZipFile(archive).namelist()
    assert "lambdas/handlers/charge.py" in names and "lambdas/storage_schema.py" in names
    native = [n for n in names if n.startswith("pydantic_core/_pydantic_core") and n.endswith(".so")]
    assert len(native) == 1 and "aarch64" in native[0]
    assert not [n for n in names if "__pycache__" in n or n.startswith(("bin/", "boto3/", "botocore/"))]


def test_functions_deploy_the_bundle_by_its_hash(dev):
    _, bundle_hash = build_bundle(BUILD, SETTINGS.architecture, SETTINGS.runtime)
    for function in dev.resources("aws_lambda_function").values():
        assert function["source_code_hash"] == bundle_hash
        assert function["filename"] == f"assets/lambda-code/{bundle_hash}/lambda-{SETTINGS.architecture}.zip"
