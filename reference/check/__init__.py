"""Checking someone else's tensors against this pass: `check_trace` and its report
(`checker.py`), reading a user's trace (`user_trace.py`), measuring a difference and its dtype's
tolerance (`difference.py`), replaying a step from the user's own inputs (`replay.py`), the
known mistakes and their causes (`mistakes.py`, `causes.py`, `diagnose.py`), and two traces
against each other (`compare.py`).

    from reference.check import check_trace
    report = check_trace({"layers.0.q": q, ...}, checkpoint="tiny", prompt="Hello")
"""

from .checker import Report, assert_matches_reference, check_trace

__all__ = ["Report", "assert_matches_reference", "check_trace"]
