"""`make bench-synth`: wall time and peak memory of a full synth, against a bare
``import cdktf_cdktf_provider_aws`` measured in the same run (goal: ratio <= 1.15).

Each command runs as its own process (with its jsii Node child); memory is the
peak of the summed resident set of the whole process tree, sampled every 20 ms.
Runs alternate so both see the same machine state; the median is reported.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
GOAL = 1.15


def _tree_rss_bytes(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry.name)
        children.setdefault(int(fields["PPid"]), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack += children.get(pid, [])
    return total


def measure(command: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_rss_bytes(process.pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{command} exited with {process.returncode}")
    return elapsed, peak


def main() -> None:
    with tempfile.TemporaryDirectory() as outdir:
        commands = {
            "bare import": [sys.executable, "-c", "import cdktf_cdktf_provider_aws"],
            "synth (dev)": [
                sys.executable,
                "-c",
                f"from pathlib import Path; from stacks.app import build_app; from stacks.config import DEV; "
                f"build_app([DEV], outdir=Path({outdir!r})).synth()",
            ],
        }
        measure(commands["synth (dev)"])  # warm-up: builds the Lambda bundle cache once
        results: dict[str, list[tuple[float, int]]] = {name: [] for name in commands}
        for _ in range(RUNS):
            for name, command in commands.items():
                results[name].append(measure(command))
    medians = {
        name: (statistics.median(t for t, _ in runs), statistics.median(m for _, m in runs))
        for name, runs in results.items()
    }
    (base_time, base_memory), (synth_time, synth_memory) = medians.values()
    print(f"{'':18} {'wall s':>8} {'peak MiB':>9}   (median of {RUNS})")
    for name, (seconds, memory) in medians.items():
        print(f"{name:18} {seconds:8.2f} {memory / 2**20:9.0f}")
    time_ratio, memory_ratio = synth_time / base_time, synth_memory / base_memory
    print(f"{'synth / import':18} {time_ratio:8.2f} {memory_ratio:9.2f}   goal <= {GOAL}")
    print("goal met" if max(time_ratio, memory_ratio) <= GOAL else "goal missed")


if __name__ == "__main__":
    main()
