"""The Lambda package: locked dependencies for the Lambda platform, reproducible."""

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from stacks.config import FunctionSettings
from stacks.lambda_bundle import LOCK_FILE, PLATFORMS, TASK_ROOT, build_bundle, interpreter, locked_requirements
from tests.conftest import REPO
from tools import lambda_runtime

SETTINGS = FunctionSettings()
BUILD = REPO / "build" / "lambda"
RUNTIME_VERSION = SETTINGS.runtime.removeprefix("python")  # "3.13"
ELF_MACHINES = {"arm64": 183, "x86_64": 62}  # e_machine: EM_AARCH64, EM_X86_64
UNCHECKED_HASH = 0b01  # a .pyc header's flags: hash-based, source not checked


def test_requirements_are_the_locked_lambda_category_with_hashes():
    locked = json.loads(LOCK_FILE.read_text())["lambda"]
    lines = locked_requirements().splitlines()
    assert len(lines) == len(locked)
    for line in lines:
        name, _, rest = line.partition("==")
        assert name in locked and "--hash=sha256:" in rest
    assert "boto3" not in locked  # the Lambda runtime provides it


def test_same_inputs_give_the_same_bytes_on_a_fresh_build(tmp_path):
    """Byte code included: two builds in different directories, the second installing and compiling anew."""
    first, first_hash = build_bundle(BUILD, SETTINGS.architecture, SETTINGS.runtime)
    second, second_hash = build_bundle(tmp_path, SETTINGS.architecture, SETTINGS.runtime)  # installs anew
    assert first != second
    assert first_hash == second_hash == hashlib.sha256(second.read_bytes()).hexdigest()
    assert any(name.endswith(".pyc") for name in zipfile.ZipFile(second).namelist())


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
    assert not [n for n in names if n.startswith(("bin/", "boto3/", "botocore/"))]


def test_every_module_carries_unchecked_hash_byte_code_named_as_lambda_sees_it():
    """Each module's .pyc is the runtime Python's, never checked against its source (/var/task is read-only, and
    the zip's times are fixed), and names the file Lambda runs, so that tracebacks do."""
    python = _runtime_python()
    archive, _ = build_bundle(BUILD, SETTINGS.architecture, SETTINGS.runtime)
    bundle = zipfile.ZipFile(archive)
    names = set(bundle.namelist())
    magic = subprocess.run(
        [python, "-c", "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    modules = [n for n in names if n.endswith(".py")]
    assert "lambdas/handlers/charge.py" in modules and "pydantic/__init__.py" in modules
    for module in modules:
        assert _byte_code_of(module) in names, module
        header = bundle.read(_byte_code_of(module))[:8]
        assert header[:4].hex() == magic and int.from_bytes(header[4:8], "little") == UNCHECKED_HASH, module
    for module in ("lambdas/handlers/charge.py", "pydantic/__init__.py"):
        file_name = subprocess.run(
            [python, "-I", "-c", "import marshal, sys; print(marshal.loads(sys.stdin.buffer.read()[16:]).co_filename)"],
            input=bundle.read(_byte_code_of(module)), capture_output=True, check=True,
        ).stdout.decode().strip()  # fmt: skip
        assert file_name == f"{TASK_ROOT}/{module}"


def _byte_code_of(module: str) -> str:
    """Where the runtime Python looks for the byte code of ``module`` ("lambdas/edge.py")."""
    directory, _, file_name = module.rpartition("/")
    tag = f"cpython-{RUNTIME_VERSION.replace('.', '')}"
    return f"{directory}/__pycache__/{file_name.removesuffix('.py')}.{tag}.pyc".lstrip("/")


def test_without_the_runtime_python_the_bundle_has_no_byte_code_and_the_synth_says_so(tmp_path, monkeypatch, capsys):
    import stacks.lambda_bundle as bundle_module

    monkeypatch.setattr(bundle_module, "interpreter", lambda version: None)
    archive, _ = build_bundle(tmp_path, SETTINGS.architecture, SETTINGS.runtime)
    names = zipfile.ZipFile(archive).namelist()
    assert "lambdas/handlers/charge.py" in names and not [n for n in names if "__pycache__" in n]
    assert f"no {SETTINGS.runtime} here" in capsys.readouterr().err


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
    (tools/lambda_runtime.py; `make lambda-imports`): every module of the bundle (and of the runtime) loads from
    its byte code, none is compiled from source, and nothing is written."""
    python = _runtime_python()
    _, task, runtime = lambda_runtime.prepare(python, RUNTIME_VERSION)
    before = _tree_state(task)
    for module in lambda_runtime.handler_modules().values():
        report = lambda_runtime.import_compiles(python, module, (task, runtime))  # raises with the error
        compiled = [path for path in report["compiled"] if path.startswith((str(task), str(runtime)))]
        assert compiled == [] and report["written"] == [], (module, report)
    assert _tree_state(task) == before
    assert lambda_runtime.version_of(python).startswith(f"{RUNTIME_VERSION}.")


def _runtime_python() -> str:
    python = interpreter(RUNTIME_VERSION)
    assert python, f"no python{RUNTIME_VERSION} (LAMBDA_PYTHON, PATH or pyenv): the functions' runtime is needed"
    return python


def _tree_state(directory: Path) -> list[tuple[str, int, int]]:
    """Every path below ``directory`` with its size and modification time."""
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*"))
