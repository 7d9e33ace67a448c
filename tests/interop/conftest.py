"""Fixtures for running wove-worker under a real Wove weave, on Kubernetes' own control plane.

Which worker runs is chosen by the environment, exactly one of:

  WOVE_WORKER_BIN=/path/to/wove-worker   the binary under test
  WOVE_INTEROP_REFERENCE=1               Wove's own `python -m wove.backend_worker`, to prove the
                                         harness itself; tests marked `wove_worker_only` are skipped

Run with the interpreter from scripts/test-env, which has Wove, cloudpickle and the kubernetes
client installed; the worker runs tasks with that same interpreter (WOVE_WORKER_PYTHON).

The submitter's tests (test_submit_*.py) also need WOVE_SUBMIT_BIN=/path/to/wove-submit.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
import wove

from batch_cloud import BatchCloud
from cluster import Cluster, Namespace
from receiver import EventReceiver
from wove_jobs import WoveJobs

HERE = Path(__file__).resolve().parent
REFERENCE_MODE = os.environ.get("WOVE_INTEROP_REFERENCE") == "1"
# A bound for every test that sets none itself: a worker that never reports must fail the test,
# not hang the run.
DEFAULT_TEST_TIMEOUT = 60
ENVIRONMENT_NAME = "k8s-interop"


def _resolve_worker_bin() -> str:
    raw = os.environ.get("WOVE_WORKER_BIN", "")
    # Jobs run in their own working directory, so a relative path must be made absolute now.
    resolved = os.path.abspath(raw) if os.sep in raw else shutil.which(raw)
    if not resolved or not os.access(resolved, os.X_OK):
        raise pytest.UsageError(f"WOVE_WORKER_BIN={raw!r} is not an executable file")
    return resolved


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "wove_worker_only: checks behaviour only wove-worker has; skipped in reference mode"
    )
    has_bin = bool(os.environ.get("WOVE_WORKER_BIN"))
    if has_bin == REFERENCE_MODE:
        raise pytest.UsageError(
            "tests/interop needs exactly one of WOVE_WORKER_BIN=<path to wove-worker> "
            "or WOVE_INTEROP_REFERENCE=1 (Wove's own worker, to check the harness)"
        )
    if has_bin:
        _resolve_worker_bin()


def pytest_report_header(config: pytest.Config) -> str:
    if REFERENCE_MODE:
        return "wove interop: reference mode (python -m wove.backend_worker); wove-worker-only tests skipped"
    return f"wove interop: worker {_resolve_worker_bin()}"


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    skip_reference = pytest.mark.skip(reason="checks behaviour only wove-worker has (reference mode)")
    for item in items:
        if not item.path.is_relative_to(HERE):
            continue
        if REFERENCE_MODE and item.get_closest_marker("wove_worker_only"):
            item.add_marker(skip_reference)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT))


@pytest.fixture(scope="session")
def reference_mode() -> bool:
    return REFERENCE_MODE


@pytest.fixture(scope="session")
def worker_command() -> List[str]:
    """The container command: what a Job's `command` would be."""
    if REFERENCE_MODE:
        return [sys.executable, "-m", "wove.backend_worker"]
    return [_resolve_worker_bin()]


@pytest.fixture
def worker_env() -> Dict[str, str]:
    """What the image gives every worker process before the Job's own env: a PATH, and the
    interpreter that runs pickled tasks (this venv's, so cloudpickle and Wove are importable).
    Nothing else of the test process's environment leaks into the worker."""
    return {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "WOVE_WORKER_PYTHON": sys.executable}


@pytest.fixture
def kubelet(cluster: Namespace, worker_command: List[str]) -> WoveJobs:
    """Wove's own adapter's Jobs on the real control plane (wove_jobs.py). Tests may add to
    `kubelet.base_env` before a weave runs, the way an image or a pod spec would add variables
    (signing secrets, for example)."""
    return WoveJobs(cluster, worker_command)


