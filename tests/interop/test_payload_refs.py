"""The worker fetching its payload by reference (WOVE_BACKEND_PAYLOAD_URL): from moto's S3 server
with the job's own identity (static keys, or ECS / EKS Pod Identity container credentials), or
through a presigned URL; the SHA-256 checked before anything runs; every failure with its exit code
and its fix; the query string of a presigned URL never printed; the size bound held against an
object of 2 GB with flat memory. Every event goes to a loopback receiver.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from object_store import (BUCKET, CredentialsEndpoint, EndlessObject, Fault, FaultProxy, Imds, Keys, S3Server,
                          WebIdentitySts,
                          run_and_measure, s3_error, sha256_hex)
from receiver import EventReceiver

pytestmark = pytest.mark.wove_worker_only

EXIT_OK, EXIT_BAD_PAYLOAD, EXIT_UNAVAILABLE, EXIT_TEMPORARY = 0, 65, 66, 75
WORKER_TIMEOUT = 60

# The task: proves it ran by its result, says how much input it got and whether it could find the
# payload's URL anywhere (its environment, or the worker's /proc entry), and leaves a marker file.
TASK = r"""
import json, os, sys
data = json.load(sys.stdin)
leaked = 'WOVE_BACKEND_PAYLOAD_URL' in os.environ
try:
    leaked = leaked or b'X-Amz-Signature' in open(f'/proc/{os.getppid()}/environ', 'rb').read()
except OSError:
    pass
