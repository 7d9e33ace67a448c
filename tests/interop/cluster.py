"""Kubernetes' own control plane, for the tests: what `scripts/cluster` starts.

etcd, kube-apiserver, kube-controller-manager (job, garbage-collector, ttl-after-finished,
namespace and service-account controllers) and kube-scheduler are Kubernetes v1.37.2, built from
source (tests/cluster). Only the node is ours: a node agent that does a kubelet's part for the
pods bound to it, running each container as a host process (or in Podman), because a real
kubelet cannot run on these machines. What the tests see of a Job — validation, the Job
controller's pods, conditions and podFailurePolicy, owner references and garbage collection —
is the real thing.

One cluster per test session; each test gets a namespace of its own (`Namespace`), with a
kubeconfig whose requests the API server's audit log records, so a test can read back exactly
what a client sent.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "cluster"

JOBS = "apis/batch/v1/jobs"
PODS = "api/v1/pods"
SECRETS = "api/v1/secrets"
CONFIGMAPS = "api/v1/configmaps"
EVENTS = "api/v1/events"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"

_VERBS = {"create": "POST", "update": "PUT", "patch": "PATCH", "delete": "DELETE", "deletecollection": "DELETE",
          "get": "GET", "list": "GET", "watch": "GET"}


class ApiError(Exception):
    def __init__(self, code: int, body: str) -> None:
        super().__init__(f"HTTP {code}: {body[:500]}")
        self.code = code
        self.body = body

    @property
    def status(self) -> Dict[str, Any]:
        try:
            return json.loads(self.body)
        except ValueError:
            return {}


@dataclass
class Recorded:
    """One request as the API server's audit log has it."""

    method: str
    verb: str
    path: str
    params: Dict[str, str]
    body: Any
    code: int

    @property
    def propagation_policy(self) -> Optional[str]:
        """Kubernetes takes it from the query or from the DeleteOptions body."""
        if "propagationPolicy" in self.params:
            return self.params["propagationPolicy"]
        if isinstance(self.body, dict):
            return self.body.get("propagationPolicy")
        return None


class Cluster:
    """A running control plane, reached with the tests' credentials."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.kubeconfig = self.directory / "kubeconfig"
        config = yaml.safe_load(self.kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        self.url = cluster["server"]
        self.token = config["users"][0]["user"]["token"]
        self._tls = ssl.create_default_context(cafile=cluster["certificate-authority"])

    @classmethod
    def start(cls, directory: Path, *, images: Sequence[str], env: Mapping[str, str], path: str,
              podman: bool = False, timeout: float = 300) -> "Cluster":
        """`scripts/cluster start`; the program is expected built already (scripts/test does)."""
        args = [str(SCRIPT), "start", "--dir", str(directory)]
        for image in images:
            args += ["--image", image]
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        if podman:
            args.append("--podman")
        done = subprocess.run(args, env=dict(os.environ, PATH=path), capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"scripts/cluster start failed ({done.returncode}):\n{done.stderr[-4000:]}")
        kubeconfig = Path(done.stdout.strip().splitlines()[-1])
        return cls(kubeconfig.parent)

    def stop(self) -> None:
        subprocess.run([str(SCRIPT), "stop", "--dir", str(self.directory)], capture_output=True, timeout=120)

    # -- the API ------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, *, params: Optional[Dict[str, str]] = None,
            content_type: str = "application/json", timeout: float = 30) -> Any:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": content_type, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._tls) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, error.read().decode(errors="replace")) from None
        return json.loads(text) if text.startswith(("{", "[")) else text

    def namespace(self, prefix: str = "t") -> "Namespace":
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.api("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        # The ServiceAccount admission refuses pods until the namespace's default account exists.
        wait_until(lambda: self._exists(f"/api/v1/namespaces/{name}/serviceaccounts/default"), 30,
                   f"the default ServiceAccount of {name}")
        return Namespace(self, name)

    def _exists(self, path: str) -> bool:
        try:
            self.api("GET", path)
            return True
        except ApiError as error:
            if error.code == 404:
                return False
            raise

    def audit(self) -> List[Dict[str, Any]]:
        """Every request of the tests' user so far, once each."""
        seen: Dict[str, Dict[str, Any]] = {}
        path = self.directory / "audit.log"
        if not path.exists():
            return []
        with path.open() as handle:
            for line in handle:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a line still being written
                seen[event["auditID"]] = event
        return list(seen.values())

    def node_dir(self) -> Path:
        return self.directory / "node" / "pods"


