"""The functions' code on the functions' Python, outside the dev virtualenv: `make lambda-imports`.

The deployment bundle is built from the same lock for this machine's architecture (the deployed one may be
another: arm64 wheels do not load on x86_64) and unpacked as Lambda unpacks it (``task/``, /var/task); boto3
and its dependencies, which the Lambda runtime provides, are installed as locked (category ``packages``) in
the place of the runtime's (``runtime/``, /var/runtime), compiled by the runtime's interpreter as the
runtime ships them. Each handler is then imported by that interpreter in a fresh, isolated process
(``-I -S``: no site-packages, no user site, no ``PYTHON*`` variables; ``-B``: no byte code written, as
/var/task is read-only), so a module or wheel that only works in the dev virtualenv fails here.

The interpreter: ``LAMBDA_PYTHON``, else ``python3.13`` on the PATH, else pyenv's 3.13 (``make`` does not
install it; CI's machines have it under pyenv). tests/test_lambda_bundle.py runs the same check.
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import zipfile
from glob import glob
from importlib.metadata import requires
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from stacks.lambda_bundle import LOCK_FILE, PLATFORMS, build_bundle

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
HOST_ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
RUNTIME_PROVIDES = "boto3"  # with its dependencies: what every Lambda Python runtime puts on sys.path


def host_architecture() -> str:
    return HOST_ARCHITECTURES[platform.machine().lower()]


def interpreter(version: str) -> str | None:
    """A Python ``version`` ("3.13") interpreter on this machine, or None."""
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


def runtime_requirements(version: str, lock_file: Path = LOCK_FILE) -> str:
    """boto3 and its dependencies as locked (category ``packages``), hash-pinned, for Python ``version``."""
    locked = {canonicalize_name(name): spec for name, spec in json.loads(lock_file.read_text())["default"].items()}
    environment = {**default_environment(), "python_version": version, "python_full_version": f"{version}.0"}
    wanted, pending = set(), [RUNTIME_PROVIDES]
    while pending:
        name = canonicalize_name(pending.pop())
        if name in wanted:
            continue
        wanted.add(name)
        for line in requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({**environment, "extra": ""}):
                pending.append(requirement.name)
    lines = []
    for name in sorted(wanted):
        spec = locked[name]
        hashes = " ".join(f"--hash={digest}" for digest in spec["hashes"])
        lines.append(f"{name}{spec['version']} {hashes}")
    return "\n".join(lines) + "\n"


def bundle_dir(architecture: str, version: str) -> Path:
    """Where the bundle for ``architecture`` and ``python{version}`` is built: the synth's own for the deployed one."""
    from stacks.config import FunctionSettings

    settings = FunctionSettings()
    if (architecture, f"python{version}") == (settings.architecture, settings.runtime):
        return BUILD / "lambda"
    return BUILD / f"lambda-{architecture}-{version}"


def prepare(python: str, version: str) -> tuple[Path, Path, Path]:
    """The host-architecture bundle for ``python{version}``, unpacked (``task``), and the runtime's boto3
    (``runtime``); cached by their inputs. Returns (archive, task, runtime)."""
    build_dir = BUILD / f"lambda-runtime-{version}"
    architecture = host_architecture()
    archive, archive_hash = build_bundle(bundle_dir(architecture, version), architecture, f"python{version}")
    task = build_dir / "task"
    if not (task / f".{archive_hash}").exists():
        shutil.rmtree(task, ignore_errors=True)
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(task)
        (task / f".{archive_hash}").touch()
    requirements = runtime_requirements(version)
    runtime = build_dir / "runtime"
    stamp = runtime / f".{hashlib.sha256(f'{requirements}{architecture}{python}'.encode()).hexdigest()[:16]}"
    if not stamp.exists():
        shutil.rmtree(runtime, ignore_errors=True)
        requirements_file = build_dir / "runtime-requirements.txt"
        requirements_file.write_text(requirements)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--require-hashes", "--no-deps", "--only-binary=:all:", "--no-compile",
             "--implementation", "cp", "--python-version", version, "--platform", PLATFORMS[architecture],
             "--target", str(runtime), "-r", str(requirements_file)],
            check=True,
        )  # fmt: skip
        subprocess.run([python, "-m", "compileall", "-q", "-j", "0", str(runtime)], check=True)
        stamp.touch()
    return archive, task, runtime


def import_seconds(python: str, module: str, path: tuple[Path, ...]) -> float:
    """Seconds to import ``module`` in a fresh isolated ``python`` with only ``path`` and the standard library."""
    code = (
        f"import sys; sys.path[:0] = {[str(p) for p in path]!r}; import time; t = time.perf_counter(); "
        f"import {module}; print(time.perf_counter() - t)"
    )
    env = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [python, "-I", "-S", "-B", "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise RuntimeError(f"python{version_of(python)} could not import {module}:\n{result.stderr}")
    return float(result.stdout)


def version_of(python: str) -> str:
    return subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True, check=True
    ).stdout.strip()


def handler_modules() -> dict[str, str]:
    from lambdas.routes import Function

    return {f.value: f.handler.rsplit(".", 1)[0] for f in Function}


def bench(python: str, version: str, runs: int) -> dict[str, float]:
    """Median cold import (seconds) of ``boto3`` and each handler from the bundle, interleaved over ``runs``."""
    _, task, runtime = prepare(python, version)
    modules = {"boto3 (baseline)": "boto3"} | handler_modules()
    timings: dict[str, list[float]] = {name: [] for name in modules}
    for _ in range(runs):
        for name, module in modules.items():
            timings[name].append(import_seconds(python, module, (task, runtime)))
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> None:
    from stacks.config import FunctionSettings

    default_version = FunctionSettings().runtime.removeprefix("python")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-version", default=default_version, help="default: the functions' runtime")
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_IMPORT_RUNS", "1")))
    args = parser.parse_args()
    python = interpreter(args.python_version)
    if python is None:
        sys.exit(f"no python{args.python_version} here: set LAMBDA_PYTHON, or install it (pyenv install)")
    archive, _, _ = prepare(python, args.python_version)
    size = archive.stat().st_size / 1e6
    print(f"Python {version_of(python)} ({python}), bundle {archive.relative_to(REPO)} ({size:.1f} MB)")
    print(f"cold import from the bundle, median of {args.runs} fresh interpreters")
    medians = bench(python, args.python_version, args.runs)
    baseline = medians["boto3 (baseline)"]
    for name, median in medians.items():
        print(f"  {name:18} {median * 1000:7.0f} ms   x{median / baseline:.2f} boto3")


if __name__ == "__main__":
    main()
