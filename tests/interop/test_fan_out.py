"""One submission, many tasks: a many-task payload as one Indexed Job (Kubernetes v1.37.2's own Job
controller, which gives each index's pod its JOB_COMPLETION_INDEX; cluster.py) and as one array job (moto,
whose compute stand-in runs each child with its AWS_BATCH_JOB_ARRAY_INDEX). Every task's events
reach a loopback receiver under that task's own ids, as N ordinary tasks; Wove callables travel
once, each index bringing its own arguments.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional

import cloudpickle
import pytest

import k8s_rules
from batch_cloud import DEFINITION, QUEUE, BatchCloud
from cluster import JOBS, Namespace
from receiver import EventReceiver

pytestmark = pytest.mark.wove_worker_only

RUN_ID = "square:5e1f0c2d3b4a59687766554433221100"
EXIT_TASK_FAILED = 3

# A task that squares its input `n`; the entry at `fail` exits 3 instead.
SQUARE = ("import json, os, sys; n = json.load(sys.stdin)['n']; "
          "json.dump({'n': n, 'square': n * n}, open(os.environ['WOVE_RESULT_FILE'], 'w'))")


def squares(callback_url: str, n: int, fail: Optional[int] = None) -> str:
    tasks: List[Dict[str, Any]] = []
    for i in range(n):
        entry: Dict[str, Any] = {"task_id": f"square-{i}", "task": {"input": {"n": i}}}
        if i == fail:
            entry["task"]["args"] = ["-c", "import sys; print('no square for you', file=sys.stderr); sys.exit(3)"]
        tasks.append(entry)
    return json.dumps({
        "version": 1, "callback_url": callback_url, "run_id": RUN_ID,
        "task": {"runner": "subprocess", "program": sys.executable, "args": ["-c", SQUARE]},
        "tasks": tasks,
    })


def callback(receiver: EventReceiver) -> str:
    return f"{receiver.base_url}/wove/events/fan-out-token"


def finals(receiver: EventReceiver) -> Dict[str, Dict[str, Any]]:
    """Each task's final event, by task id; a task with two finals fails the test."""
    out: Dict[str, Dict[str, Any]] = {}
    for event in receiver.events():
        if event["type"] in ("task_result", "task_error", "task_cancelled"):
            assert event["task_id"] not in out, f"two final events for {event['task_id']}"
            out[event["task_id"]] = event
    return out


def submit_env(extra: Dict[str, str]) -> Dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", **extra}


# -- Kubernetes: one Indexed Job ----------------------------------------------------------------


