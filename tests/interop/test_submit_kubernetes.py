"""`wove-submit kubernetes`, driven as an operator or a CI job would, against Kubernetes.

Rendered Jobs are held to the published schemas (`kubernetes-validate --strict`, oldest and newest
supported version), to the rules in k8s_rules.py, and to Kubernetes v1.37.2's own API server
(server-side dry run). Submitting, watching and cancelling go through the kube client the program
builds from a kubeconfig, to the real control plane in cluster.py: its Job controller makes the
pods and applies the podFailurePolicy, its garbage collector deletes what a Job owns, and the
node agent runs each pod's container — the real worker, whose events reach a loopback receiver.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import yaml
from wove import NetworkExecutorSecurity

import k8s_rules
from cluster import JOBS, PODS, SECRETS, ApiError, Namespace, exit_code, state_of, wait_until
from receiver import EventReceiver

pytestmark = pytest.mark.wove_worker_only

REPO = Path(__file__).resolve().parents[2]
EXIT_REFUSED = 64
EXIT_NOT_FOUND = 68
EXIT_API = 69
EXIT_TIMED_OUT = 124
EXIT_TASK_FAILED = 3
RUN_ID = "compute:0123456789abcdef0123456789abcdef"


def payload(
    callback_url: str = "http://127.0.0.1:9/wove/events/secret-token",
    *,
    run_id: str = RUN_ID,
    task: Optional[Dict[str, Any]] = None,
    **extra: Any,
) -> str:
    body = {
        "version": 1,
        "callback_url": callback_url,
        "run_id": run_id,
        "task_id": run_id.split(":")[0],
        "task": task or {"runner": "subprocess", "program": "true"},
        **extra,
    }
    return json.dumps(body)


# An Indexed Job's payload: two tasks, one per pod.
TWO_TASKS = json.dumps({
    "version": 1, "callback_url": "http://127.0.0.1:9/wove/events/t", "run_id": RUN_ID,
    "tasks": [{"task_id": t, "task": {"runner": "subprocess", "program": "true"}} for t in ("a", "b")],
})


def submit_env(cluster: Optional[Namespace]) -> Dict[str, str]:
    """Nothing of the test's environment but PATH (and the cluster's kubeconfig and the test's
    namespace), so no developer kubeconfig can leak in."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"}
    if cluster is not None:
        env["WOVE_SUBMIT_KUBECONFIG"] = str(cluster.kubeconfig)
        env["WOVE_SUBMIT_NAMESPACE"] = cluster.name
    return env


def run(submit_bin: str, *args: str, cluster: Optional[Namespace] = None, stdin: Optional[str] = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    """`wove-submit kubernetes ARGS`."""
    env = submit_env(cluster)
    return subprocess.run(
        [submit_bin, "kubernetes", *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )


def render(submit_bin: str, *args: str, stdin: str) -> List[Dict[str, Any]]:
    done = run(submit_bin, "render", "--payload-file", "-", "--output", "json", *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    return document["items"] if document["kind"] == "List" else [document]


def split(objects: List[Dict[str, Any]]):
    job = next(o for o in objects if o["kind"] == "Job")
    secret = next((o for o in objects if o["kind"] == "Secret"), None)
    return job, secret


# -- rendering: schema and rules --------------------------------------------------------------


def options_file(tmp_path: Path) -> Path:
    """Every optional field set, through the options file."""
    path = tmp_path / "options.json"
    path.write_text(json.dumps({
        "image": "registry.example/wove-worker:0.1.0",
        "namespace": "batch",
        "name_prefix": "etl",
        "image_pull_policy": "IfNotPresent",
        "image_pull_secrets": ["regcred"],
        "command": ["/usr/local/bin/wove-worker"],
        "args": ["--log-format", "json"],
        "env": [{"name": "WOVE_WORKER_SIGNING_SCHEME", "value": "standard-webhooks"},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "env_from": [{"configMapRef": {"name": "wove-settings"}}],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "service_account": "wove-runner",
        "node_selector": {"kubernetes.io/arch": "amd64"},
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["batch"]}]}]}}},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}],
        "priority_class": "batch-low",
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}}],
        "volume_mounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
        "labels": {"team.example/owner": "data"},
        "annotations": {"team.example/ticket": "ETL-1, see wiki"},
        "security": {"run_as_user": 1000, "run_as_group": 1000, "run_as_non_root": True,
                     "read_only_root_filesystem": True},
        "backoff_limit": 2,
        "active_deadline_seconds": 7200,
        "ttl_seconds_after_finished": 600,
        "shutdown_budget_seconds": 40,
        "termination_grace_period_seconds": 60,
        "signing_secret": {"name": "wove-signing", "key": "current", "as_file": True},
        "payload_placement": "secret",
        "inline_payload_max_bytes": 4096,
        "suspend": True,
    }))
    return path


