"""Event signatures, checked by the verifiers their schemes' own libraries ship.

The worker runs directly (no weave) against a receiver that records every request as it came
off the wire, because Wove's receiver checks no signature and parses bodies before anyone could
look at their bytes. Wove v1 is checked with Wove's `NetworkExecutorSecurity.verify_headers`,
Standard Webhooks with the `standardwebhooks` package.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import cloudpickle
import pytest
from standardwebhooks import Webhook, WebhookVerificationError
from wove import NetworkExecutorSecurity
from wove.backend import build_backend_payload, deserialize_frame, payload_to_b64

from receiver import EventReceiver, Received

# The worker's task interpreter cannot import this module; ship the task by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

WORKER_TIMEOUT = 30
EXIT_OK = 0
EXIT_TASK_FAILED = 3
# Both schemes reject timestamps further than five minutes from the receiver's clock.
TIMESTAMP_TOLERANCE_SECONDS = 300


def add(a: int, b: int) -> int:
    return a + b


def refuse(a: int, b: int) -> int:
    raise ValueError(f"refusing to add {a} and {b}")


# -- helpers --------------------------------------------------------------------------------


def new_whsec() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode("ascii")


def callback_url(receiver: EventReceiver, token: str, query: str = "") -> str:
    return f"{receiver.base_url}/wove/events/{token}" + (f"?{query}" if query else "")


def payload_b64(url: str, func: Any = add) -> str:
    frame = {
        "run_id": f"sig:{uuid.uuid4().hex}",
        "task_id": "sig",
        "callable": func,
        "args": {"a": 2, "b": 3},
        "delivery": {},
    }
    return payload_to_b64(build_backend_payload(frame, callback_url=url, adapter="kubernetes_jobs"))


def run_worker(
    command: List[str],
    base_env: Dict[str, str],
    payload: str,
    cwd: Path,
    **extra_env: str,
) -> subprocess.CompletedProcess:
    env = {**base_env, "WOVE_BACKEND_PAYLOAD": payload, **extra_env}
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, timeout=WORKER_TIMEOUT)


def assert_nothing_leaked(proc: subprocess.CompletedProcess, sensitive: Iterable[str]) -> None:
    """The callback token and the signing secrets are credentials: never in the logs."""
    # A failure report must not print the values either: hide this frame (pytest would show its
    # arguments) and name the leaks by position.
    __tracebackhide__ = True
    leaks = [
        f"secret #{index} in {stream}"
        for index, value in enumerate(sensitive)
        for stream, output in (("stderr", proc.stderr), ("stdout", proc.stdout))
        if value.encode() in output
    ]
    assert not leaks, "the worker printed credentials (token is #0)"


def assert_well_formed(events: List[Received]) -> List[Dict[str, Any]]:
    """Checks every signed scheme shares; returns the decoded events."""
    assert events, "the worker delivered no event"
    decoded = [event.event() for event in events]
    for request, event in zip(events, decoded):
        assert request.header("Content-Type").startswith("application/json")
        assert request.header("Transfer-Encoding") is None, "Wove's receiver rejects chunked bodies"
        assert isinstance(event.get("event_id"), str) and event["event_id"]
        assert isinstance(event.get("meta"), dict)
    event_ids = [event["event_id"] for event in decoded]
    assert len(set(event_ids)) == len(event_ids), "event ids must be unique per event"
    assert decoded[0]["type"] == "task_started"
    assert decoded[-1]["type"] in {"task_result", "task_error"}
    return decoded


def assert_result(event: Dict[str, Any], expected: Any) -> None:
    assert event["type"] == "task_result"
    assert deserialize_frame(event)["result"] == expected


def tamper(body: bytes) -> bytes:
    """Change one byte, keeping the body valid UTF-8 so a verifier fails on the signature
    itself, not on decoding."""
    index = next(i for i in range(len(body) // 2, len(body)) if chr(body[i]).isalnum())
    replacement = b"0" if body[index : index + 1] != b"0" else b"1"
    return body[:index] + replacement + body[index + 1 :]


def verify_wove_v1(request: Received, verifier: NetworkExecutorSecurity, body: Optional[bytes] = None) -> None:
    verifier.verify_headers(
        headers=request.headers,
        transport="http",
        target=request.path,
        body=request.body if body is None else body,
    )


def assert_fresh(timestamp: str) -> None:
    assert timestamp.isdigit(), f"timestamp {timestamp!r} is not integer seconds"
    assert abs(time.time() - int(timestamp)) < TIMESTAMP_TOLERANCE_SECONDS


# -- the harness itself ---------------------------------------------------------------------


def test_harness_verifiers_accept_good_and_reject_tampered(receiver: EventReceiver) -> None:
    """Runs in reference mode too: signs with the schemes' own libraries and sends through the
    receiver, so the checks the worker's tests rely on are shown to pass and to fail."""
    token = secrets.token_urlsafe(24)
    path = f"/wove/events/{token}?tenant=blue"
    body = json.dumps({"type": "heartbeat", "run_id": "r:1", "task_id": "t", "event_id": "evt_1"}).encode()
    wove_secret, whsec = "harness-secret", new_whsec()

    signer = NetworkExecutorSecurity(mode="signed", secret=wove_secret)
    headers = signer.headers_for(transport="http", target=path, body=body)
    timestamp = datetime.datetime.now(tz=datetime.timezone.utc)
    headers.update(
        {
            "webhook-id": "evt_1",
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": Webhook(whsec).sign("evt_1", timestamp, body.decode()),
            "Content-Type": "application/json",
        }
    )
    request = urllib.request.Request(receiver.base_url + path, data=body, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204

    [got] = receiver.received()
    assert got.path == path and got.body == body
    verify_wove_v1(got, NetworkExecutorSecurity(mode="signed", secret=wove_secret))
    Webhook(whsec).verify(got.body, got.headers)

    with pytest.raises(PermissionError, match="Invalid Wove network executor signature"):
        verify_wove_v1(got, NetworkExecutorSecurity(mode="signed", secret=wove_secret), body=tamper(got.body))
    with pytest.raises(PermissionError, match="Invalid Wove network executor signature"):
        verify_wove_v1(got, NetworkExecutorSecurity(mode="signed", secret="some other secret"))
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec).verify(tamper(got.body), got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_whsec()).verify(got.body, got.headers)


