"""The Lambda package: locked dependencies for the Lambda platform, reproducible."""

import hashlib
import json
import zipfile

import pytest

from stacks.config import FunctionSettings
from stacks.lambda_bundle import LOCK_FILE, PLATFORMS, build_bundle, locked_requirements
from tests.conftest import REPO
from tools import lambda_runtime

SETTINGS = FunctionSettings()
BUILD = REPO / "build" / "lambda"
RUNTIME_VERSION = SETTINGS.runtime.removeprefix("python")  # "3.13"
ELF_MACHINES = {"arm64": 183, "x86_64": 62}  # e_machine: EM_AARCH64, EM_X86_64


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
    assert len(native) == 1 and f"cpython-{RUNTIME_VERSION.replace('.', '')}-aarch64" in native[0]
    assert not [n for n in names if "__pycache__" in n or n.startswith(("bin/", "boto3/", "botocore/"))]


def test_functions_deploy_the_bundle_by_its_hash(dev):
    _, bundle_hash = build_bundle(BUILD, SETTINGS.architecture, SETTINGS.runtime)
    for function in dev.resources("aws_lambda_function").values():
        assert function["source_code_hash"] == bundle_hash
        assert function["filename"] == f"assets/lambda-code/{bundle_hash}/lambda-{SETTINGS.architecture}.zip"


@pytest.mark.parametrize("architecture", sorted(PLATFORMS))
def test_every_locked_package_installs_for_the_runtime_on_both_architectures(architecture):
    """Each locked lambda package has a wheel for the runtime's Python on the platform, and the lock holds its
    hash (the install is --require-hashes); every native module is built for that Python (or the stable ABI)
    and that machine."""
    archive, _ = build_bundle(lambda_runtime.bundle_dir(architecture, RUNTIME_VERSION), architecture, SETTINGS.runtime)
    bundle = zipfile.ZipFile(archive)
    installed = {n.split("/")[0].split("-")[0].lower() for n in bundle.namelist() if ".dist-info/" in n}
    locked = {name.replace("-", "_").lower() for name in json.loads(LOCK_FILE.read_text())["lambda"]}
    assert installed == locked
    tag = f"cpython-{RUNTIME_VERSION.replace('.', '')}-"
    extensions = [n for n in bundle.namelist() if n.endswith(".so") and ".libs/" not in n]
    assert len(extensions) >= 4  # pydantic-core, cryptography, cffi, charset-normalizer
    for name in extensions:
        assert tag in name or name.endswith(".abi3.so"), name
    for name in [n for n in bundle.namelist() if n.endswith(".so") or ".so." in n]:
        header = bundle.read(name)[:20]
        assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == ELF_MACHINES[architecture], name


def test_every_handler_imports_from_the_bundle_under_the_runtime_python():
    """The bundle as Lambda unpacks it, boto3 as the runtime provides it, the runtime's Python and nothing else
    (tools/lambda_runtime.py; `make lambda-imports`)."""
    python = lambda_runtime.interpreter(RUNTIME_VERSION)
    assert python, f"no python{RUNTIME_VERSION} (LAMBDA_PYTHON, PATH or pyenv): the functions' runtime is needed"
    _, task, runtime = lambda_runtime.prepare(python, RUNTIME_VERSION)
    for module in lambda_runtime.handler_modules().values():
        lambda_runtime.import_seconds(python, module, (task, runtime))  # raises with the interpreter's error
    assert lambda_runtime.version_of(python).startswith(f"{RUNTIME_VERSION}.")
