"""The functions' code on the functions' Python, outside the dev virtualenv: `make lambda-imports`.

The deployment bundle is built from the same lock for this machine's architecture (the deployed one may be
another: arm64 wheels do not load on x86_64) and unpacked as Lambda unpacks it (``task/``, /var/task); boto3
and its dependencies, which the Lambda runtime provides, are installed as locked (category ``packages``) in
the place of the runtime's (``runtime/``, /var/runtime), compiled by the runtime's interpreter as the
runtime ships them. Each handler is then imported by that interpreter in a fresh, isolated process
(``-I -S``: no site-packages, no user site, no ``PYTHON*`` variables; ``-B``: no byte code written, as
/var/task is read-only), so a module or wheel that only works in the dev virtualenv fails here.

The interpreter: the one that compiles the bundle's byte code (``stacks.lambda_bundle.interpreter``):
``LAMBDA_PYTHON``, else ``python3.13`` on the PATH, else pyenv's 3.13 (``make`` does not install it; CI's
machines have it under pyenv). tests/test_lambda_bundle.py runs the same check.
"""

import argparse
import fcntl
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import zipfile
from importlib.metadata import requires
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from stacks.lambda_bundle import LOCK_FILE, PLATFORMS, build_bundle, compile_tree, compiler_identity, interpreter

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
HOST_ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
RUNTIME_ROOT = "/var/runtime"
RUNTIME_PROVIDES = "boto3"  # with its dependencies: what every Lambda Python runtime puts on sys.path


def host_architecture() -> str:
    return HOST_ARCHITECTURES[platform.machine().lower()]


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
    (``runtime``); cached by their inputs. Returns (archive, task, runtime). One process at a time."""
    build_dir = BUILD / f"lambda-runtime-{version}"
    architecture = host_architecture()
    archive, archive_hash = build_bundle(bundle_dir(architecture, version), architecture, f"python{version}")
    build_dir.mkdir(parents=True, exist_ok=True)
    with (build_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        task = build_dir / "task"
        if not (task / f".{archive_hash}").exists():
            shutil.rmtree(task, ignore_errors=True)
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(task)
            (task / f".{archive_hash}").touch()
        return archive, task, _runtime(python, version, build_dir / "runtime")


def _runtime(python: str, version: str, runtime: Path) -> Path:
    """boto3 and its dependencies as locked, installed in ``runtime`` and compiled by ``python`` (unchecked-hash
    byte code, valid wherever the tree is copied), as the Lambda runtime ships them in /var/runtime."""
    requirements = runtime_requirements(version)
    architecture = host_architecture()
    inputs = f"{requirements}{architecture}{compiler_identity(python)}"
    stamp = runtime / f".{hashlib.sha256(inputs.encode()).hexdigest()[:16]}"
    if not stamp.exists():
        shutil.rmtree(runtime, ignore_errors=True)
        requirements_file = runtime.parent / "runtime-requirements.txt"
        requirements_file.write_text(requirements)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--require-hashes", "--no-deps", "--only-binary=:all:", "--no-compile",
             "--implementation", "cp", "--python-version", version, "--platform", PLATFORMS[architecture],
             "--target", str(runtime), "-r", str(requirements_file)],
            check=True,
        )  # fmt: skip
        compile_tree(python, runtime, RUNTIME_ROOT)
        stamp.touch()
    return runtime


def import_seconds(python: str, module: str, path: tuple[Path, ...]) -> float:
    """Seconds to import ``module`` in a fresh isolated ``python`` with only ``path`` and the standard library."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return float(_run_isolated(python, module, path, code))


# Records each module compiled from source and each file the import system writes, then imports the module.
_COUNTING_LOADER = """from importlib.machinery import SourceFileLoader
compiled, written = [], []
source_to_code, set_data = SourceFileLoader.source_to_code, SourceFileLoader.set_data
def counting_source_to_code(self, data, path, *args, **kwargs):
    compiled.append(str(path))
    return source_to_code(self, data, path, *args, **kwargs)
def counting_set_data(self, path, data, *args, **kwargs):
    written.append(str(path))
    return set_data(self, path, data, *args, **kwargs)
SourceFileLoader.source_to_code, SourceFileLoader.set_data = counting_source_to_code, counting_set_data
"""


def import_compiles(python: str, module: str, path: tuple[Path, ...]) -> dict[str, list[str]]:
    """What importing ``module`` as ``import_seconds`` does compiled from source ("compiled": source files) and
    wrote through the import system ("written": files), each as the interpreter named it."""
    code = f"{_COUNTING_LOADER}import {module}, json; print(json.dumps({{'compiled': compiled, 'written': written}}))"
    return dict(json.loads(_run_isolated(python, module, path, code)))


def _run_isolated(python: str, module: str, path: tuple[Path, ...], code: str) -> str:
    """The output of ``code`` (which imports ``module``) run by a fresh isolated ``python`` with only ``path`` and
    the standard library, without writing byte code, as Lambda runs it."""
    code = f"import sys; sys.path[:0] = {[str(p) for p in path]!r}\n{code}"
    env = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [python, "-I", "-S", "-B", "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise RuntimeError(f"python{version_of(python)} could not import {module}:\n{result.stderr}")
    return result.stdout


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
