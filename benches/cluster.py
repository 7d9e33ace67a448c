"""Submitting to Kubernetes v1.37.2's own control plane, side by side in one run.

Run through `scripts/bench-cluster [--quick] [N]`, which builds what it needs and starts a
cluster (scripts/cluster) whose node runs each pod's container as a host process.

Cases, each in a namespace of its own, N trivial tasks (a subprocess `true`, whose events go
to one loopback receiver):
  indexed       one many-task payload as one Indexed Job through `wove-submit`
  jobs          N single-task payloads as N Jobs through `wove-submit` (16 processes at once)
  wove-adapter  N tasks through Wove 2.0.3's own `kubernetes_jobs` adapter and the kubernetes
                Python client (16 at once), its default Job with only the label value the API
                server refuses mended by a `job_factory`
For each: API requests of the submitting client (the API server's audit log), wall time from
the first submit to every pod Succeeded, and the API server's CPU seconds meanwhile.

  wait          `Client::wait` on N suspended Jobs at once for WAIT_SECONDS, one process
                (crates/wove-submit/examples/wait_many.rs), beside polling each Job every 2 s
                (what `wait` did before it watched): requests per minute.

  unreported    time from a failure outside the worker to the weave knowing, for an image the
                node lacks, a missing Secret, and the container killed as the OOM killer would
                (the node agent's cluster.wove.test/oom-kill-after): a weave through Wove's own
                adapter (which never learns: bounded by its delivery_timeout, UNREPORTED_BOUND)
                beside one through the snippet (the wove_submit module, whose watcher reports).

Environment: WOVE_BENCH_ONLY=unreported (that case alone; it does not depend on N), WOVE_WORKER_BIN, WOVE_SUBMIT_BIN, WOVE_WAIT_MANY_BIN, WOVE_BENCH_CLUSTER_DIR (a
started cluster), WOVE_BENCH_N, WOVE_BENCH_QUICK=1 (small N: a check that every case runs and
is correct; its numbers mean nothing).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "interop"))

from cluster import JOBS, PODS, Cluster, Namespace, wait_until  # noqa: E402
from receiver import EventReceiver  # noqa: E402

QUICK = os.environ.get("WOVE_BENCH_QUICK") == "1"
N = int(os.environ.get("WOVE_BENCH_N", "10" if QUICK else "1000"))
WAIT_SECONDS = 10 if QUICK else 180
IN_FLIGHT = 16
SUBMIT = os.environ["WOVE_SUBMIT_BIN"]
WAIT_MANY = os.environ["WOVE_WAIT_MANY_BIN"]
TASK = {"runner": "subprocess", "program": "true"}
UNREPORTED_BOUND = 20 if QUICK else 600
ABSENT_IMAGE = "registry.example/not-on-this-node:1"


class Admin:
    """The cluster as its components see it: requests that the audit log leaves out, so the
    bench's own looking does not count against what it measures."""

    def __init__(self, cluster: Cluster) -> None:
        admin = Cluster(cluster.directory)
        import yaml

        config = yaml.safe_load((cluster.directory / "pki" / "admin.kubeconfig").read_text())
        admin.token = config["users"][0]["user"]["token"]
        self.api = admin.api

    def succeeded(self, namespace: str) -> int:
        pods = self.api("GET", f"/api/v1/namespaces/{namespace}/pods",
                        params={"fieldSelector": "status.phase=Succeeded"})["items"]
        return len(pods)

    def tasks_done(self, namespace: str) -> int:
        jobs = self.api("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
        return sum(j.get("status", {}).get("succeeded", 0) for j in jobs)


def apiserver_cpu(cluster: Cluster) -> float:
    pid = int((cluster.directory / "kube-apiserver.pid").read_text())
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def single(callback: str, i: int) -> str:
    return json.dumps({"version": 1, "callback_url": callback, "run_id": f"bench-{i}:0123456789abcdef",
                       "task_id": f"bench-{i}", "task": TASK})


def many(callback: str, n: int) -> str:
    return json.dumps({"version": 1, "callback_url": callback, "run_id": "bench:0123456789abcdef",
                       "task": TASK, "tasks": [{"task_id": f"bench-{i}"} for i in range(n)]})


def submit_env(ns: Namespace) -> Dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "WOVE_SUBMIT_KUBECONFIG": str(ns.kubeconfig),
            "WOVE_SUBMIT_NAMESPACE": ns.name}


