"""A real Wove weave, its tasks routed through Wove's own `kubernetes_jobs` adapter to Kubernetes
v1.37.2's control plane (cluster.py), whose node runs the worker (wove_jobs.py).

Everything the weave sees comes back over Wove's own callback server, so these tests hold the
worker to what Wove 2.0.3 actually accepts, not to a reading of its source.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import hashlib
import random
import sys
import time
from typing import Any, Callable

import cloudpickle
import pytest
from wove import DeliveryTimeoutError, weave

from wove_jobs import JobRun, WoveJobs

# A pod cannot import this test module, so its tasks and types must travel inside the pickle.
# cloudpickle then rebuilds classes in the parent as the very classes defined here, which is
# what lets the type checks below use `is`.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

# Wove's own bound on each task, well inside the per-test timeout: a worker that never answers
# turns into a DeliveryTimeoutError instead of a hung weave.
DELIVERY_TIMEOUT = 20.0
EXIT_OK = 0
EXIT_TASK_FAILED = 3


def run_in_job(environment: str, func: Callable[..., Any], **options: Any) -> Any:
    """Run `func` as the only task of a weave, in `environment`, and return its value.

    A failed task does not make the weave raise: Wove stores the exception and raises it when
    the result is read, which is what the last line does.
    """
    options.setdefault("delivery_timeout", DELIVERY_TIMEOUT)
    with weave() as w:
        w.do(environment=environment, **options)(func)
    return w.result[func.__name__]


def assert_exit_code(job: JobRun, expected: int) -> None:
    code = job.wait(timeout=15)
    assert code == expected, f"worker exited {code}, expected {expected}; stderr tail:\n{job.tail('stderr').decode(errors='replace')}"


# -- tasks (module level, shipped by value) -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Reading:
    sensor: str
    value: decimal.Decimal
    taken_at: datetime.datetime


class QuotaExceeded(RuntimeError):
    """A user exception with state beyond its message."""


def json_result() -> dict:
    return {"answer": 42, "items": [1, "two", None, True, 2.5], "nested": {"empty": [], "text": "héllo"}}


def python_only_result() -> dict:
    taken_at = datetime.datetime(2024, 2, 29, 12, 30, tzinfo=datetime.timezone.utc)
    return {
        "reading": Reading("t1", decimal.Decimal("21.50"), taken_at),
        "tags": {"a", "b"},
        "span": datetime.timedelta(minutes=90),
        "raw": b"\x00\xff",
        "pair": (1, 2),
    }


async def async_result() -> str:
    await asyncio.sleep(0.05)
    return "awaited"


def raise_custom() -> None:
    error = QuotaExceeded("quota of 3 jobs exceeded")
    error.limit = 3
    raise error


def raise_value_error() -> None:
    raise ValueError("bad input: -1")


HEARTBEAT_SECONDS = 1.5
# Three heartbeat windows: only a worker that reports while the task runs keeps it alive.
SLOW_TASK_SECONDS = 3 * HEARTBEAT_SECONDS


def slow_task() -> str:
    time.sleep(SLOW_TASK_SECONDS)
    return "outlived the heartbeat window"


LARGE_RESULT_BYTES = 5 * 1024 * 1024


def large_blob() -> bytes:
    # Seeded and random, so it cannot compress away anywhere on the path.
    return random.Random(1234).randbytes(LARGE_RESULT_BYTES)


CHATTY_MIB = 20


def chatty_task() -> str:
    chunk = ("x" * 1023 + "\n") * 1024  # 1 MiB of lines
    for _ in range(CHATTY_MIB):
        sys.stdout.write(chunk)
        sys.stderr.write(chunk)
    sys.stdout.write("stdout-end-marker\n")
    sys.stderr.write("stderr-end-marker\n")
    return "still returned"


# -- results --------------------------------------------------------------------------------


def test_json_result(k8s_environment: str, kubelet: WoveJobs) -> None:
    assert run_in_job(k8s_environment, json_result) == json_result()
    assert_exit_code(kubelet.only_job(), EXIT_OK)


def test_python_only_result_keeps_types(k8s_environment: str, kubelet: WoveJobs) -> None:
    result = run_in_job(k8s_environment, python_only_result)

    assert result == python_only_result()
    assert type(result["reading"]) is Reading
    assert type(result["reading"].value) is decimal.Decimal
    assert result["reading"].taken_at.tzinfo == datetime.timezone.utc
    assert type(result["tags"]) is set
    assert type(result["pair"]) is tuple
    assert_exit_code(kubelet.only_job(), EXIT_OK)


def test_async_callable(k8s_environment: str, kubelet: WoveJobs) -> None:
    assert run_in_job(k8s_environment, async_result) == "awaited"
    assert_exit_code(kubelet.only_job(), EXIT_OK)


def test_large_result(k8s_environment: str, kubelet: WoveJobs) -> None:
    result = run_in_job(k8s_environment, large_blob)

    assert type(result) is bytes
    assert len(result) == LARGE_RESULT_BYTES
    assert hashlib.sha256(result).hexdigest() == hashlib.sha256(large_blob()).hexdigest()
    assert_exit_code(kubelet.only_job(), EXIT_OK)


def test_chatty_task_still_returns(k8s_environment: str, kubelet: WoveJobs) -> None:
    assert run_in_job(k8s_environment, chatty_task) == "still returned"

    job = kubelet.only_job()
    assert_exit_code(job, EXIT_OK)
    # The task's output reaches the container's log in full and in order (what `kubectl logs`
    # would show), rather than being dropped or blocking on a full pipe.
    for stream in ("stdout", "stderr"):
        assert len(job.output(stream)) >= CHATTY_MIB * 1024 * 1024, f"{stream} lost output"
        assert f"{stream}-end-marker".encode() in job.tail(stream), f"{stream} is missing its last line"


# -- what a callable observes (docs/runners.md, the `python` runner) ----------------------------------
#
# The worker calls a plain function with no event loop running, as a weave does on its own
# machine (in a thread of Wove's pool); only what is awaitable gets a loop. Wove's worker calls
# every callable inside a running loop instead, so a plain function sees one there.


class Later:
    """An awaitable that is not a coroutine."""

    def __await__(self):
        yield from asyncio.sleep(0.01).__await__()
        return "awaited a custom awaitable"


def returns_coroutine() -> Any:
    return async_result()


def returns_custom_awaitable() -> Any:
    return Later()


def loop_state() -> str:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return "no running loop"
    return "running loop"


def requires_running_loop() -> str:
    asyncio.get_running_loop()
    return "had a loop"


async def async_loop_state() -> str:
    asyncio.get_running_loop()
    return "running loop"


def run_locally(func: Callable[..., Any]) -> Any:
    """The same callable in a weave on this machine: Wove's own semantics to compare with."""
    with weave() as w:
        w.do(func)
    return w.result[func.__name__]


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        pytest.param(returns_coroutine, "awaited", id="sync-returning-coroutine"),
        pytest.param(returns_custom_awaitable, "awaited a custom awaitable", id="sync-returning-awaitable"),
        pytest.param(async_loop_state, "running loop", id="async-def-has-a-loop"),
    ],
)
def test_what_is_awaitable_is_awaited(
    k8s_environment: str, kubelet: WoveJobs, func: Callable[..., Any], expected: str
) -> None:
    assert run_in_job(k8s_environment, func) == expected
    assert_exit_code(kubelet.only_job(), EXIT_OK)