# -- Wove v1 --------------------------------------------------------------------------------


@pytest.mark.wove_worker_only
@pytest.mark.parametrize("key_id", [None, "kid-2024-06"], ids=["default-key", "custom-key"])
def test_wove_v1_signatures_verify(
    receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str], tmp_path: Path, key_id: Optional[str]
) -> None:
    token, secret = secrets.token_urlsafe(24), "wove-v1-" + secrets.token_hex(16)
    extra = {"WOVE_WORKER_SIGNING_SCHEME": "wove-v1", "WOVE_WORKER_SIGNING_SECRET": secret}
    if key_id:
        extra["WOVE_WORKER_SIGNING_KEY_ID"] = key_id
    # A query string is part of what Wove v1 signs; a receiver may route on it.
    url = callback_url(receiver, token, query="tenant=blue")

    proc = run_worker(worker_command, worker_env, payload_b64(url), tmp_path, **extra)

    assert proc.returncode == EXIT_OK, proc.stderr.decode(errors="replace")
    assert_nothing_leaked(proc, [token, secret])
    requests = receiver.received()
    events = assert_well_formed(requests)
    assert_result(events[-1], 5)
    # One verifier for the whole run: it also remembers nonces, so a reused nonce fails here.
    verifier = NetworkExecutorSecurity(mode="signed", secret=secret, key=key_id or "default")
    for request in requests:
        assert request.path == f"/wove/events/{token}?tenant=blue"
        assert request.header("X-Wove-Key") == (key_id or "default")
        assert_fresh(request.header("X-Wove-Timestamp"))
        verify_wove_v1(request, verifier)
        # Without nonce memory, so the rejection can only come from the changed byte.
        with pytest.raises(PermissionError, match="Invalid Wove network executor signature"):
            verify_wove_v1(
                request,
                NetworkExecutorSecurity(mode="signed", secret=secret, key=key_id or "default", remember_nonces=False),
                body=tamper(request.body),
            )


