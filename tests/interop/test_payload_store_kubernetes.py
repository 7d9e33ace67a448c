"""`wove-submit kubernetes … --payload-store`: a payload over a Secret's 1 MiB (or any, with
`--payload-store-always`) as an S3 object on moto's server, through Kubernetes v1.37.2's own control
plane (cluster.py): the node agent runs the worker with the Job's environment, which reads the object
with "its role" (the test's keys) or through a presigned URL kept in the Job's own Secret; the
object is deleted once the Job is over.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from cluster import JOBS, SECRETS, Namespace, wait_until
from object_store import BUCKET, S3Server
from receiver import EventReceiver

pytestmark = pytest.mark.wove_worker_only

STORE = f"s3://{BUCKET}/k8s"
TASK = ("import json, os, sys; d = json.load(sys.stdin); "
        "json.dump({'blob_len': len(d['blob'])}, open(os.environ['WOVE_RESULT_FILE'], 'w'))")


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3-k8s"))
    try:
        yield server
    finally:
        server.stop()


def payload(receiver: EventReceiver, blob_bytes: int) -> str:
    return json.dumps({
        "version": 1, "callback_url": f"{receiver.base_url}/wove/events/k8s-store-token",
        "run_id": f"big:{secrets.token_hex(6)}", "task_id": "big",
        "task": {"runner": "subprocess", "program": sys.executable, "args": ["-c", TASK],
                 "input": {"blob": secrets.token_hex(blob_bytes // 2)}},
    })


def kubernetes(submit_bin: str, cluster: Namespace, s3: S3Server, *args: str, stdin: Optional[str] = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent",
           "WOVE_SUBMIT_KUBECONFIG": str(cluster.kubeconfig), "WOVE_SUBMIT_NAMESPACE": cluster.name,
           # The submitter's own AWS identity, for the upload.
           "AWS_ENDPOINT_URL_S3": s3.url, "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
           **s3.admin.env()}
    return subprocess.run([submit_bin, "kubernetes", *args], env=env, input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def job_env(s3: S3Server, keys: bool = True) -> List[str]:
    """What the Job gives its container to reach the store (a role would give the keys)."""
    env = {"AWS_ENDPOINT_URL_S3": s3.url, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
           "AWS_METADATA_ENDPOINT": "http://127.0.0.1:9", **(s3.admin.env() if keys else {})}
    return [arg for name, value in env.items() for arg in ("--env", f"{name}={value}")]


def result(receiver: EventReceiver) -> Dict[str, Any]:
    events = receiver.wait_for(lambda es: any(e["type"] in ("task_result", "task_error") for e in es), timeout=60)
    (final,) = [e for e in events if e["type"] in ("task_result", "task_error")]
    assert final["type"] == "task_result", final
    return final["result"]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("size,always", [(100 * 1024, True), (5 * 1024 * 1024, False)], ids=["100KB", "5MB"])
def test_a_payload_travels_by_reference_through_the_control_plane_and_is_deleted_after(
        submit_bin: str, cluster: Namespace, s3: S3Server, receiver: EventReceiver, size: int, always: bool) -> None:
    text = payload(receiver, size)
    store, prefix = f"{STORE}-{size}", f"k8s-{size}/"
    args = ["submit", "--payload-file", "-", "--image", "local", "--payload-store", store, "--wait",
            "--timeout", "180", "--output", "json", *job_env(s3)]
    if always:
        args.append("--payload-store-always")
    done = kubernetes(submit_bin, cluster, s3, *args, stdin=text, timeout=220)
    assert done.returncode == 0, done.stderr
    assert result(receiver) == {"blob_len": size}
    (job,) = cluster.list(JOBS)
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert "WOVE_BACKEND_PAYLOAD" not in env and "WOVE_BACKEND_PAYLOAD_FILE" not in env
    assert env["WOVE_BACKEND_PAYLOAD_URL"] == f"{store}/{job['metadata']['name']}/{digest}"
    assert env["WOVE_BACKEND_PAYLOAD_SHA256"] == digest
    assert job["metadata"]["annotations"]["wove.dev/payload-object"] == env["WOVE_BACKEND_PAYLOAD_URL"]
    assert s3.keys(prefix) == [], "the object outlived the Job"


@pytest.mark.timeout(240)
def test_a_presigned_url_rides_in_the_jobs_secret_not_its_spec(
        submit_bin: str, cluster: Namespace, s3: S3Server, receiver: EventReceiver) -> None:
    text = payload(receiver, 2 * 1024 * 1024)
    done = kubernetes(submit_bin, cluster, s3, "submit", "--payload-file", "-", "--image", "local",
                      "--payload-store", f"{STORE}-presigned", "--presign", "900", "--wait", "--timeout", "180",
                      *job_env(s3, keys=False), stdin=text, timeout=220)
    assert done.returncode == 0, done.stderr
    assert result(receiver) == {"blob_len": 2 * 1024 * 1024}
    (job,) = cluster.list(JOBS)
    spec = json.dumps(job["spec"])
    assert "X-Amz-Signature" not in spec, "the presigned URL is in the Job's spec"
    (url_var,) = [e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
                  if e["name"] == "WOVE_BACKEND_PAYLOAD_URL"]
    assert url_var["valueFrom"]["secretKeyRef"]["key"] == "url"
    assert s3.keys("k8s-presigned/") == []


@pytest.mark.timeout(240)
def test_cancel_and_cleanup_delete_only_what_no_live_job_reads(
        submit_bin: str, cluster: Namespace, s3: S3Server, receiver: EventReceiver) -> None:
    # Suspended: the Job exists, and its pod never starts.
    common = ["submit", "--payload-file", "-", "--image", "local", "--payload-store", STORE,
              "--payload-store-always", "--suspend", "--output", "json", *job_env(s3)]
    first = json.loads(kubernetes(submit_bin, cluster, s3, *common, stdin=payload(receiver, 1000)).stdout)
    second = json.loads(kubernetes(submit_bin, cluster, s3, *common, stdin=payload(receiver, 1000)).stdout)
    assert len(s3.keys("k8s/")) == 2
    done = kubernetes(submit_bin, cluster, s3, "cancel", first["name"])
    assert done.returncode == 0, done.stderr
    (left,) = s3.keys("k8s/")
    assert second["name"] in left
    stray = f"k8s/wove-gone-0000/{'0' * 64}"
    s3.put(stray, b"{}")
    done = kubernetes(submit_bin, cluster, s3, "cleanup", "--payload-store", STORE, "--older-than", "0.001")
    assert done.returncode == 0, done.stderr
    assert s3.keys("k8s/") == [left], done.stdout
    assert f"deleted s3://{BUCKET}/{stray}" in done.stdout
