"""AWS Batch on loopback: moto's server, and a stand-in for the compute environment.

moto's Batch in simple mode (no Docker) accepts SubmitJob, keeps what was sent (container
overrides, tags, array properties, timeout, parameters) and would mark a job finished within the
SubmitJob call itself; it validates no job name and ignores retryStrategy. This module runs it
in-process on 127.0.0.1, leaves submitted jobs RUNNABLE for the compute stand-in below,
sets up a role, an UNMANAGED compute environment, a queue and a job definition whose command is
`wove-worker`, records every request the clients make (moto's recorder), and adds what a compute
environment does:

- each job submitted is taken as RUNNING and its container runs here as a local process: the job
  definition's command with the environment DescribeJobs reports for the job, plus what Batch
  sets (`AWS_BATCH_JOB_ID`, `AWS_BATCH_JOB_ATTEMPT`, `AWS_BATCH_JOB_ARRAY_INDEX` for array
  children, `AWS_BATCH_CE_NAME`, `AWS_BATCH_JQ_NAME`);
- its exit code becomes the job's attempt, SUCCEEDED or FAILED;
- an array job ends once all its children have: SUCCEEDED when they all did, else FAILED (moto
  itself only ever marks a parent SUCCEEDED);
- TerminateJob on a running job sends the process SIGTERM, then SIGKILL after the grace
  (Batch's 30 s, capped for tests);
- only the image `wove-worker` is there: a job whose definition names another fails as Batch
  fails it, `Task failed to start`, its attempt's container `CannotPullContainerError: ...`
  with no exit code; with `run_jobs = False` there is no room, and jobs stay RUNNABLE.

Clients reach it through AWS_ENDPOINT_URL_BATCH with static test credentials.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import boto3
from moto.batch.models import batch_backends
from moto.batch_simple.models import BatchSimpleBackend
from moto.moto_api import recorder
from moto.server import ThreadedMotoServer

ACCOUNT = "123456789012"
REGION = "us-east-1"
QUEUE = "wove-queue"
DEFINITION = "wove-worker"
COMPUTE = "wove-compute"
# The one image this compute environment has.
IMAGE = "wove-worker"


@dataclass
class Call:
    """One request a client made, as moto's recorder kept it."""

    action: str
    body: Dict[str, Any]


@dataclass
class Run:
    """A job's container, run here."""

    job_id: str
    env: Dict[str, str]
    process: subprocess.Popen
    stdout: Path
    stderr: Path
    exit_code: Optional[int] = None
    terminated: bool = False


