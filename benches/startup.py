"""Wall time and peak RSS: wove-worker beside `python -m wove.backend_worker`.

Both workers run the same payloads against one loopback receiver, in one run,
interleaved so that machine noise hits both alike. Printed per case: median
and p90 wall time, peak RSS of the largest process in the worker's tree (what
`/usr/bin/time` reports), and the ratio wove-worker / Wove's worker.

Cases:
  python-trivial     the same Wove payload (a callable returning a small dict) on both workers
  subprocess-trivial wove-worker runs `true` as a subprocess task; Wove's worker cannot run
                     such a payload, so it runs a callable that does `subprocess.run(["true"])`

    scripts/bench [RUNS]
"""
import base64
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cloudpickle  # noqa: F401  (build_backend_payload needs it)
from wove.backend import build_backend_payload, payload_to_b64


class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def trivial(n: int = 1):
    return {"n": n}


def nap():
    time.sleep(0.5)


def run_true():
    import subprocess as sp

    return sp.run(["true"]).returncode


def measure(argv, env, rss_file):
    """Wall time (s) and peak RSS (KiB) of the largest process in the tree.

    GNU time does the fork: Linux carries a process's peak RSS across exec, so
    forking straight from this (much larger) Python process would report
    Python's own footprint for every worker.
    """
    start = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "-o", rss_file, *argv],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} exited {proc.returncode}")
    with open(rss_file) as f:
        return wall, int(f.read().split()[-1])


def own_peak_rss(argv, env):
    """Peak RSS (KiB) of the worker process itself, without its children: sampled from
    /proc while it runs a task that sleeps, so the interpreter it may start is not counted."""
    proc = subprocess.Popen(["/usr/bin/time", "-f", "", *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            children = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
            for pid in children[:1]:
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.01)
    proc.wait()
    return peak


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    worker_bin = os.environ["WOVE_WORKER_BIN"]
    py = sys.executable
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/wove/events/bench-token"

    def payload(func, task=None):
        frame = {"run_id": "bench:" + "0" * 32, "task_id": "bench", "callable": func, "args": {}, "delivery": {}}
        p = build_backend_payload(frame, callback_url=url, adapter="kubernetes_jobs")
        if task is not None:
            p.pop("callable_pickle")
            p.pop("args_pickle")
            p["task"] = task
        return payload_to_b64(p)

    base_env = {"PATH": os.environ["PATH"], "WOVE_WORKER_PYTHON": py, "WOVE_WORKER_LOG": "warn"}
    cases = {
        "python-trivial": (payload(trivial), payload(trivial)),
        "subprocess-trivial": (
            payload(trivial, {"runner": "subprocess", "program": "true"}),
            payload(run_true),
        ),
    }
    napping = {
        "python-trivial": (payload(nap), payload(nap)),
        "subprocess-trivial": (
            payload(trivial, {"runner": "subprocess", "program": "sleep", "args": ["0.5"]}),
            payload(nap),
        ),
    }
    rss_file = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"wove-bench-rss-{os.getpid()}")
    print(f"{runs} runs per cell; wall in ms; RSS in MiB: of the largest process in the tree (p50, max),")
    print("and of the worker process alone while its task runs (own)\n")
    header = f"{'case':20} {'worker':22} {'wall p50':>9} {'wall p90':>9} {'RSS p50':>8} {'RSS max':>8} {'own':>6}"
    print(header)
    print("-" * len(header))
    for name, (ours_payload, theirs_payload) in cases.items():
        ours, theirs = [], []
        ours_cmd, theirs_cmd = [worker_bin], [py, "-m", "wove.backend_worker"]
        for _ in range(runs):  # interleaved
            ours.append(measure(ours_cmd, {**base_env, "WOVE_BACKEND_PAYLOAD": ours_payload}, rss_file))
            theirs.append(measure(theirs_cmd, {**base_env, "WOVE_BACKEND_PAYLOAD": theirs_payload}, rss_file))
        own = {
            "wove-worker": own_peak_rss(ours_cmd, {**base_env, "WOVE_BACKEND_PAYLOAD": napping[name][0]}),
            "python -m wove.backend_worker": own_peak_rss(theirs_cmd, {**base_env, "WOVE_BACKEND_PAYLOAD": napping[name][1]}),
        }
        rows = []
        for label, samples in (("wove-worker", ours), ("python -m wove.backend_worker", theirs)):
            walls = sorted(w * 1000 for w, _ in samples)
            rss = sorted(r / 1024 for _, r in samples)
            p90 = walls[min(len(walls) - 1, int(len(walls) * 0.9))]
            rows.append((statistics.median(walls), statistics.median(rss)))
            rows[-1] += (own[label] / 1024,)
            print(
                f"{name:20} {label[:22]:22} {statistics.median(walls):9.1f} {p90:9.1f} "
                f"{statistics.median(rss):8.1f} {rss[-1]:8.1f} {own[label] / 1024:6.1f}"
            )
        (w_ours, r_ours, o_ours), (w_theirs, r_theirs, o_theirs) = rows
        print(f"{name:20} {'ratio ours/theirs':22} {w_ours / w_theirs:9.2f} {'':9} {r_ours / r_theirs:8.2f} {'':8} {o_ours / o_theirs:6.2f}\n")
    server.shutdown()
    if os.path.exists(rss_file):
        os.unlink(rss_file)


if __name__ == "__main__":
    main()
