"""`make mutate`'s summary, from mutmut's verdict on each mutant (mutants/**/*.meta).

A mutant counts as killed when a test failed or timed out on it; skipped ones are left out. When every mutant
ran, the score is exact. When a run stopped first (mutmut runs the cheapest mutants first, so those not run are
not like those that ran), ``--sample FILE`` names a seeded uniform sample of the mutants not run (``--draw N``
prints one): the score of all mutants is then estimated from the mutants run and the sample's kill rate, with a
95 % Wilson interval. Survivors are listed by `mutmut results`; ``--judged FILE`` (docs/mutation-survivors.tsv)
gives each survivor's verdict by hand, and those that hold no fault a test could show are left out of the score."""

import argparse
import json
import math
import random
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

GOAL = 0.90
MUTANTS = Path("mutants")
Z_95 = 1.96
KILLED = {"killed", "timeout", "caught by type check"}
NOT_RUN = "not checked"
# Verdicts of survivors judged by hand that hold no fault a test could show: behaviour identical for every input,
# code no input reaches, or a change of cost only. Anything else judged (a gap, wording no contract fixes, a
# behaviour the emulator cannot show) still counts as a survivor.
NO_FAULT = frozenset({"EQUIVALENT", "UNREACHABLE", "COST"})


def verdicts() -> dict[str, str]:
    """Each mutant's status as mutmut names it, skipped mutants left out."""
    found = {}
    for meta in sorted(MUTANTS.rglob("*.meta")):
        for name, exit_code in json.loads(meta.read_text())["exit_code_by_key"].items():
            found[name] = status_by_exit_code[exit_code]
    return {name: status for name, status in found.items() if status != "skipped"}


def wilson(killed: int, ran: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of a kill rate seen in ``ran`` draws."""
    rate, z2 = killed / ran, Z_95**2
    centre = (rate + z2 / (2 * ran)) / (1 + z2 / ran)
    half = Z_95 * math.sqrt(rate * (1 - rate) / ran + z2 / (4 * ran**2)) / (1 + z2 / ran)
    return centre - half, centre + half


def summary(
    status_by_mutant: dict[str, str], sample: set[str], no_fault: frozenset[str] = frozenset()
) -> tuple[list[str], bool]:
    """The report's lines, and whether the goal is shown (exactly, or by the sample's whole interval).

    ``no_fault``: survivors judged to hold no fault a test could show (equivalent, unreachable, ...). They are left
    out of the score, and so is the sample's share of them from the mutants not run."""
    left_out = {name for name in no_fault if status_by_mutant.get(name) == "survived"}
    counted = {name: status for name, status in status_by_mutant.items() if name not in left_out}
    outside = Counter(status for name, status in counted.items() if name not in sample)
    drawn = Counter(status for name, status in counted.items() if name in sample)
    total, unrun = len(status_by_mutant), outside[NOT_RUN] + len(sample)
    ran = total - unrun - len(left_out - sample)
    killed = sum(outside[status] for status in KILLED)
    lines = [
        f"mutants: {total}; run: {total - unrun}, {killed} killed, {outside['survived']} survived, "
        f"{outside['no tests']} without a test; not run: {unrun}"
    ]
    if left_out:
        lines.append(f"survivors judged no fault, left out: {len(left_out - sample)} run, {len(left_out & sample)} of "
                     f"the sample")  # fmt: skip
    if unrun == 0:
        score = killed / ran
        lines.append(f"mutation score: {score:.1%} (goal >= {GOAL:.0%})")
        return lines, score >= GOAL
    if ran:  # none when only a sample ran (besides survivors judged no fault)
        lines.append(f"score of those run: {killed / ran:.1%}; floor, counting every one not run a survivor: "
                     f"{killed / (ran + unrun):.1%}")  # fmt: skip
    sample_ran = len(sample) - drawn[NOT_RUN] - len(left_out & sample)
    if not sample_ran:
        lines.append(f"goal >= {GOAL:.0%}: not shown (no sample of those not run: --draw, then --sample)")
        return lines, False
    unrun_counted = unrun * sample_ran / (sample_ran + len(left_out & sample))  # the sample's share of no fault out
    sample_killed = sum(drawn[status] for status in KILLED)
    low, high = wilson(sample_killed, sample_ran)
    estimate = [
        (killed + unrun_counted * rate) / (ran + unrun_counted) for rate in (sample_killed / sample_ran, low, high)
    ]
    lines += [
        f"sample of those not run: {sample_ran} ran, {sample_killed} killed ({sample_killed / sample_ran:.1%}, "
        f"95 % interval {low:.1%} to {high:.1%})",
        f"mutation score, estimated: {estimate[0]:.1%} (95 % interval {estimate[1]:.1%} to {estimate[2]:.1%}; "
        f"goal >= {GOAL:.0%})",
    ]
    return lines, estimate[1] >= GOAL


def no_fault(judged: Path) -> frozenset[str]:
    """The survivors ``judged`` says hold no fault a test could show."""
    rows = (line.split("\t") for line in judged.read_text().splitlines() if line.strip())
    return frozenset(name for name, verdict, *_ in rows if verdict in NO_FAULT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draw", type=int, metavar="N", help="print a seeded sample of N mutants not run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=Path, metavar="FILE", help="the drawn sample (names, one per line)")
    parser.add_argument(
        "--judged", type=Path, metavar="FILE", help="survivors judged by hand (name, verdict, reason; tab-separated)"
    )
    args = parser.parse_args(argv)
    status_by_mutant = verdicts()
    if args.draw:
        not_run = sorted(name for name, status in status_by_mutant.items() if status == NOT_RUN)
        print("\n".join(random.Random(args.seed).sample(not_run, min(args.draw, len(not_run)))))
        return 0
    sample = set(args.sample.read_text().split()) if args.sample else set()
    lines, shown = summary(status_by_mutant, sample, no_fault(args.judged) if args.judged else frozenset())
    print("\n".join(lines))
    return 0 if shown else 1


if __name__ == "__main__":
    sys.exit(main())