@pytest.mark.wove_worker_only
def test_wove_v1_rotation_signs_with_the_first_secret(
    receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str], tmp_path: Path
) -> None:
    token, new, old = secrets.token_urlsafe(24), "new-" + secrets.token_hex(16), "old-" + secrets.token_hex(16)

    proc = run_worker(
        worker_command,
        worker_env,
        payload_b64(callback_url(receiver, token)),
        tmp_path,
        WOVE_WORKER_SIGNING_SCHEME="wove-v1",
        WOVE_WORKER_SIGNING_SECRET=f"{new} {old}",
    )

    assert proc.returncode == EXIT_OK, proc.stderr.decode(errors="replace")
    assert_nothing_leaked(proc, [token, new, old])
    requests = receiver.received()
    assert_well_formed(requests)
    for request in requests:
        verify_wove_v1(request, NetworkExecutorSecurity(mode="signed", secret=new, remember_nonces=False))
        # Wove v1 carries one signature, so only the current secret can check it.
        with pytest.raises(PermissionError, match="Invalid Wove network executor signature"):
            verify_wove_v1(request, NetworkExecutorSecurity(mode="signed", secret=old, remember_nonces=False))


# -- Standard Webhooks ----------------------------------------------------------------------


@pytest.mark.wove_worker_only
def test_standard_webhooks_signatures_verify(
    receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str], tmp_path: Path
) -> None:
    token, secret = secrets.token_urlsafe(24), new_whsec()

    proc = run_worker(
        worker_command,
        worker_env,
        payload_b64(callback_url(receiver, token)),
        tmp_path,
        WOVE_WORKER_SIGNING_SCHEME="standard-webhooks",
        WOVE_WORKER_SIGNING_SECRET=secret,
    )

    assert proc.returncode == EXIT_OK, proc.stderr.decode(errors="replace")
    assert_nothing_leaked(proc, [token, secret, secret.removeprefix("whsec_")])
    requests = receiver.received()
    events = assert_well_formed(requests)
    assert_result(events[-1], 5)
    for request, event in zip(requests, events):
        # The id is the event's idempotency key: the same value the body carries.
        assert request.header("webhook-id") == event["event_id"]
        assert_fresh(request.header("webhook-timestamp"))
        assert Webhook(secret).verify(request.body, request.headers) == event
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(tamper(request.body), request.headers)


