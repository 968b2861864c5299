"""Many data cases in one test: every case is checked, and the one assertion lists each case that fails."""

from collections.abc import Callable, Iterable
from typing import TypeVar

Case = TypeVar("Case")


def assert_holds_for_each(cases: Iterable[Case], holds: Callable[[Case], object], claim: str) -> None:
    """Asserts ``holds(case)`` is true for every case, naming in one message each case for which it is not."""
    checked = list(cases)
    failing = [case for case in checked if not holds(case)]
    listed = "\n".join(f"  {case!r}" for case in failing)
    assert not failing, f"{len(failing)} of {len(checked)} cases fail: {claim}:\n{listed}"
