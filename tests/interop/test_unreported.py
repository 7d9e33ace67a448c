"""Failures outside the worker reach the weave at once, with the platform's reason.

Wove's default `delivery_timeout` is none: a Job whose pod never starts, or whose container dies
before its worker reports, would leave the weave waiting forever. `wove-submit ... wait --report`
(which the snippet runs in the background for every submission) posts the task's `task_error`
itself. Here on Kubernetes v1.37.2's own control plane (the real scheduler says Unschedulable,
the node agent says ErrImagePull, CreateContainerConfigError, OOMKilled) and on moto's Batch with
the compute stand-in; through real weaves, and through the CLI with a loopback receiver that
verifies the signature. Never twice: a task the worker reported (or a cancel) gets nothing more.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import cloudpickle
import pytest
import wove
from wove import NetworkExecutorSecurity, weave
from wove.environment import EnvironmentExecutionError

from batch_cloud import DEFINITION, QUEUE, BatchCloud
from cluster import JOBS, Namespace, wait_until
from receiver import EventReceiver
from test_submit_kubernetes import ABSENT_IMAGE, callback, payload, run, submit, submitted

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "crates/wove-submit/python"))
from wove_submit import BatchJobs, KubernetesJobs  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])
pytestmark = pytest.mark.wove_worker_only

ENVIRONMENT = "k8s-unreported"
# The node agent's stand-in for the OOM killer ending the whole container, worker included.
OOM_KILL_AFTER = "cluster.wove.test/oom-kill-after"
# Within this, the weave must know: the bound.
PROMPT = 30.0
SECRET = "unreported-s3cr3t"


def sleep_then(seconds: float, value: str) -> str:
    time.sleep(seconds)
    return value


def fail_on_purpose() -> None:
    raise ValueError("the task's own failure")


@pytest.fixture
def environment(cluster: Namespace, submit_bin: str) -> Iterator[Any]:
    """Configure Wove's kubernetes_jobs adapter through the snippet; yields a function taking
    the snippet's options, which returns the KubernetesJobs in use."""
    made: List[KubernetesJobs] = []

    def configure(*, image: str = "local", options: List[str] = (), report_options: List[str] = ()) -> KubernetesJobs:
        jobs = KubernetesJobs(image=image, program=submit_bin, kubeconfig=str(cluster.kubeconfig),
                              namespace=cluster.name, options=["--shutdown-budget", "3", *options],
                              report_options=list(report_options))
        wove.config(environments={ENVIRONMENT: {"executor": "kubernetes_jobs",
                                                "executor_config": jobs.executor_config(callback_host="127.0.0.1")}})
        made.append(jobs)
        return jobs

    try:
        yield configure
    finally:
        wove.config(environments={ENVIRONMENT: None})
        for jobs in made:
            for watcher in jobs.watchers.values():
                if watcher.running:
                    watcher.process.kill()


def raised_by_the_platform(task: Any, *, timeout: float = 120) -> tuple[EnvironmentExecutionError, float]:
    """Run `task` in a weave; the platform error it raises, and how long the weave took to know."""
    started = time.monotonic()
    with weave() as w:
        w.do(environment=ENVIRONMENT, delivery_timeout=timeout)(task)
    with pytest.raises(EnvironmentExecutionError) as raised:
        w.result[task.__name__]
    return raised.value, time.monotonic() - started


def only_job(jobs: KubernetesJobs) -> str:
    """The name of the one Job the snippet submitted (and watched)."""
    names = [name for (_, name) in jobs.watchers]
    assert len(names) == 1, names
    return names[0]