def kubernetes(submit_bin: str, cluster: Namespace, *args: str, stdin: Optional[str] = None,
               timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([submit_bin, "kubernetes", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=submit_env({"WOVE_SUBMIT_KUBECONFIG": str(cluster.kubeconfig),
                                                           "WOVE_SUBMIT_NAMESPACE": cluster.name}))


def test_the_rendered_indexed_job_passes_the_schema_and_the_rules(submit_bin: str) -> None:
    done = subprocess.run([submit_bin, "kubernetes", "render", "--payload-file", "-", "--image", "i:1",
                           "--output", "json"], input=squares("http://127.0.0.1:9/wove/events/t", 12),
                          capture_output=True, text=True, timeout=60, env=submit_env({}))
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    k8s_rules.validate_schema([job])
    assert k8s_rules.job_problems(job, None) == []
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["backoffLimitPerIndex"]) == ("Indexed", 12, 0)
    assert spec["podFailurePolicy"]["rules"][1]["action"] == "FailIndex"


def test_n_tasks_as_one_indexed_job_each_result_arrives_and_a_failure_stays_its_own(
    submit_bin: str, cluster: Namespace, receiver: EventReceiver
) -> None:
    n, failing = 5, 2
    done = kubernetes(submit_bin, cluster, "submit", "--payload-file", "-", "--image", "local", "--wait",
                      "--timeout", "60", "--poll", "0.2", "--output", "json", stdin=squares(callback(receiver), n, failing))
    # The Job failed (one index did), and says why with the worker's own code.
    assert done.returncode == EXIT_TASK_FAILED, done.stderr
    report = json.loads(done.stdout)
    assert report["phase"] == "failed"

    # One Job, one pod per index: the failed index was not retried, the others not disturbed.
    jobs = [r for r in cluster.requests() if r.method == "POST" and r.path.endswith("/jobs")]
    assert len(jobs) == 1
    pods = cluster.pods(report["name"])
    index_of = {p["metadata"]["name"]: int(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])
                for p in pods}
    assert sorted(index_of.values()) == list(range(n)), "one pod per index, the failed one not retried"
    # The Job controller's own JOB_COMPLETION_INDEX, through the downward API, is what each
    # worker read: its events carry the index it ran.
    env = {v["name"]: v for v in pods[0]["spec"]["containers"][0]["env"]}
    assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"].endswith(
        "['batch.kubernetes.io/job-completion-index']")
    job = cluster.get(JOBS, report["name"])
    assert job["status"]["failedIndexes"] == str(failing), job["status"]
    # The controller's notation (intervals only from three in a row), for 5 tasks with index 2 failed.
    assert job["status"]["completedIndexes"] == "0,1,3,4", job["status"]

    by_task = finals(receiver)
    assert sorted(by_task) == [f"square-{i}" for i in range(n)]
    for i in range(n):
        event = by_task[f"square-{i}"]
        assert event["run_id"] == f"{RUN_ID}/{i}", "each task has a run id of its own"
        assert event["meta"]["task_index"] == i
        if i == failing:
            assert event["type"] == "task_error" and "no square for you" in event["error"]["traceback"]
        else:
            assert event["type"] == "task_result" and event["result"] == {"n": i, "square": i * i}

    # Per index, as status reports it: succeeded, or failed with the code and its meaning.
    indexes = {entry["index"]: entry for entry in report["indexes"]}
    assert report["index_counts"] == {"pending": 0, "running": 0, "succeeded": n - 1, "failed": 1}
    assert indexes[failing]["phase"] == "failed" and indexes[failing]["exit_code"] == EXIT_TASK_FAILED
    assert indexes[failing]["exit_meaning"].startswith("task failed")
    assert indexes[0]["task_id"] == "square-0" and indexes[0]["phase"] == "succeeded"
    status = kubernetes(submit_bin, cluster, "status", report["name"])
    assert status.returncode == 0, status.stderr
    assert f"tasks: {n - 1} succeeded, 1 failed, 0 running, 0 pending" in status.stdout
    assert f"task {failing} (square-{failing}) failed, exit 3" in status.stdout


def test_pending_and_running_indexes_show_while_the_job_runs(submit_bin: str, cluster: Namespace) -> None:
    # An image no node has: every index's pod waits to pull it.
    text = squares("http://127.0.0.1:9/wove/events/t", 3)
    done = kubernetes(submit_bin, cluster, "submit", "--payload-file", "-", "--image", "absent.example/x:1",
                      "--output", "json", stdin=text)
    assert done.returncode == 0, done.stderr
    name = json.loads(done.stdout)["name"]
    status = kubernetes(submit_bin, cluster, "status", name, "--output", "json")
    report = json.loads(status.stdout)
    assert [entry["phase"] for entry in report["indexes"]] == ["pending"] * 3
    assert cluster.get(JOBS, name)["metadata"]["annotations"]["wove.dev/tasks"] == "3"


# -- AWS Batch: one array job -------------------------------------------------------------------


