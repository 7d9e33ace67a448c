"""`wove-submit batch`, against AWS Batch as moto's server plays it on loopback.

Requests go through the program's real AWS client (the SDK, SigV4, an endpoint override and
static test credentials). What moto does not check, the tests do: job names by Batch's own rule,
the request's shape by botocore's model of SubmitJob (what `aws batch submit-job --cli-input-json`
validates), and which API calls were made (moto's recorder). Jobs run through the compute
stand-in in batch_cloud.py: the worker, with the environment Batch gives it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import botocore.session
import pytest
from botocore.validate import ParamValidator

from batch_cloud import DEFINITION, QUEUE, BatchCloud
from receiver import EventReceiver

pytestmark = pytest.mark.wove_worker_only

REPO = Path(__file__).resolve().parents[2]
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
EXIT_REFUSED = 64
EXIT_API = 69


def payload(callback_url: str = "http://127.0.0.1:9/wove/events/secret-token", *, run_id: str = "compute:0123abcd",
            task: Optional[Dict[str, Any]] = None) -> str:
    return json.dumps({"version": 1, "callback_url": callback_url, "run_id": run_id,
                       "task_id": run_id.split(":")[0] or "t",
                       "task": task or {"runner": "subprocess", "program": "true"}})


def run(submit_bin: str, *args: str, cloud: Optional[BatchCloud] = None, stdin: Optional[str] = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"}
    if cloud is not None:
        env.update(cloud.env())
    return subprocess.run([submit_bin, "batch", *args], env=env, input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def submit(submit_bin: str, cloud: BatchCloud, text: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return run(submit_bin, "submit", "--payload-file", "-", "--job-queue", QUEUE, "--job-definition", DEFINITION,
               *args, cloud=cloud, stdin=text, timeout=timeout)


def submit_input_shape():
    return botocore.session.get_session().get_service_model("batch").operation_model("SubmitJob").input_shape


# -- rendering --------------------------------------------------------------------------------


@pytest.mark.parametrize("run_id", ["compute:0123456789abcdef", "a.b:c.d", "Ünïcödé:задача", "r" * 300])
def test_the_rendered_request_is_what_the_aws_cli_takes(submit_bin: str, run_id: str) -> None:
    text = payload(run_id=run_id)
    done = run(submit_bin, "render", "--payload-file", "-", "--job-queue", QUEUE, "--job-definition", "d:3",
               "--attempts", "3", "--attempt-duration", "600", "--vcpus", "1", "--memory-mib", "2048",
               "--tag", "team=data", "--env", "MODE=fast", "--share-identifier", "teamA", "--priority", "10",
               "--extra", '{"nodeOverrides": {"numNodes": 1}}', stdin=text)
    assert done.returncode == 0, done.stderr
    request = json.loads(done.stdout)
    # botocore's model of SubmitJob: types, required keys and unknown keys, as the AWS CLI checks them.
    report = ParamValidator().validate(request, submit_input_shape())
    assert not report.has_errors(), report.generate_report()
    assert JOB_NAME.match(request["jobName"]), request["jobName"]
    assert request["tags"]["wove:run-id"] == run_id[:256]
    env = {v["name"]: v["value"] for v in request["containerOverrides"]["environment"]}
    assert base64.b64decode(env["WOVE_BACKEND_PAYLOAD"]) == text.encode()
    assert len(request["retryStrategy"]["evaluateOnExit"]) <= 5
    assert request["timeout"] == {"attemptDurationSeconds": 600}
    assert request["nodeOverrides"] == {"numNodes": 1}, "other fields pass through"


def test_what_batch_would_refuse_or_fail_is_refused_before_sending(submit_bin: str) -> None:
    big = payload(task={"runner": "subprocess", "program": "cat", "input": {"blob": "x" * 9000}})
    done = run(submit_bin, "render", "--payload-file", "-", "--job-queue", QUEUE, "--job-definition", "d",
               "--compression", "never", stdin=big)
    assert done.returncode == EXIT_REFUSED
    assert "8192" in done.stderr and "payload_file" in done.stderr and done.stdout == "", done.stderr
    for args, expected in [
        (["--env", "AWS_BATCH_JOB_ID=x"], "AWS_BATCH"),
        (["--attempt-duration", "30"], "at least 60"),
        (["--attempts", "11"], "1 to 10"),
        (["--array-size", "1"], "2 to 10000"),
        # The request as built is checked, whatever the options: no worker flag the submitter owns.
        (["--command", "wove-worker", "--command", "--shutdown-budget=300"], "--shutdown-budget=300: the submitter"),
        (["--command", "wove-worker", "--command", "--payload-file", "--command", "/etc/x"], "--payload-file"),
    ]:
        done = run(submit_bin, "render", "--payload-file", "-", "--job-queue", QUEUE, "--job-definition", "d", *args,
                   stdin=payload())
        assert done.returncode == EXIT_REFUSED and expected in done.stderr, (args, done.stderr)


# -- against moto -----------------------------------------------------------------------------


def test_submit_keeps_the_payload_byte_for_byte_and_is_idempotent(submit_bin: str, batch_cloud: BatchCloud) -> None:
    batch_cloud.run_jobs = False
    text = payload()
    first = submit(submit_bin, batch_cloud, text, "--output", "json")
    assert first.returncode == 0, first.stderr
    job = json.loads(first.stdout)
    assert job["created"] is True
    detail = batch_cloud.describe(job["job_id"])
    # moto's simple mode validates no name: Batch's rule is checked here.
    assert JOB_NAME.match(detail["jobName"]) and detail["jobName"] == job["job_name"]
    env = [v for v in detail["container"]["environment"] if v["name"] == "WOVE_BACKEND_PAYLOAD"]
    assert base64.b64decode(env[0]["value"]) == text.encode(), "the payload arrived byte for byte"
    assert detail["tags"]["wove:run-id"] == "compute:0123abcd"

    again = submit(submit_bin, batch_cloud, text, "--output", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == dict(job, created=False)
    assert len(batch_cloud.calls("submitjob")) == 1, "a retried submit found its job instead of making another"

    other = submit(submit_bin, batch_cloud, payload("http://127.0.0.1:9/wove/events/other-token"))
    assert other.returncode == EXIT_API
    assert "different payload" in other.stderr and "other-token" not in other.stderr, other.stderr


def test_an_array_job_runs_each_child_with_its_index(
    submit_bin: str, batch_cloud: BatchCloud, receiver: EventReceiver
) -> None:
    task = {"runner": "subprocess", "program": "sh", "args": ["-c", 'echo "$AWS_BATCH_JOB_ARRAY_INDEX" > "$WOVE_RESULT_FILE"']}
    done = submit(submit_bin, batch_cloud, payload(f"{receiver.base_url}/wove/events/t", task=task), "--array-size", "3",
                  "--output", "json")
    assert done.returncode == 0, done.stderr
    parent = json.loads(done.stdout)["job_id"]
    detail = batch_cloud.describe(parent)
    assert detail["arrayProperties"]["size"] == 3
    for index in range(3):
        assert batch_cloud.wait_run(f"{parent}:{index}").exit_code == 0
    results = receiver.wait_for(lambda events: len([e for e in events if e["type"] == "task_result"]) == 3, timeout=30)
    by_index = {e["meta"]["platform"]["aws_batch_job_array_index"]: e["result"] for e in results if e["type"] == "task_result"}
    assert by_index == {"0": 0, "1": 1, "2": 2}


def test_a_job_runs_the_worker_which_reports_its_platform_identity(
    submit_bin: str, batch_cloud: BatchCloud, receiver: EventReceiver
) -> None:
    task = {"runner": "subprocess", "program": "sh", "args": ["-c", 'echo \'"done"\' > "$WOVE_RESULT_FILE"']}
    done = submit(submit_bin, batch_cloud, payload(f"{receiver.base_url}/wove/events/t", task=task), "--wait",
                  "--timeout", "60", "--poll", "0.2", "--output", "json", timeout=90)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["phase"], report["exit_code"]) == ("succeeded", 0)
    result = next(e for e in receiver.events() if e["type"] == "task_result")
    platform = result["meta"]["platform"]
    assert platform["aws_batch_job_id"] == report["job_id"]
    assert platform["aws_batch_job_attempt"] == "1" and result["meta"]["attempt"] == 1


def test_wait_exits_with_the_workers_code_and_says_what_it_means(
    submit_bin: str, batch_cloud: BatchCloud, receiver: EventReceiver
) -> None:
    task = {"runner": "subprocess", "program": "sh", "args": ["-c", "exit 9"]}
    done = submit(submit_bin, batch_cloud, payload(f"{receiver.base_url}/wove/events/t", task=task), "--wait",
                  "--timeout", "60", "--poll", "0.2", timeout=90)
    assert done.returncode == 3, done.stderr
    assert "worker exit code 3: task failed" in done.stdout, done.stdout


def test_cancel_terminates_a_started_job_and_cancels_a_queued_one(submit_bin: str, batch_cloud: BatchCloud) -> None:
    batch_cloud.run_jobs = False
    ids = []
    for n in range(3):
        done = submit(submit_bin, batch_cloud, payload(run_id=f"job{n}:1"), "--output", "json")
        assert done.returncode == 0, done.stderr
        ids.append(json.loads(done.stdout)["job_id"])
    for job_id, status in zip(ids, ["RUNNING", "RUNNABLE", "SUCCEEDED"]):
        batch_cloud.set_status(job_id, status)
    outcomes = []
    for job_id in ids:
        done = run(submit_bin, "cancel", job_id, "--output", "json", cloud=batch_cloud)
        assert done.returncode == 0, done.stderr
        outcomes.append(json.loads(done.stdout)["result"])
    assert outcomes == ["terminated", "cancelled", {"already_finished": "SUCCEEDED"}]
    assert [c.body["jobId"] for c in batch_cloud.calls("terminatejob")] == [ids[0]]
    assert [c.body["jobId"] for c in batch_cloud.calls("canceljob")] == [ids[1]]
    assert all(c.body.get("reason") for c in batch_cloud.calls("terminatejob") + batch_cloud.calls("canceljob"))


def test_terminating_a_running_job_ends_in_task_cancelled(
    submit_bin: str, batch_cloud: BatchCloud, receiver: EventReceiver
) -> None:
    task = {"runner": "subprocess", "program": "sleep", "args": ["600"]}
    done = submit(submit_bin, batch_cloud, payload(f"{receiver.base_url}/wove/events/t", task=task), "--output", "json")
    job_id = json.loads(done.stdout)["job_id"]
    receiver.wait_for(lambda events: any(e["type"] == "task_started" for e in events), timeout=30)
    cancelled = run(submit_bin, "cancel", job_id, cloud=batch_cloud)
    assert cancelled.returncode == 0 and "terminated" in cancelled.stdout, cancelled.stderr
    receiver.wait_for(lambda events: any(e["type"] == "task_cancelled" for e in events), timeout=30)
    assert batch_cloud.wait_run(job_id).exit_code == 143


def test_unknown_jobs_and_an_unreachable_endpoint(submit_bin: str, batch_cloud: BatchCloud) -> None:
    done = run(submit_bin, "status", "no-such-job", cloud=batch_cloud, timeout=60)
    assert done.returncode == 68 and "no AWS Batch job with id no-such-job" in done.stderr, done.stderr
    env_down = dict(batch_cloud.env(), AWS_ENDPOINT_URL_BATCH="http://127.0.0.1:9")
    down = subprocess.run([submit_bin, "batch", "status", "x", "--api-timeout", "5"],
                          env=dict(env_down, PATH=os.environ["PATH"], HOME="/nonexistent"),
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == EXIT_API and down.stderr.startswith("wove-submit: DescribeJobs"), down.stderr
    assert down.stderr.count("\n") == 1, down.stderr
