"""Wove's `kubernetes_jobs` and `aws_batch` adapters, submitting through `wove-submit`.

Wove 2.0.3's own adapter builds a Job that a real API server refuses (the raw run id, with its
colon, in a label) and cancels with a DELETE that leaves the pods running. Handing both ends to
`wove-submit` fixes that without writing any of its rules twice: this module only moves Wove's
payload to the `wove-submit` program and reads back what it printed.

    import wove
    from wove_submit import KubernetesJobs

    jobs = KubernetesJobs(
        image="registry.example/wove-worker-python:0.1.0",
        namespace="batch",
        options=["--signing-secret", "wove-signing"],   # any `wove-submit kubernetes submit` flag
    )
    wove.config(environments={"k8s": {"executor": "kubernetes_jobs", "executor_config": jobs.executor_config()}})

Wove 2.0.3's `aws_batch` adapter names the job `wove-<run id>`, colon included, which the real
API refuses, cancels with CancelJob, which does nothing to a running job, and lets a payload past
Batch's size limits. Give it this client instead:

    from wove_submit import BatchJobs

    batch = BatchJobs(job_queue="wove-queue", job_definition="wove-worker:3",
                      options=["--attempts", "3",          # any `wove-submit batch submit` flag,
                               "--payload-store", "s3://my-bucket/wove"])  # e.g. for large payloads
    wove.config(environments={"batch": {"executor": "aws_batch", "executor_config": batch.executor_config()}})

Each submission is also watched, in the background, by `wove-submit ... wait --report`: when the
platform ends the job (or never starts it) where the worker cannot report -- an image that cannot
be pulled, a missing Secret, no room within `--pending-timeout`, the OOM killer, a lost node, the
deadline -- it posts the task's `task_error` itself, so the weave raises at once with the
platform's reason instead of waiting forever. Its events are signed as the worker's are: give the
watcher the same secret (`WOVE_WORKER_SIGNING_SECRET` in this process's environment, or
`report_options=["--signing-secret-file", PATH]`). Wove's cancel stops the watcher first; so does
the end of this process (the watcher stops when its stdin closes). `report=False` turns it off.

`pip install wove-submit` brings the `wove-submit` program with this module, and the module runs
that one (`find_wove_submit`); otherwise it must be on PATH, or given as `program=`. It finds the cluster the kube way
(KUBECONFIG, ~/.kube/config, then in-cluster), or from `kubeconfig=` and `context=`, and AWS the
AWS way (environment, profile, web identity, ECS and instance roles).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sysconfig
import types
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = ["BatchJobs", "KubernetesJobs", "Submission", "SubmitError", "Watcher", "find_wove_submit"]

# Long enough for any task: the watcher ends by itself when the job does.
WATCH_TIMEOUT = 7 * 24 * 3600
# The largest payload handed to a watcher in its environment (below Linux's 128 KiB per string).
INLINE_WATCH_PAYLOAD = 64 * 1024


def find_wove_submit() -> str:
    """The `wove-submit` program to run: the one the wheel of this module installed (into the
    scripts directory of the scheme this module was installed with: a venv's `bin`, the user's
    `~/.local/bin`, or `bin` beside a `pip install --target` directory), else the first on PATH,
    else the bare name (the first call then fails saying it is not found)."""
    here = Path(__file__).resolve().parent.parent
    candidates = []
    for scheme in dict.fromkeys([sysconfig.get_default_scheme(), f"{os.name}_user"]):
        try:
            paths = sysconfig.get_paths(scheme)
        except KeyError:
            continue
        if here in (Path(paths["purelib"]).resolve(), Path(paths["platlib"]).resolve()):
            candidates.append(Path(paths["scripts"]))
    candidates.append(here / "bin")
    for directory in candidates:
        program = directory / "wove-submit"
        if program.is_file() and os.access(program, os.X_OK):
            return str(program)
    return shutil.which("wove-submit") or "wove-submit"


class SubmitError(RuntimeError):
    """`wove-submit` exited with an error; the message is what it printed."""

    def __init__(self, command: str, code: int, message: str) -> None:
        super().__init__(f"wove-submit {command} exited {code}: {message.strip()}")
        self.code = code


@dataclass(frozen=True)
class Submission:
    """What `job_factory` hands to Wove, and Wove hands back to `create_namespaced_job`."""

    payload_b64: str
    run_id: str
    wove_job_name: str
    """The name Wove will ask to delete on cancel (its own naming, not the Job's)."""


class Watcher:
    """One `wove-submit ... wait --report` running in the background for a submission."""

    def __init__(self, process: "asyncio.subprocess.Process") -> None:
        self.process = process
        self.result: Optional[Dict[str, Any]] = None
        """What it printed when it ended (the job, and `reported`: each failure it posted)."""
        self.stderr = ""
        self._done = asyncio.ensure_future(self._collect())

    async def _collect(self) -> None:
        try:
            out, err = await asyncio.gather(self.process.stdout.read(), self.process.stderr.read())
            await self.process.wait()
        except asyncio.CancelledError:
            # The event loop is ending: so is the weave's run, and the watch with it.
            await self._end()
            raise
        self.stderr = err.decode(errors="replace")
        try:
            self.result = json.loads(out.decode()) if out.strip() else None
        except ValueError:
            self.result = None

    async def _end(self, timeout: float = 10.0) -> None:
        if self.process.returncode is None and self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            self.process.kill()

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop watching, reporting nothing more: close its stdin, then kill it if it lingers."""
        if self.running and self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._done), timeout)
        except asyncio.TimeoutError:
            self.process.kill()
            await self._done

    async def wait(self, timeout: Optional[float] = None) -> Optional[Dict[str, Any]]:
        """Wait for it to end by itself; what it printed."""
        await asyncio.wait_for(asyncio.shield(self._done), timeout)
        return self.result


async def _start_watch(program: str, args: List[str], payload_b64: str,
                       env: Optional[Mapping[str, str]]) -> Watcher:
    child_env = dict(os.environ) if env is None else dict(env)
    # The payload tells the watcher where to report; its stdin only says this process lives.
    # Linux caps one environment string at 128 KiB: a larger payload (one that went to a payload
    # store) is read back by the watcher from the job, or from the store.
    if len(payload_b64) <= INLINE_WATCH_PAYLOAD:
        child_env["WOVE_BACKEND_PAYLOAD"] = payload_b64
    else:
        child_env.pop("WOVE_BACKEND_PAYLOAD", None)
    process = await asyncio.create_subprocess_exec(
        program, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=child_env)
    return Watcher(process)


class KubernetesJobs:
    """`job_factory` and `batch_api` for Wove's `kubernetes_jobs` adapter."""

    def __init__(
        self,
        image: Optional[str] = None,
        *,
        namespace: str = "default",
        options: Sequence[str] = (),
        program: Optional[str] = None,
        kubeconfig: Optional[str] = None,
        context: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout: float = 120.0,
        report: bool = True,
        report_options: Sequence[str] = (),
    ) -> None:
        self.image = image
        self.namespace = namespace
        self.options = list(options)
        self.program = program or find_wove_submit()
        self.kubeconfig = kubeconfig
        self.context = context
        self.env = dict(env) if env is not None else None
        self.timeout = timeout
        self.report = report
        self.report_options = list(report_options)
        # Wove cancels by its own Job name; the Job has ours.
        self._names: Dict[Tuple[str, str], str] = {}
        self.watchers: Dict[Tuple[str, str], Watcher] = {}
        """The background watch of each submitted Job, by (namespace, Job name)."""

    def executor_config(self, **extra: Any) -> Dict[str, Any]:
        """The `executor_config` for `wove.config(environments=...)`."""
        return {
            "job_factory": self.job_factory,
            "batch_api": self,
            "namespace": self.namespace,
            # wove-submit loads the configuration itself.
            "load_config": False,
            **extra,
        }

    # -- what Wove's adapter calls ----------------------------------------------------------

    def job_factory(self, payload: Dict[str, Any], frame: Dict[str, Any], config: Dict[str, Any]) -> Submission:
        from wove.backend import payload_to_b64
        from wove.integrations.kubernetes_jobs import KubernetesJobsAdapter

        run_id = frame["run_id"]
        # Wove's cancel names the Job by this method of its adapter, from the same config.
        wove_name = KubernetesJobsAdapter._job_name(types.SimpleNamespace(config=config), run_id)
        return Submission(payload_b64=payload_to_b64(payload), run_id=run_id, wove_job_name=wove_name)

    async def create_namespaced_job(self, namespace: str, body: Submission, **_: Any) -> Dict[str, Any]:
        args = ["submit", "--namespace", namespace, "--payload-file", "-", "--output", "json"]
        if self.image is not None:
            args += ["--image", self.image]
        submitted = json.loads(await self._run(args + self.options, stdin=body.payload_b64.encode()))
        self._names[(namespace, body.wove_job_name)] = submitted["name"]
        if self.report:
            watch = ["kubernetes", "wait", submitted["name"], "--namespace", namespace, "--report",
                     "--stop-on-stdin-eof", "--output", "json", "--timeout", str(WATCH_TIMEOUT),
                     *self.report_options, *self._connect()]
            self.watchers[(namespace, submitted["name"])] = await _start_watch(
                self.program, watch, body.payload_b64, self.env)
        return submitted

    async def delete_namespaced_job(self, name: str, namespace: str, **_: Any) -> Dict[str, Any]:
        job = self._names.get((namespace, name), name)
        # A cancel is not a failure outside the worker: the watcher goes first.
        watcher = self.watchers.get((namespace, job))
        if watcher is not None:
            await watcher.stop()
        # Background propagation: the pods get SIGTERM and the worker reports task_cancelled.
        return json.loads(await self._run(["cancel", job, "--namespace", namespace, "--output", "json"]))

    async def close(self) -> None:
        """Stop every watcher still running (each also stops when this process ends)."""
        for watcher in list(self.watchers.values()):
            await watcher.stop()

    def _connect(self) -> List[str]:
        connect = []
        if self.kubeconfig is not None:
            connect += ["--kubeconfig", self.kubeconfig]
        if self.context is not None:
            connect += ["--context", self.context]
        return connect

    async def _run(self, args: List[str], stdin: Optional[bytes] = None) -> str:
        return await _run(self.program, ["kubernetes", *args, *self._connect()], stdin, self.env, self.timeout)


class BatchJobs:
    """The `client` for Wove's `aws_batch` adapter: its `submit_job` and `cancel_job`."""

    async def close(self) -> None:
        """Stop every watcher still running (each also stops when this process ends)."""
        for watcher in list(self.watchers.values()):
            await watcher.stop()

    def __init__(
        self,
        job_queue: str,
        job_definition: str,
        *,
        options: Sequence[str] = (),
        program: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout: float = 120.0,
        report: bool = True,
        report_options: Sequence[str] = (),
    ) -> None:
        self.job_queue = job_queue
        self.job_definition = job_definition
        self.options = list(options)
        self.program = program or find_wove_submit()
        self.env = dict(env) if env is not None else None
        self.timeout = timeout
        self.report = report
        self.report_options = list(report_options)
        self.watchers: Dict[str, Watcher] = {}
        """The background watch of each submitted job, by job id."""

    def executor_config(self, **extra: Any) -> Dict[str, Any]:
        """The `executor_config` for `wove.config(environments=...)`."""
        return {"client": self, "job_queue": self.job_queue, "job_definition": self.job_definition, **extra}

    async def submit_job(self, **params: Any) -> Dict[str, Any]:
        """What the adapter calls, with its own (invalid) `jobName`: only the payload, the
        queue, the definition and the container overrides are taken; wove-submit names the job,
        checks its limits and writes its retry rules."""
        overrides = dict(params.get("containerOverrides") or {})
        payload = None
        args = ["batch", "submit", "--payload-file", "-", "--output", "json",
                "--job-queue", params.get("jobQueue") or self.job_queue,
                "--job-definition", params.get("jobDefinition") or self.job_definition]
        for var in overrides.get("environment") or []:
            if var["name"] == "WOVE_BACKEND_PAYLOAD":
                payload = var["value"]
            else:
                args += ["--env", f"{var['name']}={var['value']}"]
        for word in overrides.get("command") or []:
            args += ["--command", word]
        if payload is None:
            raise SubmitError("batch submit", 64, "the adapter sent no WOVE_BACKEND_PAYLOAD")
        submitted = json.loads(await _run(self.program, args + self.options, payload.encode(), self.env, self.timeout))
        if self.report:
            watch = ["batch", "wait", submitted["job_id"], "--report", "--stop-on-stdin-eof", "--output", "json",
                     "--timeout", str(WATCH_TIMEOUT), *self.report_options]
            self.watchers[submitted["job_id"]] = await _start_watch(self.program, watch, payload, self.env)
        # What boto3's submit_job returns: the adapter keeps it and cancels by its jobId.
        return {"jobId": submitted["job_id"], "jobName": submitted["job_name"]}

    async def cancel_job(self, jobId: str, reason: str = "Cancelled by Wove.") -> Dict[str, Any]:  # noqa: N803
        """TerminateJob once the job has started (the adapter's CancelJob would leave it running)."""
        # A cancel is not a failure outside the worker: the watcher goes first.
        watcher = self.watchers.get(jobId)
        if watcher is not None:
            await watcher.stop()
        return json.loads(await _run(self.program, ["batch", "cancel", jobId, "--reason", reason, "--output", "json"],
                                     None, self.env, self.timeout))


async def _run(program: str, args: List[str], stdin: Optional[bytes], env: Optional[Mapping[str, str]],
               timeout: float) -> str:
    """Run `wove-submit ARGS`; its stdout, or SubmitError with what it printed."""
    process = await asyncio.create_subprocess_exec(
        program,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ) if env is None else dict(env),
    )
    what = " ".join(args[:2])
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout=timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise SubmitError(what, -9, f"no answer within {timeout} s")
    if process.returncode != 0:
        raise SubmitError(what, process.returncode, err.decode(errors="replace"))
    return out.decode()