def batch(submit_bin: str, cloud: BatchCloud, *args: str, stdin: Optional[str] = None,
          timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([submit_bin, "batch", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=submit_env(cloud.env()))


def test_n_tasks_as_one_array_job_each_child_delivers_its_own_result(
    submit_bin: str, batch_cloud: BatchCloud, receiver: EventReceiver
) -> None:
    n, failing = 4, 1
    done = batch(submit_bin, batch_cloud, "submit", "--payload-file", "-", "--job-queue", QUEUE,
                 "--job-definition", DEFINITION, "--wait", "--timeout", "60", "--poll", "0.2", "--output", "json",
                 stdin=squares(callback(receiver), n, failing))
    report = json.loads(done.stdout)
    assert report["phase"] == "failed", done.stderr

    submits = batch_cloud.calls("submitjob")
    assert len(submits) == 1 and submits[0].body["arrayProperties"] == {"size": n}
    parent = report["job_id"]
    for i in range(n):
        run = batch_cloud.wait_run(f"{parent}:{i}")
        assert run.env["AWS_BATCH_JOB_ARRAY_INDEX"] == str(i)

    by_task = finals(receiver)
    assert sorted(by_task) == [f"square-{i}" for i in range(n)]
    for i in range(n):
        event = by_task[f"square-{i}"]
        assert event["meta"]["platform"]["aws_batch_job_id"] == f"{parent}:{i}"
        if i == failing:
            assert event["type"] == "task_error"
        else:
            assert event["result"] == {"n": i, "square": i * i}

    indexes = {entry["index"]: entry for entry in report["indexes"]}
    assert report["index_counts"] == {"pending": 0, "running": 0, "succeeded": n - 1, "failed": 1}
    assert indexes[failing]["exit_code"] == EXIT_TASK_FAILED and indexes[failing]["attempts"] == 1
    status = batch(submit_bin, batch_cloud, "status", parent)
    assert f"tasks: {n - 1} succeeded, 1 failed" in status.stdout, status.stdout


def test_many_wove_callables_share_one_pickle_and_each_gets_its_arguments(
    submit_bin: str, batch_cloud: BatchCloud, receiver: EventReceiver
) -> None:
    # What Wove puts in a payload, once for the callable and once per task for its arguments.
    def power(base: int, exponent: int) -> int:
        return base ** exponent

    pickled = lambda value: base64.b64encode(cloudpickle.dumps(value)).decode()  # noqa: E731
    text = json.dumps({
        "version": 1, "adapter": "aws_batch", "callback_url": callback(receiver), "run_id": "power:0",
        "task_name": None, "delivery": {}, "callable_pickle": pickled(power),
        "tasks": [{"task_id": "power", "run_id": f"power:{i:032x}", "args_pickle": pickled({"base": i, "exponent": 3})}
                  for i in range(3)],
    })
    done = batch(submit_bin, batch_cloud, "submit", "--payload-file", "-", "--job-queue", QUEUE,
                 "--job-definition", DEFINITION, "--wait", "--timeout", "60", "--poll", "0.2", "--output", "json",
                 stdin=text)
    assert done.returncode == 0, done.stderr
    results = {e["run_id"]: cloudpickle.loads(base64.b64decode(e["result_pickle"]))
               for e in receiver.events() if e["type"] == "task_result"}
    assert results == {f"power:{i:032x}": i ** 3 for i in range(3)}, "each run id its own value, as Wove keys them"


def test_a_payload_too_large_for_a_request_travels_compressed(
    submit_bin: str, batch_cloud: BatchCloud, receiver: EventReceiver
) -> None:
    n = 300  # about 20 KB of JSON: over ECS's 8192 characters of overrides as it is
    text = squares(callback(receiver), n)
    done = batch(submit_bin, batch_cloud, "render", "--payload-file", "-", "--job-queue", QUEUE,
                 "--job-definition", DEFINITION, "--compression", "never", stdin=text)
    assert done.returncode == 64 and "8192" in done.stderr, done.stderr
    batch_cloud.run_jobs = False
    done = batch(submit_bin, batch_cloud, "submit", "--payload-file", "-", "--job-queue", QUEUE,
                 "--job-definition", DEFINITION, "--output", "json", stdin=text)
    assert done.returncode == 0, done.stderr
    sent = batch_cloud.calls("submitjob")[0].body
    env = {v["name"]: v["value"] for v in sent["containerOverrides"]["environment"]}
    assert base64.b64decode(env["WOVE_BACKEND_PAYLOAD"])[:2] == b"\x1f\x8b", "gzip"
    assert sent["arrayProperties"] == {"size": n}
    # The last child, run by hand as Batch would run it, reads the compressed payload.
    worker = subprocess.run([os.environ["WOVE_WORKER_BIN"]], capture_output=True, text=True, timeout=60,
                            env={"PATH": os.environ.get("PATH", ""), "WOVE_BACKEND_PAYLOAD": env["WOVE_BACKEND_PAYLOAD"],
                                 "AWS_BATCH_JOB_ARRAY_INDEX": str(n - 1)})
    assert worker.returncode == 0, worker.stderr
    assert finals(receiver)[f"square-{n - 1}"]["result"] == {"n": n - 1, "square": (n - 1) ** 2}
