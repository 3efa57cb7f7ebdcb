"""Checking someone else's tensors against this pass: `check_trace` (`checker.py`) and its
report (`report.py`), reading a user's trace (`user_trace.py`), measuring a difference and its
dtype's tolerance (`difference.py`), replaying a step from the user's own inputs (`replay.py`),
the known mistakes and their causes (`mistakes.py`, RoPE's in `rotations.py`, `causes.py`),
what a search replays where tensors are missing (`hypotheses.py`: one helper's mistake in two
tensors too) and the search (`diagnose.py`), and two traces against each other (`compare.py`).

    from reference.check import check_trace
    report = check_trace({"layers.0.q": q, ...}, checkpoint="tiny", prompt="Hello")
"""

from .checker import Report, assert_matches_reference, check_trace

__all__ = ["Report", "assert_matches_reference", "check_trace"]
