"""The Lambda deployment package: the ``lambdas`` package plus the third-party
packages it imports, installed for the Lambda platform from the lock file.

Reproducible by construction: dependencies come pinned with hashes from
``Pipfile.lock`` (category ``lambda``) as manylinux wheels, no byte code, no
console scripts; the zip has fixed times and modes and sorted entries, so the same inputs
give the same bytes, and the same asset hash, on any machine.
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK_FILE = ROOT / "Pipfile.lock"
LAMBDA_SOURCE = ROOT / "lambdas"
LOCK_CATEGORY = "lambda"
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
EXCLUDED_NAMES = {"__pycache__", "bin"}  # byte code and console scripts (whose shebangs name this machine)


def locked_requirements(lock_file: Path = LOCK_FILE) -> str:
    """The ``lambda`` category of the lock file as a hash-pinned requirements file."""
    packages = json.loads(lock_file.read_text())[LOCK_CATEGORY]
    lines = []
    for name, spec in sorted(packages.items()):
        hashes = " ".join(f"--hash={digest}" for digest in spec["hashes"])
        marker = f"; {spec['markers']}" if spec.get("markers") else ""
        lines.append(f"{name}{spec['version']}{marker} {hashes}")
    return "\n".join(lines) + "\n"


def _files(root: Path) -> list[Path]:
    """The files below ``root`` that belong in a bundle, sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not EXCLUDED_NAMES & set(p.relative_to(root).parts))


def tree_hash(directory: Path) -> str:
    """SHA-256 over relative paths and contents (byte code excluded): independent of mtimes and location."""
    digest = hashlib.sha256()
    for path in _files(directory):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _install_dependencies(requirements: str, target: Path, architecture: str, python_version: str) -> None:
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
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(target))


def _prune(directory: Path) -> None:
    for path in sorted(directory.rglob("*"), reverse=True):
        if path.name in EXCLUDED_NAMES and path.exists():
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

    Dependencies are cached per requirements, platform and Python version, and
    the zip per dependencies and source, so a synth after the first one
    installs and compresses nothing. One process at a time builds in ``build_dir``.
    """
    build_dir.mkdir(parents=True, exist_ok=True)
    with (build_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return _build_bundle(build_dir, architecture, runtime)


def _build_bundle(build_dir: Path, architecture: str, runtime: str) -> tuple[Path, str]:
    python_version = runtime.removeprefix("python")
    requirements = locked_requirements()
    cache_key = hashlib.sha256(f"{requirements}{architecture}{python_version}".encode()).hexdigest()[:16]
    dependencies = build_dir / f"dependencies-{cache_key}"
    if not dependencies.exists():
        for stale in build_dir.glob("dependencies-*"):
            shutil.rmtree(stale)
        _install_dependencies(requirements, dependencies, architecture, python_version)
    source_key = hashlib.sha256(f"{cache_key}{tree_hash(LAMBDA_SOURCE)}".encode()).hexdigest()[:16]
    archive = build_dir / f"zip-{source_key}" / f"lambda-{architecture}.zip"  # a stable name in the synth output
    if not archive.exists():
        for stale in build_dir.glob(f"zip-*/lambda-{architecture}.zip"):
            shutil.rmtree(stale.parent)
        archive.parent.mkdir(parents=True)
        _write_zip(archive, [(dependencies, ""), (LAMBDA_SOURCE, f"{LAMBDA_SOURCE.name}/")])
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()
