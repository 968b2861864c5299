"""The Lambda deployment package: the ``lambdas`` package plus the third-party
packages it imports, installed for the Lambda platform from the lock file.

Reproducible by construction: dependencies come pinned with hashes from
``Pipfile.lock`` (category ``lambda``) as manylinux wheels, no byte code, no
console scripts, and the bundle's hash is computed from file names and contents
only, so the same inputs give the same asset hash on any machine.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
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


def tree_hash(directory: Path) -> str:
    """SHA-256 over relative paths and contents: independent of mtimes and location."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
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


def build_bundle(build_dir: Path, architecture: str, runtime: str) -> tuple[Path, str]:
    """Build (or reuse) the bundle under ``build_dir``; return its directory and hash.

    Dependencies are cached per requirements, platform and Python version, so a
    synth after the first one installs nothing.
    """
    python_version = runtime.removeprefix("python")
    requirements = locked_requirements()
    cache_key = hashlib.sha256(f"{requirements}{architecture}{python_version}".encode()).hexdigest()[:16]
    dependencies = build_dir / f"dependencies-{cache_key}"
    if not dependencies.exists():
        _install_dependencies(requirements, dependencies, architecture, python_version)

    bundle = build_dir / f"bundle-{architecture}"
    staging = Path(tempfile.mkdtemp(dir=build_dir, prefix=".bundle-"))
    shutil.copytree(dependencies, staging, dirs_exist_ok=True)
    shutil.copytree(LAMBDA_SOURCE, staging / LAMBDA_SOURCE.name, ignore=shutil.ignore_patterns(*EXCLUDED_NAMES))
    if bundle.exists():
        shutil.rmtree(bundle)
    os.replace(staging, bundle)
    return bundle, tree_hash(bundle)
