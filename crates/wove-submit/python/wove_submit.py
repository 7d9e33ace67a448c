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
                      options=["--attempts", "3"])        # any `wove-submit batch submit` flag
    wove.config(environments={"batch": {"executor": "aws_batch", "executor_config": batch.executor_config()}})

`wove-submit` must be on PATH (or give `program=`); it finds the cluster the kube way
(KUBECONFIG, ~/.kube/config, then in-cluster), or from `kubeconfig=` and `context=`, and AWS the
AWS way (environment, profile, web identity, ECS and instance roles).
"""

from __future__ import annotations

import asyncio
import json
import os
import types
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = ["BatchJobs", "KubernetesJobs", "Submission", "SubmitError"]


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


class KubernetesJobs:
    """`job_factory` and `batch_api` for Wove's `kubernetes_jobs` adapter."""

    def __init__(
        self,
        image: Optional[str] = None,
        *,
        namespace: str = "default",
        options: Sequence[str] = (),
        program: str = "wove-submit",
        kubeconfig: Optional[str] = None,
        context: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout: float = 120.0,
    ) -> None:
        self.image = image
        self.namespace = namespace
        self.options = list(options)
        self.program = program
        self.kubeconfig = kubeconfig
        self.context = context
        self.env = dict(env) if env is not None else None
        self.timeout = timeout
        # Wove cancels by its own Job name; the Job has ours.
        self._names: Dict[Tuple[str, str], str] = {}

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
        return submitted

    async def delete_namespaced_job(self, name: str, namespace: str, **_: Any) -> Dict[str, Any]:
        job = self._names.get((namespace, name), name)
        # Background propagation: the pods get SIGTERM and the worker reports task_cancelled.
        return json.loads(await self._run(["cancel", job, "--namespace", namespace, "--output", "json"]))

    async def _run(self, args: List[str], stdin: Optional[bytes] = None) -> str:
        connect = []
        if self.kubeconfig is not None:
            connect += ["--kubeconfig", self.kubeconfig]
        if self.context is not None:
            connect += ["--context", self.context]
        return await _run(self.program, ["kubernetes", *args, *connect], stdin, self.env, self.timeout)


class BatchJobs:
    """The `client` for Wove's `aws_batch` adapter: its `submit_job` and `cancel_job`."""

    def __init__(
        self,
        job_queue: str,
        job_definition: str,
        *,
        options: Sequence[str] = (),
        program: str = "wove-submit",
        env: Optional[Mapping[str, str]] = None,
        timeout: float = 120.0,
    ) -> None:
        self.job_queue = job_queue
        self.job_definition = job_definition
        self.options = list(options)
        self.program = program
        self.env = dict(env) if env is not None else None
        self.timeout = timeout

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
        # What boto3's submit_job returns: the adapter keeps it and cancels by its jobId.
        return {"jobId": submitted["job_id"], "jobName": submitted["job_name"]}

    async def cancel_job(self, jobId: str, reason: str = "Cancelled by Wove.") -> Dict[str, Any]:  # noqa: N803
        """TerminateJob once the job has started (the adapter's CancelJob would leave it running)."""
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
