"""wove-worker beside its peers, every case in one run: medians, ratios and targets.

Run through `scripts/bench [--quick] [RUNS]`, which installs the peers and builds the
binaries first. Every process runs against one loopback receiver; the processes of a case
run interleaved, so that machine noise hits all of them alike, after one unmeasured warm-up
round. Wall time is the whole process, as a Job would see it. Peak RSS is either the largest
process in the tree (GNU time's %M) or the worker process alone ("own", VmHWM sampled from
/proc while it runs), which is what the worker itself costs beside the task it runs.

Cases:
  subprocess-true   wove-worker running `true` as a subprocess task, beside the static floor:
                    one static busybox shell running `wget` (POST task_started), `/bin/true`,
                    `wget` (POST task_result)
  python-trivial    one Wove payload (a callable returning a small dict) on wove-worker and on
                    `python -m wove.backend_worker`, beside the Python floor: the same
                    interpreter importing cloudpickle, unpickling the callable and its
                    arguments and calling it, with no event loop and no HTTP
  python-large      a callable returning RESULT_MB of random bytes, on both workers
  output-flood      a subprocess task writing 1 KiB, then FLOOD to each stream: the worker's
                    own peak RSS must not grow with it
  payload-ref       a payload of 1 MB and of 50 MB (input a task reads and drops), read
                    from a file (what a mounted Secret or volume gives: inline) and fetched by
                    reference, from a loopback http server and from moto's S3 server, checked
                    by its SHA-256: wall time and the worker's own peak RSS
  binary-size       each static, stripped flavour given in WOVE_BENCH_FLAVOURS
  against           only with WOVE_BENCH_AGAINST: WOVE_WORKER_BIN beside another build of the
                    worker (another libc, profile or flavour) on the subprocess, trivial Python
                    and 50 MB Python cases: wall times and the worker's own peak RSS

Environment: WOVE_WORKER_BIN (the worker to measure), WOVE_BENCH_FLAVOURS
(`name=path,...` of static binaries to weigh), WOVE_BENCH_AGAINST (`label=path`: the build the
`against` case compares with), WOVE_BENCH_ONLY (a comma-separated list of the
cases above: only those run), WOVE_BENCH_QUICK=1 (one run, small sizes: a
smoke check that every case still runs and is correct; its numbers mean nothing).
"""
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import processes  # benches/processes.py: waits that do not round a run's time

import cloudpickle
from wove.backend import build_backend_payload, payload_to_b64

QUICK = os.environ.get("WOVE_BENCH_QUICK") == "1"
# Run only these cases (comma-separated names from the list above); all by default.
ONLY = set(filter(None, os.environ.get("WOVE_BENCH_ONLY", "").split(",")))


def wanted(case: str) -> bool:
    return not ONLY or case in ONLY
MIB = 1024 * 1024
RESULT_BYTES = (1 if QUICK else 50) * 1000 * 1000
FLOOD_BYTES = (1 if QUICK else 1024) * MIB
REF_SIZES = [1 * 1000 * 1000] + ([] if QUICK else [50 * 1000 * 1000])

# The Python floor: what any worker must do to run a Wove callable, and nothing else.
PYTHON_FLOOR = """
import sys, cloudpickle
with open(sys.argv[1], "rb") as f:
    func = cloudpickle.loads(f.read())
with open(sys.argv[2], "rb") as f:
    args = cloudpickle.loads(f.read())
func(**args)
"""


class Sink(BaseHTTPRequestHandler):
    """Takes every event; remembers the type and result size of the last final one. Only the
    final: `task_started` is sent beside the task, so on a loaded machine it may arrive after
    the final event, which Wove takes as it comes (a late `task_started` changes nothing)."""

    protocol_version = "HTTP/1.1"
    last = None

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        event = json.loads(body)
        if event.get("type") in ("task_result", "task_error", "task_cancelled"):
            Sink.last = (event.get("type"), len(event.get("result_pickle") or ""))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def trivial(n: int = 1):
    return {"n": n}