class BatchCloud:
    def __init__(self, workdir: Path, base_env: Mapping[str, str], *, max_grace: float = 5.0) -> None:
        self.workdir = Path(workdir)
        self.base_env = dict(base_env)
        self.max_grace = max_grace
        self.run_jobs = True
        self.runs: Dict[str, Run] = {}
        self._seen: set = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> "BatchCloud":
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Submitted jobs wait in the queue, RUNNABLE, for the compute stand-in (moto would
        # finish them inside SubmitJob, before anyone could see them run).
        self._finish = BatchSimpleBackend._mark_job_as_finished

        def queue_job(backend: Any, include_start_attempt: bool, job: Any) -> None:
            backend.backend._jobs[job.job_id] = job
            job.log_stream_name = job._stream_name
            job.status = "RUNNABLE"

        BatchSimpleBackend._mark_job_as_finished = queue_job
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self._post("/moto-api/reset", {})
        self._post("/moto-api/config", {"batch": {"use_docker": False}})
        # Jobs keep the status they are given (RUNNING while the stand-in runs them).
        self._post("/moto-api/state-manager/set-transition",
                   {"model_name": "batch::job", "transition": {"progression": "manual", "times": 10**9}})
        iam = self.client("iam")
        role = iam.create_role(RoleName="wove-batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        batch = self.client("batch")
        compute = batch.create_compute_environment(
            computeEnvironmentName=COMPUTE, type="UNMANAGED", state="ENABLED", serviceRole=role
        )["computeEnvironmentArn"]
        batch.create_job_queue(jobQueueName=QUEUE, state="ENABLED", priority=1,
                               computeEnvironmentOrder=[{"order": 1, "computeEnvironment": compute}])
        batch.register_job_definition(jobDefinitionName=DEFINITION, type="container",
                                      containerProperties={"image": IMAGE, "command": ["wove-worker"],
                                                           "vcpus": 1, "memory": 512})
        # The recorder writes to a file, by default in the working directory: keep it in ours.
        recorder._location = str(self.workdir / "moto-recording.jsonl")
        self._post("/moto-api/recorder/reset-recording", {})
        self._post("/moto-api/recorder/start-recording", {})
        self._thread = threading.Thread(target=self._compute, name="batch-compute", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        with self._lock:
            runs = list(self.runs.values())
        for run in runs:
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait(timeout=10)
        self._server.stop()
        BatchSimpleBackend._mark_job_as_finished = self._finish

    # -- what tests use ------------------------------------------------------------------------

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="test", aws_secret_access_key="test")

    def env(self) -> Dict[str, str]:
        """What a program needs to reach this Batch and its S3 (the same moto server): endpoints,
        region, static credentials."""
        return {"AWS_ENDPOINT_URL_BATCH": self.url, "AWS_ENDPOINT_URL_S3": self.url, "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true"}

    def s3(self):
        """A client of this server's S3, path-style as a loopback endpoint needs."""
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=self.url, region_name=REGION, aws_access_key_id="test",
                            aws_secret_access_key="test", config=Config(s3={"addressing_style": "path"}))

    def worker_s3_env(self) -> Dict[str, str]:
        """What a job's container needs to read this server's S3 with its own identity (a job role
        would give the keys); IMDS pointed at a closed loopback port."""
        return {"AWS_ENDPOINT_URL_S3": self.url, "AWS_ALLOW_HTTP": "true", "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_METADATA_ENDPOINT": "http://127.0.0.1:9"}

    def describe(self, job_id: str) -> Dict[str, Any]:
        return self.client("batch").describe_jobs(jobs=[job_id])["jobs"][0]

    def set_status(self, job_id: str, status: str) -> None:
        batch_backends[ACCOUNT][REGION]._jobs[job_id].status = status

    def calls(self, action: Optional[str] = None) -> List[Call]:
        """Every Batch request the clients made since start, in order."""
        text = urllib.request.urlopen(f"{self.url}/moto-api/recorder/download-recording", timeout=10).read().decode()
        out = []
        for line in text.splitlines():
            entry = json.loads(line)
            path = urllib.parse.urlsplit(entry.get("url", "")).path
            if not path.startswith("/v1/"):
                continue  # IAM and moto's own API
            raw = entry.get("body") or ""
            try:
                body = json.loads(base64.b64decode(raw)) if raw else {}
            except ValueError:
                body = {}
            out.append(Call(path[len("/v1/"):], body))
        return [c for c in out if action is None or c.action == action]

    def definition_with_image(self, image: str) -> str:
        """A job definition like the default one but with `image`; its name."""
        name = f"{DEFINITION}-{abs(hash(image)) % 10**8}"
        self.client("batch").register_job_definition(
            jobDefinitionName=name, type="container",
            containerProperties={"image": image, "command": ["wove-worker"], "vcpus": 1, "memory": 512})
        return name

    def wait_run(self, job_id: str, timeout: float = 30) -> Run:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                run = self.runs.get(job_id)
            if run is not None and run.exit_code is not None:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} did not run to its end within {timeout} s")
            time.sleep(0.05)

    # -- the compute environment's part ----------------------------------------------------------

    def _post(self, path: str, body: Any) -> None:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()

    def _compute(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as error:  # noqa: BLE001 - a broken stand-in must show in the test output
                print(f"batch compute stand-in: {error!r}", flush=True)
            time.sleep(0.05)

    def _tick(self) -> None:
        jobs = batch_backends[ACCOUNT][REGION]._jobs
        for job in list(jobs.values()):
            children = getattr(job, "_child_jobs", None)
            if children and job.status not in ("SUCCEEDED", "FAILED"):
                statuses = {child.status for child in children}
                if statuses <= {"SUCCEEDED", "FAILED"}:
                    job.status = "FAILED" if "FAILED" in statuses else "SUCCEEDED"
                elif statuses & {"RUNNING", "SUCCEEDED", "FAILED"}:
                    job.status = "RUNNING"
        for job_id, job in list(jobs.items()):
            run = self.runs.get(job_id)
            if run is not None:
                self._watch(job, run)
                continue
            if job_id in self._seen or not self.run_jobs or job.status != "RUNNABLE":
                continue
            self._seen.add(job_id)
            if "size" in (getattr(job, "array_properties", None) or {}):
                continue  # an array parent: its children run
            self._start(job_id)

    def _start(self, job_id: str) -> None:
        detail = self.describe(job_id)
        job = batch_backends[ACCOUNT][REGION]._jobs[job_id]
        image = job.job_definition.container_properties.get("image", IMAGE)
        if image != IMAGE:
            # As ECS reports an image it cannot pull: the attempt never ran, so no exit code.
            job.attempts = [{"container": {"reason": f"CannotPullContainerError: pull image manifest has been "
                                                     f"retried 5 time(s): failed to resolve ref {image}: not found"},
                             "statusReason": "Task failed to start"}]
            job.job_stopped_reason = "Task failed to start"
            job.status = "FAILED"
            return
        self.set_status(job_id, "RUNNING")
        env = dict(self.base_env)
        for var in detail.get("container", {}).get("environment", []):
            env[var["name"]] = var["value"]
        env.update({"AWS_BATCH_JOB_ID": job_id, "AWS_BATCH_JOB_ATTEMPT": "1", "AWS_BATCH_CE_NAME": COMPUTE,
                    "AWS_BATCH_JQ_NAME": QUEUE})
        index = (batch_backends[ACCOUNT][REGION]._jobs[job_id].array_properties or {}).get("index")
        if index is not None:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
        command = detail.get("container", {}).get("command") or ["wove-worker"]
        directory = self.workdir / job_id.replace(":", "-")
        directory.mkdir(parents=True)
        out, err = directory / "stdout.log", directory / "stderr.log"
        with out.open("wb") as o, err.open("wb") as e:
            process = subprocess.Popen(command, env=env, cwd=directory, stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                       start_new_session=True)
        with self._lock:
            self.runs[job_id] = Run(job_id, env, process, out, err)

    def _watch(self, job: Any, run: Run) -> None:
        if run.exit_code is not None:
            return
        if getattr(job, "stop", False) and not run.terminated:
            # TerminateJob: SIGTERM to the container's main process, SIGKILL after the grace.
            run.terminated = True
            os.kill(run.process.pid, signal.SIGTERM)
            threading.Thread(target=self._kill_later, args=(run,), daemon=True).start()
        code = run.process.poll()
        if code is None:
            return
        run.exit_code = code if code >= 0 else 128 - code
        # The attempt first: whoever sees the final status sees its exit code with it.
        job.attempts = [{"container": {"exitCode": run.exit_code, "logStreamName": f"wove/{run.job_id}"},
                         "statusReason": "Essential container in task exited"}]
        job.status = "SUCCEEDED" if run.exit_code == 0 else "FAILED"

    def _kill_later(self, run: Run) -> None:
        try:
            run.process.wait(timeout=self.max_grace)
        except subprocess.TimeoutExpired:
            os.killpg(run.process.pid, signal.SIGKILL)
