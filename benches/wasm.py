"""Wall time of wove-worker's WASM runner, beside an independent runtime and a subprocess task.

Run through `scripts/bench-wasm [RUNS]`, which builds the guests and installs the pinned
`wasmtime` package (the Bytecode Alliance's Python binding) first. Every case runs as a whole
process, RUNS times, interleaved (the order rotates each round) so machine noise hits all
cases alike; one unmeasured round first warms the page cache. Printed per case: median and
p90 wall time in ms.

Cases (the big guest is benches/wasm/zstd_roundtrip.c linked with the zstd sources bundled
in the `zstandard` sdist; the small one is benches/wasm/trivial.c):

  wove  .wasm          wove-worker on the big .wasm: compile with Cranelift, then run
  wasmtime-py  .wasm   python + wasmtime-py on the same .wasm and the same stdin bytes;
                       the process also reports the time of `Module(engine, bytes)` alone
                       (compile only) and of everything after `import wasmtime` (in-process)
  wove  precompile     `wove-worker precompile` of the big .wasm, whole process; its log's
                       `took=` (compile + serialize, in-process) is reported beside
                       wasmtime-py's compile-only time
  wove  .cwasm         wove-worker on the big module precompiled by `wove-worker precompile`
  wove  subprocess     wove-worker running `true` as a subprocess task
  wove  trivial .cwasm wove-worker on the precompiled trivial guest (exits 0 at once)
  wove  trivial .wasm  the same trivial guest compiled at start

Both runtimes use the same engine settings that matter for code generation (Cranelift at its
default level, epoch interruption on, no compilation cache). Each run's result is checked:
wove-worker's `task_result` must equal what the guest printed under wasmtime-py.

Targets checked at the end:
  wove .wasm  <= 1.1 x  wasmtime-py .wasm (whole process)
  wove trivial .cwasm  <= wove subprocess + 5 ms   (medians)

The same file is the independent runtime's process: `wasm.py --run-wasmtime MODULE STDIN
STDOUT` (kept to `sys`, `time` and `wasmtime`, so its start-up is Python's and the binding's
own).

Environment: WOVE_WORKER_BIN (the release binary), WOVE_BENCH_WASM_MODULES (folder with
zstd_roundtrip.wasm and trivial.wasm), WOVE_BENCH_WASM_RUNS (default 15; argv[1] wins).
"""
import sys
import time


def run_wasmtime(module_path, stdin_path, stdout_path):
    """The independent runtime: one WASI preview-1 command, stdin and stdout from files.

    Prints one line of timings (ms) and exits with the guest's exit code."""
    t0 = time.perf_counter()
    import wasmtime

    t1 = time.perf_counter()
    config = wasmtime.Config()
    config.epoch_interruption = True  # as wove-worker's engine: same checks in the generated code
    engine = wasmtime.Engine(config)
    with open(module_path, "rb") as f:
        wasm = f.read()
    t2 = time.perf_counter()
    module = wasmtime.Module(engine, wasm)
    t3 = time.perf_counter()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1 << 40)
    wasi = wasmtime.WasiConfig()
    wasi.argv = ["task"]
    wasi.stdin_file = stdin_path
    wasi.stdout_file = stdout_path
    wasi.inherit_stderr()
    store.set_wasi(wasi)
    instance = linker.instantiate(store, module)
    code = 0
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as e:
        code = e.code
    t4 = time.perf_counter()
    ms = lambda a, b: (b - a) * 1000  # noqa: E731
    print(f"import_ms={ms(t0, t1):.3f} compile_ms={ms(t2, t3):.3f} "
          f"run_ms={ms(t3, t4):.3f} in_process_ms={ms(t1, t4):.3f}")
    return code


# --- the benchmark ---------------------------------------------------------------------

