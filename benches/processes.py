"""Waiting for a measured process without rounding its time.

subprocess.run(timeout=) and Popen.wait(timeout=) poll: CPython checks waitpid, then sleeps
1, 2, 4 ... up to 50 ms, so an exit is seen only at about 1, 3, 7, 15, 31, 63 ... ms after the
start. A 31 ms run then reads as 31.8 ms one time and 64 ms the next, and a median of a few
runs lands on either. (This harness measured exactly that until it waited as here.) A wait
with no timeout is one blocking waitpid: the exit is seen when it happens. The bound on the
wait is a timer that kills the process instead.
"""

import subprocess
import threading


def wait(proc, argv, seconds):
    """Block until `proc` exits; kill it after `seconds` and exit the harness saying so. A
    non-zero exit is an error too: a measured run must have done its work."""
    late = threading.Event()

    def kill():
        late.set()
        proc.kill()

    killer = threading.Timer(seconds, kill)
    killer.start()
    try:
        proc.wait()
    finally:
        killer.cancel()
    if late.is_set():
        raise SystemExit(f"{argv[0]} did not finish within {seconds} s")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv[:3]))} exited {proc.returncode}")


def run(argv, seconds, **popen):
    """subprocess.run(argv, check=True) without the polling wait."""
    proc = subprocess.Popen(argv, **popen)
    wait(proc, argv, seconds)
