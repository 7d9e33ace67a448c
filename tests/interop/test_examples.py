"""Every payload in examples/payloads runs as the README invites: `--print-events --payload-file`.

Each example names the binary that runs it (the custom runner's payload needs the example binary
built around the library); the list must cover the directory, so a new example cannot go untried.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest

from binaries import machine_of

pytestmark = pytest.mark.wove_worker_only

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "payloads"

def approx(a: float, b: float) -> bool:
    return abs(a - b) < 1e-9


def csv_summary(event: Dict[str, Any]) -> bool:
    columns = event["result"]["columns"]
    return (
        event["result"]["rows"] == 240
        and sorted(columns) == ["humidity", "temperature", "wind"]
        and columns["temperature"]["min"] == 8.0 and columns["temperature"]["max"] == 21.9
        and approx(columns["humidity"]["mean"], 66.54583333333333)
    )


# file -> (which binary, what the task_result's result must satisfy)
RUNS: Dict[str, Tuple[str, Callable[[Dict[str, Any]], bool]]] = {
    # Many tasks: each index is run as the README runs it (`--index N`), checked against its input.
    "fan-out-squares.json": ("worker", lambda e: e["result"]["square"] == e["result"]["n"] ** 2
                             and e["task_id"] == f"square-of-{e['result']['n']}"),
    "subprocess-echo.json": ("worker", lambda e: e["result"] == {"greeting": "hello", "input": {"name": "world"}}),
    "python-timedelta.json": ("worker", lambda e: bool(e.get("result_pickle"))),
    "wasm-echo.json": ("worker", lambda e: e["result"] == {"message": "hello from WebAssembly", "n": [1, 2, 3]}),
    "runner-word-count.json": ("worker", lambda e: e["result"] == {"lines": 11, "words": 16, "bytes": 93}),
    "runner-primes.json": ("worker", lambda e: e["result"] == {"below": 100000, "primes": 9592}),
    "csv-summary.json": ("custom_runner", csv_summary),
    "reverse.json": ("custom_runner", lambda e: e["result"] == "desserts"),
}


def binary(which: str) -> str:
    variable = {"worker": "WOVE_WORKER_BIN", "custom_runner": "WOVE_EXAMPLE_RUNNER_BIN"}[which]
    path = os.environ.get(variable)
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"{variable} is not set to an executable (scripts/test builds and sets it)")
    return path


def test_the_worker_under_test_is_the_architecture_asked() -> None:
    # scripts/test runs this file again with the arm64 build under qemu (WOVE_TEST_WORKER_ARCH):
    # a run that quietly took the host's binary would prove nothing about arm64.
    import platform
    header = Path(binary("worker")).read_bytes()[:20]
    expected = os.environ.get("WOVE_TEST_WORKER_ARCH") or platform.machine()
    assert machine_of(header) == expected, (header, expected)


def test_every_example_payload_has_a_run() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.json")) == sorted(RUNS)


def runs_of(name: str) -> List[Tuple[str, List[str]]]:
    """(name, extra flags) for each run of an example: one per task it holds."""
    tasks = json.loads((EXAMPLES / name).read_text()).get("tasks")
    if not tasks:
        return [(name, [])]
    return [(name, ["--index", str(i)]) for i in range(len(tasks))]


@pytest.mark.parametrize("name,flags", [run for name in sorted(RUNS) for run in runs_of(name)])
def test_example_payload_runs(name: str, flags: List[str]) -> None:
    which, check = RUNS[name]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "WOVE_WORKER_PYTHON": sys.executable}
    # As the README runs them: from the repository, with the example runner executables on the runner path.
    env["WOVE_WORKER_RUNNER_PATH"] = str(REPO / "examples" / "runners")
    done = subprocess.run(
        [binary(which), "--print-events", "--payload-file", str(EXAMPLES / name), *flags],
        env=env, capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    final = events[-1]["body"]
    assert final["type"] == "task_result", final
    assert check(final), final
    headers = events[-1]["headers"]
    assert headers["Content-Type"] == "application/json" and headers["Idempotency-Key"] == final["event_id"]
    if name in ("runner-primes.json", "csv-summary.json"):
        progress = [e["body"].get("progress") for e in events if e["body"]["type"] == "heartbeat"]
        assert any(progress), "the runner's progress arrived as heartbeats"
