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


def run_true():
    import subprocess as sp

    return sp.run(["true"]).returncode


def measure(argv, env):
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} exited {proc.returncode}")
    return wall, usage.ru_maxrss  # KiB on Linux


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
    print(f"{runs} runs per cell; wall in ms, RSS in MiB (largest process of the tree)\n")
    header = f"{'case':20} {'worker':22} {'wall p50':>9} {'wall p90':>9} {'RSS p50':>8} {'RSS max':>8}"
    print(header)
    print("-" * len(header))
    for name, (ours_payload, theirs_payload) in cases.items():
        ours, theirs = [], []
        for _ in range(runs):  # interleaved
            ours.append(measure([worker_bin], {**base_env, "WOVE_BACKEND_PAYLOAD": ours_payload}))
            theirs.append(measure([py, "-m", "wove.backend_worker"], {**base_env, "WOVE_BACKEND_PAYLOAD": theirs_payload}))
        rows = []
        for label, samples in (("wove-worker", ours), ("python -m wove.backend_worker", theirs)):
            walls = sorted(w * 1000 for w, _ in samples)
            rss = sorted(r / 1024 for _, r in samples)
            p90 = walls[min(len(walls) - 1, int(len(walls) * 0.9))]
            rows.append((statistics.median(walls), statistics.median(rss)))
            print(f"{name:20} {label[:22]:22} {statistics.median(walls):9.1f} {p90:9.1f} {statistics.median(rss):8.1f} {rss[-1]:8.1f}")
        (w_ours, r_ours), (w_theirs, r_theirs) = rows
        print(f"{name:20} {'ratio ours/theirs':22} {w_ours / w_theirs:9.2f} {'':9} {r_ours / r_theirs:8.2f}\n")
    server.shutdown()


if __name__ == "__main__":
    main()