class Namespace:
    """One test's share of the cluster."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.url = cluster.url
        self.kubeconfig = cluster.kubeconfig
        self.run_pods = True

    def path(self, resource: str, name: Optional[str] = None, subresource: Optional[str] = None) -> str:
        group, plural = resource.rsplit("/", 1)
        path = f"/{group}/namespaces/{self.name}/{plural}"
        if name:
            path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
        return path

    def get(self, resource: str, name: str) -> Optional[Dict[str, Any]]:
        try:
            return self.cluster.api("GET", self.path(resource, name))
        except ApiError as error:
            if error.code == 404:
                return None
            raise

    def list(self, resource: str, selector: Optional[str] = None) -> List[Dict[str, Any]]:
        params = {"labelSelector": selector} if selector else None
        listed = self.cluster.api("GET", self.path(resource), params=params)
        # A list's items carry no kind of their own; give them the one a GET would.
        for item in listed["items"]:
            item.setdefault("apiVersion", listed["apiVersion"])
            item.setdefault("kind", listed["kind"].removesuffix("List"))
        return listed["items"]

    def create(self, resource: str, obj: Dict[str, Any], **params: str) -> Dict[str, Any]:
        return self.cluster.api("POST", self.path(resource), obj, params=params or None)

    def delete(self, resource: str, name: str, **options: Any) -> Any:
        return self.cluster.api("DELETE", self.path(resource, name), options or None)

    def secret(self, name: str, data: Dict[str, bytes]) -> Dict[str, Any]:
        return self.create(SECRETS, {"metadata": {"name": name},
                                     "data": {k: base64.b64encode(v).decode() for k, v in data.items()}})

    def requests(self) -> List[Recorded]:
        """What the tests' user sent that concerned this namespace, in order."""
        recorded = []
        for event in sorted(self.cluster.audit(), key=lambda e: e.get("requestReceivedTimestamp", "")):
            ref = event.get("objectRef") or {}
            if ref.get("namespace") != self.name:
                continue
            url = urllib.parse.urlsplit(event["requestURI"])
            recorded.append(Recorded(
                method=_VERBS.get(event["verb"], event["verb"].upper()), verb=event["verb"], path=url.path,
                params=dict(urllib.parse.parse_qsl(url.query)), body=event.get("requestObject"),
                code=(event.get("responseStatus") or {}).get("code", 0)))
        return recorded

    def pods(self, job: str) -> List[Dict[str, Any]]:
        """The Job's pods, oldest first."""
        pods = self.list(PODS, f"{JOB_NAME_LABEL}={job}")
        return sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"] + p["metadata"]["name"])

    def wait_for_pods(self, job: str, predicate: Callable[[List[Dict[str, Any]]], bool], timeout: float = 30,
                      what: str = "the pods") -> List[Dict[str, Any]]:
        return wait_until(lambda: (lambda pods: pods if predicate(pods) else None)(self.pods(job)), timeout, what)

    def node_pod_dirs(self, job: str) -> List[Path]:
        """The node's directories for the Job's pods, deleted or not. A pod's name is the Job's
        with `-` and five characters added, the Job's part cut to 58 (the API server's rule for
        generateName)."""
        prefix = (job + "-")[:58]
        return sorted(self.cluster.node_dir().glob(f"{self.name}_{prefix}*"))

    def node_exits(self, pod: str, container: str = "wove") -> List[int]:
        """How each run of the container ended, as the node recorded it (this outlives the pod
        object, which a deletion removes)."""
        codes = []
        for directory in self.cluster.node_dir().glob(f"{self.name}_{pod}_*"):
            for attempt in sorted(directory.glob(f"{container}-*.exit")):
                codes.append(int(attempt.read_text()))
        return codes

    def log(self, pod: str, container: str = "wove") -> str:
        """A container's log through the API server, which proxies the node's kubelet port."""
        return self.cluster.api("GET", self.path(PODS, pod, "log"), params={"container": container})

    def events(self, pod: str) -> List[Dict[str, Any]]:
        return [e for e in self.list(EVENTS) if e["involvedObject"].get("name") == pod]

    def close(self) -> None:
        try:
            self.cluster.api("DELETE", f"/api/v1/namespaces/{self.name}")
        except ApiError:
            pass


def state_of(pod: Dict[str, Any]) -> Dict[str, Any]:
    """The first container's state: {"waiting": …}, {"running": …} or {"terminated": …}."""
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    return statuses[0].get("state") or {}


def exit_code(pod: Dict[str, Any]) -> Optional[int]:
    terminated = state_of(pod).get("terminated")
    return None if terminated is None else terminated["exitCode"]


def wait_until(probe: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll until probe() is truthy and return it; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)