def test_an_image_the_node_does_not_have_raises_with_the_pull_error(environment: Any, cluster: Namespace) -> None:
    jobs = environment(image=ABSENT_IMAGE)

    def pull_me() -> str:
        return "never runs"

    error, took = raised_by_the_platform(pull_me)
    assert took < PROMPT, took
    assert error.payload["kind"] == "ImagePullFailed" and error.payload["source"] == "platform", error.payload
    assert ABSENT_IMAGE in str(error) and "not on this node" in str(error), str(error)  # the pull error
    assert error.payload["reason"] in ("ErrImagePull", "ImagePullBackOff"), error.payload
    # Ended, so that it cannot start later and report a second time.
    name = only_job(jobs)
    assert any(r.method == "DELETE" and r.path.endswith(f"/jobs/{name}") for r in cluster.requests())
    wait_until(lambda: cluster.get(JOBS, name) is None, 30, "the Job deleted after the report")


def test_a_missing_signing_secret_raises_with_its_name(environment: Any) -> None:
    environment(options=["--signing-secret", "no-such-signing-secret"])

    def signed() -> str:
        return "never runs"

    error, took = raised_by_the_platform(signed)
    assert took < PROMPT, took
    assert error.payload["kind"] == "ContainerConfigError", error.payload
    assert 'secret "no-such-signing-secret" not found' in str(error), str(error)


def test_requests_larger_than_the_node_raise_after_the_pending_timeout(environment: Any) -> None:
    environment(options=["--memory", "64Ti"], report_options=["--pending-timeout", "3"])

    def huge() -> str:
        return "never runs"

    error, took = raised_by_the_platform(huge)
    assert 3 <= took < PROMPT, took
    assert error.payload["kind"] == "Unschedulable", error.payload
    assert "Insufficient memory" in str(error) and "--pending-timeout" in str(error), str(error)


def test_a_worker_killed_as_the_oom_killer_would_raises_out_of_memory(environment: Any, cluster: Namespace) -> None:
    jobs = environment(options=["--annotation", f"{OOM_KILL_AFTER}=2", "--memory-limit", "256Mi"])

    def hungry() -> str:
        return sleep_then(30, "killed before this")

    error, took = raised_by_the_platform(hungry)
    assert took < PROMPT, took
    assert error.payload["kind"] == "OutOfMemory" and error.payload["reason"] == "OOMKilled", error.payload
    assert "256Mi" in str(error) and error.payload["exit_code"] == 137, error.payload
    # The Job failed by itself (backoffLimit 0): it stays, for whoever looks.
    job = cluster.get(JOBS, only_job(jobs))
    assert job is not None and any(c["reason"] == "BackoffLimitExceeded" for c in job["status"]["conditions"]), job


def test_a_task_that_fails_by_itself_raises_its_own_error(environment: Any) -> None:
    """The worker's task_error arrives first and alone: were the watcher's to come before it,
    the weave would raise EnvironmentExecutionError, not the task's own ValueError. (The CLI
    test below counts the events a receiver gets.)"""
    jobs = environment()
    with weave() as w:
        w.do(environment=ENVIRONMENT, delivery_timeout=60)(fail_on_purpose)
    with pytest.raises(ValueError, match="the task's own failure"):
        w.result["fail_on_purpose"]
    (watcher,) = jobs.watchers.values()
    assert watcher.result is None or watcher.result["reported"] == [], watcher.result


def test_a_cancelled_task_gets_nothing_from_the_watcher(environment: Any, cluster: Namespace) -> None:
    jobs = environment()

    def sleeps() -> str:
        return sleep_then(60, "too late")

    with weave() as w:
        w.do(environment=ENVIRONMENT, delivery_timeout=8)(sleeps)
    with pytest.raises(Exception) as raised:
        w.result["sleeps"]
    assert not isinstance(raised.value, EnvironmentExecutionError), raised.value
    deletes = wait_until(lambda: [r for r in cluster.requests() if r.method == "DELETE"], 20, "Wove's cancel")
    name = deletes[0].path.rsplit("/", 1)[-1]
    watcher = jobs.watchers[(cluster.name, name)]
    # Stopped by the cancel before the cancel was sent: it reported nothing, and deleted nothing.
    assert watcher.process.returncode is not None, "the watcher outlived Wove's cancel"
    assert watcher.result is None, watcher.result
    assert len(deletes) == 1, [r.path for r in deletes]


