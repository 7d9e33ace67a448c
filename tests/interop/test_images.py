"""The worker images, built from images/ and run by a real container runtime (Podman with runc).

The worker is each container's PID 1, as on Kubernetes and AWS Batch. `podman stop -t N` sends
SIGTERM and then SIGKILL after N seconds: the sequence a pod deletion or a Batch timeout sends.
Containers use the host network, so their events reach the loopback receiver.

Needs the images scripts/build-images made (WOVE_IMAGE_WORKER, WOVE_IMAGE_PYTHON) and a runtime
that can run them here; skips saying what is missing, unless WOVE_TEST_REQUIRE_IMAGES=1 (CI).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import cloudpickle
import pytest
from wove import NetworkExecutorSecurity
from wove.backend import build_backend_payload, payload_to_b64

from binaries import described, is_static, machine_of
from cluster import Cluster
from receiver import EventReceiver

cloudpickle.register_pickle_by_value(sys.modules[__name__])
pytestmark = pytest.mark.wove_worker_only

REPO = Path(__file__).resolve().parents[2]
# A WASI command whose _start loops forever: `(module (func (export "_start") (loop (br 0))))`.
SPIN_WASM = "AGFzbQEAAAABBAFgAAADAgEABwoBBl9zdGFydAAACgkBBwADQAwACws="
TOKEN = "image-token"


def add(a: int, b: int) -> int:
    return a + b


class Podman:
    """`podman`, set up for this sandbox: vfs storage, runc, cgroupfs, no rlimit changes."""

    def __init__(self, conf: Path) -> None:
        self.base = ["podman", "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
        self.env = dict(os.environ, CONTAINERS_CONF=str(conf))

    def __call__(self, *args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([*self.base, *args], env=self.env, capture_output=True, text=True, timeout=timeout, **kwargs)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([*self.base, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _unavailable(reason: str) -> None:
    if os.environ.get("WOVE_TEST_REQUIRE_IMAGES") == "1":
        pytest.fail(f"the image tests are required here but cannot run: {reason}")
    pytest.skip(f"image tests skipped: {reason}")


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    if shutil.which("podman") is None:
        _unavailable("podman is not installed (apt-get install podman runc buildah)")
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    # The default asks to raise RLIMIT_NOFILE, which this sandbox does not permit.
    conf.write_text("[containers]\ndefault_ulimits = []\n")
    return Podman(conf)


def _image(podman: Podman, variable: str) -> str:
    image = os.environ.get(variable)
    if not image:
        _unavailable(f"{variable} is not set (scripts/build-images builds the images; scripts/test sets it)")
    if podman("image", "exists", image).returncode != 0:
        _unavailable(f"image {image} ({variable}) is not in the local storage")
    return image


@pytest.fixture(scope="session")
def worker_image(podman: Podman) -> str:
    return _image(podman, "WOVE_IMAGE_WORKER")


@pytest.fixture(scope="session")
def python_image(podman: Podman) -> str:
    return _image(podman, "WOVE_IMAGE_PYTHON")


def container_args(name: str, env: Dict[str, str], *extra: str) -> List[str]:
    args = ["run", "--rm", "--name", name, "--network", "host"]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    return [*args, *extra]


def payload(receiver: EventReceiver, task: Dict, run_id: str = "image:0123456789abcdef") -> str:
    body = {"version": 1, "callback_url": f"{receiver.base_url}/wove/events/{TOKEN}", "run_id": run_id,
            "task_id": run_id.split(":")[0], "task": task}
    return base64.b64encode(json.dumps(body).encode()).decode()


def events_of(receiver: EventReceiver) -> List[Dict]:
    return [r.event() for r in receiver.received()]


# -- the scratch image ------------------------------------------------------------------------


def test_the_image_is_what_the_dockerfile_says(podman: Podman, worker_image: str) -> None:
    config = json.loads(podman("image", "inspect", worker_image).stdout)[0]["Config"]
    assert config["User"] == "65532:65532"
    assert config["WorkingDir"] == "/home/wove"
    assert config["Entrypoint"] == ["/usr/local/bin/wove-worker"]
    assert "TMPDIR=/tmp" in config["Env"]
    done = podman("run", "--rm", worker_image, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wove-worker ")


def test_a_wasm_example_prints_its_events(podman: Podman, worker_image: str) -> None:
    example = REPO / "examples" / "payloads" / "wasm-echo.json"
    done = podman("run", "--rm", "--volume", f"{example}:/payload.json:ro", worker_image,
                  "--print-events", "--payload-file", "/payload.json")
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout.splitlines()[-1])
    assert final["body"]["result"] == {"message": "hello from WebAssembly", "n": [1, 2, 3]}
    assert TOKEN not in done.stdout + done.stderr


# -- arm64, and both under one manifest list ----------------------------------------------------

@pytest.fixture(scope="session")
def arm64_image(podman: Podman) -> str:
    return _image(podman, "WOVE_IMAGE_WORKER_ARM64")


def _binary_of(podman: Podman, image: str, arch: str, tmp_path: Path) -> bytes:
    """The worker binary inside `image`, copied out of a created (never started) container."""
    created = podman("create", "--arch", arch, image)
    assert created.returncode == 0, created.stderr
    container = created.stdout.strip()
    try:
        out = tmp_path / f"wove-worker-{arch}"
        copied = podman("cp", f"{container}:/usr/local/bin/wove-worker", str(out))
        assert copied.returncode == 0, copied.stderr
        return out.read_bytes()
    finally:
        podman("rm", "--force", container)


def test_the_manifest_list_holds_both_architectures(podman: Podman, worker_image: str, arm64_image: str) -> None:
    manifest = os.environ.get("WOVE_IMAGE_MANIFEST")
    if not manifest:
        _unavailable("WOVE_IMAGE_MANIFEST is not set (scripts/build-images --arm64-static-bin makes it)")
    inspected = subprocess.run(["buildah", "--storage-driver", "vfs", "manifest", "inspect", manifest],
                               capture_output=True, text=True, timeout=60)
    assert inspected.returncode == 0, inspected.stderr
    entries = {(m["platform"]["os"], m["platform"]["architecture"]): m["digest"]
               for m in json.loads(inspected.stdout)["manifests"]}
    assert set(entries) == {("linux", "amd64"), ("linux", "arm64")}, entries
    # Each entry is the image of that architecture, not a copy of the other.
    for arch, image in (("amd64", worker_image), ("arm64", arm64_image)):
        digest = podman("image", "inspect", "--format", "{{.Digest}}", image).stdout.strip()
        assert entries[("linux", arch)] == digest, (arch, image, digest, entries)


def test_each_image_carries_the_static_binary_of_its_architecture(
        podman: Podman, worker_image: str, arm64_image: str, tmp_path: Path) -> None:
    for image, arch, machine in ((worker_image, "amd64", "x86_64"), (arm64_image, "arm64", "aarch64")):
        config = json.loads(podman("image", "inspect", image).stdout)[0]
        assert config["Architecture"] == arch, (image, config["Architecture"])
        binary = _binary_of(podman, image, arch, tmp_path)
        assert machine_of(binary[:20]) == machine, (image, binary[:20])
        (tmp_path / "probe").write_bytes(binary)
        description = described(tmp_path / "probe")
        assert is_static(description), description


def test_an_x86_64_binary_is_refused_as_the_arm64_image_s_before_anything_is_built(
        worker_command: List[str], tmp_path: Path) -> None:
    # The host's (dynamic, x86_64) worker offered as the arm64 one: refused, naming it, at once.
    done = subprocess.run([str(REPO / "scripts/build-images"), "--static-bin", worker_command[0],
                           "--arm64-static-bin", worker_command[0], "--tag", "refused"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "not a static aarch64 binary" in done.stderr and worker_command[0] in done.stderr, done.stderr
    assert "building" not in done.stderr, done.stderr


def test_the_arm64_image_runs_under_qemu(podman: Podman, arm64_image: str) -> None:
    done = podman("run", "--rm", "--arch", "arm64", arm64_image, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wove-worker "), done.stdout
    # A WebAssembly task, compiled by Cranelift for arm64 inside the emulated container.
    example = REPO / "examples" / "payloads" / "wasm-echo.json"
    done = podman("run", "--rm", "--arch", "arm64", "--volume", f"{example}:/payload.json:ro", arm64_image,
                  "--print-events", "--payload-file", "/payload.json", timeout=300)
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout.splitlines()[-1])
    assert final["body"]["result"] == {"message": "hello from WebAssembly", "n": [1, 2, 3]}


def test_a_signed_run_as_the_non_root_user_on_a_read_only_root(
    podman: Podman, worker_image: str, receiver: EventReceiver
) -> None:
    # The receiver answers slowly, so the worker is still there to be looked at.
    receiver.delay = 1.5
    module = json.loads((REPO / "examples" / "payloads" / "wasm-echo.json").read_text())["task"]["module"]
    task = {"runner": "wasm", "module": module, "input": {"ok": True}}
    name = f"wove-test-{uuid.uuid4().hex[:8]}"
    env = {"WOVE_BACKEND_PAYLOAD": payload(receiver, task), "WOVE_WORKER_SIGNING_SECRET": "image-secret"}
    running = podman.popen(*container_args(name, env, "--read-only", worker_image))
    try:
        deadline = time.monotonic() + 30
        pid = ""
        while time.monotonic() < deadline and not pid.strip("0\n"):
            pid = podman("inspect", "--format", "{{.State.Pid}}", name).stdout
            time.sleep(0.1)
        assert pid.strip("0\n"), "the container never ran"
        status = Path(f"/proc/{pid.strip()}/status").read_text()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1:] == ["65532"] * 4, f"the worker (PID 1 of the container) runs as {uid_line}"
        out, err = running.communicate(timeout=60)
    finally:
        running.kill()
    assert running.returncode == 0, err
    result = next(r for r in receiver.received() if r.event()["type"] == "task_result")
    assert result.event()["result"] == {"ok": True}
    verifier = NetworkExecutorSecurity(mode="signed", secret="image-secret")
    verifier.verify_headers(headers=result.headers, transport="http", target=result.path, body=result.body)


def test_podman_stop_cancels_a_spinning_guest(podman: Podman, worker_image: str, receiver: EventReceiver) -> None:
    task = {"runner": "wasm", "module": {"base64": SPIN_WASM}}
    name = f"wove-test-{uuid.uuid4().hex[:8]}"
    running = podman.popen(*container_args(name, {"WOVE_BACKEND_PAYLOAD": payload(receiver, task)}, worker_image))
    try:
        receiver.wait_for(lambda events: any(e["type"] == "task_started" for e in events), timeout=30)
        stopped_at = time.monotonic()
        stop = podman("stop", "-t", "10", name, timeout=60)
        assert stop.returncode == 0, stop.stderr
        running.communicate(timeout=30)
        took = time.monotonic() - stopped_at
    finally:
        running.kill()
    assert running.returncode == 143, running.stderr
    assert took < 10, f"the worker outlived SIGTERM until SIGKILL ({took:.1f} s)"
    assert [e["type"] for e in events_of(receiver)][-1] == "task_cancelled"


# -- the Python image: shell tasks, PID 1 duties, and a real Wove payload ----------------------


def test_podman_stop_reaches_the_task_and_task_cancelled_arrives(
    podman: Podman, python_image: str, receiver: EventReceiver
) -> None:
    task = {"runner": "subprocess", "program": "sh",
            "args": ["-c", "trap 'echo got-term >&2; exit 0' TERM; sleep 600 & wait"]}
    name = f"wove-test-{uuid.uuid4().hex[:8]}"
    running = podman.popen(*container_args(name, {"WOVE_BACKEND_PAYLOAD": payload(receiver, task)}, python_image))
    try:
        receiver.wait_for(lambda events: any(e["type"] == "task_started" for e in events), timeout=30)
        time.sleep(0.5)
        stopped_at = time.monotonic()
        assert podman("stop", "-t", "10", name, timeout=60).returncode == 0
        out, err = running.communicate(timeout=30)
        took = time.monotonic() - stopped_at
    finally:
        running.kill()
    assert running.returncode == 143, err
    assert "got-term" in err, "SIGTERM reached the task's process group"
    assert took < 10
    assert [e["type"] for e in events_of(receiver)][-1] == "task_cancelled"


def test_a_task_that_ignores_sigterm_is_killed_within_the_shutdown_budget(
    podman: Podman, python_image: str, receiver: EventReceiver
) -> None:
    task = {"runner": "subprocess", "program": "sh", "args": ["-c", "trap '' TERM; sleep 600 & wait"]}
    name = f"wove-test-{uuid.uuid4().hex[:8]}"
    env = {"WOVE_BACKEND_PAYLOAD": payload(receiver, task), "WOVE_WORKER_SHUTDOWN_BUDGET": "4"}
    running = podman.popen(*container_args(name, env, python_image))
    try:
        receiver.wait_for(lambda events: any(e["type"] == "task_started" for e in events), timeout=30)
        stopped_at = time.monotonic()
        assert podman("stop", "-t", "20", name, timeout=60).returncode == 0
        running.communicate(timeout=30)
        took = time.monotonic() - stopped_at
    finally:
        running.kill()
    assert running.returncode == 143, running.stderr
    # The promise: everything after SIGTERM fits the 4 s budget, long before the runtime's SIGKILL at 20 s.
    assert took < 4 + 1.5, f"took {took:.1f} s"
    assert [e["type"] for e in events_of(receiver)][-1] == "task_cancelled"


def test_orphaned_grandchildren_leave_no_zombie(podman: Podman, python_image: str, receiver: EventReceiver) -> None:
    script = r"""
