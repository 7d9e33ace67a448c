"""The benchmark harness times a process by its exit, not by a poll's next tick.

benches/processes.py promises that a measured run is waited for in one blocking waitpid, never
in CPython's polling wait (whose sleeps of 1, 2, 4 ... 50 ms made a 31 ms run read as 64 ms).
These tests catch a poll by the sleeps it makes, so they do not depend on the machine's speed,
and check that the bound on the wait still holds.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benches"))
import processes  # noqa: E402


def sleeps_made(monkeypatch, action) -> list:
    """The durations `action` passed to time.sleep (which CPython's polling wait calls)."""
    made = []
    real = time.sleep

    def recording(seconds):
        made.append(seconds)
        real(seconds)

    monkeypatch.setattr(time, "sleep", recording)
    action()
    monkeypatch.setattr(time, "sleep", real)
    return made


def test_the_harness_waits_without_polling(monkeypatch):
    made = sleeps_made(monkeypatch, lambda: processes.run(["sleep", "0.05"], 30))
    assert made == [], f"the harness polled: slept {made}"


def test_the_detector_sees_the_polling_wait_it_replaced(monkeypatch):
    # The wait the harness used before: with a timeout, CPython polls, and this test sees it.
    made = sleeps_made(monkeypatch, lambda: subprocess.run(["sleep", "0.05"], timeout=30, check=True))
    assert made and made[0] <= 0.001 and max(made) >= 0.016, made


def test_a_run_past_its_bound_is_killed_and_said():
    start = time.monotonic()
    with pytest.raises(SystemExit, match="did not finish within 0.3 s"):
        processes.run(["sleep", "30"], 0.3)
    assert time.monotonic() - start < 10


def test_a_failed_run_is_an_error():
    with pytest.raises(SystemExit, match="false exited 1"):
        processes.run(["false"], 30)
