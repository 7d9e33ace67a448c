"""Wove 2.0.3's own `kubernetes_jobs` adapter, on the real control plane (cluster.py).

Wove builds its default Job and sends it with the kubernetes Python client, as it would to any
cluster. The API server refuses that Job as Wove builds it (its `wove-run-id` label holds the
run id's colon), so a `job_factory` mends that one label and nothing else; `base_env` adds
variables to the container, as an image or a pod spec would (signing secrets, for example).

What the node ran is read back from the node agent's own record of each pod (its log, in the
CRI format a kubelet keeps, and its exit code), which outlives the pod object: Wove's cancel
deletes the Job without a propagationPolicy, and that orphans its pod.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from wove.integrations.kubernetes_jobs import KubernetesJobsAdapter

from cluster import JOBS, Namespace, wait_until


class WoveJobs:
    def __init__(self, namespace: Namespace, command: List[str]) -> None:
        self.namespace = namespace
        self.command = command
        self.base_env: Dict[str, str] = {}

    def executor_config(self) -> Dict[str, Any]:
        return {
            "image": "local",
            "command": list(self.command),
            "namespace": self.namespace.name,
            "load_config_options": {"config_file": str(self.namespace.kubeconfig)},
            "job_factory": self.job_factory,
            "callback_host": "127.0.0.1",
        }

    def job_factory(self, payload: Dict[str, Any], frame: Dict[str, Any], config: Dict[str, Any]) -> Any:
        from kubernetes import client

        adapter = KubernetesJobsAdapter(name="k8s", config=config, callback_url="", run_config={})
        job = adapter._default_job(payload, frame)
        labels = job.spec.template.metadata.labels
        labels["wove-run-id"] = labels["wove-run-id"].replace(":", "-")
        container = job.spec.template.spec.containers[0]
        container.env += [client.V1EnvVar(name=k, value=v) for k, v in self.base_env.items()]
        return job

    def only_job(self) -> "JobRun":
        jobs = self.namespace.list(JOBS)
        names = {j["metadata"]["name"] for j in jobs} | set(self._deleted())
        assert len(names) == 1, f"expected exactly one Job, got {sorted(names)}"
        (name,) = names
        return JobRun(self.namespace, name)

    def _deleted(self) -> List[str]:
        return [r.path.rsplit("/", 1)[-1] for r in self.namespace.requests()
                if r.method == "DELETE" and "/jobs/" in r.path]


class JobRun:
    """The one pod of a Wove Job, as the node ran it."""

    def __init__(self, namespace: Namespace, name: str) -> None:
        self.namespace = namespace
        self.name = name

    def directory(self, timeout: float = 30) -> Path:
        found = wait_until(lambda: self.namespace.node_pod_dirs(self.name), timeout,
                           f"the pod of Job {self.name} on the node")
        assert len(found) == 1, f"one pod expected: {found}"
        return found[0]

    @property
    def deleted(self) -> bool:
        return any(r.method == "DELETE" and r.path.endswith(f"/jobs/{self.name}") for r in self.namespace.requests())

    def wait(self, timeout: float = 15) -> int:
        """The container's exit code, once it has ended."""
        directory = self.directory()
        exit_file = directory / "wove-0.exit"
        wait_until(exit_file.exists, timeout, f"the container of Job {self.name} ending")
        return int(exit_file.read_text())

    def output(self, stream: str) -> bytes:
        """Everything the container wrote to `stream` ("stdout" or "stderr"), in order."""
        out = bytearray()
        with (self.directory() / "wove-0.log").open("rb") as handle:
            for record in handle:
                parts = record.rstrip(b"\n").split(b" ", 3)
                if len(parts) == 4 and parts[1].decode() == stream:
                    out += parts[3] + (b"\n" if parts[2] == b"F" else b"")
        return bytes(out)

    def tail(self, stream: str, size: int = 4096) -> bytes:
        return self.output(stream)[-size:]