def make_input(size):
    """Deterministic text of about `size` bytes: words of a made-up language, with a skewed
    frequency so that it compresses like prose does. Only letters and spaces, so its JSON
    encoding is the same from Python's json and from serde_json."""
    state = 0x5EED
    mask = (1 << 64) - 1

    def rand():
        nonlocal state
        state = (state * 6364136223846793005 + 1442695040888963407) & mask
        return state >> 33

    syllables = ["ka", "ro", "mi", "te", "su", "na", "lo", "vi", "be", "do", "ze", "qua", "xi", "por", "tan"]
    vocab = ["".join(syllables[rand() % len(syllables)] for _ in range(1 + rand() % 3)) for _ in range(400)]
    words, n = [], 0
    while n < size:
        word = vocab[min(rand() % len(vocab), rand() % len(vocab))]
        words.append(word)
        n += len(word) + 1
    return " ".join(words)


def percentile(sorted_values, q):
    """Nearest-rank percentile of an already sorted list."""
    import math

    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def main():
    import json
    import os
    import platform
    import re
    import shutil
    import statistics
    import subprocess

    import processes  # benches/processes.py: waits that do not round a run's time
    import tempfile
    from importlib.metadata import version

    runs = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("WOVE_BENCH_WASM_RUNS", "15"))
    if not 1 <= runs <= 500:
        raise SystemExit("RUNS must be between 1 and 500")
    worker = os.environ["WOVE_WORKER_BIN"]
    modules = os.environ["WOVE_BENCH_WASM_MODULES"]
    big_wasm = os.path.join(modules, "zstd_roundtrip.wasm")
    tiny_wasm = os.path.join(modules, "trivial.wasm")
    py = sys.executable
    here = os.path.abspath(__file__)

    tmp = tempfile.mkdtemp(prefix="wove-bench-wasm-")
    try:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "WOVE_WORKER_LOG": "warn"}

        def path(name):
            return os.path.join(tmp, name)

        # Precompile with this very binary (a .cwasm only loads into the wasmtime that made it).
        precompile_ms = {}
        for src, dst in ((big_wasm, path("zstd_roundtrip.cwasm")), (tiny_wasm, path("trivial.cwasm"))):
            t = time.perf_counter()
            processes.run([worker, "precompile", src, dst], 600, env=env, stdout=subprocess.DEVNULL)
            precompile_ms[os.path.basename(src)] = (time.perf_counter() - t) * 1000
            # The worker loads a .cwasm only from a --precompiled-dir, and only read-only.
            os.chmod(dst, 0o444)
        env["WOVE_WORKER_PRECOMPILED_DIR"] = tmp

        text = make_input(300_000)
        stdin_bytes = json.dumps(text, separators=(",", ":"), ensure_ascii=False).encode()
        with open(path("stdin.json"), "wb") as f:
            f.write(stdin_bytes)

        def payload(name, task):
            p = {"version": 1, "callback_url": "http://127.0.0.1:9/wove/events/bench-token",
                 "run_id": f"bench-wasm:{name}", "task_id": name, "task": task}
            with open(path(name + ".json"), "w") as f:
                json.dump(p, f)
            return [worker, "--print-events", "--payload-file", path(name + ".json")]

        def wasm_task(module, input_=None):
            task = {"runner": "wasm", "module": {"path": module}, "args": [], "limits": {"timeout_seconds": 600}}
            if input_ is not None:
                task["input"] = input_
            return task

        # The reference result: the guest under the independent runtime, once, unmeasured.
        ref = subprocess.run([py, here, "--run-wasmtime", big_wasm, path("stdin.json"), path("ref.out")],
                             env=env, capture_output=True, timeout=600)
        if ref.returncode != 0:
            raise SystemExit(f"wasmtime-py reference run failed ({ref.returncode}): {ref.stderr.decode()[-2000:]}")
        with open(path("ref.out"), "rb") as f:
            expected = json.loads(f.read())
        if expected.get("ok") is not True or expected.get("in") != len(stdin_bytes):
            raise SystemExit(f"unexpected guest output: {expected}")

        def check_wove(proc, want):
            if proc.returncode != 0:
                raise SystemExit(f"wove-worker exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
            body = json.loads(proc.stdout.decode().strip().splitlines()[-1])["body"]
            if body.get("type") != "task_result":
                raise SystemExit(f"wove-worker: last event is not a task_result: {json.dumps(body)[:2000]}")
            if want is not ... and body.get("result") != want:
                raise SystemExit(f"wove-worker: result {body.get('result')!r} != expected {want!r}")

        extra = {"compile_ms": [], "in_process_ms": [], "import_ms": [], "run_ms": [], "wove_took_ms": []}

        def check_wasmtime(proc, _want):
            if proc.returncode != 0:
                raise SystemExit(f"wasmtime-py exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
            with open(path("py.out"), "rb") as f:
                if json.loads(f.read()) != expected:
                    raise SystemExit("wasmtime-py: guest output differs from the reference run")
            fields = dict(kv.split("=") for kv in proc.stdout.decode().split())
            for k in ("compile_ms", "in_process_ms", "import_ms", "run_ms"):
                extra[k].append(float(fields[k]))

        units = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1000.0}

        def check_precompile(proc, _want):
            """`wove-worker precompile` logs `took=<Duration>` around compile + serialize."""
            if proc.returncode != 0:
                raise SystemExit(f"wove-worker precompile exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
            m = re.search(r"took=([0-9.]+)(ns|µs|us|ms|s)\b", (proc.stderr + proc.stdout).decode())
            if not m:
                raise SystemExit(f"wove-worker precompile: no took= in its log: {proc.stderr.decode()[-2000:]}")
            extra["wove_took_ms"].append(float(m.group(1)) * units[m.group(2)])

        # name -> (label, argv, checker, expected result)
        cases = {
            "wove-wasm": ("wove-worker .wasm (compile+run)",
                          payload("wove-wasm", wasm_task(big_wasm, text)), check_wove, expected),
            "py-wasm": ("wasmtime-py .wasm (process)",
                        [py, here, "--run-wasmtime", big_wasm, path("stdin.json"), path("py.out")],
                        check_wasmtime, expected),
            "wove-precompile": ("wove-worker precompile .wasm (process)",
                                [worker, "precompile", big_wasm, path("again.cwasm")], check_precompile, None),
            "wove-cwasm": ("wove-worker .cwasm",
                           payload("wove-cwasm", wasm_task(path("zstd_roundtrip.cwasm"), text)), check_wove, expected),
            "wove-subprocess": ("wove-worker subprocess true",
                                payload("wove-subprocess", {"runner": "subprocess", "program": "true"}), check_wove, ...),
            "wove-tiny-cwasm": ("wove-worker trivial .cwasm",
                                payload("wove-tiny-cwasm", wasm_task(path("trivial.cwasm"))), check_wove, None),
            "wove-tiny-wasm": ("wove-worker trivial .wasm",
                               payload("wove-tiny-wasm", wasm_task(tiny_wasm)), check_wove, None),
        }
        walls = {name: [] for name in cases}

        def once(name, record):
            _, argv, check, want = cases[name]
            t = time.perf_counter()
            run_env = {**env, "WOVE_WORKER_LOG": "info"} if name == "wove-precompile" else env
            proc = subprocess.run(argv, env=run_env, capture_output=True, timeout=600)
            wall = (time.perf_counter() - t) * 1000
            check(proc, want)
            if record:
                walls[name].append(wall)
            elif name == "py-wasm":  # the warm-up's timings are not kept either
                for k in ("compile_ms", "in_process_ms", "import_ms", "run_ms"):
                    extra[k].pop()
            elif name == "wove-precompile":
                extra["wove_took_ms"].pop()

        loadavg = os.getloadavg()
        order = list(cases)
        for name in order:  # warm-up round, not measured
            once(name, False)
        for i in range(runs):
            k = i % len(order)
            for name in order[k:] + order[:k]:
                once(name, True)

        # --- report -------------------------------------------------------------------
        def stats(values):
            s = sorted(values)
            return statistics.median(s), percentile(s, 0.9)

        worker_version = subprocess.run([worker, "--version"], capture_output=True, text=True).stdout.strip()
        print(f"{worker_version} ({worker}); wasmtime-py {version('wasmtime')} on Python {platform.python_version()}")
        print(f"{os.cpu_count()} cores; load average before the runs: {loadavg[0]:.2f} {loadavg[1]:.2f} {loadavg[2]:.2f}")
        for label, p in (("zstd_roundtrip.wasm", big_wasm), ("zstd_roundtrip.cwasm", path("zstd_roundtrip.cwasm")),
                         ("trivial.wasm", tiny_wasm), ("trivial.cwasm", path("trivial.cwasm"))):
            print(f"  {label:22} {os.path.getsize(p) / 1024:9.1f} KiB")
        print(f"  `wove-worker precompile`: {precompile_ms['zstd_roundtrip.wasm']:.0f} ms (zstd), "
              f"{precompile_ms['trivial.wasm']:.0f} ms (trivial), one run each")
        print(f"  guest stdin: {len(stdin_bytes)} bytes; guest result: {json.dumps(expected)}")
        print(f"\n{runs} runs per case, interleaved; wall time of the whole process in ms unless said\n")
        header = f"{'case':44} {'p50':>9} {'p90':>9}"
        print(header)
        print("-" * len(header))
        med = {}
        for name, (label, *_rest) in cases.items():
            p50, p90 = stats(walls[name])
            med[name] = p50
            print(f"{label:44} {p50:9.1f} {p90:9.1f}")
            if name == "py-wasm":
                for key, sub in (("import_ms", "  of which: import wasmtime"),
                                 ("compile_ms", "  of which: Module(engine, bytes) alone"),
                                 ("run_ms", "  of which: instantiate + run"),
                                 ("in_process_ms", "  of which: all after import")):
                    p50, p90 = stats(extra[key])
                    med[key] = p50
                    print(f"{sub:44} {p50:9.1f} {p90:9.1f}")
            if name == "wove-precompile":
                p50, p90 = stats(extra["wove_took_ms"])
                med["wove_took_ms"] = p50
                print(f"{'  of which: compile + serialize (took=)':44} {p50:9.1f} {p90:9.1f}")

        wove_compile = med["wove-wasm"] - med["wove-cwasm"]
        def ratio(label, num, den, note=""):
            print(f"  {label:58} {num:7.1f} / {den:7.1f} = {num / den:5.2f}x  {note}".rstrip())

        def delta(label, a, b, note=""):
            print(f"  {label:58} {a:7.1f} - {b:7.1f} = {a - b:+5.1f} ms {note}".rstrip())

        print("\nratios and differences of medians (ms)")
        r_whole = med["wove-wasm"] / med["py-wasm"]
        ratio("wove .wasm / wasmtime-py process", med["wove-wasm"], med["py-wasm"],
              f"target <= 1.10: {'met' if r_whole <= 1.10 else f'MISSED by {(r_whole / 1.10 - 1) * 100:.0f}%'}")
        ratio("wove .wasm / wasmtime-py all after import", med["wove-wasm"], med["in_process_ms"])
        ratio("wove .wasm / wasmtime-py Module() alone", med["wove-wasm"], med["compile_ms"])
        ratio("wove precompile took= / wasmtime-py Module() alone", med["wove_took_ms"], med["compile_ms"])
        ratio("wove (.wasm - .cwasm) / wasmtime-py Module() alone", wove_compile, med["compile_ms"])
        ratio("wove .cwasm / wove .wasm", med["wove-cwasm"], med["wove-wasm"])
        diff = med["wove-tiny-cwasm"] - med["wove-subprocess"]
        delta("wove trivial .cwasm - wove subprocess true", med["wove-tiny-cwasm"], med["wove-subprocess"],
              f"target <= +5 ms: {'met' if diff <= 5 else 'MISSED'}")
        delta("wove trivial .wasm - wove trivial .cwasm", med["wove-tiny-wasm"], med["wove-tiny-cwasm"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--run-wasmtime":
        sys.exit(run_wasmtime(*sys.argv[2:]))
    main()
