"""A Kubernetes API on loopback, with stand-ins for the Job controller and the kubelet.

No kube-apiserver can run on these machines, so the API is kmock's `KubernetesEmulator`: real HTTP,
real JSON, every request recorded, objects kept in memory. It validates nothing and runs no
controllers, so this module adds, on the emulator's own event loop:

- what the API server stamps on a create (`uid`, `resourceVersion`, `creationTimestamp`), which
  owner references need;
- a Job controller: one pod per Job (one per index for Indexed Jobs, `parallelism` at a time),
  the Job's `podFailurePolicy` and backoff limits applied to each failed pod, the conditions a
  real controller sets (`FailureTarget`/`Failed`, `SuccessCriteriaMet`/`Complete`);
- a kubelet: each pod's container command runs as a local process with the container's
  environment (Secret references resolved from the API's own Secrets), its Secret volumes written
  to a per-pod directory (paths under a mount are rewritten to that directory), the termination
  message read back from the file the worker writes, and `GET …/pods/NAME/log` served from the
  process's output, followed while it runs;
- deletion as a real cluster does it: with `propagationPolicy` Background or Foreground the Job's
  pods get SIGTERM, then SIGKILL after their grace period, and objects the Job owns are deleted;
  without one (what Wove's own adapter sends) the pods are orphaned and keep running.

Tests talk to it only through the kubeconfig it writes, as `wove-submit` and any kube client do.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import signal
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import aiohttp.web
import kmock

JOBS = "batch/v1/jobs"
PODS = "v1/pods"
SECRETS = "v1/secrets"
CONFIGMAPS = "v1/configmaps"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
TERMINATION_MESSAGE_LIMIT = 4096


def _key(resource: str, namespace: Optional[str], name: str) -> Tuple[Any, Optional[str], str]:
    """An object's key in kmock's store (whose `in` does not parse resource strings)."""
    return (kmock.resource(resource), namespace, name)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Recorded:
    """One request as the API received it."""

    method: str
    path: str
    params: Dict[str, str]
    body: Any

    @property
    def propagation_policy(self) -> Optional[str]:
        """Kubernetes takes it from the query or from the DeleteOptions body."""
        if "propagationPolicy" in self.params:
            return self.params["propagationPolicy"]
        if isinstance(self.body, dict):
            return self.body.get("propagationPolicy")
        return None


@dataclass
class PodRun:
    """A pod the kubelet stand-in started."""

    namespace: str
    name: str
    job: str
    index: Optional[int]
    directory: Path
    argv: List[str]
    env: Dict[str, str]
    grace: float
    process: Optional[asyncio.subprocess.Process] = None
    exit_code: Optional[int] = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False

    @property
    def stdout_path(self) -> Path:
        return self.directory / "stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.directory / "stderr.log"


class _Emulator(kmock.KubernetesEmulator):
    """kmock's emulator plus what a real API server adds on create, and the pod log endpoint."""

    cluster: "Cluster"

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        data = request.data if isinstance(request.data, dict) else None
        self.cluster._record(request)
        if request.action == kmock.action.CREATE and data is not None:
            meta = data.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now())
            meta["resourceVersion"] = str(self.cluster._next_version())
            if request.namespace and "namespace" not in meta:
                meta["namespace"] = request.namespace
        if request.resource == kmock.resource(PODS) and request.subresource == "log":
            return await self.cluster._serve_log(request)
        if request.action == kmock.action.DELETE and request.resource == kmock.resource(JOBS) and request.name:
            self.cluster._on_job_delete(request)
        return await super()._handle(request)


