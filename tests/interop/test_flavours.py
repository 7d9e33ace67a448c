"""The smaller flavours as they ship. The wasm-runtime flavour, the static musl build of
scripts/build-static: held to its size goal, given a module the default flavour precompiled (what
docs/runners.md tells its users to do), and refusing a module it cannot compile with an event
that says how to fix it. The no-wasm flavour: held to its size goal, running a subprocess task,
and refusing a WebAssembly one with an event that names the runners it has. Every run reports
to a real loopback receiver.

scripts/test also runs the signature and payload-reference suites with the wasm-runtime binary
as WOVE_WORKER_BIN (a libc of its own: its HTTP, TLS, signing and S3 client are its own build),
and the signature suite with the no-wasm one (its own build of HTTP, TLS and signing).

Needs WOVE_TEST_WASM_RUNTIME_BIN (the stripped wasm-runtime flavour), WOVE_WORKER_STATIC_BIN
(the default flavour, which precompiles) and WOVE_TEST_NO_WASM_BIN (the stripped no-wasm
flavour); skipped without them unless WOVE_TEST_REQUIRE_FLAVOURS=1 (CI).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import List, Tuple

import pytest

from binaries import described, is_static
from receiver import EventReceiver

pytestmark = pytest.mark.wove_worker_only

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
SIZE_GOAL = 8 * MIB  # README's flavour table and BENCHMARKS.md
NO_WASM_SIZE_GOAL = 5 * MIB  # the same table
EXIT_OK, EXIT_TASK_FAILED, EXIT_BAD_PAYLOAD = 0, 3, 65
TIMEOUT = 60


@pytest.fixture(scope="module")
def flavours() -> Tuple[Path, Path]:
    """(the wasm-runtime flavour, the default flavour), both static and stripped."""
    small, default = os.environ.get("WOVE_TEST_WASM_RUNTIME_BIN"), os.environ.get("WOVE_WORKER_STATIC_BIN")
    if not small or not default:
        if os.environ.get("WOVE_TEST_REQUIRE_FLAVOURS") == "1":
            pytest.fail("WOVE_TEST_WASM_RUNTIME_BIN and WOVE_WORKER_STATIC_BIN must name the static builds "
                        "(scripts/build-static --flavour wasm-runtime / default; scripts/test sets them)")
        pytest.skip("flavour tests skipped: WOVE_TEST_WASM_RUNTIME_BIN or WOVE_WORKER_STATIC_BIN is not set")
    return Path(small), Path(default)


@pytest.fixture(scope="module")
def no_wasm() -> Path:
    """The no-wasm flavour, static and stripped."""
    binary = os.environ.get("WOVE_TEST_NO_WASM_BIN")
    if not binary:
        if os.environ.get("WOVE_TEST_REQUIRE_FLAVOURS") == "1":
            pytest.fail("WOVE_TEST_NO_WASM_BIN must name the static build "
                        "(scripts/build-static --flavour no-wasm; scripts/test sets it)")
        pytest.skip("no-wasm flavour tests skipped: WOVE_TEST_NO_WASM_BIN is not set")
    return Path(binary)


def echo_module() -> bytes:
    example = json.loads((REPO / "examples" / "payloads" / "wasm-echo.json").read_text())
    return base64.b64decode(example["task"]["module"]["base64"])


def run(worker: Path, receiver: EventReceiver, module: dict, env: dict) -> Tuple[subprocess.CompletedProcess, List[dict]]:
    return run_task(worker, receiver, {"runner": "wasm", "module": module,
                                       "input": {"message": "from the small flavour", "n": [4, 5]},
                                       "limits": {"timeout_seconds": 30}}, env)


def run_task(worker: Path, receiver: EventReceiver, task: dict, env: dict) -> Tuple[subprocess.CompletedProcess, List[dict]]:
    payload = {"version": 1, "callback_url": f"{receiver.base_url}/wove/events/flavour-token",
               "run_id": "flavours:" + "0" * 32, "task_id": "echo", "task": task}
    done = subprocess.run([str(worker)], env={"PATH": "/usr/bin:/bin", "WOVE_BACKEND_PAYLOAD": base64.b64encode(json.dumps(payload).encode()).decode(), **env},
                          capture_output=True, text=True, timeout=TIMEOUT)
    return done, receiver.events()


def final_only(events: List[dict]) -> List[str]:
    """The events' types without `task_started`, which the final event supersedes when the task
    ends before it was sent (docs/events.md); one that came must have come first."""
    types = [e["type"] for e in events]
    assert "task_started" not in types[1:], types
    return [t for t in types if t != "task_started"]


def runners_of(worker: Path) -> set:
    listed = subprocess.run([str(worker), "runners"], capture_output=True, text=True, timeout=TIMEOUT)
    assert listed.returncode == EXIT_OK, listed.stderr
    return {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}


def test_it_is_static_within_its_size_goal_and_has_the_wasm_runner(flavours) -> None:
    small, _ = flavours
    size = small.stat().st_size
    assert size <= SIZE_GOAL, f"{small}: {size} bytes, over the flavour's goal of {SIZE_GOAL} by {size - SIZE_GOAL}"
    description = described(small)
    assert is_static(description) and ", stripped" in description, description
    assert runners_of(small) >= {"wasm", "subprocess", "python"}


def test_a_module_the_default_flavour_precompiled_runs_in_it(flavours, tmp_path: Path, receiver: EventReceiver) -> None:
    small, default = flavours
    store = tmp_path / "precompiled"
    store.mkdir()
    (tmp_path / "echo.wasm").write_bytes(echo_module())
    made = subprocess.run([str(default), "precompile", str(tmp_path / "echo.wasm"), str(store / "echo.cwasm")],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert made.returncode == EXIT_OK, made.stderr
    # The worker trusts a .cwasm only read-only, in a directory it cannot write.
    (store / "echo.cwasm").chmod(0o444)
    store.chmod(0o555)
    done, events = run(small, receiver, {"path": str(store / "echo.cwasm")},
                       {"WOVE_WORKER_PRECOMPILED_DIR": str(store)})
    assert done.returncode == EXIT_OK, done.stderr
    assert final_only(events) == ["task_result"], events
    assert events[-1]["result"] == {"message": "from the small flavour", "n": [4, 5]}


def test_a_module_to_compile_is_refused_with_how_to_fix_it(flavours, receiver: EventReceiver) -> None:
    small, _ = flavours
    done, events = run(small, receiver, {"base64": base64.b64encode(echo_module()).decode()}, {})
    assert done.returncode == EXIT_TASK_FAILED, done.stderr
    assert final_only(events) == ["task_error"], events
    error = events[-1]["error"]
    assert error["kind"] == "NoCompiler" and "wove-worker precompile" in error["message"], error


def test_the_no_wasm_flavour_is_static_within_its_size_goal_without_the_wasm_runner(no_wasm) -> None:
    size = no_wasm.stat().st_size
    assert size <= NO_WASM_SIZE_GOAL, \
        f"{no_wasm}: {size} bytes, over the flavour's goal of {NO_WASM_SIZE_GOAL} by {size - NO_WASM_SIZE_GOAL}"
    description = described(no_wasm)
    assert is_static(description) and ", stripped" in description, description
    # The flavour it says it is, not a larger one under its name.
    assert runners_of(no_wasm) == {"python", "subprocess"}


def test_the_no_wasm_flavour_runs_a_subprocess_task(no_wasm, receiver: EventReceiver) -> None:
    example = json.loads((REPO / "examples" / "payloads" / "subprocess-echo.json").read_text())
    done, events = run_task(no_wasm, receiver, example["task"], {})
    assert done.returncode == EXIT_OK, done.stderr
    assert final_only(events) == ["task_result"], events
    assert events[-1]["result"] == {"greeting": "hello", "input": {"name": "world"}}


def test_the_no_wasm_flavour_refuses_a_module_naming_the_runners_it_has(no_wasm, receiver: EventReceiver) -> None:
    done, events = run(no_wasm, receiver, {"base64": base64.b64encode(echo_module()).decode()}, {})
    assert done.returncode == EXIT_BAD_PAYLOAD, done.stderr
    assert final_only(events) == ["task_error"], events
    error = events[-1]["error"]
    assert error["kind"] == "UnknownRunner" and "built-in runners: python, subprocess" in error["message"], error