def large(size: int):
    import random

    return random.Random(7).randbytes(size)


def sampled(argv, env):
    """Wall time (ms), peak RSS of the tree (MiB, GNU time's %M), and the peak RSS of the
    process GNU time starts (MiB, its VmHWM sampled every few ms, beside the wait, until it exits)."""
    with tempfile.NamedTemporaryFile(prefix="wove-bench-rss-") as rss_file:
        start = time.perf_counter()
        proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_file.name, *argv], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        own = [0]
        done = threading.Event()

        def sample():
            children = f"/proc/{proc.pid}/task/{proc.pid}/children"
            while not done.is_set():
                try:
                    with open(children) as f:
                        child = f.read().split()[0]
                    with open(f"/proc/{child}/status") as f:
                        for line in f:
                            if line.startswith("VmHWM:"):
                                own[0] = max(own[0], int(line.split()[1]))
                except (OSError, IndexError):
                    pass
                done.wait(0.002)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            processes.wait(proc, argv, 300)
            wall = (time.perf_counter() - start) * 1000
        finally:
            done.set()
            sampler.join()
        tree = int(open(rss_file.name).read().split()[-1])
    return wall, tree / 1024, own[0] / 1024


def timed(argv, env):
    """Wall time (ms) only: no sampling thread beside the process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes.wait(proc, argv, 300)
    wall = (time.perf_counter() - start) * 1000
    return wall, 0.0, 0.0


def interleaved(runs, contenders, measure, check):
    """{name: [(wall, tree, own), ...]}: one warm-up round, then `runs` rounds, order rotating."""
    names = list(contenders)
    samples = {name: [] for name in names}
    for i in range(runs + 1):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            argv, env = contenders[name]
            Sink.last = None
            sample = measure(argv, env)
            check(name)
            if i > 0:
                samples[name].append(sample)
    return samples


def median(samples, index=0):
    return statistics.median(s[index] for s in samples)


def ms(samples, index=0):
    """`31.6 ms [30.9–33.0]`: the median and the range, so that a spread shows in the table."""
    values = sorted(s[index] for s in samples)
    return f"{statistics.median(values):.1f} ms [{values[0]:.1f}–{values[-1]:.1f}]"


def unstable(*sample_lists, index=0):
    """Whether a case proves nothing: its samples spread over more than a quarter of their
    median, or fall in two clusters (a gap of more than a fifth of the median between two
    neighbours), as a run whose median could land on either side would."""
    for samples in sample_lists:
        values = sorted(s[index] for s in samples)
        if len(values) < 3:
            continue
        middle = statistics.median(values)
        widest_gap = max(b - a for a, b in zip(values, values[1:]))
        if values[-1] - values[0] > 0.25 * middle or widest_gap > 0.2 * middle:
            return True
    return False


class Files(BaseHTTPRequestHandler):
    """Serves the files of one directory, whole, with Content-Length: a plain loopback origin."""

    root = ""

    def do_GET(self):
        path = os.path.join(Files.root, os.path.basename(self.path.split("?")[0]))
        try:
            size = os.path.getsize(path)
        except OSError:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with open(path, "rb") as f:
            shutil.copyfileobj(f, self.wfile, 1024 * 1024)

    def log_message(self, *args):
        pass


def payload_refs(runs, row, payload, ours_cmd, expect, tmp):
    """The same payload from a file, from an http URL and from S3 (moto), each checked by its
    SHA-256 on the way in."""
    import hashlib
    import socket

    import boto3
    from botocore.config import Config

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")})
    Files.root = tmp
    files = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    try:
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench",
                          config=Config(s3={"addressing_style": "path"}))
        deadline = time.monotonic() + 30
        while True:
            try:
                s3.create_bucket(Bucket="bench")
                break
            except Exception:  # noqa: BLE001 - moto still starting
                if time.monotonic() > deadline:
                    raise SystemExit("moto's server did not start")
                time.sleep(0.1)
        for size in REF_SIZES:
            task = {"runner": "subprocess", "program": "sh", "args": ["-c", "cat >/dev/null"],
                    "input": {"blob": "x" * size}}
            body = json.dumps(payload(trivial, task=task)).encode()
            sha = hashlib.sha256(body).hexdigest()
            name = f"payload-{size}.json"
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(body)
            s3.put_object(Bucket="bench", Key=name, Body=body)
            base = {"PATH": os.environ["PATH"], "WOVE_WORKER_LOG": "warn",
                    "WOVE_WORKER_MAX_PAYLOAD_BYTES": str(2 * size + MIB)}
            ref = {**base, "WOVE_BACKEND_PAYLOAD_SHA256": sha, "AWS_ALLOW_HTTP": "true"}
            samples = interleaved(max(1, min(runs, 5)), {
                "inline": (ours_cmd, {**base, "WOVE_BACKEND_PAYLOAD_FILE": os.path.join(tmp, name)}),
                "http": (ours_cmd, {**ref, "WOVE_BACKEND_PAYLOAD_URL":
                                    f"http://127.0.0.1:{files.server_address[1]}/{name}"}),
                "s3": (ours_cmd, {**ref, "WOVE_BACKEND_PAYLOAD_URL": f"s3://bench/{name}",
                                  "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_REGION": "us-east-1",
                                  "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                                  "AWS_METADATA_ENDPOINT": "http://127.0.0.1:9"}),
            }, sampled, expect("task_result"))
            mb = size / 1e6
            (iw, _, io), (hw, _, ho), (sw, _, so) = [
                [median(samples[n], i) for i in range(3)] for n in ("inline", "http", "s3")]
            row(f"a {mb:.0f} MB payload by reference (http URL, SHA-256 checked), whole process",
                f"{hw:.0f} ms", f"the same from a file (inline): {iw:.0f} ms", hw / iw)
            row(f"the same from S3 (moto's server), whole process", f"{sw:.0f} ms",
                f"the same from a file (inline): {iw:.0f} ms", sw / iw)
            row(f"the same, the worker's own peak RSS (http / S3)", f"{ho:.0f} / {so:.0f} MiB",
                f"from a file: {io:.0f} MiB", max(ho, so) / io, "≤ 1.5×", max(ho, so) / io <= 1.5)
    finally:
        files.shutdown()
        moto.terminate()
        moto.wait(timeout=10)


def against(runs, row, label, other, ours_cmd, contenders):
    """The cases of `contenders` ({case: (env, measure, check)}) run by WOVE_WORKER_BIN and by
    `other`, interleaved: the same payloads, so what differs is the build."""
    for case, (env, measure, check) in contenders.items():
        samples = interleaved(runs if measure is timed else max(1, min(runs, 5)), {
            "wove-worker": (ours_cmd, env),
            label: ([other], env),
        }, measure, check)
        ours, theirs = samples["wove-worker"], samples[label]
        row(f"{case}, whole process, against {label}", ms(ours), f"{label}: {ms(theirs)}",
            median(ours) / median(theirs), "", None, unstable(ours, theirs))
        if measure is sampled:
            oo, to = median(ours, 2), median(theirs, 2)
            row(f"{case}, the worker's own peak RSS, against {label}", f"{oo:.0f} MiB", f"{label}: {to:.0f} MiB",
                oo / to)


def main():
    runs = 1 if QUICK else int(sys.argv[1]) if len(sys.argv) > 1 else 15
    worker = os.environ["WOVE_WORKER_BIN"]
    py = sys.executable
    busybox = shutil.which("busybox")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/wove/events/bench-token"
    tmp = tempfile.mkdtemp(prefix="wove-bench-")
    rows = []  # (case, ours, theirs, ratio, target, verdict)

    def row(case, ours, other, ratio, target="", met=None, shaky=False):
        verdict = "" if QUICK else "UNSTABLE: rerun" if shaky else "" if met is None else "met" if met else "NOT MET"
        rows.append((case, ours, other, f"{ratio:.2f}×", target, verdict))

    def payload(func, args=None, task=None):
        frame = {"run_id": "bench:" + "0" * 32, "task_id": "bench", "callable": func, "args": args or {}, "delivery": {}}
        p = build_backend_payload(frame, callback_url=url, adapter="kubernetes_jobs")
        if task is not None:
            p.pop("callable_pickle")
            p.pop("args_pickle")
            p["task"] = task
        return p

    def env_with(p):
        return {"PATH": os.environ["PATH"], "WOVE_WORKER_PYTHON": py, "WOVE_WORKER_LOG": "warn",
                "WOVE_BACKEND_PAYLOAD": payload_to_b64(p)}

    def expect(kind, pickle_len=None):
        def check(name):
            if name.endswith("floor"):
                return
            if Sink.last is None or Sink.last[0] != kind:
                raise SystemExit(f"{name}: last event {Sink.last}, expected {kind}")
            if pickle_len is not None and not Sink.last[1] >= pickle_len:
                raise SystemExit(f"{name}: result_pickle of {Sink.last[1]} bytes, expected at least {pickle_len}")
        return check

    ours_cmd, wove_cmd = [worker], [py, "-m", "wove.backend_worker"]
    try:
        print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; {runs} runs per case, "
              f"interleaved; {'QUICK: a smoke check, the numbers mean nothing' if QUICK else 'median [min–max]'}\n")

        # --- subprocess-true -------------------------------------------------------------
        if wanted("subprocess-true"):
            task = payload(trivial, task={"runner": "subprocess", "program": "true"})
            started = json.dumps({"type": "task_started", "run_id": task["run_id"], "task_id": "bench"})
            result = json.dumps({"type": "task_result", "run_id": task["run_id"], "task_id": "bench", "result": 0})
            wget = f"{busybox} wget -q -O /dev/null --header 'Content-Type: application/json' --post-data"
            floor_script = f"{wget} '{started}' {url} && /bin/true && {wget} '{result}' {url}"
            samples = interleaved(runs, {
                "wove-worker": (ours_cmd, env_with(task)),
                "static floor": ([busybox, "sh", "-c", floor_script], {"PATH": "/usr/bin:/bin"}),
            }, timed, expect("task_result"))
            ours, floor = median(samples["wove-worker"]), median(samples["static floor"])
            row("trivial subprocess task (`true`), whole process", ms(samples["wove-worker"]),
                f"static floor (busybox `wget` ×2 + `true`): {ms(samples['static floor'])}", ours / floor, "≤ 1.25×",
                ours / floor <= 1.25, unstable(samples["wove-worker"], samples["static floor"]))

        # --- python-trivial ----------------------------------------------------------------
        if wanted("python-trivial"):
            p = payload(trivial)
            for name in ("callable", "args"):
                with open(os.path.join(tmp, name), "wb") as f:
                    f.write(base64.b64decode(p[f"{name}_pickle"]))
            samples = interleaved(runs, {
                "wove-worker": (ours_cmd, env_with(p)),
                "wove": (wove_cmd, env_with(p)),
                "python floor": ([py, "-c", PYTHON_FLOOR, os.path.join(tmp, "callable"), os.path.join(tmp, "args")],
                                 {"PATH": os.environ["PATH"]}),
            }, timed, expect("task_result"))
            ours, wove, floor = [median(samples[n]) for n in ("wove-worker", "wove", "python floor")]
            row("trivial Wove Python task", ms(samples["wove-worker"]),
                f"`python -m wove.backend_worker`: {ms(samples['wove'])}", ours / wove, "≈ 0.45×")
            row("the same task", ms(samples["wove-worker"]),
                f"Python floor (import cloudpickle, unpickle, call): {ms(samples['python floor'])}", ours / floor,
                "≤ 1.25×", ours / floor <= 1.25, unstable(samples["wove-worker"], samples["python floor"]))

        # --- python-large ------------------------------------------------------------------
        if wanted("python-large"):
            p = payload(large, {"size": RESULT_BYTES})
            encoded = (RESULT_BYTES + 40) * 4 // 3  # the pickle's few bytes of framing, base64
            samples = interleaved(max(1, min(runs, 5)), {
                "wove-worker": (ours_cmd, env_with(p)),
                "wove": (wove_cmd, env_with(p)),
            }, sampled, expect("task_result", RESULT_BYTES * 4 // 3))
            mb = RESULT_BYTES / 1e6
            ow, ot, oo = [median(samples["wove-worker"], i) for i in range(3)]
            tw, tt, to = [median(samples["wove"], i) for i in range(3)]
            row(f"a Python task returning {mb:.0f} MB, whole process", f"{ow / 1000:.2f} s",
                f"Wove's worker: {tw / 1000:.2f} s", ow / tw, "≤ 1.0×", ow / tw <= 1.0)
            row(f"the same, the worker process's own peak RSS", f"{oo:.0f} MiB",
                f"the encoded result: {encoded / MIB:.0f} MiB", oo / (encoded / MIB), "≤ 2×", oo / (encoded / MIB) <= 2)
            row(f"the same, peak RSS of the largest process", f"{ot:.0f} MiB", f"Wove's worker: {tt:.0f} MiB", ot / tt)

        # --- output-flood ------------------------------------------------------------------
        if wanted("output-flood"):
            def flood(n):
                script = f"head -c {n} /dev/zero; head -c {n} /dev/zero >&2"
                return payload(trivial, task={"runner": "subprocess", "program": "sh", "args": ["-c", script]})

            samples = interleaved(max(1, min(runs, 3)), {
                "1 KiB": (ours_cmd, env_with(flood(1024))),
                "flood": (ours_cmd, env_with(flood(FLOOD_BYTES))),
            }, sampled, lambda name: None)
            small, big = median(samples["1 KiB"], 2), median(samples["flood"], 2)
            row(f"worker's own peak RSS, task writing 1 KiB vs {FLOOD_BYTES // MIB} MiB to each stream",
                f"{small:.1f} / {big:.1f} MiB", "—", big / small, "flat (≤ 1.10×)", big / small <= 1.10)

        # --- payload-ref ---------------------------------------------------------------------
        if wanted("payload-ref"):
            payload_refs(runs, row, payload, ours_cmd, expect, tmp)

        # --- against: another build of the worker --------------------------------------------
        if wanted("against") and os.environ.get("WOVE_BENCH_AGAINST"):
            label, other = os.environ["WOVE_BENCH_AGAINST"].split("=", 1)
            mb = RESULT_BYTES / 1e6
            against(runs, row, label, other, ours_cmd, {
                "trivial subprocess task (`true`)": (
                    env_with(payload(trivial, task={"runner": "subprocess", "program": "true"})),
                    timed, expect("task_result")),
                "trivial Wove Python task": (env_with(payload(trivial)), timed, expect("task_result")),
                f"a Python task returning {mb:.0f} MB": (
                    env_with(payload(large, {"size": RESULT_BYTES})), sampled,
                    expect("task_result", RESULT_BYTES * 4 // 3)),
            })

        # --- binary size -------------------------------------------------------------------
        if wanted("binary-size"):
            targets = {"default": 20, "wasm-runtime": 8, "no-wasm": 5}
            for item in filter(None, os.environ.get("WOVE_BENCH_FLAVOURS", "").split(",")):
                flavour, path = item.split("=", 1)
                size = os.path.getsize(path) / MIB
                limit = targets.get(flavour)
                row(f"static stripped binary, {flavour} flavour", f"{size:.1f} MiB", "—",
                    size / limit if limit else 1.0, f"≤ {limit} MiB" if limit else "", size <= limit if limit else None)
    finally:
        server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    print("| case | wove-worker | the other | ratio | target | |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
