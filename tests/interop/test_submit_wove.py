"""Wove's own `kubernetes_jobs` and `aws_batch` adapters, configured with the README's snippets
(`wove_submit.py`).

A real weave submits through `wove-submit` to Kubernetes v1.37.2's own control plane (cluster.py)
or to moto's Batch; the node agent (or Batch's stand-in) runs the job's container (the worker,
running the pickled callable), and the result comes back through Wove's own callback server. Wove's cancel must stop the running worker: a
DELETE with background propagation, a TerminateJob.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Iterator

import cloudpickle
import pytest
import wove
from wove import DeliveryTimeoutError, weave
from wove.integrations.kubernetes_jobs import KubernetesJobsAdapter

import k8s_rules
from batch_cloud import DEFINITION, QUEUE, BatchCloud
from cluster import JOBS, ApiError, Namespace, wait_until

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "crates/wove-submit/python"))
from wove_submit import BatchJobs, KubernetesJobs  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])
pytestmark = pytest.mark.wove_worker_only

ENVIRONMENT = "k8s-submit"


def multiply(a: int, b: int) -> int:
    return a * b


def sleep_long() -> str:
    time.sleep(60)
    return "too late"


@pytest.fixture
def jobs(cluster: Namespace, submit_bin: str) -> Iterator[KubernetesJobs]:
    # A short shutdown budget (and so grace period) keeps the cancel test quick.
    jobs = KubernetesJobs(image="local", program=submit_bin, kubeconfig=str(cluster.kubeconfig),
                          namespace=cluster.name, options=["--shutdown-budget", "3"])
    wove.config(environments={ENVIRONMENT: {"executor": "kubernetes_jobs",
                                            "executor_config": jobs.executor_config(callback_host="127.0.0.1")}})
    try:
        yield jobs
    finally:
        wove.config(environments={ENVIRONMENT: None})


def test_the_snippets_are_the_documented_ones() -> None:
    readme = (REPO / "README.md").read_text()
    module = (REPO / "crates/wove-submit/python/wove_submit/__init__.py").read_text()
    for line in ("from wove_submit import KubernetesJobs", "jobs = KubernetesJobs(",
                 '"executor_config": jobs.executor_config()', "from wove_submit import BatchJobs",
                 "batch = BatchJobs(", '"executor_config": batch.executor_config()'):
        assert line in readme and line in module, line


def test_a_weave_runs_its_task_in_a_job_wove_submit_made(jobs: KubernetesJobs, cluster: Namespace) -> None:
    with weave() as w:
        @w.do(environment=ENVIRONMENT, delivery_timeout=30)
        def product() -> int:
            return multiply(6, 7)

    assert w.result["product"] == 42
    (job,) = cluster.list(JOBS)
    k8s_rules.validate_schema([job])
    assert k8s_rules.job_problems(job) == []
    run_id = job["metadata"]["annotations"]["wove.dev/run-id"]
    assert ":" in run_id, "Wove's raw run id, colon included, is kept in an annotation"
    assert ":" not in job["metadata"]["labels"]["wove.dev/run"]


def test_wove_s_own_job_breaks_the_rules_this_one_keeps(cluster: Namespace) -> None:
    """Why the snippet exists: the Job Wove 2.0.3 builds by itself is refused by the real API
    server, for the label value its run id makes."""
    adapter = KubernetesJobsAdapter(name="k8s", config={"image": "local"}, callback_url="http://x/wove/events/t",
                                    run_config={})
    frame = {"run_id": "product:0123456789abcdef0123456789abcdef"}
    from kubernetes.client import ApiClient

    job = ApiClient().sanitize_for_serialization(adapter._default_job({"version": 1}, frame))
    problems = k8s_rules.job_problems(job)
    assert any("wove-run-id" in p for p in problems), problems
    with pytest.raises(ApiError) as refused:
        cluster.create(JOBS, job, dryRun="All")
    assert refused.value.code == 422, refused.value
    message = refused.value.status["message"]
    assert "spec.template.labels" in message and "product:0123456789abcdef0123456789abcdef" in message, message
    # The same Job with only that label mended is accepted: nothing else was in the way.
    job["spec"]["template"]["metadata"]["labels"]["wove-run-id"] = "product-0123456789abcdef0123456789abcdef"
    cluster.create(JOBS, job, dryRun="All")


def test_wove_s_cancel_stops_the_pod_with_background_propagation(jobs: KubernetesJobs, cluster: Namespace) -> None:
    with weave() as w:
        w.do(environment=ENVIRONMENT, delivery_timeout=10)(sleep_long)
    with pytest.raises(DeliveryTimeoutError):
        w.result["sleep_long"]
    # Wove cancels as the weave ends, through `wove-submit cancel`: give that call its moment.
    deletes = wait_until(lambda: [r for r in cluster.requests() if r.method == "DELETE"], 20, "Wove's cancel")
    assert len(deletes) == 1, [r.path for r in cluster.requests()]
    assert deletes[0].propagation_policy == "Background"
    name = deletes[0].path.rsplit("/", 1)[-1]
    wait_until(lambda: cluster.get(JOBS, name) is None, 10, "the Job deleted")
    pod_dirs = cluster.node_pod_dirs(name)
    assert len(pod_dirs) == 1, pod_dirs
    pod = pod_dirs[0].name.split("_")[1]
    # SIGTERM from the pod's deletion: the worker stops the task and sends task_cancelled, which
    # arrives (143) unless the weave's callback server is already gone (75, retried until its
    # shutdown budget ran out) -- never a SIGKILL at the end of the grace period (137).
    codes = wait_until(lambda: cluster.node_exits(pod), 20, "the pod stopped")
    assert codes[0] in (143, 75), codes
    assert "SIGTERM" in (pod_dirs[0] / "wove-0.log").read_text()


# -- AWS Batch ---------------------------------------------------------------------------------

BATCH_ENVIRONMENT = "batch-submit"
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


@pytest.fixture
def batch_jobs(batch_cloud: BatchCloud, submit_bin: str) -> Iterator[BatchJobs]:
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", **batch_cloud.env()}
    # A short shutdown budget keeps the cancel test inside the stand-in's grace.
    jobs = BatchJobs(job_queue=QUEUE, job_definition=DEFINITION, program=submit_bin, env=env,
                     options=["--env", "WOVE_WORKER_SHUTDOWN_BUDGET=3"])
    wove.config(environments={BATCH_ENVIRONMENT: {"executor": "aws_batch",
                                                  "executor_config": jobs.executor_config(callback_host="127.0.0.1")}})
    try:
        yield jobs
    finally:
        wove.config(environments={BATCH_ENVIRONMENT: None})


def test_a_weave_runs_its_task_in_a_batch_job_wove_submit_made(batch_jobs: BatchJobs, batch_cloud: BatchCloud) -> None:
    with weave() as w:

        @w.do(environment=BATCH_ENVIRONMENT, delivery_timeout=30)
        def product() -> int:
            return multiply(6, 7)

    assert w.result["product"] == 42
    (submitted,) = batch_cloud.calls("submitjob")
    name = submitted.body["jobName"]
    # moto's simple mode accepts any name: Batch's own rule is checked here.
    assert JOB_NAME.match(name), name
    assert ":" in submitted.body["tags"]["wove:run-id"], "Wove's raw run id is kept in a tag"
    assert not JOB_NAME.match("wove-" + submitted.body["tags"]["wove:run-id"]), "Wove's own name would be refused"
    run = batch_cloud.wait_run(batch_cloud.client("batch").list_jobs(jobQueue=QUEUE)["jobSummaryList"][0]["jobId"])
    assert run.env["AWS_BATCH_JOB_ID"] and run.exit_code == 0


def test_wove_s_cancel_of_a_batch_job_terminates_it(batch_jobs: BatchJobs, batch_cloud: BatchCloud) -> None:
    with weave() as w:
        w.do(environment=BATCH_ENVIRONMENT, delivery_timeout=4)(sleep_long)
    with pytest.raises(DeliveryTimeoutError):
        w.result["sleep_long"]
    (terminated,) = batch_cloud.calls("terminatejob")
    assert not batch_cloud.calls("canceljob"), "CancelJob does nothing to a running job"
    run = batch_cloud.wait_run(terminated.body["jobId"], timeout=20)
    # SIGTERM from TerminateJob: task_cancelled goes out, or is retried until the shutdown
    # budget when the weave's callback server is already gone; never the grace's SIGKILL.
    assert run.exit_code in (143, 75)
    assert "SIGTERM" in run.stderr.read_text()