@pytest.fixture
def k8s_environment(kubelet: WoveJobs) -> Iterator[str]:
    """Name of a Wove environment whose tasks become Jobs on the cluster, through Wove's own
    `kubernetes_jobs` adapter and the kubernetes Python client.

    Route a task with `@w.do(environment=k8s_environment)` inside a plain `weave()`: running the
    whole weave in this environment would also ship Wove's internal `data` seed task as a Job.
    """
    wove.config(environments={ENVIRONMENT_NAME: {"executor": "kubernetes_jobs", "executor_config": kubelet.executor_config()}})
    try:
        yield ENVIRONMENT_NAME
    finally:
        # Wove's configuration is a process-wide singleton; leave nothing pointing at a gone namespace.
        wove.config(environments={ENVIRONMENT_NAME: None})


@pytest.fixture
def receiver() -> Iterator[EventReceiver]:
    """A loopback receiver that records every request as sent."""
    server = EventReceiver()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def submit_bin() -> str:
    """The wove-submit program under test."""
    raw = os.environ.get("WOVE_SUBMIT_BIN", "")
    resolved = os.path.abspath(raw) if os.sep in raw else shutil.which(raw) if raw else None
    if not resolved or not os.access(resolved, os.X_OK):
        pytest.fail(f"WOVE_SUBMIT_BIN={raw!r} is not an executable file (scripts/test builds and sets it)")
    return resolved


@pytest.fixture
def image_env(tmp_path: Path, worker_command: List[str], worker_env: Dict[str, str]) -> Dict[str, str]:
    """The environment of a container of the worker image: `wove-worker` on its PATH."""
    image_bin = tmp_path / "image-bin"
    image_bin.mkdir()
    (image_bin / "wove-worker").symlink_to(worker_command[0])
    return dict(worker_env, PATH=f"{image_bin}{os.pathsep}{worker_env['PATH']}")


def _cluster_unavailable(reason: str) -> None:
    if os.environ.get("WOVE_TEST_REQUIRE_CLUSTER") == "1":
        pytest.fail(f"the Kubernetes control plane is required here but cannot run: {reason}")
    pytest.skip(f"Kubernetes control-plane tests skipped: {reason}")


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory, worker_command: List[str]) -> Iterator[Cluster]:
    """Kubernetes v1.37.2's API server, controllers and scheduler with our node agent
    (scripts/cluster), one for the session: the one in WOVE_TEST_CLUSTER_DIR, else started here. The node has one image, `local`: the worker image,
    whose containers run as host processes with `wove-worker` on their PATH."""
    started = os.environ.get("WOVE_TEST_CLUSTER_DIR")
    if started:
        # Started by scripts/test (which also stops it), so its start-up counts against no test.
        yield Cluster(Path(started))
        return
    if shutil.which("go") is None:
        _cluster_unavailable("Go is not installed, so tests/cluster cannot be built")
    root = tmp_path_factory.mktemp("k8s")
    image_bin = root / "image-bin"
    image_bin.mkdir()
    (image_bin / "wove-worker").symlink_to(worker_command[0])
    path = f"{image_bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    try:
        api = Cluster.start(root / "cluster", images=["local"], env={"WOVE_WORKER_PYTHON": sys.executable}, path=path)
    except Exception as error:  # noqa: BLE001 - whatever failed is the reason
        _cluster_unavailable(str(error))
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def cluster(control_plane: Cluster) -> Iterator[Namespace]:
    """A namespace of its own on the session's control plane."""
    namespace = control_plane.namespace()
    try:
        yield namespace
    finally:
        namespace.close()


@pytest.fixture
def batch_cloud(tmp_path: Path, image_env: Dict[str, str]) -> Iterator[BatchCloud]:
    """AWS Batch (moto) on loopback, set up with a queue and a job definition, whose jobs run
    locally from the worker image."""
    cloud = BatchCloud(tmp_path / "batch", image_env).start()
    try:
        yield cloud
    finally:
        cloud.stop()