RENDER_CASES = {
    "small payload": lambda tmp: (["--image", "i:1"], payload()),
    "secret-borne payload": lambda tmp: (["--image", "i:1"], payload(task={
        "runner": "subprocess", "program": "cat", "input": {"blob": "x" * 60_000}})),
    "sensitive payload": lambda tmp: (["--image", "i:1", "--sensitive"], payload()),
    "signing secret and flags": lambda tmp: ([
        "--image", "i:1", "--signing-secret", "wove-signing", "--cpu", "1", "--memory", "512Mi", "--gpus", "1",
        "--label", "team=data", "--env", "A=1", "--toleration", '{"operator": "Exists"}', "--backoff-limit", "3",
        "--shutdown-budget", "10", "--read-only-root", "--env-from-secret", "extra"], payload()),
    "indexed completions": lambda tmp: ([
        "--image", "i:1", "--completions", "8", "--parallelism", "3", "--backoff-limit-per-index", "1",
        "--max-failed-indexes", "2"], payload()),
    "hook used": lambda tmp: ([
        "--image", "i:1", "--patch",
        '{"metadata": {"annotations": {"team.example/x": "y"}}, "spec": {"template": {"spec": '
        '{"hostname": "wove"}}}}'], payload()),
    "every optional field": lambda tmp: (["--options", str(options_file(tmp))], payload()),
    "hostile ids": lambda tmp: (["--image", "i:1"], payload(run_id="Ünïcödé.task:" + "z" * 300 + ":-")),
}


