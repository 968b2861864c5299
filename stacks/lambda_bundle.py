"""The Lambda deployment package: the ``lambdas`` package plus the third-party
packages it imports, installed for the Lambda platform from the lock file, with
their byte code compiled for the functions' runtime.

Reproducible by construction: dependencies come pinned with hashes from
``Pipfile.lock`` (category ``lambda``) as manylinux wheels, no console scripts;
the byte code is compiled by the runtime's Python (``interpreter``) as
unchecked-hash ``.pyc`` (no source mtimes in them, and none checked at import:
/var/task is read-only, so a cold start would otherwise compile every module
again), named by the paths Lambda sees (/var/task/...), with a fixed hash seed,
one file after another; the zip has fixed times and modes and sorted entries, so
the same inputs (the interpreter's exact version among them) give the same bytes,
and the same asset hash, on any machine.

Without that Python on the machine, the bundle carries no byte code: the synth
still works and says so on stderr; its functions compile their modules at every
cold start. CI's machines have it.
"""

import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from glob import glob
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK_FILE = ROOT / "Pipfile.lock"
LAMBDA_SOURCE = ROOT / "lambdas"
LOCK_CATEGORY = "lambda"
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
EXCLUDED_NAMES = frozenset({"bin"})  # console scripts, whose shebangs name this machine
SOURCE_EXCLUDED_NAMES = EXCLUDED_NAMES | {"__pycache__"}  # and byte code
TASK_ROOT = "/var/task"  # where Lambda unpacks the bundle: the file names in the byte code and its tracebacks


@functools.cache
def interpreter(version: str) -> str | None:
    """A Python ``version`` ("3.13") interpreter on this machine, or None: ``LAMBDA_PYTHON``, else
    ``python{version}`` on the PATH, else pyenv's newest ``version``."""
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = [
        os.environ.get("LAMBDA_PYTHON"),
        shutil.which(f"python{version}"),
        *sorted(glob(f"{pyenv_root}/versions/{version}*/bin/python{version}"), reverse=True),
    ]
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run(  # a pyenv shim of a version not selected exits non-zero
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


@functools.cache
def compiler_identity(python: str | None) -> str:
    """What the byte code depends on besides the sources: the interpreter's exact version and magic number."""
    if python is None:
        return "no byte code"
    code = "import sys, importlib.util; print(sys.version, importlib.util.MAGIC_NUMBER.hex())"
    return subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def compile_tree(python: str, directory: Path, deployed_path: str) -> None:
    """Unchecked-hash byte code (``__pycache__/*.pyc``) of every module below ``directory``, its file names
    those under ``deployed_path`` (where Lambda finds ``directory``: "/var/task").

    One process, files in sorted order, hash seed 0: the same sources give the same bytes."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"}  # not -I, which ignores the seed
    subprocess.run(
        [python, "-S", "-s", "-m", "compileall", "-q", "-j", "1", "--invalidation-mode", "unchecked-hash",
         "-d", deployed_path, str(directory)],
        env=env, check=True,
    )  # fmt: skip


def locked_requirements(lock_file: Path = LOCK_FILE) -> str:
    """The ``lambda`` category of the lock file as a hash-pinned requirements file."""
    packages = json.loads(lock_file.read_text())[LOCK_CATEGORY]
    lines = []
    for name, spec in sorted(packages.items()):
        hashes = " ".join(f"--hash={digest}" for digest in spec["hashes"])
        marker = f"; {spec['markers']}" if spec.get("markers") else ""
        lines.append(f"{name}{spec['version']}{marker} {hashes}")
    return "\n".join(lines) + "\n"


def _files(root: Path, excluded: frozenset[str] = EXCLUDED_NAMES) -> list[Path]:
    """The files below ``root`` that belong in a bundle, sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not excluded & set(p.relative_to(root).parts))


