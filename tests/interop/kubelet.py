"""A one-machine stand-in for the Kubernetes Job API, for Wove's `kubernetes_jobs` adapter.

Wove's adapter builds a real `V1Job` (kubernetes client models) and hands it to whatever object
`executor_config["batch_api"]` holds. `LocalBatchApi` plays both the API server and the kubelet:
it reads the Job's first container and runs its `command` + `args` as a local process, with the
container's environment and nothing of the test process's own environment beyond a minimal base.
That keeps the test honest: the worker sees what a pod would see (the payload in
`WOVE_BACKEND_PAYLOAD`), not a developer's shell.

Each process gets its own directory holding its working directory and its captured stdout and
stderr, so tests can assert on exit codes and on what the worker printed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException


@dataclass
class JobProcess:
    """One Job as the stand-in ran it."""

    name: str
    namespace: str
    manifest: Dict[str, Any]
    """The Job as the API server would store it (camelCase JSON form)."""
    argv: List[str]
    env: Dict[str, str]
    process: subprocess.Popen
    stdout_path: Path
    stderr_path: Path
    delete_options: Optional[Dict[str, Any]] = None
    """The keyword arguments of `delete_namespaced_job`, once the Job was deleted."""

    @property
    def deleted(self) -> bool:
        return self.delete_options is not None

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit and return its exit code (negative: killed by signal)."""
        return self.process.wait(timeout=timeout)

    def stdout(self) -> bytes:
        return self.stdout_path.read_bytes()

    def stderr(self) -> bytes:
        return self.stderr_path.read_bytes()

    def tail(self, stream: str, size: int = 4096) -> bytes:
        """The last `size` bytes of "stdout" or "stderr", without reading a huge log whole."""
        path = self.stdout_path if stream == "stdout" else self.stderr_path
        with path.open("rb") as handle:
            handle.seek(max(path.stat().st_size - size, 0))
            return handle.read()


class LocalBatchApi:
    """Duck-typed `kubernetes.client.BatchV1Api` covering what Wove's adapter calls.

    `base_env` is what the image and the kubelet would provide (PATH and the like); the
    container's `env` from the Job is laid on top of it.
    """

    def __init__(self, workdir: Path, base_env: Mapping[str, str], *, grace_seconds: float = 2.0) -> None:
        self.workdir = Path(workdir)
        self.base_env = dict(base_env)
        self.grace_seconds = grace_seconds
        self.jobs: List[JobProcess] = []
        # create/delete are called from the weave's event-loop thread while tests read
        # `jobs` from the main thread.
        self._lock = threading.Lock()
        self._serializer = ApiClient()
        self._stoppers: List[threading.Thread] = []

    # -- the BatchV1Api surface -----------------------------------------------------------

    def create_namespaced_job(self, namespace: str, body: Any, **_kwargs: Any) -> Any:
        manifest = self._serializer.sanitize_for_serialization(body)
        name = manifest["metadata"]["name"]
        container = manifest["spec"]["template"]["spec"]["containers"][0]
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        if not argv:
            # A real pod would fall back to the image's entrypoint; there is no image here.
            raise ValueError(f"Job {name!r} has no container command")

        env = dict(self.base_env)
        for var in container.get("env") or []:
            if var.get("valueFrom"):
                # Secrets and field refs need a cluster; failing loudly beats a silently
                # missing variable.
                raise NotImplementedError(f"env {var['name']!r} uses valueFrom, which the stand-in cannot resolve")
            env[var["name"]] = var.get("value") or ""

        with self._lock:
            if any(job.name == name and job.namespace == namespace and not job.deleted for job in self.jobs):
                # What the API server answers for a duplicate name; it also catches Job names
                # that collide after Wove truncates them to 63 characters.
                raise ApiException(status=409, reason="AlreadyExists")

            job_dir = self.workdir / f"{namespace}-{name}-{len(self.jobs)}"
            job_dir.mkdir(parents=True)
            stdout_path = job_dir / "stdout.log"
            stderr_path = job_dir / "stderr.log"
            # The child gets its own copies of the descriptors, so ours can close at once.
            with stdout_path.open("wb") as stdout_file, stderr_path.open("wb") as stderr_file:
                process = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=job_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=stdout_file,
                    stderr=stderr_file,
                    # Its own process group, so deleting the Job can also end whatever the
                    # worker started (the Python interpreter running the task).
                    start_new_session=True,
                )
            self.jobs.append(
                JobProcess(
                    name=name,
                    namespace=namespace,
                    manifest=manifest,
                    argv=argv,
                    env=env,
                    process=process,
                    stdout_path=stdout_path,
                    stderr_path=stderr_path,
                )
            )
        return body

    def delete_namespaced_job(self, name: str, namespace: str, **kwargs: Any) -> Dict[str, Any]:
        with self._lock:
            matches = [job for job in self.jobs if job.name == name and job.namespace == namespace and not job.deleted]
            if not matches:
                raise ApiException(status=404, reason="NotFound")
            for job in matches:
                job.delete_options = dict(kwargs)
        # A real API server leaves the pods running when no propagationPolicy is given (which is
        # what Wove 2.0.3 sends). The stand-in stops them anyway, as the Job controller would with
        # `Background`, so a cancelled test never leaks processes; `delete_options` records what
        # was actually asked for. Like the real thing, the call returns before the pod is gone:
        # Wove calls this from its event loop, which must not stall for the grace period.
        for job in matches:
            stopper = threading.Thread(target=self._terminate, args=(job,), daemon=True)
            stopper.start()
            self._stoppers.append(stopper)
        return {"kind": "Status", "status": "Success"}

    # -- test helpers -----------------------------------------------------------------------

    def only_job(self) -> JobProcess:
        with self._lock:
            assert len(self.jobs) == 1, f"expected exactly one Job, got {[job.name for job in self.jobs]}"
            return self.jobs[0]

    def shutdown(self) -> None:
        """Stop every process that is still running; called by the fixture at teardown."""
        for stopper in self._stoppers:
            stopper.join(timeout=self.grace_seconds + 10)
        with self._lock:
            jobs = list(self.jobs)
        for job in jobs:
            self._terminate(job)

    def _terminate(self, job: JobProcess) -> None:
        """Pod shutdown in miniature: SIGTERM to the container's main process only (passing it
        on to its children is the worker's job), then SIGKILL to everything after the grace
        period, as when the container's cgroup is torn down."""
        pid = job.process.pid
        if job.process.returncode is not None:
            # Already reaped, so its pid (and group id) may belong to someone else by now.
            return
        if not _exited(pid):
            # Safe by pid: the child is not reaped yet, so the pid is still ours.
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.grace_seconds
            while not _exited(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        # The leader is unreaped here (a zombie at worst), which keeps the group id reserved:
        # sweep the group so a task interpreter left behind cannot outlive the test, then reap.
        if job.process.returncode is None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            job.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True