@pytest.mark.parametrize("case", list(RENDER_CASES))
def test_rendered_jobs_pass_the_schema_and_the_rules(case: str, submit_bin: str, tmp_path: Path) -> None:
    args, text = RENDER_CASES[case](tmp_path)
    objects = render(submit_bin, *args, stdin=text)
    k8s_rules.validate_schema(objects)
    job, secret = split(objects)
    assert k8s_rules.job_problems(job, secret) == []
    annotations = job["metadata"]["annotations"]
    assert annotations["wove.dev/run-id"] == json.loads(text)["run_id"], "the raw id survives in an annotation"
    env = {v["name"]: v for v in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    if secret is not None:
        assert "WOVE_BACKEND_PAYLOAD" not in env
        assert base64.b64decode(secret["data"]["payload"]) == text.encode(), "the Secret holds the payload as given"
    else:
        assert base64.b64decode(env["WOVE_BACKEND_PAYLOAD"]["value"]) == text.encode()


@pytest.mark.parametrize("case", list(RENDER_CASES))
def test_the_api_server_takes_every_rendered_job(case: str, submit_bin: str, tmp_path: Path, cluster: Namespace) -> None:
    """Kubernetes v1.37.2's own validation and admission (server-side dry run, unknown fields
    refused), not only the published schema."""
    args, text = RENDER_CASES[case](tmp_path)
    for obj in render(submit_bin, *args, stdin=text):
        obj["metadata"]["namespace"] = cluster.name
        created = cluster.create(JOBS if obj["kind"] == "Job" else SECRETS, obj, dryRun="All", fieldValidation="Strict")
        assert created["metadata"]["name"] == obj["metadata"]["name"]
        if obj["kind"] == "Job":
            # What the server filled in did not change what the submitter asked for.
            assert created["spec"]["podFailurePolicy"] == obj["spec"]["podFailurePolicy"]
            env = created["spec"]["template"]["spec"]["containers"][0]["env"]
            for var in env:
                # The one default the server adds to an env entry.
                (var.get("valueFrom") or {}).get("fieldRef", {}).pop("apiVersion", None)
            assert env == obj["spec"]["template"]["spec"]["containers"][0]["env"]
    assert cluster.list(JOBS) == [], "a dry run stores nothing"


def test_yaml_output_passes_kubernetes_validate_as_a_user_runs_it(submit_bin: str, tmp_path: Path) -> None:
    large = payload(task={"runner": "subprocess", "program": "cat", "input": {"blob": "x" * 60_000}})
    done = run(submit_bin, "render", "--payload-file", "-", "--image", "i:1", stdin=large)
    assert done.returncode == 0, done.stderr
    assert "cannot make the Job its owner" in done.stderr, "render says what kubectl apply cannot do"
    manifest = tmp_path / "job.yaml"
    manifest.write_text(done.stdout)
    assert [d["kind"] for d in yaml.safe_load_all(done.stdout)] == ["Secret", "Job"]
    for version in k8s_rules.SUPPORTED_VERSIONS:
        checked = subprocess.run(
            [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, str(manifest)],
            capture_output=True, text=True, timeout=60,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_example_payload_renders_as_documented(submit_bin: str) -> None:
    done = run(submit_bin, "render", "--payload-file", str(REPO / "examples/payloads/reverse.json"),
               "--image", "registry/x:1")
    assert done.returncode == 0, done.stderr
    readme = (REPO / "crates/wove-submit/README.md").read_text()
    assert done.stdout.strip() in readme, "the submitter's README shows the Job rendered for examples/payloads/reverse.json"


@pytest.mark.parametrize(
    "args, text, expected",
    [
        # As given: a payload of one letter repeated would fit anywhere compressed.
        (["--image", "i:1", "--payload-placement", "env", "--compression", "never"],
         payload(task={"runner": "subprocess", "program": "cat", "input": {"blob": "x" * 200_000}}),
         "MAX_ARG_STRLEN"),
        (["--image", "i:1", "--compression", "never"],
         payload(task={"runner": "subprocess", "program": "cat", "input": {"blob": "x" * 1_200_000}}),
         "over the 1048576-byte limit of a Kubernetes Secret"),
        (["--image", "i:1", "--patch", '{"spec": {"template": {"spec": {"restartPolicy": "Always"}}}}'],
         payload(), "restartPolicy"),
        (["--image", "i:1", "--termination-grace", "10"], payload(), "shutdown budget"),
        # Every way around the options is checked on the Job as built.
        (["--image", "i:1", "--arg=--shutdown-budget=300"], payload(), "--shutdown-budget=300: the submitter sets"),
        (["--image", "i:1", "--arg", "--payload-file", "--arg", "/etc/x"], payload(), "--payload-file: the submitter"),
        (["--image", "i:1", "--env", "WOVE_WORKER_SHUTDOWN_BUDGET=300"], payload(), "set by the submitter"),
        (["--image", "i:1", "--patch", json.dumps({"spec": {"template": {"spec": {"containers": [
            {"name": "wove", "image": "i:1", "env": [{"name": "WOVE_BACKEND_PAYLOAD", "value": "eyJ2ZXJzaW9uIjogMX0="}]}]}}}})],
         payload(), "is not a payload"),
        (["--image", "i:1", "--patch", json.dumps({"spec": {"template": {"spec": {"containers": [
            {"name": "wove", "image": "i:1", "env": [{"name": "WOVE_BACKEND_PAYLOAD",
                                                        "value": base64.b64encode(payload(run_id="o:1").encode()).decode()}]}]}}}})],
         payload(), "is not the payload the job names"),
        (["--image", "i:1", "--env", "JOB_COMPLETION_INDEX=0"], TWO_TASKS, "every pod would run the same task"),
        (["--image", "i:1", "--env", "WOVE_WORKER_INDEX=0"], payload(), "every pod would run the same task"),
        (["--image", "i:1", "--patch", '{"spec": {"backoffLimit": -5}}'], payload(), "spec.backoffLimit: must be at least 0"),
        (["--image", "i:1", "--label", "run=a:b"], payload(), "not a valid label"),
        ([], payload(), "option `image`: is required"),
        (["--image", "i:1"], '{"version": 2}', "payload field `version`"),
        (["--image", "i:1"], "not base64!", "not valid base64"),
    ],
    ids=["env too small", "secret too small", "hook breaks a rule", "grace too short",
         "--arg shutdown budget", "--arg payload file", "--env shutdown budget", "patched payload not a payload",
         "patched payload not the named one", "--env completion index", "--env worker index", "patched backoffLimit",
         "bad label", "no image", "bad version", "bad base64"],
)
def test_what_cannot_run_is_refused_before_sending(
    submit_bin: str, args: List[str], text: str, expected: str
) -> None:
    done = run(submit_bin, "render", "--payload-file", "-", *args, stdin=text)
    assert done.returncode == EXIT_REFUSED, (done.returncode, done.stderr)
    assert expected in done.stderr, done.stderr
    assert done.stdout == "", "nothing is printed for kubectl to apply"
    assert done.stderr.count("\n") == 1, f"one line: {done.stderr!r}"


# -- against the API --------------------------------------------------------------------------

# No node has it: the pod waits in ErrImagePull, then ImagePullBackOff, as on any cluster.
ABSENT_IMAGE = "registry.example/not-on-this-node:1"


def submit(submit_bin: str, cluster: Namespace, text: str, *args: str, image: str = "local",
           timeout: float = 60) -> subprocess.CompletedProcess:
    return run(submit_bin, "submit", "--payload-file", "-", "--image", image, *args,
               cluster=cluster, stdin=text, timeout=timeout)


def submitted(submit_bin: str, cluster: Namespace, text: str, *args: str, image: str = "local") -> str:
    """Submit, and return the Job's name."""
    done = submit(submit_bin, cluster, text, "--output", "json", *args, image=image)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["name"]


def status_of(submit_bin: str, cluster: Namespace, name: str) -> Dict[str, Any]:
    done = run(submit_bin, "status", name, "--output", "json", cluster=cluster)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def status_reaching(submit_bin: str, cluster: Namespace, name: str, reason: str, timeout: float = 30) -> Dict[str, Any]:
    """`status`, read until it gives `reason`; fails after timeout seconds."""
    return wait_until(lambda: (lambda s: s if s["reason"] == reason else None)(status_of(submit_bin, cluster, name)),
                      timeout, f"{reason} in status")


def test_submit_creates_the_job_then_its_owned_secret_then_resumes(submit_bin: str, cluster: Namespace) -> None:
    done = submit(submit_bin, cluster, payload(), "--sensitive", "--output", "json", image=ABSENT_IMAGE)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["created"] is True
    name = out["name"]
    job = cluster.get(JOBS, name)
    secret = cluster.get(SECRETS, f"{name}-payload")
    assert secret is not None
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", name, job["metadata"]["uid"])
    assert job["spec"].get("suspend") is False, "resumed once the Secret exists"
    assert "wove.dev/suspended-for-payload" not in job["metadata"].get("annotations", {})
    writes = [(r.method, r.path.rsplit("/", 2)[-2:]) for r in cluster.requests() if r.method in ("POST", "PATCH", "PUT")]
    assert writes == [("POST", [cluster.name, "jobs"]), ("POST", [cluster.name, "secrets"]), ("PATCH", ["jobs", name])]
    created = next(r for r in cluster.requests() if r.method == "POST" and r.path.endswith("/jobs"))
    assert created.body["spec"]["suspend"] is True, "no pod may start before its payload Secret exists"
    assert k8s_rules.job_problems(job, secret) == []


def test_resubmitting_is_idempotent_and_another_payload_is_refused(submit_bin: str, cluster: Namespace) -> None:
    first = submit(submit_bin, cluster, payload(), "--output", "json", image=ABSENT_IMAGE)
    again = submit(submit_bin, cluster, payload(), "--output", "json", image=ABSENT_IMAGE)
    assert first.returncode == again.returncode == 0, (first.stderr, again.stderr)
    assert json.loads(first.stdout)["created"] is True
    assert json.loads(again.stdout)["created"] is False
    assert json.loads(again.stdout)["uid"] == json.loads(first.stdout)["uid"]
    assert len(cluster.list(JOBS)) == 1

    other = submit(submit_bin, cluster, payload(callback_url="http://127.0.0.1:9/wove/events/other-token"),
                   image=ABSENT_IMAGE)
    assert other.returncode == EXIT_API, other.stderr
    assert "already exists" in other.stderr and "different payload" in other.stderr, other.stderr
    assert "other-token" not in other.stderr and "secret-token" not in other.stderr


def test_status_and_wait_report_an_image_no_node_can_pull(submit_bin: str, cluster: Namespace) -> None:
    name = submitted(submit_bin, cluster, payload(), image=ABSENT_IMAGE)
    seen = status_reaching(submit_bin, cluster, name, "ImagePullBackOff")
    assert seen["phase"] == "pending"
    assert "Back-off pulling image" in seen["message"] and ABSENT_IMAGE in seen["message"], seen
    started = time.monotonic()
    done = run(submit_bin, "wait", name, "--timeout", "1", "--poll", "0.2", cluster=cluster, timeout=30)
    assert done.returncode == EXIT_TIMED_OUT, done.stderr
    assert time.monotonic() - started < 15
    assert "gave up after" in done.stderr and "pending (ImagePullBackOff" in done.stderr, done.stderr


def test_wait_follows_a_running_job_to_the_failure_the_controller_decides(
    submit_bin: str, cluster: Namespace, receiver: EventReceiver
) -> None:
    task = {"runner": "subprocess", "program": "sh", "args": ["-c", "sleep 2; echo boom >&2; exit 9"]}
    name = submitted(submit_bin, cluster, payload(callback(receiver), task=task), "--backoff-limit", "3")
    waiter = subprocess.Popen(
        [submit_bin, "kubernetes", "wait", name, "--timeout", "60", "--poll", "0.2", "--output", "json"],
        env=submit_env(cluster), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(lambda: status_of(submit_bin, cluster, name)["phase"] == "running", 30, "the Job running")
        assert waiter.poll() is None, "a running Job is not an answer"
        out, err = waiter.communicate(timeout=60)
    finally:
        waiter.kill()
    assert waiter.returncode == EXIT_TASK_FAILED, err
    report = json.loads(out)
    assert (report["phase"], report["reason"], report["exit_code"]) == ("failed", "PodFailurePolicy", 3)
    assert report["exit_meaning"].startswith("task failed")
    assert len(report["pods"]) == 1, "the Job controller retried a permanent failure despite backoffLimit 3"
    assert report["pods"][0]["termination_message"]["error_kind"] == "NonZeroExit"
    job = cluster.get(JOBS, name)
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "PodFailurePolicy" and "matching FailJob rule" in failed["message"], failed
    text = run(submit_bin, "status", name, cluster=cluster)
    assert "worker exit code 3: task failed" in text.stdout, text.stdout
    assert "`sh` ended with exit code 9" in text.stdout, "the worker's termination message: " + text.stdout
    errors = [e for e in receiver.events() if e["type"] == "task_error"]
    assert errors and errors[0]["error"]["exit_code"] == 9


def test_a_retryable_exit_is_retried_up_to_the_backoff_limit(submit_bin: str, cluster: Namespace) -> None:
    """Nothing listens at the callback URL: the worker exits with its retryable delivery code,
    and the Job controller counts each failure against backoffLimit, as the podFailurePolicy's
    Count rule says."""
    name = submitted(submit_bin, cluster, payload(), "--backoff-limit", "1",
                     "--arg=--delivery-budget=1")
    done = run(submit_bin, "wait", name, "--timeout", "120", "--poll", "0.2", "--output", "json", cluster=cluster,
               timeout=150)
    report = json.loads(done.stdout)
    job = cluster.get(JOBS, name)
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded", failed
    assert job["status"]["failed"] == 2, "the first try and one retry"
    assert report["phase"] == "failed" and report["reason"] == "BackoffLimitExceeded", report
    assert {p["exit_code"] for p in report["pods"]} == {75}, report["pods"]
    assert done.returncode == 75, done.stderr


def test_an_evicted_pod_is_replaced_without_using_a_retry(
    submit_bin: str, cluster: Namespace, receiver: EventReceiver
) -> None:
    marker = f"/tmp/wove-evict-{cluster.name}"
    # The first pod blocks; its replacement finds the marker and succeeds.
    script = f'test -e {marker} && exit 0; touch {marker}; exec sleep 60'
    task = {"runner": "subprocess", "program": "sh", "args": ["-c", script]}
    name = submitted(submit_bin, cluster, payload(callback(receiver), task=task), "--backoff-limit", "0")
    first = cluster.wait_for_pods(name, lambda pods: pods and "running" in state_of(pods[0]), 30)[0]
    try:
        cluster.cluster.api("POST", cluster.path(PODS, first["metadata"]["name"], "eviction"), {
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": first["metadata"]["name"], "namespace": cluster.name}})
        done = run(submit_bin, "wait", name, "--timeout", "90", "--poll", "0.2", "--output", "json",
                   cluster=cluster, timeout=120)
    finally:
        if os.path.exists(marker):
            os.unlink(marker)
    assert done.returncode == 0, done.stdout + done.stderr
    job = cluster.get(JOBS, name)
    assert job["status"].get("succeeded") == 1
    assert job["status"].get("failed", 0) == 0, "the disruption was ignored, not counted against backoffLimit 0"
    assert cluster.node_exits(first["metadata"]["name"]) == [143], "the evicted pod had SIGTERM"


def test_unknown_jobs(submit_bin: str, cluster: Namespace) -> None:
    for command in ("status", "wait"):
        done = run(submit_bin, command, "wove-nothing-here", cluster=cluster)
        assert done.returncode == EXIT_NOT_FOUND, done.stderr
        assert f"no Job named wove-nothing-here in namespace {cluster.name}" in done.stderr
    done = run(submit_bin, "cancel", "wove-nothing-here", "--output", "json", cluster=cluster)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == "not_found"


def test_a_flag_value_that_does_not_read_is_a_usage_error_that_names_it(submit_bin: str) -> None:
    # Read as the flags are parsed, into their types: nothing is rendered, nothing is sent.
    for flag, value, said in [
        ("--image-pull-policy", "Sometimes", "Always, IfNotPresent or Never"),
        ("--signing-secret", "wove-signing:", "NAME or NAME:KEY"),
    ]:
        done = run(submit_bin, "render", "--payload-file", "-", "--image", "i:1", flag, value, stdin=payload())
        assert done.returncode == 2, done.stderr
        assert flag in done.stderr and said in done.stderr, done.stderr
        assert done.stdout == "", done.stdout
    ok = render(submit_bin, "--image", "i:1", "--image-pull-policy", "IfNotPresent", "--signing-secret", "s:current",
                stdin=payload())
    job, _ = split(ok)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"
    secret_ref = next(e for e in container["env"] if e["name"] == "WOVE_WORKER_SIGNING_SECRET")["valueFrom"]
    assert secret_ref["secretKeyRef"]["name"] == "s" and secret_ref["secretKeyRef"]["key"] == "current"


def test_an_unreachable_api_is_its_own_exit_code(submit_bin: str, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    done = run(submit_bin, "submit", "--payload-file", "-", "--image", "i:1", "--kubeconfig", str(kubeconfig),
               "--api-timeout", "5", stdin=payload())
    assert done.returncode == EXIT_API, done.stderr
    assert done.stderr.startswith("wove-submit: create Job"), done.stderr
    missing = run(submit_bin, "status", "x", "--kubeconfig", str(tmp_path / "nope"))
    assert missing.returncode == EXIT_API and "Kubernetes configuration" in missing.stderr, missing.stderr


def test_cancel_deletes_with_background_propagation_and_the_collector_takes_the_secret(
    submit_bin: str, cluster: Namespace
) -> None:
    name = submitted(submit_bin, cluster, payload(), "--sensitive", image=ABSENT_IMAGE)
    cluster.wait_for_pods(name, lambda pods: len(pods) == 1, 30, "the Job controller's pod")
    done = run(submit_bin, "cancel", name, cluster=cluster)
    assert done.returncode == 0, done.stderr
    deletes = [r for r in cluster.requests() if r.method == "DELETE"]
    assert len(deletes) == 1 and deletes[0].path.endswith(f"/jobs/{name}")
    assert deletes[0].propagation_policy == "Background"
    wait_until(lambda: cluster.get(JOBS, name) is None, 10, "the Job deleted")
    # Kubernetes' garbage collector, following the ownerReferences wove-submit wrote.
    wait_until(lambda: cluster.get(SECRETS, f"{name}-payload") is None, 30, "the owned payload Secret collected")
    wait_until(lambda: cluster.pods(name) == [], 30, "the Job's pods collected")


def test_a_missing_signing_secret_is_create_container_config_error(submit_bin: str, cluster: Namespace) -> None:
    name = submitted(submit_bin, cluster, payload(), "--signing-secret", "no-such-secret")
    seen = status_reaching(submit_bin, cluster, name, "CreateContainerConfigError")
    assert seen["phase"] == "pending"
    assert 'secret "no-such-secret" not found' in seen["message"], seen


def test_requests_no_node_can_fit_are_unschedulable(submit_bin: str, cluster: Namespace) -> None:
    """The real scheduler's verdict, from the node's allocatable resources."""
    name = submitted(submit_bin, cluster, payload(), "--cpu", "500")
    seen = status_reaching(submit_bin, cluster, name, "Unschedulable")
    assert seen["phase"] == "pending"
    assert "Insufficient cpu" in seen["message"], seen


def test_a_task_over_the_memory_limit_is_oom_killed_in_the_containers_cgroup(
    submit_bin: str, cluster: Namespace, receiver: EventReceiver
) -> None:
    """The node gives a container with a memory limit its own memory cgroup, as a runtime does:
    the kernel's OOM killer ends the task inside it, the worker reports OutOfMemory, and the
    container's status says OOMKilled, as containerd reports any OOM kill in the cgroup."""
    hog = "b = []\nwhile True: b.append(b\"x\" * (8 << 20))"
    task = {"runner": "subprocess", "program": sys.executable, "args": ["-c", hog]}
    name = submitted(submit_bin, cluster, payload(callback(receiver), task=task), "--memory-limit", "96Mi")
    done = run(submit_bin, "wait", name, "--timeout", "50", "--poll", "0.2", "--output", "json", cluster=cluster)
    assert done.returncode == EXIT_TASK_FAILED, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["pods"][0]["termination_message"]["error_kind"] == "OutOfMemory", report
    (pod,) = cluster.pods(name)
    assert state_of(pod)["terminated"]["reason"] == "OOMKilled", state_of(pod)
    errors = [e for e in receiver.events() if e["type"] == "task_error"]
    assert errors and errors[0]["error"]["kind"] == "OutOfMemory", errors


def test_a_job_that_failed_before_its_worker_ran(submit_bin: str, cluster: Namespace) -> None:
    name = submitted(submit_bin, cluster, payload(), "--active-deadline", "2", image=ABSENT_IMAGE)
    done = run(submit_bin, "wait", name, "--timeout", "60", "--poll", "0.2", cluster=cluster, timeout=90)
    assert done.returncode == 79, done.stdout + done.stderr
    assert "failed (DeadlineExceeded)" in done.stdout and "longer than specified deadline" in done.stdout, done.stdout


def test_a_finished_job_is_deleted_after_its_ttl(submit_bin: str, cluster: Namespace, receiver: EventReceiver) -> None:
    name = submitted(submit_bin, cluster, payload(callback(receiver), task=echo_task("ttl")),
                     "--ttl-after-finished", "1", "--sensitive")
    wait_until(lambda: cluster.get(JOBS, name) is None, 60, "the TTL-after-finished controller deleting the Job")
    assert [e["type"] for e in receiver.events() if e["type"] == "task_result"] == ["task_result"]
    wait_until(lambda: cluster.get(SECRETS, f"{name}-payload") is None, 30, "the payload Secret collected with it")


# -- end to end: the submitted Job runs the worker ----------------------------------------------


def echo_task(text: str) -> Dict[str, Any]:
    """A task whose result is its input, and which prints a line the log should show."""
    script = 'import json, os, sys; d = json.load(sys.stdin); print("task says", d["text"]); ' \
             'json.dump(d, open(os.environ["WOVE_RESULT_FILE"], "w"))'
    return {"runner": "subprocess", "program": sys.executable, "args": ["-c", script], "input": {"text": text}}


def callback(receiver: EventReceiver, token: str = "e2e-token") -> str:
    return f"{receiver.base_url}/wove/events/{token}"


def test_a_submitted_job_runs_the_worker_and_its_result_arrives(
    submit_bin: str, cluster: Namespace, receiver: EventReceiver
) -> None:
    cluster.secret("wove-signing", {"secret": b"s3cr3t"})
    text = payload(callback(receiver), task=echo_task("hello"))
    done = submit(submit_bin, cluster, text, "--signing-secret", "wove-signing", "--wait", "--logs",
                  "--timeout", "60", "--poll", "0.2", timeout=90)
    assert done.returncode == 0, done.stderr
    assert "task says hello" in done.stdout, "the pod's log was streamed"
    assert "succeeded" in done.stderr
    events = receiver.events()
    result = [e for e in events if e["type"] == "task_result"]
    assert len(result) == 1 and result[0]["result"] == {"text": "hello"}
    assert result[0]["run_id"] == RUN_ID
    # Signed with the secret the Job took from the Kubernetes Secret, as Wove's verifier checks it.
    signed = [r for r in receiver.received() if r.event()["type"] == "task_result"][0]
    verifier = NetworkExecutorSecurity(mode="signed", secret="s3cr3t")
    verifier.verify_headers(headers=signed.headers, transport="http", target=signed.path, body=signed.body)
    with pytest.raises(Exception):
        NetworkExecutorSecurity(mode="signed", secret="other").verify_headers(
            headers=signed.headers, transport="http", target=signed.path, body=signed.body)


def test_a_secret_borne_payload_reaches_the_worker(
    submit_bin: str, cluster: Namespace, receiver: EventReceiver
) -> None:
    text = payload(callback(receiver), task=echo_task("x" * 50_000))
    done = submit(submit_bin, cluster, text, "--wait", "--timeout", "60", "--poll", "0.2", "--output", "json",
                  timeout=90)
    assert done.returncode == 0, done.stderr
    name = json.loads(done.stdout)["name"]
    assert cluster.get(SECRETS, f"{name}-payload") is not None
    env = {v["name"]: v for v in cluster.pods(name)[0]["spec"]["containers"][0]["env"]}
    assert "WOVE_BACKEND_PAYLOAD" not in env and env["WOVE_BACKEND_PAYLOAD_FILE"]["value"].endswith("/payload")
    result = [e for e in receiver.events() if e["type"] == "task_result"]
    assert result[0]["result"] == {"text": "x" * 50_000}


def test_cancel_stops_the_running_worker_which_reports_task_cancelled(
    submit_bin: str, cluster: Namespace, receiver: EventReceiver
) -> None:
    task = {"runner": "subprocess", "program": "sleep", "args": ["60"]}
    name = submitted(submit_bin, cluster, payload(callback(receiver), task=task))
    receiver.wait_for(lambda events: any(e["type"] == "task_started" for e in events), timeout=30)
    (pod,) = cluster.pods(name)
    done = run(submit_bin, "cancel", name, cluster=cluster)
    assert done.returncode == 0, done.stderr
    events = receiver.wait_for(lambda events: any(e["type"] == "task_cancelled" for e in events), timeout=20)
    assert [e["type"] for e in events if e["type"] != "heartbeat"][-1] == "task_cancelled"
    codes = wait_until(lambda: cluster.node_exits(pod["metadata"]["name"]), 20, "the pod's end")
    assert codes == [143], "the worker ended on SIGTERM, within its grace"
    wait_until(lambda: cluster.pods(name) == [], 30, "the pod removed after its grace")


def test_a_delete_without_propagation_orphans_the_pods(
    submit_bin: str, cluster: Namespace, receiver: EventReceiver
) -> None:
    """What Wove's own adapter does, and why `cancel` sends Background: a Job deleted with no
    propagationPolicy leaves its pods running, orphaned by the real garbage collector."""
    task = {"runner": "subprocess", "program": "sleep", "args": ["60"]}
    name = submitted(submit_bin, cluster, payload(callback(receiver), task=task))
    receiver.wait_for(lambda events: any(e["type"] == "task_started" for e in events), timeout=30)
    (pod,) = cluster.pods(name)
    cluster.delete(JOBS, name)
    wait_until(lambda: cluster.get(JOBS, name) is None, 10, "the Job deleted")
    orphan = wait_until(lambda: (lambda p: p if not p["metadata"].get("ownerReferences") else None)(
        cluster.get(PODS, pod["metadata"]["name"])), 30, "the pod orphaned")
    assert "running" in state_of(orphan), "the orphaned pod is still running"
    assert not any(e["type"] == "task_cancelled" for e in receiver.events())


def test_logs_reads_a_finished_job(submit_bin: str, cluster: Namespace, receiver: EventReceiver) -> None:
    done = submit(submit_bin, cluster, payload(callback(receiver), task=echo_task("later")), "--wait",
                  "--timeout", "60", "--poll", "0.2", "--output", "json", timeout=90)
    assert done.returncode == 0, done.stderr
    name = json.loads(done.stdout)["name"]
    logs = run(submit_bin, "logs", name, "--timeout", "30", cluster=cluster)
    assert logs.returncode == 0, logs.stderr
    assert "task says later" in logs.stdout
    assert "secret-token" not in logs.stdout + logs.stderr
    (pod,) = cluster.pods(name)
    assert "task says later" in cluster.log(pod["metadata"]["name"]), "the same log through pods/log"


def test_logs_follow_streams_while_the_job_runs(submit_bin: str, cluster: Namespace, receiver: EventReceiver) -> None:
    script = 'import time; print("first", flush=True); time.sleep(3); print("second", flush=True)'
    task = {"runner": "subprocess", "program": sys.executable, "args": ["-c", script]}
    name = submitted(submit_bin, cluster, payload(callback(receiver), task=task))
    follower = subprocess.Popen([submit_bin, "kubernetes", "logs", name, "--timeout", "60"], env=submit_env(cluster),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first_seen = None
        lines = []
        deadline = time.monotonic() + 60
        assert follower.stdout is not None
        for line in follower.stdout:
            lines.append(line)
            if "first" in line and first_seen is None:
                first_seen = time.monotonic()
                assert not any("second" in seen for seen in lines), "the log streamed, not read at the end"
            assert time.monotonic() < deadline
        follower.wait(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 0, follower.stderr.read() if follower.stderr else ""
    assert first_seen is not None and any("second" in line for line in lines), lines