def test_a_plain_function_runs_without_an_event_loop_as_in_a_local_weave(
    k8s_environment: str, kubelet: WoveJobs, reference_mode: bool
) -> None:
    remote = run_in_job(k8s_environment, loop_state)

    if reference_mode:
        # Wove's worker calls it on its event loop's thread: the one place the two differ.
        assert remote == "running loop"
        return
    assert remote == run_locally(loop_state) == "no running loop"
    assert_exit_code(kubelet.only_job(), EXIT_OK)


def cancels_itself() -> None:
    raise asyncio.CancelledError()


def test_a_task_that_raises_cancelled_error_is_cancelled(k8s_environment: str, kubelet: WoveJobs) -> None:
    with pytest.raises(asyncio.CancelledError):
        run_in_job(k8s_environment, cancels_itself)
    kubelet.only_job().wait(timeout=15)


@pytest.mark.wove_worker_only
def test_a_plain_function_that_needs_a_running_loop_fails_as_in_a_local_weave(
    k8s_environment: str, kubelet: WoveJobs
) -> None:
    with pytest.raises(RuntimeError, match="no running event loop"):
        run_locally(requires_running_loop)
    with pytest.raises(RuntimeError, match="no running event loop"):
        run_in_job(k8s_environment, requires_running_loop)
    assert_exit_code(kubelet.only_job(), EXIT_TASK_FAILED)


