"""`make mutate`'s summary: the mutation score from mutmut's CI/CD stats (mutants/mutmut-cicd-stats.json).

A mutant counts as killed when a test failed or timed out on it; the score is killed over all mutants that ran
(skipped ones excluded). Survivors are listed by `mutmut results` and judged in the README."""

import json
import sys
from pathlib import Path

GOAL = 0.90
STATS = Path("mutants/mutmut-cicd-stats.json")


def main() -> int:
    stats = json.loads(STATS.read_text())
    killed = stats["killed"] + stats["timeout"]
    ran = stats["total"] - stats["skipped"]
    score = killed / ran if ran else 0.0
    print(f"mutants: {ran} ran, {killed} killed, {stats['survived']} survived, {stats['no_tests']} without a test")
    print(f"mutation score: {score:.1%} (goal >= {GOAL:.0%})")
    return 0 if score >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