@pytest.mark.wove_worker_only
def test_standard_webhooks_rotation_signs_with_every_secret(
    receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str], tmp_path: Path
) -> None:
    token, new, old = secrets.token_urlsafe(24), new_whsec(), new_whsec()

    proc = run_worker(
        worker_command,
        worker_env,
        payload_b64(callback_url(receiver, token)),
        tmp_path,
        WOVE_WORKER_SIGNING_SCHEME="standard-webhooks",
        WOVE_WORKER_SIGNING_SECRET=f"{new} {old}",
    )

    assert proc.returncode == EXIT_OK, proc.stderr.decode(errors="replace")
    assert_nothing_leaked(proc, [token, new, old])
    requests = receiver.received()
    assert_well_formed(requests)
    for request in requests:
        signatures = request.header("webhook-signature").split(" ")
        assert len(signatures) == 2 and all(sig.startswith("v1,") for sig in signatures)
        # Receivers mid-rotation hold either secret; both must accept.
        Webhook(new).verify(request.body, request.headers)
        Webhook(old).verify(request.body, request.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(new_whsec()).verify(request.body, request.headers)


# -- secrets from a file --------------------------------------------------------------------


@pytest.mark.wove_worker_only
@pytest.mark.parametrize("scheme", ["wove-v1", "standard-webhooks"])
def test_secret_from_file(
    receiver: EventReceiver,
    worker_command: List[str],
    worker_env: Dict[str, str],
    tmp_path: Path,
    scheme: str,
) -> None:
    token = secrets.token_urlsafe(24)
    if scheme == "wove-v1":
        current, previous = "file-" + secrets.token_hex(16), "file-old-" + secrets.token_hex(16)
    else:
        current, previous = new_whsec(), new_whsec()
    # A mounted Secret: one secret per line, ending in a newline as such files usually do.
    secret_file = tmp_path / "signing-secret"
    secret_file.write_text(f"{current}\n{previous}\n")

    proc = run_worker(
        worker_command,
        worker_env,
        payload_b64(callback_url(receiver, token)),
        tmp_path,
        WOVE_WORKER_SIGNING_SCHEME=scheme,
        WOVE_WORKER_SIGNING_SECRET_FILE=str(secret_file),
    )

    assert proc.returncode == EXIT_OK, proc.stderr.decode(errors="replace")
    assert_nothing_leaked(proc, [token, current, previous])
    requests = receiver.received()
    assert_well_formed(requests)
    for request in requests:
        if scheme == "wove-v1":
            verify_wove_v1(request, NetworkExecutorSecurity(mode="signed", secret=current, remember_nonces=False))
        else:
            Webhook(current).verify(request.body, request.headers)
            Webhook(previous).verify(request.body, request.headers)


# -- failures -------------------------------------------------------------------------------


@pytest.mark.wove_worker_only
def test_task_error_event_is_signed_and_complete(
    receiver: EventReceiver, worker_command: List[str], worker_env: Dict[str, str], tmp_path: Path
) -> None:
    token, secret = secrets.token_urlsafe(24), new_whsec()

    proc = run_worker(
        worker_command,
        worker_env,
        payload_b64(callback_url(receiver, token), func=refuse),
        tmp_path,
        WOVE_WORKER_SIGNING_SCHEME="standard-webhooks",
        WOVE_WORKER_SIGNING_SECRET=secret,
        # Chatty logging is where URLs (and the token in them) tend to slip out.
        RUST_LOG="debug",
    )

    assert proc.returncode == EXIT_TASK_FAILED, proc.stderr.decode(errors="replace")
    assert_nothing_leaked(proc, [token, secret])
    requests = receiver.received()
    events = assert_well_formed(requests)
    for request in requests:
        Webhook(secret).verify(request.body, request.headers)
    error_event = events[-1]
    assert error_event["type"] == "task_error"
    # Wove raises the pickled exception; the `error` dict is what non-Python receivers read.
    exception = deserialize_frame(error_event)["exception"]
    assert type(exception) is ValueError and str(exception) == "refusing to add 2 and 3"
    error = error_event["error"]
    assert error["kind"] == "ValueError"
    assert error["message"] == "refusing to add 2 and 3"
    assert isinstance(error["traceback"], str) and "refusing to add" in error["traceback"]
    assert isinstance(error["retryable"], bool)
    assert isinstance(error["source"], str)


@pytest.mark.wove_worker_only
def test_rejected_delivery_does_not_log_the_token(
    worker_command: List[str], worker_env: Dict[str, str], tmp_path: Path
) -> None:
    # Wove answers 404 to a wrong token; a worker reporting that failure must not print the URL.
    rejecting = EventReceiver(status=404)
    try:
        token, secret = secrets.token_urlsafe(24), new_whsec()
        proc = run_worker(
            worker_command,
            worker_env,
            payload_b64(callback_url(rejecting, token)),
            tmp_path,
            WOVE_WORKER_SIGNING_SCHEME="standard-webhooks",
            WOVE_WORKER_SIGNING_SECRET=secret,
            RUST_LOG="debug",
        )
    finally:
        rejecting.close()

    assert rejecting.received(), "the worker never tried to deliver"
    assert_nothing_leaked(proc, [token, secret])