# -- the CLI, with a loopback receiver that verifies the signature -----------------------------


def report_env(cluster: Namespace) -> Dict[str, str]:
    from test_submit_kubernetes import submit_env
    return dict(submit_env(cluster), WOVE_WORKER_SIGNING_SECRET=SECRET)


def run_reporting(submit_bin: str, cluster: Namespace, *args: str, stdin: str = "", timeout: float = 90):
    return subprocess.run([submit_bin, "kubernetes", *args], env=report_env(cluster), input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def verified(receiver: EventReceiver) -> List[Dict[str, Any]]:
    """Every task_error the receiver got, each checked with Wove's own verifier."""
    verifier = NetworkExecutorSecurity(mode="signed", secret=SECRET)
    errors = []
    for r in receiver.received():
        if r.event()["type"] == "task_error":
            verifier.verify_headers(headers=r.headers, transport="http", target=r.path, body=r.body)
            errors.append(r.event())
    return errors


# Each failure that keeps a pod from ever starting: the submit flags that cause it, the kind, a
# phrase of the platform's own message the report must quote.
NEVER_STARTS = {
    "image": (["--image", ABSENT_IMAGE], "ImagePullFailed", ABSENT_IMAGE),
    "secret": (["--image", "local", "--signing-secret", "no-such-signing-secret"], "ContainerConfigError",
               'secret "no-such-signing-secret" not found'),
    "room": (["--image", "local", "--memory", "64Ti", "--pending-timeout", "2"], "Unschedulable",
             "Insufficient memory"),
}


@pytest.mark.parametrize("case", sorted(NEVER_STARTS))
def test_the_cli_reports_a_pod_that_never_starts_once_signed_as_the_worker_signs(
    case: str, submit_bin: str, cluster: Namespace, receiver: EventReceiver
) -> None:
    flags, kind, quoted = NEVER_STARTS[case]
    done = run_reporting(submit_bin, cluster, "submit", "--payload-file", "-", *flags, "--wait",
                         "--report", "--timeout", "60", "--output", "json", stdin=payload(callback(receiver)))
    assert done.returncode == 79, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["ended_job"] is True and len(out["reported"]) == 1, out
    (error,) = verified(receiver)
    assert error["error"]["kind"] == kind and quoted in error["error"]["message"], error
    assert error["error"]["source"] == "platform", error
    assert error["event_id"] == out["reported"][0]["event_id"] and error["meta"]["worker"].startswith("wove-submit/")
    assert error["run_id"] == json.loads(payload())["run_id"]
    with pytest.raises(Exception):
        r = next(r for r in receiver.received() if r.event()["type"] == "task_error")
        NetworkExecutorSecurity(mode="signed", secret="other").verify_headers(
            headers=r.headers, transport="http", target=r.path, body=r.body)


def test_two_watchers_of_one_job_send_the_same_event_id(
    submit_bin: str, cluster: Namespace, receiver: EventReceiver
) -> None:
    """The OOM-killed Job stays after it failed: a second `wait --report` finds the same failure,
    reads the payload back from the Job, and sends the same id, which a receiver can drop."""
    task = {"runner": "subprocess", "program": "sleep", "args": ["30"]}
    name = submitted(submit_bin, cluster, payload(callback(receiver), task=task),
                     "--annotation", f"{OOM_KILL_AFTER}=1", "--sensitive")
    first = run_reporting(submit_bin, cluster, "wait", name, "--report", "--timeout", "60", "--output", "json")
    second = run_reporting(submit_bin, cluster, "wait", name, "--report", "--timeout", "60", "--output", "json")
    for done in (first, second):
        assert done.returncode == 137, done.stdout + done.stderr
    errors = verified(receiver)
    assert [e["error"]["kind"] for e in errors] == ["OutOfMemory", "OutOfMemory"], errors
    assert errors[0]["event_id"] == errors[1]["event_id"], errors
    assert json.loads(second.stdout)["reported"][0]["event_id"] == errors[0]["event_id"]


def test_the_cli_sends_nothing_for_a_task_the_worker_reported(
    submit_bin: str, cluster: Namespace, receiver: EventReceiver
) -> None:
    task = {"runner": "subprocess", "program": "sh", "args": ["-c", "exit 9"]}
    done = run_reporting(submit_bin, cluster, "submit", "--payload-file", "-", "--image", "local", "--wait",
                         "--report", "--timeout", "60", "--output", "json",
                         stdin=payload(callback(receiver), task=task))
    assert done.returncode == 3, done.stdout + done.stderr
    assert json.loads(done.stdout)["reported"] == []
    errors = [e for e in receiver.events() if e["type"] == "task_error"]
    assert len(errors) == 1 and errors[0]["meta"]["worker"].startswith("wove-worker/"), errors


def test_an_undeliverable_report_is_its_own_exit_code(submit_bin: str, cluster: Namespace) -> None:
    unreachable = "http://127.0.0.1:9/wove/events/token"
    done = run_reporting(submit_bin, cluster, "submit", "--payload-file", "-", "--image", ABSENT_IMAGE, "--wait",
                         "--report", "--delivery-budget", "2", "--timeout", "60", "--output", "json",
                         stdin=payload(unreachable))
    assert done.returncode == 74, done.stdout + done.stderr
    (report,) = json.loads(done.stdout)["reported"]
    assert report["delivered"] is False and "token" not in done.stdout + done.stderr, done.stdout + done.stderr


# -- AWS Batch: moto with the compute stand-in ---------------------------------------------------

BATCH_ENVIRONMENT = "batch-unreported"


@pytest.fixture
def batch_environment(batch_cloud: BatchCloud, submit_bin: str) -> Iterator[Any]:
    def configure(*, job_definition: str = DEFINITION, report_options: List[str] = ()) -> BatchJobs:
        jobs = BatchJobs(job_queue=QUEUE, job_definition=job_definition, program=submit_bin,
                         env=dict(batch_cloud.env(), PATH="/usr/bin:/bin"),
                         options=["--poll", "0.5"], report_options=["--poll", "0.5", *report_options])
        wove.config(environments={BATCH_ENVIRONMENT: {"executor": "aws_batch",
                                                      "executor_config": jobs.executor_config(callback_host="127.0.0.1")}})
        return jobs

    try:
        yield configure
    finally:
        wove.config(environments={BATCH_ENVIRONMENT: None})


def batch_raises(task: Any) -> tuple[EnvironmentExecutionError, float]:
    started = time.monotonic()
    with weave() as w:
        w.do(environment=BATCH_ENVIRONMENT, delivery_timeout=120)(task)
    with pytest.raises(EnvironmentExecutionError) as raised:
        w.result[task.__name__]
    return raised.value, time.monotonic() - started


def test_a_batch_job_that_cannot_pull_its_image_raises(batch_environment: Any, batch_cloud: BatchCloud) -> None:
    batch_environment(job_definition=batch_cloud.definition_with_image(ABSENT_IMAGE))

    def pulled() -> str:
        return "never runs"

    error, took = batch_raises(pulled)
    assert took < PROMPT, took
    assert error.payload["kind"] == "ImagePullFailed" and error.payload["reason"] == "CannotPullContainerError"
    assert ABSENT_IMAGE in str(error), str(error)


def test_a_batch_job_stuck_runnable_raises_and_is_cancelled(batch_environment: Any, batch_cloud: BatchCloud) -> None:
    batch_cloud.run_jobs = False  # a compute environment with no room: jobs stay RUNNABLE
    batch_environment(report_options=["--pending-timeout", "2"])

    def waiting() -> str:
        return "never runs"

    error, took = batch_raises(waiting)
    assert 2 <= took < PROMPT, took
    assert error.payload["kind"] == "Unschedulable" and "RUNNABLE" in str(error), error.payload
    assert [c.body["jobId"] for c in batch_cloud.calls("canceljob")], "the stuck job was cancelled"