# -- errors ---------------------------------------------------------------------------------


def test_custom_exception_is_preserved(k8s_environment: str) -> None:
    with pytest.raises(QuotaExceeded, match="^quota of 3 jobs exceeded$") as caught:
        run_in_job(k8s_environment, raise_custom)

    assert type(caught.value) is QuotaExceeded
    assert caught.value.limit == 3


def test_builtin_exception_is_preserved(k8s_environment: str) -> None:
    with pytest.raises(ValueError, match=r"^bad input: -1$") as caught:
        run_in_job(k8s_environment, raise_value_error)

    assert type(caught.value) is ValueError


@pytest.mark.wove_worker_only
def test_exit_code_when_task_fails(k8s_environment: str, kubelet: WoveJobs) -> None:
    # Wove's own worker exits 0 here too: the failure is only visible through the event.
    with pytest.raises(ValueError):
        run_in_job(k8s_environment, raise_value_error)

    assert_exit_code(kubelet.only_job(), EXIT_TASK_FAILED)


# -- delivery -------------------------------------------------------------------------------


def test_heartbeats_keep_a_long_task_alive(
    k8s_environment: str, kubelet: WoveJobs, reference_mode: bool
) -> None:
    started = time.monotonic()
    if reference_mode:
        # Wove's own worker sends task_started and then nothing until the result, so Wove gives
        # up one heartbeat window in and deletes the Job. Seeing that fail is what proves this
        # test can fail.
        with pytest.raises(DeliveryTimeoutError, match="heartbeat"):
            run_in_job(k8s_environment, slow_task, delivery_heartbeat_seconds=HEARTBEAT_SECONDS)
        assert time.monotonic() - started < SLOW_TASK_SECONDS
        job = kubelet.only_job()
        assert job.deleted
        assert job.wait(timeout=15) != EXIT_OK
        return

    result = run_in_job(k8s_environment, slow_task, delivery_heartbeat_seconds=HEARTBEAT_SECONDS)

    assert result == "outlived the heartbeat window"
    assert time.monotonic() - started >= SLOW_TASK_SECONDS
    job = kubelet.only_job()
    assert not job.deleted
    assert_exit_code(job, EXIT_OK)


@pytest.mark.wove_worker_only
@pytest.mark.parametrize(
    "signing_env",
    [
        pytest.param(
            {"WOVE_WORKER_SIGNING_SCHEME": "wove-v1", "WOVE_WORKER_SIGNING_SECRET": "runtime-test-secret"},
            id="wove-v1",
        ),
        pytest.param(
            {
                "WOVE_WORKER_SIGNING_SCHEME": "standard-webhooks",
                "WOVE_WORKER_SIGNING_SECRET": "whsec_cnVudGltZS10ZXN0LXNlY3JldC1rZXk=",
            },
            id="standard-webhooks",
        ),
    ],
)
def test_signed_events_are_accepted_by_plain_wove(
    k8s_environment: str, kubelet: WoveJobs, signing_env: dict
) -> None:
    # Signature headers and the extra event keys are for receivers that check them; Wove's
    # receiver checks nothing and must still take every event.
    kubelet.base_env.update(signing_env)

    assert run_in_job(k8s_environment, json_result) == json_result()
    assert_exit_code(kubelet.only_job(), EXIT_OK)
