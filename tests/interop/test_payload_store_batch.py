"""`wove-submit batch … --payload-store`: payloads over Batch's 8192-character overrides as S3 objects,
against moto's Batch and S3 (one server, batch_cloud.py), the job run by the compute stand-in with the
job's environment and the test's credentials. The object is uploaded with its SHA-256, read by the
worker by reference (or through a presigned URL), and deleted once the job is over by `wait`,
`cancel` or `cleanup` — never while Batch may still run an attempt.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import cloudpickle
import pytest
import wove
from wove import weave

from batch_cloud import DEFINITION, QUEUE, BatchCloud
from object_store import CredentialsEndpoint, Keys
from receiver import EventReceiver

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "crates/wove-submit/python"))
from wove_submit import BatchJobs  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])
pytestmark = pytest.mark.wove_worker_only

BUCKET = "wove-payloads"
STORE = f"s3://{BUCKET}/runs"
EXIT_REFUSED = 64

TASK = ("import json, os, sys; d = json.load(sys.stdin); "
        "json.dump({'blob_len': len(d['blob'])}, open(os.environ['WOVE_RESULT_FILE'], 'w'))")


def payload(receiver: EventReceiver, blob_bytes: int, run_id: Optional[str] = None) -> str:
    return json.dumps({
        "version": 1, "callback_url": f"{receiver.base_url}/wove/events/store-token",
        "run_id": run_id or f"big:{secrets.token_hex(6)}", "task_id": "big",
        "task": {"runner": "subprocess", "program": sys.executable, "args": ["-c", TASK],
                 "input": {"blob": secrets.token_hex(blob_bytes // 2)}},
    })


def batch(submit_bin: str, cloud: BatchCloud, *args: str, stdin: Optional[str] = None,
          env: Optional[Dict[str, str]] = None, drop: tuple = (), timeout: float = 90) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", **cloud.env(), **(env or {})}
    for var in drop:
        full.pop(var, None)
    return subprocess.run([submit_bin, "batch", *args], env=full, input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def submit(submit_bin: str, cloud: BatchCloud, text: str, *args: str, **kw: Any) -> subprocess.CompletedProcess:
    return batch(submit_bin, cloud, "submit", "--payload-file", "-", "--job-queue", QUEUE,
                 "--job-definition", DEFINITION, "--payload-store", STORE, "--output", "json", *args, stdin=text, **kw)


@pytest.fixture
def store(batch_cloud: BatchCloud) -> BatchCloud:
    batch_cloud.s3().create_bucket(Bucket=BUCKET)
    # The job's container reads the store with "its role": the test's keys.
    batch_cloud.base_env.update(batch_cloud.worker_s3_env())
    return batch_cloud


def keys(cloud: BatchCloud) -> List[str]:
    return [o["Key"] for o in cloud.s3().list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def env_of(call_body: Dict[str, Any]) -> Dict[str, str]:
    return {v["name"]: v["value"] for v in call_body["containerOverrides"]["environment"]}


def result(receiver: EventReceiver) -> Dict[str, Any]:
    events = receiver.wait_for(lambda es: any(e["type"] in ("task_result", "task_error") for e in es), timeout=30)
    final = [e for e in events if e["type"] in ("task_result", "task_error")]
    assert len(final) == 1 and final[0]["type"] == "task_result", final
    return final[0]["result"]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("size", [100 * 1024, 5 * 1024 * 1024], ids=["100KB", "5MB"])
def test_a_payload_too_large_for_batch_travels_by_reference_and_is_deleted_after(
        submit_bin: str, store: BatchCloud, receiver: EventReceiver, size: int) -> None:
    text = payload(receiver, size)
    done = submit(submit_bin, store, text, "--wait", timeout=150)
    assert done.returncode == 0, done.stderr
    assert result(receiver) == {"blob_len": size}
    (call,) = store.calls("submitjob")
    env = env_of(call.body)
    assert "WOVE_BACKEND_PAYLOAD" not in env, "the payload itself went into the request"
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert env["WOVE_BACKEND_PAYLOAD_SHA256"] == digest and env["WOVE_BACKEND_PAYLOAD_SIZE"] == str(len(text))
    assert env["WOVE_BACKEND_PAYLOAD_URL"].startswith(f"{STORE}/") and env["WOVE_BACKEND_PAYLOAD_URL"].endswith(digest)
    assert call.body["tags"]["wove:payload-object"] == env["WOVE_BACKEND_PAYLOAD_URL"]
    assert len(json.dumps(call.body["containerOverrides"])) <= 8192
    assert keys(store) == [], "the object outlived the job"
    assert "deleted" in done.stderr


def test_the_upload_declares_its_sha256_for_s3_to_check(
        submit_bin: str, store: BatchCloud, receiver: EventReceiver) -> None:
    store.run_jobs = False
    text = payload(receiver, 20_000)
    done = submit(submit_bin, store, text)
    assert done.returncode == 0, done.stderr
    (key,) = keys(store)
    head = store.s3().head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert base64.b64decode(head["ChecksumSHA256"]) == hashlib.sha256(text.encode()).digest()
    assert store.s3().get_object(Bucket=BUCKET, Key=key)["Body"].read() == text.encode()


def test_render_stays_offline_and_says_what_it_would_upload(submit_bin: str, receiver: EventReceiver,
                                                            tmp_path: Path) -> None:
    text = payload(receiver, 20_000)
    # No AWS at all: nothing to reach.
    done = subprocess.run([submit_bin, "batch", "render", "--payload-file", "-", "--job-queue", QUEUE,
                           "--job-definition", DEFINITION, "--payload-store", STORE],
                          input=text, capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"})
    assert done.returncode == 0, done.stderr
    env = env_of(json.loads(done.stdout))
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert env["WOVE_BACKEND_PAYLOAD_URL"].endswith(f"/{digest}")
    assert f"would upload {len(text)} bytes" in done.stderr and env["WOVE_BACKEND_PAYLOAD_URL"] in done.stderr
    # A payload that fits stays inline unless told otherwise.
    small = payload(receiver, 100)
    done = subprocess.run([submit_bin, "batch", "render", "--payload-file", "-", "--job-queue", QUEUE,
                           "--job-definition", DEFINITION, "--payload-store", STORE],
                          input=small, capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"})
    assert "WOVE_BACKEND_PAYLOAD" in env_of(json.loads(done.stdout))
    # Without a store, the way out is named.
    done = subprocess.run([submit_bin, "batch", "render", "--payload-file", "-", "--job-queue", QUEUE,
                           "--job-definition", DEFINITION], input=text, capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"})
    assert done.returncode == EXIT_REFUSED and "--payload-store" in done.stderr, done.stderr


@pytest.mark.timeout(120)
def test_a_presigned_url_lets_a_job_without_credentials_read_it(
        submit_bin: str, store: BatchCloud, receiver: EventReceiver) -> None:
    # The container has no AWS identity at all: only the URL can let it in.
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3"):
        store.base_env.pop(var, None)
    text = payload(receiver, 20_000)
    done = submit(submit_bin, store, text, "--payload-store-always", "--presign", "600", "--wait", timeout=100)
    assert done.returncode == 0, done.stderr
    assert result(receiver) == {"blob_len": 20_000}
    (call,) = store.calls("submitjob")
    url = env_of(call.body)["WOVE_BACKEND_PAYLOAD_URL"]
    assert url.startswith("http") and "X-Amz-Signature=" in url and "X-Amz-Expires=600" in url
    # The worker never printed the signature.
    (run,) = store.runs.values()
    signature = url.split("X-Amz-Signature=", 1)[1].split("&")[0]
    assert signature not in run.stderr.read_text() and signature not in run.stdout.read_text()
    assert keys(store) == []


def test_a_presign_longer_than_the_credentials_is_refused_before_anything_is_uploaded(
        submit_bin: str, store: BatchCloud, receiver: EventReceiver, tmp_path: Path) -> None:
    # Container credentials (as on ECS or EKS Pod Identity) that expire in an hour.
    token = tmp_path / "token"
    token.write_text("t0ken")
    endpoint = CredentialsEndpoint(Keys("test", "test"), "t0ken")
    try:
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{endpoint.url}/creds",
               "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token)}
        done = submit(submit_bin, store, payload(receiver, 20_000), "--presign", "7200", env=env,
                      drop=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
    finally:
        endpoint.close()
    assert done.returncode == EXIT_REFUSED, done.stderr
    assert "expire in" in done.stderr and "presign for less" in done.stderr, done.stderr
    assert endpoint.requests, "the submitter did not ask the container endpoint for credentials"
    assert keys(store) == [] and store.calls("submitjob") == []


@pytest.mark.timeout(120)
def test_cancel_deletes_the_object_and_cleanup_keeps_only_what_a_live_job_reads(
        submit_bin: str, store: BatchCloud, receiver: EventReceiver) -> None:
    store.run_jobs = False
    first = json.loads(submit(submit_bin, store, payload(receiver, 20_000)).stdout)
    second = json.loads(submit(submit_bin, store, payload(receiver, 20_000)).stdout)
    assert len(keys(store)) == 2
    done = batch(submit_bin, store, "cancel", first["job_id"], "--output", "json")
    assert done.returncode == 0, done.stderr
    remaining = keys(store)
    assert len(remaining) == 1 and second["job_name"] in remaining[0], remaining
    # A stray object of a submit that never made its job, old enough to go.
    stray = f"runs/wove-gone-0000/{'0' * 64}"
    store.s3().put_object(Bucket=BUCKET, Key=stray, Body=b"{}")
    done = batch(submit_bin, store, "cleanup", "--payload-store", STORE, "--job-queue", QUEUE, "--older-than", "0.001")
    assert done.returncode == 0, done.stderr
    assert keys(store) == remaining, "cleanup deleted the object of a job still queued, or kept the stray one"
    assert f"deleted s3://{BUCKET}/{stray}" in done.stdout and "kept" in done.stdout, done.stdout
    # Once the job is over, cleanup deletes its object too.
    store.set_status(second["job_id"], "SUCCEEDED")
    done = batch(submit_bin, store, "cleanup", "--payload-store", STORE, "--job-queue", QUEUE)
    assert done.returncode == 0, done.stderr
    assert keys(store) == [], done.stdout


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.timeout(150)
def test_a_weave_with_200kb_of_arguments_runs_through_wove_s_adapter_and_the_snippet(
        submit_bin: str, store: BatchCloud) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", **store.env()}
    jobs = BatchJobs(job_queue=QUEUE, job_definition=DEFINITION, program=submit_bin, env=env,
                     options=["--payload-store", STORE])
    wove.config(environments={"batch-store": {"executor": "aws_batch",
                                              "executor_config": jobs.executor_config(callback_host="127.0.0.1")}})
    # Random bytes: gzip cannot bring them under Batch's 8192 characters.
    blob = os.urandom(200 * 1024)
    try:
        with weave() as w:

            @w.do(environment="batch-store", delivery_timeout=60)
            def checksum() -> str:
                return digest(blob)

        assert w.result["checksum"] == hashlib.sha256(blob).hexdigest()
        (call,) = store.calls("submitjob")
        assert "WOVE_BACKEND_PAYLOAD_URL" in env_of(call.body)
        deadline = time.monotonic() + 30
        while keys(store) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert keys(store) == [], "the payload object outlived the weave's job"
    finally:
        wove.config(environments={"batch-store": None})


@pytest.mark.timeout(120)
def test_a_job_that_never_runs_is_reported_to_the_payload_read_back_from_the_store(
        submit_bin: str, store: BatchCloud, receiver: EventReceiver) -> None:
    definition = store.definition_with_image("registry.example/not-here:1")
    done = batch(submit_bin, store, "submit", "--payload-file", "-", "--job-queue", QUEUE, "--job-definition",
                 definition, "--payload-store", STORE, "--payload-store-always", "--output", "json",
                 stdin=payload(receiver, 2000))
    assert done.returncode == 0, done.stderr
    job_id = json.loads(done.stdout)["job_id"]
    # No payload given: the watcher reads it from the store to learn where to report.
    done = batch(submit_bin, store, "wait", job_id, "--report", "--poll", "0.2", "--timeout", "60", "--output", "json")
    assert done.returncode == 79, done.stderr
    (event,) = receiver.wait_for(lambda es: len(es) >= 1, timeout=10)
    assert event["type"] == "task_error" and event["error"]["kind"] == "ImagePullFailed", event
    assert keys(store) == [], "the object of a job that ended outlived it"