[ "$PPID" = 1 ] || { echo "the worker is not PID 1 but $PPID" >&2; exit 9; }
(sleep 0.2 &); (sleep 0.3 &)
sleep 1
zombies=0
for f in /proc/[0-9]*/stat; do s=$(cat "$f" 2>/dev/null) || continue; set -- ${s##*) }; [ "$1" = Z ] && zombies=$((zombies+1)); done
echo "$zombies" > "$WOVE_RESULT_FILE"
"""
    task = {"runner": "subprocess", "program": "sh", "args": ["-c", script]}
    done = podman(*container_args(f"wove-test-{uuid.uuid4().hex[:8]}", {"WOVE_BACKEND_PAYLOAD": payload(receiver, task)},
                                  python_image), timeout=60)
    assert done.returncode == 0, done.stderr
    result = next(e for e in events_of(receiver) if e["type"] == "task_result")
    assert result["result"] == 0, "an orphan was left a zombie under the worker as PID 1"


def test_a_wove_payload_runs_in_the_python_image(podman: Podman, python_image: str, receiver: EventReceiver) -> None:
    # Built by Wove itself, as its kubernetes_jobs adapter builds it.
    frame = {"run_id": f"add:{uuid.uuid4().hex}", "task_id": "add", "callable": add, "args": {"a": 2, "b": 3},
             "delivery": {}}
    built = build_backend_payload(frame, callback_url=f"{receiver.base_url}/wove/events/{TOKEN}", adapter="kubernetes_jobs")
    done = podman(*container_args(f"wove-test-{uuid.uuid4().hex[:8]}", {"WOVE_BACKEND_PAYLOAD": payload_to_b64(built)},
                                  python_image), timeout=120)
    assert done.returncode == 0, done.stderr
    result = next(e for e in events_of(receiver) if e["type"] == "task_result")
    assert cloudpickle.loads(base64.b64decode(result["result_pickle"])) == 5


# -- the shipped image through Kubernetes' own control plane ---------------------------------


@pytest.fixture(scope="module")
def podman_cluster(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Kubernetes v1.37.2's control plane whose node agent runs each container in Podman, from
    the images scripts/build-images made (scripts/cluster --podman)."""
    if shutil.which("go") is None:
        _unavailable("Go is not installed, so tests/cluster cannot be built")
    try:
        api = Cluster.start(tmp_path_factory.mktemp("k8s-podman") / "cluster", images=[], env={},
                            path=os.environ.get("PATH", "/usr/bin:/bin"), podman=True)
    except Exception as error:  # noqa: BLE001 - whatever failed is the reason
        pytest.fail(f"the Podman-backed control plane did not start: {error}")
    try:
        yield api
    finally:
        api.stop()


@pytest.mark.timeout(180)
def test_a_submitted_job_runs_the_shipped_image_through_the_real_control_plane(
    podman_cluster: Cluster, python_image: str, receiver: EventReceiver, submit_bin: str
) -> None:
    """wove-submit's Job as the API server stored it, run from the Python image: the pod's
    user, a read-only root, the signing secret as a mounted Secret file, the worker as PID 1."""
    ns = podman_cluster.namespace("img")
    try:
        ns.secret("wove-signing", {"secret": b"image-cluster-secret"})
        script = ("import json, os, sys; d = json.load(sys.stdin); "
                  "pid1 = open('/proc/1/cmdline', 'rb').read().split(b'\\0')[0].decode(); "
                  "json.dump({'uid': os.getuid(), 'pid1': pid1, 'text': d['text']}, open(os.environ['WOVE_RESULT_FILE'], 'w'))")
        text = json.dumps({"version": 1, "callback_url": f"{receiver.base_url}/wove/events/{TOKEN}",
                           "run_id": f"image:{uuid.uuid4().hex}", "task_id": "image",
                           "task": {"runner": "subprocess", "program": "python3", "args": ["-c", script],
                                    "input": {"text": "through podman"}}})
        env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "WOVE_SUBMIT_KUBECONFIG": str(ns.kubeconfig),
               "WOVE_SUBMIT_NAMESPACE": ns.name}
        done = subprocess.run([submit_bin, "kubernetes", "submit", "--payload-file", "-", "--image", python_image,
                               "--signing-secret", "wove-signing", "--signing-secret-as-file", "--read-only-root",
                               "--wait", "--timeout", "150", "--output", "json"],
                              input=text, env=env, capture_output=True, text=True, timeout=170)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        result = next(r for r in receiver.received() if r.event()["type"] == "task_result")
        seen = result.event()["result"]
        assert seen["uid"] == 65532 and seen["text"] == "through podman", seen
        assert seen["pid1"].rsplit("/", 1)[-1] == "wove-worker", f"PID 1 is {seen['pid1']!r}, not the worker"
        NetworkExecutorSecurity(mode="signed", secret="image-cluster-secret").verify_headers(
            headers=result.headers, transport="http", target=result.path, body=result.body)
        (pod,) = ns.pods(report["name"])
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
        assert json.loads(terminated["message"])["delivered"] is True, "the worker's termination message"
        assert pod["status"]["containerStatuses"][0]["containerID"].startswith("podman://")
    finally:
        ns.close()