def wove_submit(ns: Namespace, text: str, *args: str) -> None:
    done = subprocess.run([SUBMIT, "kubernetes", "submit", "--payload-file", "-", "--image", "local", "--output", "json",
                           *args], input=text, env=submit_env(ns), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def case_indexed(ns: Namespace, callback: str) -> None:
    wove_submit(ns, many(callback, N))


def case_jobs(ns: Namespace, callback: str) -> None:
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        list(pool.map(lambda i: wove_submit(ns, single(callback, i)), range(N)))


def case_wove_adapter(ns: Namespace, callback: str) -> None:
    import asyncio

    from kubernetes import client, config
    from wove.integrations.kubernetes_jobs import KubernetesJobsAdapter

    config.load_kube_config(config_file=str(ns.kubeconfig))
    worker = os.environ["WOVE_WORKER_BIN"]

    def mended(payload: Dict[str, Any], frame: Dict[str, Any], cfg: Dict[str, Any]) -> Any:
        job = adapter._default_job(payload, frame)
        labels = job.spec.template.metadata.labels
        labels["wove-run-id"] = labels["wove-run-id"].replace(":", "-")
        return job

    adapter = KubernetesJobsAdapter(name="bench", callback_url=callback, run_config={}, config={
        "image": "local", "command": [worker], "namespace": ns.name, "load_config": False, "job_factory": mended,
        "batch_api": client.BatchV1Api()})

    def one(i: int) -> None:
        payload = json.loads(single(callback, i))
        asyncio.run(adapter.submit(payload, {"run_id": payload["run_id"]}))

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        list(pool.map(one, range(N)))


CASES: Dict[str, Callable[[Namespace, str], None]] = {
    "indexed": case_indexed, "jobs": case_jobs, "wove-adapter": case_wove_adapter}


def measure(cluster: Cluster, admin: Admin, receiver: EventReceiver, name: str) -> Dict[str, Any]:
    ns = cluster.namespace("bench")
    callback = f"{receiver.base_url}/wove/events/bench-token"
    cpu = apiserver_cpu(cluster)
    started = time.monotonic()
    CASES[name](ns, callback)
    submitted = time.monotonic() - started
    wait_until(lambda: admin.tasks_done(ns.name) >= N, 30 * 60, f"{name}: every task succeeded", interval=0.5)
    wall = time.monotonic() - started
    cpu = apiserver_cpu(cluster) - cpu
    requests = len(ns.requests())
    assert admin.succeeded(ns.name) >= N
    ns.close()
    return {"case": name, "requests": requests, "submit_s": submitted, "wall_s": wall, "cpu_s": cpu}


def measure_wait(cluster: Cluster, admin: Admin) -> Dict[str, Any]:
    """Requests per minute of waiting on N Jobs that do not end (suspended), watched and polled."""
    ns = cluster.namespace("wait")
    names = [f"held-{i}" for i in range(N)]
    job = {"spec": {"suspend": True, "template": {"spec": {"restartPolicy": "Never", "containers": [
        {"name": "wove", "image": "local", "command": ["true"]}]}}}}
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        list(pool.map(lambda n: admin.api("POST", f"/apis/batch/v1/namespaces/{ns.name}/jobs",
                                          dict(job, metadata={"name": n})), names))
    before = len(ns.requests())
    started = time.monotonic()
    done = subprocess.run([WAIT_MANY, str(ns.kubeconfig), ns.name, str(WAIT_SECONDS), *names],
                          capture_output=True, text=True, timeout=WAIT_SECONDS + 120)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ended"] == 0, "a suspended Job never ends: every wait timed out"
    watched = len(ns.requests()) - before

    # The same N Jobs, looked at every 2 s each for the same time, as a poller would.
    before = len(ns.requests())
    poll_started = time.monotonic()
    stop = threading.Event()

    def poll(name: str) -> None:
        while not stop.is_set():
            ns.get(JOBS, name)
            stop.wait(2)

    threads = [threading.Thread(target=poll, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    time.sleep(WAIT_SECONDS)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    polled = len(ns.requests()) - before
    poll_elapsed = time.monotonic() - poll_started
    ns.close()
    return {"watch_per_min": watched / elapsed * 60, "poll_per_min": polled / poll_elapsed * 60,
            "seconds": WAIT_SECONDS}


def sleeps() -> str:
    time.sleep(30)
    return "killed before this"


# Each failure, as a change to Wove's own Job (a job_factory's) and as wove-submit options.
FAILURES: Dict[str, Dict[str, Any]] = {
    "image the node lacks": {"image": ABSENT_IMAGE, "options": []},
    "missing Secret": {"secret": "absent-secret", "options": ["--signing-secret", "absent-secret"]},
    "killed as by the OOM killer": {"annotation": "1", "options": ["--annotation", "cluster.wove.test/oom-kill-after=1"]},
}


def time_to_know(environment: str) -> Dict[str, Any]:
    """Run `sleeps` in a weave; seconds until the weave raised, and what."""
    import wove
    from wove.environment import EnvironmentExecutionError

    started = time.monotonic()
    with wove.weave() as w:
        w.do(environment=environment, delivery_timeout=UNREPORTED_BOUND)(sleeps)
    try:
        w.result["sleeps"]
        outcome = "returned"
    except EnvironmentExecutionError as error:
        outcome = error.payload.get("kind", "error")
    except Exception as error:  # noqa: BLE001 - Wove's own delivery timeout, above all
        outcome = type(error).__name__
    return {"seconds": time.monotonic() - started, "outcome": outcome}


def measure_unreported(cluster: Cluster) -> List[Dict[str, Any]]:
    import cloudpickle
    import wove
    from kubernetes import client

    sys.path.insert(0, str(HERE.parent / "crates" / "wove-submit" / "python"))
    from wove_jobs import WoveJobs
    from wove_submit import KubernetesJobs

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    worker = os.environ["WOVE_WORKER_BIN"]
    rows: List[Dict[str, Any]] = []
    own: Dict[str, Any] = {}

    def wove_own_config(failure: Dict[str, Any]) -> Dict[str, Any]:
        ns = cluster.namespace("own")
        jobs = WoveJobs(ns, [worker])

        def factory(payload: Dict[str, Any], frame: Dict[str, Any], config: Dict[str, Any]) -> Any:
            job = WoveJobs.job_factory(jobs, payload, frame, config)
            template = job.spec.template
            container = template.spec.containers[0]
            if "secret" in failure:
                container.env.append(client.V1EnvVar(name="WOVE_WORKER_SIGNING_SECRET", value_from=client.V1EnvVarSource(
                    secret_key_ref=client.V1SecretKeySelector(name=failure["secret"], key="secret"))))
            if "annotation" in failure:
                template.metadata.annotations = {"cluster.wove.test/oom-kill-after": failure["annotation"]}
            return job

        return dict(jobs.executor_config(), job_factory=factory, image=failure.get("image", "local"))

    # Wove's own adapter never learns: all three wait out the bound at once, each in its own
    # environment, all configured before any weave starts (Wove's configuration is global).
    names = {name: f"own-{i}" for i, name in enumerate(FAILURES)}
    wove.config(environments={names[name]: {"executor": "kubernetes_jobs", "executor_config": wove_own_config(f)}
                              for name, f in FAILURES.items()})

    def wove_own(name: str) -> None:
        own[name] = time_to_know(names[name])

    threads = [threading.Thread(target=wove_own, args=(name,), daemon=True) for name in FAILURES]
    for t in threads:
        t.start()
    for name, failure in FAILURES.items():
        ns = cluster.namespace("ours")
        jobs = KubernetesJobs(image=failure.get("image", "local"), program=SUBMIT, kubeconfig=str(ns.kubeconfig),
                              namespace=ns.name, options=["--shutdown-budget", "3", *failure["options"]])
        wove.config(environments={"ours": {"executor": "kubernetes_jobs",
                                           "executor_config": jobs.executor_config(callback_host="127.0.0.1")}})
        ours = time_to_know("ours")
        wove.config(environments={"ours": None})
        ns.close()
        rows.append({"failure": name, "ours": ours})
    for t in threads:
        t.join(timeout=UNREPORTED_BOUND + 120)
    wove.config(environments={environment: None for environment in names.values()})
    for row in rows:
        row["own"] = own.get(row["failure"], {"seconds": float("nan"), "outcome": "did not end"})
        assert row["ours"]["outcome"] in ("ImagePullFailed", "ContainerConfigError", "OutOfMemory"), row
        assert row["own"]["outcome"] not in ("ImagePullFailed", "ContainerConfigError", "OutOfMemory"), row
    return rows


def print_unreported(unreported: List[Dict[str, Any]]) -> None:
    print(f"\nfrom a failure outside the worker to the weave knowing (Wove's own adapter bounded by "
          f"delivery_timeout={UNREPORTED_BOUND} s)\n")
    print("| failure | Wove's own adapter | through wove-submit --report | ratio |")
    print("|---|---|---|---|")
    for r in unreported:
        own, ours = r["own"], r["ours"]
        print(f"| {r['failure']} | {own['seconds']:.1f} s ({own['outcome']}) | {ours['seconds']:.1f} s "
              f"({ours['outcome']}) | {own['seconds'] / max(ours['seconds'], 1e-9):.0f}x |")


def main() -> None:
    cluster = Cluster(Path(os.environ["WOVE_BENCH_CLUSTER_DIR"]))
    if os.environ.get("WOVE_BENCH_ONLY") == "unreported":
        print_unreported(measure_unreported(cluster))
        return
    admin = Admin(cluster)
    receiver = EventReceiver()
    try:
        rows = [measure(cluster, admin, receiver, name) for name in CASES]
        waiting = measure_wait(cluster, admin)
    finally:
        receiver.close()
    unreported = measure_unreported(cluster)
    finals = [r for r in receiver.events() if r["type"] == "task_result"]
    assert len(finals) >= len(CASES) * N, f"{len(finals)} results for {len(CASES) * N} tasks"

    print(f"\n{N} trivial tasks on Kubernetes v1.37.2 (one node agent, host processes)\n")
    print("| case | API requests | submit | every pod Succeeded | API-server CPU | ratio (requests) | ratio (wall) |")
    print("|---|---|---|---|---|---|---|")
    base = rows[0]
    for r in rows:
        print(f"| {r['case']} | {r['requests']} | {r['submit_s']:.1f} s | {r['wall_s']:.1f} s | {r['cpu_s']:.1f} s | "
              f"{r['requests'] / base['requests']:.1f}x | {r['wall_s'] / base['wall_s']:.1f}x |")
    print(f"\nwaiting on {N} Jobs at once for {waiting['seconds']} s\n")
    print("| how | requests per minute | ratio |")
    print("|---|---|---|")
    print(f"| wove-submit wait (watch) | {waiting['watch_per_min']:.0f} | 1.0x |")
    print(f"| polling every 2 s | {waiting['poll_per_min']:.0f} | "
          f"{waiting['poll_per_min'] / max(waiting['watch_per_min'], 1e-9):.1f}x |")
    print_unreported(unreported)
    if QUICK:
        print("\n(quick run: the numbers mean nothing)")


if __name__ == "__main__":
    main()
