"""tools/mutation_score: the exact score when every mutant ran, otherwise an estimate from a uniform sample of
those not run, whose interval must clear the goal."""

import pytest

from tools.mutation_score import no_fault, summary, wilson


def test_the_wilson_interval_matches_the_published_one_for_50_of_100():
    assert wilson(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    low, high = wilson(10, 10)  # never beyond certainty, but not certain either
    assert high == pytest.approx(1.0) and low == pytest.approx(0.7225, abs=1e-4)


def test_when_every_mutant_ran_the_score_is_exact():
    lines, shown = summary({f"m{n}": "killed" for n in range(9)} | {"m9": "survived"}, set())
    assert lines[-1] == "mutation score: 90.0% (goal >= 90%)" and shown
    _, shown = summary({f"m{n}": "killed" for n in range(8)} | {"m8": "survived", "m9": "timeout"}, set())
    assert shown  # a timeout is a kill


def test_without_a_sample_the_mutants_not_run_leave_the_goal_unshown():
    run = {f"m{n}": "killed" for n in range(10)}
    lines, shown = summary(run | {"late": "not checked"}, set())
    assert not shown and "floor, counting every one not run a survivor: 90.9%" in lines[1]


def test_with_a_sample_all_mutants_are_estimated_and_the_whole_interval_must_clear_the_goal():
    run = {f"run{n}": "killed" for n in range(100)}
    not_run = {f"late{n}": "not checked" for n in range(100)}
    drawn = {f"late{n}": "killed" for n in range(50)}  # a sample of half of those not run: all killed
    lines, shown = summary(run | not_run | drawn, set(drawn))
    assert "sample of those not run: 50 ran, 50 killed (100.0%" in lines[2]
    assert lines[3].startswith("mutation score, estimated: 100.0% (95 % interval 96.4% to 100.0%")
    assert shown
    drawn |= {f"late{n}": "survived" for n in range(10)}
    lines, shown = summary(run | not_run | drawn, set(drawn))
    assert lines[3].startswith("mutation score, estimated: 90.0% (95 % interval 83.")  # the goal, but not surely
    assert not shown


def test_survivors_judged_no_fault_are_left_out_and_only_they():
    run = {f"m{n}": "killed" for n in range(9)} | {"equivalent": "survived", "gap": "survived"}
    lines, shown = summary(run, set(), frozenset({"equivalent", "m0"}))  # a killed mutant stays killed
    assert lines[-1] == "mutation score: 90.0% (goal >= 90%)" and shown
    assert "left out: 1 run, 0 of the sample" in lines[1]
    _, shown = summary(run, set())
    assert not shown  # 9 of 11


def test_the_samples_share_of_no_fault_survivors_is_left_out_of_those_not_run():
    run = {f"run{n}": "killed" for n in range(90)} | {f"gap{n}": "survived" for n in range(10)}
    not_run = {f"late{n}": "not checked" for n in range(100)}
    drawn = {f"late{n}": "killed" for n in range(40)} | {f"late{n}": "survived" for n in range(40, 50)}
    no_fault = frozenset(f"late{n}" for n in range(40, 50))  # every survivor of the sample: no fault
    lines, _ = summary(run | not_run | drawn, set(drawn), no_fault)
    # 100 run (90 killed) and 80 of the 100 not run that may hold a fault, all estimated killed: 170 of 180
    assert lines[-1].startswith("mutation score, estimated: 94.4% (95 % interval ")
    assert "sample of those not run: 40 ran, 40 killed (100.0%" in lines[-2]


def test_only_verdicts_of_no_fault_are_read_as_such(tmp_path):
    judged = tmp_path / "judged.tsv"
    judged.write_text("a\tEQUIVALENT\tsame\nb\tGAP\tuntested\nc\tUNREACHABLE\tno caller\nd\tUNPROMISED\twording\n")
    assert no_fault(judged) == {"a", "c"}


def test_a_sample_run_alone_is_estimated_from_the_sample():
    """Nothing ran outside the sample but a survivor judged no fault: the estimate is the sample's."""
    not_run = {f"late{n}": "not checked" for n in range(100)}
    drawn = {f"late{n}": "killed" for n in range(47)} | {f"late{n}": "survived" for n in range(47, 50)}
    lines, shown = summary(not_run | drawn | {"judged": "survived"}, set(drawn), frozenset({"judged"}))
    assert not any(line.startswith("score of those run") for line in lines)
    assert any(line.startswith("mutation score, estimated: 94.0%") for line in lines), lines
    assert not shown