class Cluster:
    """The emulated API, its controllers, and a kubeconfig pointing at it."""

    def __init__(self, workdir: Path, base_env: Mapping[str, str], *, max_grace: float = 5.0) -> None:
        self.workdir = Path(workdir)
        self.base_env = dict(base_env)
        # Tests wait for shutdowns; a 30 s default grace period is capped here.
        self.max_grace = max_grace
        self.run_pods = True
        self.kubeconfig = self.workdir / "kubeconfig"
        self.pods: Dict[Tuple[str, str], PodRun] = {}
        self._requests: List[Recorded] = []
        self._version = 0
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._stop: Optional[asyncio.Event] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        self._emulator: Optional[_Emulator] = None
        self._tasks: List[asyncio.Task] = []
        self._deleted_jobs: Dict[Tuple[str, str], Optional[str]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "Cluster":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="k8s-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=20):
            raise RuntimeError("the Kubernetes emulator did not start within 20 s")
        if self._error is not None:
            raise RuntimeError("the Kubernetes emulator failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._loop is None or self._stop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown_pods(), self._loop).result(timeout=self.max_grace + 10)
        finally:
            self._loop.call_soon_threadsafe(self._stop.set)
            if self._thread is not None:
                self._thread.join(timeout=20)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # noqa: BLE001 - reported to the starting thread
            self._error = error
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        emulator = _Emulator()
        emulator.cluster = self
        async with emulator as k, kmock.Server(k) as server:
            self._emulator = k
            for resource, kind in ((JOBS, "Job"), (PODS, "Pod"), (SECRETS, "Secret"), (CONFIGMAPS, "ConfigMap")):
                k.resources[resource] = kmock.ResourceInfo(namespaced=True, kind=kind)
            self.url = str(server.url).rstrip("/")
            self.kubeconfig.write_text(
                json.dumps(
                    {
                        "apiVersion": "v1",
                        "kind": "Config",
                        "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
                        "users": [{"name": "tester", "user": {"token": "test-token"}}],
                        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "tester"}}],
                        "current-context": "emulator",
                    }
                )
            )
            controller = asyncio.create_task(self._control_loop())
            self._ready.set()
            await self._stop.wait()
            controller.cancel()
            for task in self._tasks:
                task.cancel()

    def call(self, function: Callable[[], Any], timeout: float = 10) -> Any:
        """Run `function` on the emulator's loop (the only thread that touches its objects)."""
        assert self._loop is not None

        async def run() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=timeout)

    # -- what tests read and change -----------------------------------------------------------

    def requests(self) -> List[Recorded]:
        with self._lock:
            return list(self._requests)

    def get(self, resource: str, namespace: str, name: str) -> Optional[Dict[str, Any]]:
        def read() -> Optional[Dict[str, Any]]:
            key = _key(resource, namespace, name)
            if key not in self._emulator.objects or self._emulator.objects[key].deleted:
                return None
            return json.loads(json.dumps(dict(self._emulator.objects[key].raw)))

        return self.call(read)

    def list(self, resource: str, namespace: Optional[str] = None) -> List[Dict[str, Any]]:
        def read() -> List[Dict[str, Any]]:
            out = []
            for (res, ns, _name), obj in self._emulator.objects.items():
                if res == kmock.resource(resource) and (namespace is None or ns == namespace) and not obj.deleted:
                    out.append(json.loads(json.dumps(dict(obj.raw))))
            return out

        return self.call(read)

    def put(self, resource: str, namespace: str, name: str, obj: Dict[str, Any]) -> None:
        """Create or replace an object directly, as a controller would."""

        def write() -> None:
            obj.setdefault("metadata", {}).update({"name": name, "namespace": namespace})
            obj["metadata"].setdefault("uid", str(uuid.uuid4()))
            obj["metadata"].setdefault("creationTimestamp", _now())
            self._emulator.objects[_key(resource, namespace, name)] = obj

        self.call(write)

    def patch_status(self, resource: str, namespace: str, name: str, status: Dict[str, Any]) -> None:
        self.call(lambda: self._patch(resource, namespace, name, {"status": status}))

    def pod_runs(self, job: str) -> List[PodRun]:
        return self.call(lambda: [run for run in self.pods.values() if run.job == job])

    # -- the API server's part ----------------------------------------------------------------

    def _record(self, request: kmock.Request) -> None:
        with self._lock:
            self._requests.append(
                Recorded(str(request.method.value), request.url.path, dict(request.params), request.data)
            )

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def _patch(self, resource: str, namespace: str, name: str, patch: Dict[str, Any]) -> None:
        key = _key(resource, namespace, name)
        if key in self._emulator.objects and not self._emulator.objects[key].deleted:
            self._emulator.objects[key].patch(patch)

    def _on_job_delete(self, request: kmock.Request) -> None:
        recorded = Recorded("DELETE", request.url.path, dict(request.params), request.data)
        self._deleted_jobs[(request.namespace, request.name)] = recorded.propagation_policy

    async def _serve_log(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        run = self.pods.get((request.namespace, request.name))
        if run is None or run.process is None:
            raise kmock.KubernetesError(
                status=400, reason="BadRequest", message=f'container "wove" in pod "{request.name}" is waiting to start'
            )
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request._raw_request)
        follow = request.params.get("follow") == "true"
        offset = 0
        while True:
            # The container log is stdout and stderr interleaved; here, stdout then stderr.
            data = run.stdout_path.read_bytes() if run.stdout_path.exists() else b""
            if len(data) > offset:
                await response.write(data[offset:])
                offset = len(data)
            if not follow or run.finished.is_set():
                break
            await asyncio.sleep(0.05)
        if run.stderr_path.exists():
            await response.write(run.stderr_path.read_bytes())
        await response.write_eof()
        return response

    # -- the Job controller's part ------------------------------------------------------------

    async def _control_loop(self) -> None:
        while True:
            try:
                await self._reconcile()
            except Exception as error:  # noqa: BLE001 - a broken stand-in must show, not hang tests
                import traceback; traceback.print_exc()
                raise
            await asyncio.sleep(0.05)

    async def _reconcile(self) -> None:
        for (namespace, name), policy in list(self._deleted_jobs.items()):
            del self._deleted_jobs[(namespace, name)]
            if policy in ("Background", "Foreground"):
                self._tasks.append(asyncio.create_task(self._collect(namespace, name)))
        if not self.run_pods:
            return
        for (resource, namespace, name), obj in list(self._emulator.objects.items()):
            if resource != kmock.resource(JOBS) or obj.deleted:
                continue
            job = dict(obj.raw)
            spec = job.get("spec") or {}
            status = job.get("status") or {}
            if spec.get("suspend") or _finished(status):
                continue
            await self._start_pods(namespace, name, job)

    async def _start_pods(self, namespace: str, name: str, job: Dict[str, Any]) -> None:
        spec = job["spec"]
        indexed = spec.get("completionMode") == "Indexed"
        indexes: List[Optional[int]] = list(range(spec.get("completions") or 1)) if indexed else [None]
        parallelism = spec.get("parallelism") or len(indexes)
        runs = [run for run in self.pods.values() if run.namespace == namespace and run.job == name]
        running = [run for run in runs if not run.finished.is_set()]
        for index in indexes:
            if len(running) >= parallelism:
                return
            mine = [run for run in runs if run.index == index]
            if any(not run.finished.is_set() or run.exit_code == 0 for run in mine):
                continue
            if mine and not self._retry_allowed(job, index):
                continue
            run = await self._start_pod(namespace, name, job, index)
            if run is not None:
                running.append(run)

    def _retry_allowed(self, job: Dict[str, Any], index: Optional[int]) -> bool:
        status = job.get("status") or {}
        if index is not None and str(index) in _index_set(status.get("failedIndexes")):
            return False
        return not _finished(status)

    async def _start_pod(
        self, namespace: str, job_name: str, job: Dict[str, Any], index: Optional[int]
    ) -> Optional[PodRun]:
        template = job["spec"]["template"]
        pod_spec = template["spec"]
        container = next(c for c in pod_spec["containers"] if c["name"] == "wove")
        suffix = uuid.uuid4().hex[:5]
        pod_name = f"{job_name}-{index}-{suffix}" if index is not None else f"{job_name}-{suffix}"
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels[JOB_NAME_LABEL] = job_name
        annotations = dict((template.get("metadata") or {}).get("annotations") or {})
        if index is not None:
            labels[INDEX_LABEL] = str(index)
            annotations[INDEX_LABEL] = str(index)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _now(),
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job["metadata"]["uid"], "controller": True}
                ],
            },
            "spec": pod_spec,
            "status": {"phase": "Pending"},
        }
        self._emulator.objects[_key(PODS, namespace, pod_name)] = pod
        directory = self.workdir / "pods" / pod_name
        directory.mkdir(parents=True)
        try:
            env, mounts = self._container_env(namespace, pod_spec, container, directory)
        except _ConfigError as error:
            # What the kubelet reports for a missing Secret or key; it would retry, the stand-in
            # leaves the pod waiting (and registered, so no second pod replaces it).
            self._container_status(namespace, pod_name, {"waiting": {"reason": error.reason, "message": str(error)}})
            self.pods[(namespace, pod_name)] = PodRun(namespace, pod_name, job_name, index, directory, [], {}, 0.0)
            return None
        if index is not None:
            env["JOB_COMPLETION_INDEX"] = str(index)
        argv = [_rewrite(arg, mounts) for arg in (container.get("command") or []) + (container.get("args") or [])]
        grace = min(float(pod_spec.get("terminationGracePeriodSeconds", 30)), self.max_grace)
        run = PodRun(namespace, pod_name, job_name, index, directory, argv, env, grace)
        self.pods[(namespace, pod_name)] = run
        with run.stdout_path.open("wb") as out, run.stderr_path.open("wb") as err:
            run.process = await asyncio.create_subprocess_exec(
                *argv, env=env, cwd=directory, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=err,
                # Its own group, so the container's teardown can SIGKILL everything in it.
                start_new_session=True,
            )
        self._patch(PODS, namespace, pod_name, {"status": {"phase": "Running"}})
        self._container_status(namespace, pod_name, {"running": {"startedAt": _now()}})
        self._update_job(namespace, job_name)
        self._tasks.append(asyncio.create_task(self._watch_pod(run)))
        return run

    def _container_env(
        self, namespace: str, pod_spec: Dict[str, Any], container: Dict[str, Any], directory: Path
    ) -> Tuple[Dict[str, str], Dict[str, Path]]:
        env = dict(self.base_env)
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                env.update(self._secret_data(namespace, source["secretRef"]["name"]))
            elif "configMapRef" in source:
                cm = self._object(CONFIGMAPS, namespace, source["configMapRef"]["name"])
                env.update((cm or {}).get("data") or {})
        volumes = {volume["name"]: volume for volume in pod_spec.get("volumes") or []}
        mounts: Dict[str, Path] = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            local = directory / "volumes" / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            if "secret" in volume:
                data = self._secret_data(namespace, volume["secret"]["secretName"])
                items = volume["secret"].get("items")
                pairs = [(item["key"], item["path"]) for item in items] if items else [(key, key) for key in data]
                for key, path in pairs:
                    if key not in data:
                        raise _ConfigError(f'couldn\'t find key {key} in Secret {namespace}/{volume["secret"]["secretName"]}')
                    (local / path).write_text(data[key])
            mounts[mount["mountPath"]] = local
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = _rewrite(var["value"], mounts)
            elif "secretKeyRef" in (var.get("valueFrom") or {}):
                ref = var["valueFrom"]["secretKeyRef"]
                data = self._secret_data(namespace, ref["name"])
                if ref["key"] not in data:
                    raise _ConfigError(f'couldn\'t find key {ref["key"]} in Secret {namespace}/{ref["name"]}')
                env[var["name"]] = data[ref["key"]]
            else:
                raise NotImplementedError(f"env {var['name']!r}: only value and secretKeyRef are modelled")
        # The kubelet mounts the termination message file; the worker writes it only if it exists.
        termination = directory / "termination-log"
        termination.write_text("")
        env["WOVE_WORKER_TERMINATION_LOG"] = str(termination)
        return env, mounts

    def _object(self, resource: str, namespace: str, name: str) -> Optional[Dict[str, Any]]:
        key = _key(resource, namespace, name)
        if key not in self._emulator.objects or self._emulator.objects[key].deleted:
            return None
        return dict(self._emulator.objects[key].raw)

    def _secret_data(self, namespace: str, name: str) -> Dict[str, str]:
        secret = self._object(SECRETS, namespace, name)
        if secret is None:
            raise _ConfigError(f'secret "{name}" not found')
        data = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
        data.update(secret.get("stringData") or {})
        return data

    def _container_status(self, namespace: str, pod: str, state: Dict[str, Any], ready: bool = False) -> None:
        status = {"name": "wove", "image": "stand-in", "imageID": "", "ready": ready, "restartCount": 0, "state": state}
        self._patch(PODS, namespace, pod, {"status": {"containerStatuses": [status]}})

    async def _watch_pod(self, run: PodRun) -> None:
        assert run.process is not None
        code = await run.process.wait()
        # A signal death reads as 128 + n in a container's status.
        run.exit_code = code if code >= 0 else 128 - code
        message = (run.directory / "termination-log").read_bytes()[:TERMINATION_MESSAGE_LIMIT].decode(errors="replace")
        run.finished.set()
        terminated = {"exitCode": run.exit_code, "reason": "Completed" if run.exit_code == 0 else "Error", "finishedAt": _now()}
        if message:
            terminated["message"] = message
        self._patch(PODS, run.namespace, run.name, {"status": {"phase": "Succeeded" if run.exit_code == 0 else "Failed"}})
        self._container_status(run.namespace, run.name, {"terminated": terminated})
        if not run.stopping:
            self._pod_finished(run)
        self._update_job(run.namespace, run.job)

    def _pod_finished(self, run: PodRun) -> None:
        job = self._object(JOBS, run.namespace, run.job)
        if job is None:
            return
        spec, status = job["spec"], dict(job.get("status") or {})
        if run.exit_code == 0:
            status["succeeded"] = status.get("succeeded", 0) + 1
            if run.index is not None:
                status["completedIndexes"] = _index_text(_index_set(status.get("completedIndexes")) | {str(run.index)})
            self._patch(JOBS, run.namespace, run.job, {"status": status})
            return
        action = _policy_action(spec.get("podFailurePolicy"), run.exit_code)
        if action == "Ignore":
            return
        status["failed"] = status.get("failed", 0) + 1
        message = f"Container wove for pod {run.namespace}/{run.name} failed with exit code {run.exit_code}"
        if action == "FailJob":
            status["conditions"] = _fail(status, "PodFailurePolicy", message + " matching FailJob rule")
        elif action == "FailIndex" or (
            run.index is not None
            and spec.get("backoffLimitPerIndex") is not None
            and self._failures(run) > spec["backoffLimitPerIndex"]
        ):
            failed = _index_set(status.get("failedIndexes")) | {str(run.index)}
            status["failedIndexes"] = _index_text(failed)
            max_failed = spec.get("maxFailedIndexes")
            if max_failed is not None and len(failed) > max_failed:
                status["conditions"] = _fail(status, "MaxFailedIndexesExceeded", "too many failed indexes")
        elif spec.get("backoffLimitPerIndex") is None and status["failed"] > spec.get("backoffLimit", 6):
            status["conditions"] = _fail(status, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        self._patch(JOBS, run.namespace, run.job, {"status": status})

    def _failures(self, run: PodRun) -> int:
        return sum(1 for r in self.pods.values() if r.job == run.job and r.index == run.index and r.exit_code not in (None, 0))

    def _update_job(self, namespace: str, name: str) -> None:
        job = self._object(JOBS, namespace, name)
        if job is None:
            return
        spec, status = job["spec"], dict(job.get("status") or {})
        runs = [r for r in self.pods.values() if r.namespace == namespace and r.job == name]
        status["active"] = sum(1 for r in runs if not r.finished.is_set())
        status.setdefault("startTime", _now())
        indexed = spec.get("completionMode") == "Indexed"
        if not _finished(status) and status["active"] == 0:
            if indexed:
                done = _index_set(status.get("completedIndexes")) | _index_set(status.get("failedIndexes"))
                if len(done) == (spec.get("completions") or 1):
                    if status.get("failedIndexes"):
                        status["conditions"] = _fail(status, "FailedIndexes", "Job has failed indexes")
                    else:
                        status["conditions"] = _complete(status)
            elif status.get("succeeded", 0) >= 1:
                status["conditions"] = _complete(status)
        self._patch(JOBS, namespace, name, {"status": status})
        if _finished(status):
            # A finished Job's remaining pods are stopped, as the controller does after FailJob.
            for run in runs:
                if not run.finished.is_set():
                    self._tasks.append(asyncio.create_task(self._terminate(run)))

    # -- deletion: the garbage collector and the kubelet's shutdown ----------------------------

    async def _collect(self, namespace: str, job: str) -> None:
        runs = [run for run in self.pods.values() if run.namespace == namespace and run.job == job]
        await asyncio.gather(*(self._terminate(run) for run in runs))
        for run in runs:
            key = _key(PODS, namespace, run.name)
            if key in self._emulator.objects and not self._emulator.objects[key].deleted:
                self._emulator.objects[key].delete()
        for (resource, ns, name), obj in list(self._emulator.objects.items()):
            if ns != namespace or obj.deleted:
                continue
            owners = (obj.raw.get("metadata") or {}).get("ownerReferences") or []
            if any(o.get("kind") == "Job" and o.get("name") == job for o in owners):
                obj.delete()

    async def _terminate(self, run: PodRun) -> None:
        """SIGTERM to the container's main process, SIGKILL to all of it after the grace period."""
        if run.process is None:
            run.finished.set()  # never started: nothing to stop
            return
        if run.finished.is_set() or run.stopping:
            await run.finished.wait()
            return
        run.stopping = True
        try:
            os.kill(run.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            await asyncio.wait_for(run.finished.wait(), timeout=run.grace)
        except asyncio.TimeoutError:
            pass
        try:
            os.killpg(run.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        await asyncio.wait_for(run.finished.wait(), timeout=10)

    async def _shutdown_pods(self) -> None:
        runs = [run for run in self.pods.values() if run.process is not None and not run.finished.is_set()]
        await asyncio.gather(*(self._terminate(run) for run in runs), return_exceptions=True)


class _ConfigError(Exception):
    reason = "CreateContainerConfigError"


def _rewrite(value: str, mounts: Mapping[str, Path]) -> str:
    """A path under a volume's mount point, as this pod's local directory for that volume."""
    for mount_path, local in mounts.items():
        prefix = mount_path.rstrip("/") + "/"
        if value == mount_path or value.startswith(prefix):
            return str(local) + value[len(mount_path.rstrip("/")):]
    return value


def _policy_action(policy: Optional[Dict[str, Any]], exit_code: int) -> str:
    for rule in (policy or {}).get("rules") or []:
        codes = rule.get("onExitCodes")
        if codes is None:
            continue  # onPodConditions: the stand-in raises no pod conditions
        if codes.get("containerName") not in (None, "wove"):
            continue
        hit = exit_code in codes["values"]
        if (codes["operator"] == "In" and hit) or (codes["operator"] == "NotIn" and not hit):
            return rule["action"]
    return "Count"


def _condition(kind: str, reason: str, message: str) -> Dict[str, Any]:
    now = _now()
    return {"type": kind, "status": "True", "reason": reason, "message": message, "lastProbeTime": now, "lastTransitionTime": now}


def _fail(status: Dict[str, Any], reason: str, message: str) -> List[Dict[str, Any]]:
    return list(status.get("conditions") or []) + [
        _condition("FailureTarget", reason, message),
        _condition("Failed", reason, message),
    ]


def _complete(status: Dict[str, Any]) -> List[Dict[str, Any]]:
    return list(status.get("conditions") or []) + [
        _condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
        _condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods"),
    ]


def _finished(status: Mapping[str, Any]) -> bool:
    return any(c.get("type") in ("Failed", "Complete") and c.get("status") == "True" for c in status.get("conditions") or [])


def _index_set(text: Optional[str]) -> set:
    out = set()
    for part in (text or "").split(","):
        if "-" in part:
            low, high = part.split("-")
            out.update(str(i) for i in range(int(low), int(high) + 1))
        elif part:
            out.add(part)
    return out


def _index_text(indexes: set) -> str:
    return ",".join(str(i) for i in sorted(int(i) for i in indexes))