open(data['marker'], 'w').write('ran')
json.dump({'blob_len': len(data['blob']), 'url_visible': leaked}, open(os.environ['WOVE_RESULT_FILE'], 'w'))
"""


def payload(receiver: EventReceiver, marker: Path, blob_bytes: int, token: str = "ref-token") -> bytes:
    # Random hex: incompressible enough that gzip cannot make it fit inline.
    return json.dumps({
        "version": 1,
        "callback_url": f"{receiver.base_url}/wove/events/{token}",
        "run_id": f"ref:{secrets.token_hex(8)}",
        "task_id": "ref",
        "task": {"runner": "subprocess", "program": sys.executable, "args": ["-c", TASK],
                 "input": {"blob": secrets.token_hex(blob_bytes // 2), "marker": str(marker)}},
    }).encode()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3-auth"), auth=True)
    try:
        yield server
    finally:
        server.stop()


def run(worker_command: List[str], worker_env: Dict[str, str], tmp_path: Path, url: str, sha256: str,
        extra: Optional[Dict[str, str]] = None, args: Optional[List[str]] = None, timeout: float = WORKER_TIMEOUT):
    env = {**worker_env, "WOVE_BACKEND_PAYLOAD_URL": url, "WOVE_BACKEND_PAYLOAD_SHA256": sha256,
           "WOVE_WORKER_TERMINATION_LOG": str(tmp_path / "termination-log"), **(extra or {})}
    (tmp_path / "termination-log").write_text("")
    code, out, err, rss_kib, wall = run_and_measure([*worker_command, *(args or [])], env, timeout, cwd=tmp_path)
    return code, out.decode(errors="replace"), err.decode(errors="replace"), rss_kib, wall


def termination(tmp_path: Path) -> Dict[str, Any]:
    return json.loads((tmp_path / "termination-log").read_text())


def result_of(receiver: EventReceiver) -> Dict[str, Any]:
    finals = [e for e in receiver.events() if e["type"] in ("task_result", "task_error")]
    assert len(finals) == 1, [e["type"] for e in receiver.events()]
    assert finals[0]["type"] == "task_result", finals[0]
    return finals[0]["result"]


@pytest.mark.parametrize("size", [100 * 1024, 5 * 1024 * 1024], ids=["100KB", "5MB"])
def test_an_s3_reference_runs_the_task_with_the_jobs_own_keys(
        s3: S3Server, receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str],
        tmp_path: Path, size: int) -> None:
    body = payload(receiver, tmp_path / "ran", size)
    url = s3.put(f"jobs/static-{size}/{sha256_hex(body)}", body)
    code, _, err, _, _ = run(worker_command, worker_env, tmp_path, url, sha256_hex(body),
                             s3.worker_env(s3.admin), args=["--max-payload-bytes", str(16 * 1024 * 1024)])
    assert code == EXIT_OK, err
    assert result_of(receiver) == {"blob_len": size, "url_visible": False}
    assert "payload fetched" in err


def test_gzip_and_a_many_task_payload_work_by_reference(
        s3: S3Server, receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str],
        tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    single = json.loads(payload(receiver, marker, 1000))
    tasks = [{"task_id": f"ref-{i}", "task": {"input": {"blob": "ab" * (i + 1), "marker": str(marker)}}} for i in range(3)]
    many = {**single, "tasks": tasks}
    del many["task"]["input"]
    body = gzip.compress(json.dumps(many).encode())
    url = s3.put(f"jobs/many/{sha256_hex(body)}", body)
    code, _, err, _, _ = run(worker_command, worker_env, tmp_path, url, sha256_hex(body),
                             {**s3.worker_env(s3.admin), "WOVE_WORKER_INDEX": "2",
                              "WOVE_BACKEND_PAYLOAD_SIZE": str(len(body))})
    assert code == EXIT_OK, err
    events = receiver.events()
    assert {e["task_id"] for e in events} == {"ref-2"}
    assert result_of(receiver)["blob_len"] == 6


def test_a_presigned_url_runs_and_its_query_is_never_printed_nor_seen_by_the_task(
        s3: S3Server, receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str],
        tmp_path: Path) -> None:
    body = payload(receiver, tmp_path / "ran", 2048)
    key = f"jobs/presigned/{sha256_hex(body)}"
    s3.put(key, body)
    url = s3.presign(key, 600)
    query = url.split("?", 1)[1]
    signature = next(p.split("=", 1)[1] for p in query.split("&") if p.startswith("X-Amz-Signature="))
    # No AWS identity at all: the URL is the credential.
    code, out, err, _, _ = run(worker_command, worker_env, tmp_path, url, sha256_hex(body),
                               {"AWS_ALLOW_HTTP": "true", "WOVE_WORKER_LOG_FORMAT": "json"})
    assert code == EXIT_OK, err
    assert result_of(receiver) == {"blob_len": 2048, "url_visible": False}
    for text in (out, err, (tmp_path / "termination-log").read_text()):
        assert signature not in text and query not in text


def test_an_expired_presigned_url_says_so_and_runs_nothing(
        s3: S3Server, receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str],
        tmp_path: Path) -> None:
    body = payload(receiver, tmp_path / "ran", 2048)
    key = f"jobs/expired/{sha256_hex(body)}"
    s3.put(key, body)
    # moto serves a presigned URL however old it is; the proxy answers as S3 does.
    proxy = FaultProxy(s3.url, check_expiry=True)
    try:
        url = s3.presign(key, 1, endpoint=proxy.url)
        time.sleep(2.2)
        code, _, err, _, _ = run(worker_command, worker_env, tmp_path, url, sha256_hex(body),
                                 {"AWS_ALLOW_HTTP": "true"})
    finally:
        proxy.close()
    assert proxy.gets == [403], "an expired URL is not retried"
    assert code == EXIT_UNAVAILABLE, err
    assert "presigned URL expired" in err and "--presign" in err, err
    assert url.split("?", 1)[1] not in err
    assert not (tmp_path / "ran").exists() and receiver.events() == []
    assert termination(tmp_path)["status"] == "payload_unavailable"


def test_a_deleted_object_is_not_found_with_the_likely_cause(
        s3: S3Server, receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str],
        tmp_path: Path) -> None:
    body = payload(receiver, tmp_path / "ran", 2048)
    key = f"jobs/deleted/{sha256_hex(body)}"
    url = s3.put(key, body)
    s3.s3().delete_object(Bucket=BUCKET, Key=key)
    code, _, err, _, wall = run(worker_command, worker_env, tmp_path, url, sha256_hex(body), s3.worker_env(s3.admin))
    assert code == EXIT_UNAVAILABLE, err
    assert "no object at s3://" in err and "lifecycle rule" in err, err
    assert wall < 20, "a 404 is not retried"
    assert not (tmp_path / "ran").exists() and receiver.events() == []


def test_an_altered_object_exits_65_and_the_task_never_runs(
        s3: S3Server, receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str],
        tmp_path: Path) -> None:
    body = payload(receiver, tmp_path / "ran", 2048)
    key = f"jobs/altered/{sha256_hex(body)}"
    # Same size, one byte different: only the digest can tell.
    altered = body.replace(b'"task_id": "ref"', b'"task_id": "rEf"')
    assert len(altered) == len(body) and altered != body
    url = s3.put(key, altered)
    code, _, err, _, _ = run(worker_command, worker_env, tmp_path, url, sha256_hex(body),
                             {**s3.worker_env(s3.admin), "WOVE_BACKEND_PAYLOAD_SIZE": str(len(body))})
    assert code == EXIT_BAD_PAYLOAD, err
    assert "altered or replaced" in err and sha256_hex(altered) in err, err
    assert not (tmp_path / "ran").exists(), "the task ran from an altered payload"
    assert receiver.events() == [], "an altered payload's callback URL was used"
    assert termination(tmp_path)["status"] == "bad_payload"


def test_wrong_credentials_and_a_role_without_get_object_are_told_apart(
        s3_auth: S3Server, receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str],
        tmp_path: Path) -> None:
    body = payload(receiver, tmp_path / "ran", 2048)
    url = s3_auth.put(f"jobs/auth/{sha256_hex(body)}", body)
    sha = sha256_hex(body)

    code, _, err, _, _ = run(worker_command, worker_env, tmp_path, url, sha,
                             s3_auth.worker_env(Keys(s3_auth.reader.access_key, "wrong-secret")))
    assert code == EXIT_UNAVAILABLE, err
    assert "SignatureDoesNotMatch" in err and "credentials were refused" in err, err
    assert "wrong-secret" not in err

    code, _, err, _, _ = run(worker_command, worker_env, tmp_path, url, sha, s3_auth.worker_env(s3_auth.nobody))
    assert code == EXIT_UNAVAILABLE, err
    assert "AccessDenied" in err and "s3:GetObject" in err, err
    assert not (tmp_path / "ran").exists() and receiver.events() == []

    # The same object with a role that may read it: the checks above were the policy's, not the test's.
    code, _, err, _, _ = run(worker_command, worker_env, tmp_path, url, sha, s3_auth.worker_env(s3_auth.reader))
    assert code == EXIT_OK, err
    assert result_of(receiver)["blob_len"] == 2048


def test_container_credentials_are_fetched_with_the_authorization_token(
        s3_auth: S3Server, receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str],
        tmp_path: Path) -> None:
    body = payload(receiver, tmp_path / "ran", 2048)
    url = s3_auth.put(f"jobs/ecs/{sha256_hex(body)}", body)
    token = secrets.token_hex(16)
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text(token)
    endpoint = CredentialsEndpoint(s3_auth.role_session, token)
    try:
        env = {**s3_auth.worker_env(None), "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{endpoint.url}/creds",
               "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file)}
        code, _, err, _, _ = run(worker_command, worker_env, tmp_path, url, sha256_hex(body), env)
    finally:
        endpoint.close()
    assert code == EXIT_OK, err
    assert result_of(receiver)["blob_len"] == 2048
    assert endpoint.requests and all(r["authorization"] == token for r in endpoint.requests), endpoint.requests
    assert token not in err


def _namespaces_unavailable(reason: str) -> None:
    if os.environ.get("WOVE_TEST_REQUIRE_NAMESPACES") == "1":
        pytest.fail(f"a private network namespace is required here but cannot be made: {reason}")
    pytest.skip(f"needs a private network namespace: {reason}")


def test_a_batch_job_roles_relative_uri_is_fetched_from_169_254_170_2(
        worker_command: List[str], worker_env: Dict[str, str], tmp_path: Path) -> None:
    # Batch sets AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and nothing else: the worker must ask
    # 169.254.170.2 for that path. The address is real only inside a namespace of the test's own.
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        _namespaces_unavailable("unshare or ip is not installed")
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        _namespaces_unavailable(f"unshare --net: {probe.stderr.decode(errors='replace').strip()}")
    task = {"runner": "subprocess", "program": sys.executable, "args": ["-c", TASK],
            "input": {"blob": "ab" * 1024, "marker": str(tmp_path / "ran")}}
    helper = Path(__file__).with_name("netns_ecs.py")
    done = subprocess.run(
        ["unshare", "--net", sys.executable, str(helper)], cwd=helper.parent, capture_output=True, timeout=120,
        input=json.dumps({"worker_command": worker_command, "worker_env": worker_env,
                          "workdir": str(tmp_path), "task": task}).encode())
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    ran = json.loads(done.stdout)
    assert ran["code"] == EXIT_OK, ran["stderr"]
    assert [r["path"] for r in ran["requests"]] == [ran["relative_uri"]], ran["requests"]
    finals = [e for e in ran["events"] if e["type"] in ("task_result", "task_error")]
    assert [e["type"] for e in finals] == ["task_result"], finals
    assert finals[0]["result"]["blob_len"] == 2048
    assert (tmp_path / "ran").read_text() == "ran"
    assert ran["session_key"] not in ran["stderr"]


def test_instance_metadata_credentials_are_fetched_the_imdsv2_way(
        s3_auth: S3Server, receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str],
        tmp_path: Path) -> None:
    body = payload(receiver, tmp_path / "ran", 2048)
    url = s3_auth.put(f"jobs/imds/{sha256_hex(body)}", body)
    imds = Imds(s3_auth.role_session)
    try:
        # No keys, no container endpoint: the chain ends at the instance's role.
        env = {**s3_auth.worker_env(None), "AWS_METADATA_ENDPOINT": imds.url}
        code, _, err, _, _ = run(worker_command, worker_env, tmp_path, url, sha256_hex(body), env)
    finally:
        imds.close()
    assert code == EXIT_OK, err
    assert result_of(receiver)["blob_len"] == 2048
    assert imds.requests[0][:2] == ("PUT", "/latest/api/token"), imds.requests
    assert all(tokened for method, _, tokened in imds.requests if method == "GET"), "a GET without the v2 token"
    assert s3_auth.role_session.session_token not in err


def test_web_identity_is_exchanged_for_the_role_as_irsa_does(
        s3_auth: S3Server, receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str],
        tmp_path: Path) -> None:
    body = payload(receiver, tmp_path / "ran", 2048)
    url = s3_auth.put(f"jobs/irsa/{sha256_hex(body)}", body)
    token = secrets.token_hex(24)
    (tmp_path / "sa-token").write_text(token)
    role = "arn:aws:iam::123456789012:role/job-role"
    sts = WebIdentitySts(s3_auth.role_session, token, role, tmp_path)
    try:
        env = {**s3_auth.worker_env(None), "AWS_WEB_IDENTITY_TOKEN_FILE": str(tmp_path / "sa-token"),
               "AWS_ROLE_ARN": role, "AWS_ENDPOINT_URL_STS": sts.url,
               # STS is reached over TLS only: the private CA is trusted as the worker trusts any.
               "WOVE_WORKER_CA_BUNDLE": str(sts.ca)}
        code, _, err, _, _ = run(worker_command, worker_env, tmp_path, url, sha256_hex(body), env)
    finally:
        sts.close()
    assert code == EXIT_OK, err
    assert result_of(receiver)["blob_len"] == 2048
    assert len(sts.requests) == 1 and sts.requests[0]["WebIdentityToken"].strip() == token
    assert token not in err


def test_a_503_is_retried_then_the_payload_runs(
        s3: S3Server, receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str],
        tmp_path: Path) -> None:
    body = payload(receiver, tmp_path / "ran", 2048)
    url = s3.put(f"jobs/slowdown/{sha256_hex(body)}", body)
    proxy = FaultProxy(s3.url, Fault(503, s3_error("SlowDown", "Please reduce your request rate."), times=2))
    try:
        code, _, err, _, _ = run(worker_command, worker_env, tmp_path, url, sha256_hex(body),
                                 s3.worker_env(s3.admin, endpoint=proxy.url))
    finally:
        proxy.close()
    assert code == EXIT_OK, err
    assert proxy.gets == [503, 503, 200]
    assert err.count("payload fetch failed; retrying") == 2, err
    assert result_of(receiver)["blob_len"] == 2048


def test_storage_that_keeps_failing_ends_retryable_within_the_read_timeout(
        s3: S3Server, receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str],
        tmp_path: Path) -> None:
    body = payload(receiver, tmp_path / "ran", 2048)
    url = s3.put(f"jobs/down/{sha256_hex(body)}", body)
    proxy = FaultProxy(s3.url, Fault(500, s3_error("InternalError"), times=1_000_000))
    try:
        code, _, err, _, wall = run(worker_command, worker_env, tmp_path, url, sha256_hex(body),
                                    s3.worker_env(s3.admin, endpoint=proxy.url), args=["--read-timeout", "3"])
    finally:
        proxy.close()
    assert code == EXIT_TEMPORARY, err
    assert "kept failing" in err and "--read-timeout" in err, err
    assert wall < 15
    assert len(proxy.gets) >= 2
    assert termination(tmp_path)["status"] == "payload_unavailable"


@pytest.mark.parametrize("answer", [
    Fault(400, s3_error("AuthorizationHeaderMalformed",
                        "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'")),
    Fault(301, s3_error("PermanentRedirect", "The bucket you are attempting to access must be addressed using the "
                        "specified endpoint.", Region="eu-west-1"), headers={"x-amz-bucket-region": "eu-west-1"}),
], ids=["signed-for-another-region", "bucket-elsewhere"])
def test_a_bucket_in_another_region_says_which(
        s3: S3Server, receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str],
        tmp_path: Path, answer: Fault) -> None:
    body = payload(receiver, tmp_path / "ran", 2048)
    url = s3.put(f"jobs/region/{sha256_hex(body)}", body)
    answer.times = 1_000_000
    proxy = FaultProxy(s3.url, answer)
    try:
        code, _, err, _, _ = run(worker_command, worker_env, tmp_path, url, sha256_hex(body),
                                 s3.worker_env(s3.admin, endpoint=proxy.url))
    finally:
        proxy.close()
    assert code == EXIT_UNAVAILABLE, err
    # A 301 carries no body the client keeps: the worker asks the bucket where it is.
    assert "is in eu-west-1" in err and "set AWS_REGION=eu-west-1" in err, err
    assert proxy.gets.count(answer.status) == 1, "a wrong region is not retried"


# S3 always sends Content-Length; a chunked answer (no length to refuse up front) is the https path's.
@pytest.mark.timeout(120)
@pytest.mark.parametrize("scheme,announce", [("s3", True), ("http", True), ("http", False)],
                         ids=["s3", "https-content-length", "https-chunked"])
def test_a_2gb_object_over_a_1mib_bound_fails_fast_with_flat_memory(
        receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str], tmp_path: Path,
        scheme: str, announce: bool) -> None:
    huge = EndlessObject(2 * 1024 ** 3, announce=announce)
    try:
        if scheme == "s3":
            url = "s3://endless/object"
            env = {"AWS_ENDPOINT_URL": huge.url, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
                   "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_METADATA_ENDPOINT": "http://127.0.0.1:9"}
        else:
            url, env = f"{huge.url}/object", {"AWS_ALLOW_HTTP": "true"}
        code, _, err, rss_kib, wall = run(worker_command, worker_env, tmp_path, url, "ab" * 32, env,
                                          args=["--max-payload-bytes", str(1024 * 1024)])
    finally:
        huge.close()
    assert code == EXIT_BAD_PAYLOAD, err
    assert "over the" in err and "bound" in err, err
    assert wall < 20, f"took {wall:.1f} s"
    # The bound is 1 MiB of JSON (4/3 of it as base64): what was read stays near it.
    assert huge.sent < 64 * 1024 * 1024, f"{huge.sent} bytes were sent before the worker stopped reading"
    assert 0 < rss_kib < 64 * 1024, f"peak RSS {rss_kib} KiB"