def tree_hash(directory: Path) -> str:
    """SHA-256 over relative paths and contents (byte code excluded): independent of mtimes and location."""
    digest = hashlib.sha256()
    for path in _files(directory, SOURCE_EXCLUDED_NAMES):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _install_dependencies(
    requirements: str, target: Path, architecture: str, python_version: str, python: str | None
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        requirements_file = Path(scratch) / "requirements.txt"
        requirements_file.write_text(requirements)
        staging = Path(scratch) / "site-packages"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--require-hashes", "--no-deps", "--only-binary=:all:", "--no-compile",
             "--implementation", "cp", "--python-version", python_version,
             "--platform", PLATFORMS[architecture],
             "--target", str(staging), "-r", str(requirements_file)],
            check=True,
        )  # fmt: skip
        _prune(staging)
        if python:
            compile_tree(python, staging, TASK_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(target))


def _prune(directory: Path) -> None:
    for path in sorted(directory.rglob("*"), reverse=True):
        if path.name in SOURCE_EXCLUDED_NAMES and path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _write_zip(archive: Path, trees: list[tuple[Path, str]]) -> None:
    """A zip whose bytes depend only on file names and contents (fixed times and modes)."""
    files = sorted(
        (f"{prefix}{path.relative_to(root).as_posix()}", path) for root, prefix in trees for path in _files(root)
    )
    staging = archive.with_suffix(".partial")
    with zipfile.ZipFile(staging, "w") as bundle:
        for name, path in files:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, path.read_bytes(), compresslevel=6)
    os.replace(staging, archive)


def build_bundle(build_dir: Path, architecture: str, runtime: str) -> tuple[Path, str]:
    """Build (or reuse) the deployment zip under ``build_dir``; return it and its SHA-256.

    Dependencies (installed and compiled) are cached per requirements, platform and compiler, and the zip per
    dependencies and source, so a synth after the first one installs, compiles and compresses nothing. One
    process at a time builds in ``build_dir``.
    """
    build_dir.mkdir(parents=True, exist_ok=True)
    with (build_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return _build_bundle(build_dir, architecture, runtime)


def _build_bundle(build_dir: Path, architecture: str, runtime: str) -> tuple[Path, str]:
    python_version = runtime.removeprefix("python")
    python = interpreter(python_version)
    if python is None:
        print(f"no python{python_version} here (LAMBDA_PYTHON, PATH, pyenv): the bundle carries no byte code, "
              "so its functions compile every module at each cold start", file=sys.stderr)  # fmt: skip
    requirements = locked_requirements()
    compiler = compiler_identity(python)
    cache_key = hashlib.sha256(f"{requirements}{architecture}{python_version}{compiler}".encode()).hexdigest()[:16]
    dependencies = build_dir / f"dependencies-{cache_key}"
    if not dependencies.exists():
        for stale in build_dir.glob("dependencies-*"):
            shutil.rmtree(stale)
        _install_dependencies(requirements, dependencies, architecture, python_version, python)
    source_key = hashlib.sha256(f"{cache_key}{tree_hash(LAMBDA_SOURCE)}".encode()).hexdigest()[:16]
    archive = build_dir / f"zip-{source_key}" / f"lambda-{architecture}.zip"  # a stable name in the synth output
    if not archive.exists():
        for stale in build_dir.glob(f"zip-*/lambda-{architecture}.zip"):
            shutil.rmtree(stale.parent)
        archive.parent.mkdir(parents=True, exist_ok=True)  # left by a build that stopped half-way
        with tempfile.TemporaryDirectory(dir=archive.parent) as scratch:
            source = _compiled_source(Path(scratch), python)
            _write_zip(archive, [(dependencies, ""), (source, f"{LAMBDA_SOURCE.name}/")])
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def _compiled_source(scratch: Path, python: str | None) -> Path:
    """A copy of the ``lambdas`` package under ``scratch`` (its byte code left behind), compiled by ``python``."""
    source = scratch / LAMBDA_SOURCE.name
    for path in _files(LAMBDA_SOURCE, SOURCE_EXCLUDED_NAMES):
        copy = source / path.relative_to(LAMBDA_SOURCE)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
    if python:
        compile_tree(python, source, f"{TASK_ROOT}/{LAMBDA_SOURCE.name}")
    return source
