"""The project's own scripts on their failure paths, as CI meets them.

`scripts/tools` refuses a tool it does not know before installing anything (exit 2), and
scripts/test's background jobs (scripts/lib/background.sh): a failed job's log reaches stderr
with what failed and the script stops (exit 1); a job that succeeds says nothing; `kill_tree`
leaves no process of a job's tree behind. And scripts/build-static's last step
(scripts/lib/publish.sh): builds that publish the same output at once all succeed, and it is whole.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BACKGROUND = REPO / "scripts" / "lib" / "background.sh"


def bash(script: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f"set -euo pipefail; source {BACKGROUND}\n{script}"], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_an_unknown_tool_is_refused_before_anything_is_installed(tmp_path):
    # `deny` first: were names checked one by one while installing, it would be built (minutes,
    # past the timeout) before the unknown name was seen.
    out = subprocess.run([str(REPO / "scripts" / "tools"), "deny", "no-such-tool"], cwd=REPO,
                         env={**os.environ, "WOVE_TOOLS_ROOT": str(tmp_path / "tools")},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "unknown tool no-such-tool" in out.stderr
    assert out.stdout == ""
    assert not (tmp_path / "tools").exists(), list((tmp_path / "tools").rglob("*"))


def test_a_failed_background_job_prints_its_log_and_stops_the_script():
    out = bash("""
log=$(mktemp)
(echo "the job's own words"; echo "its error line" >&2; exit 3) >"$log" 2>&1 &
job=$!
await "$job" "$log" "the sample build"
echo "after the await"
""")
    assert out.returncode == 1, out
    assert "the job's own words" in out.stderr and "its error line" in out.stderr
    assert "test: the sample build failed" in out.stderr
    assert "after the await" not in out.stdout


def test_a_background_job_that_succeeds_says_nothing():
    out = bash("""
log=$(mktemp)
(echo "quiet unless it fails") >"$log" 2>&1 &
job=$!
await "$job" "$log" "the sample build"
echo "after the await"
""")
    assert out.returncode == 0, out
    assert out.stdout == "after the await\n"
    assert out.stderr == ""


def running(marker: str) -> list:
    # Anchored: the scripts that start them hold the marker in their own command lines too.
    found = subprocess.run(["pgrep", "-f", f"^{marker}$"], capture_output=True, text=True)
    return found.stdout.split()


def test_kill_tree_ends_a_job_and_every_process_under_it():
    marker = f"sleep 30{os.getpid() % 100:02d}.5"
    # A job whose grandchildren are two levels down, as cargo's rustc is under scripts/build-static.
    # Their output away from the pipes: a survivor must not hold the test's read open.
    out = bash(f"""
(bash -c '{marker} & {marker} & wait' & wait) >/dev/null 2>&1 &
job=$!
for _ in $(seq 100); do [[ $(pgrep -fc '^{marker}$') == 2 ]] && break; sleep 0.05; done
[[ $(pgrep -fc '^{marker}$') == 2 ]] || {{ echo "the job did not start" >&2; exit 9; }}
kill_tree "$job"
""")
    try:
        assert out.returncode == 0, out
        deadline = time.monotonic() + 10
        while running(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running(marker) == [], "a process of the job's tree outlived kill_tree"
    finally:
        subprocess.run(["pkill", "-f", f"^{marker}$"])


def test_outputs_published_at_once_to_one_path_all_land_whole(tmp_path):
    # scripts/build-static's last step, as two builds of the same output end together.
    src = tmp_path / "built"
    src.write_bytes(os.urandom(1 << 20))
    src.chmod(0o755)
    dest = tmp_path / "flavours" / "submit" / "wove-submit"
    out = bash(f"""
source {REPO / "scripts" / "lib" / "publish.sh"}
for i in $(seq 16); do publish {src} {dest} & done
failed=0
for job in $(jobs -p); do wait "$job" || failed=$((failed + 1)); done
echo "failed=$failed"
""")
    assert out.returncode == 0, out
    assert out.stdout.strip() == "failed=0", out.stderr
    assert dest.read_bytes() == src.read_bytes()
    assert os.access(dest, os.X_OK)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["wove-submit"], "a temporary copy was left"


def static_env(*args: str) -> subprocess.CompletedProcess:
    """Source scripts/static-env with `args` in a shell of its own; print the target it chose and
    every cargo and cc variable it exported."""
    probe = 'source scripts/static-env "$@" || exit $?; echo "target=$target"; env | grep -E "^(CARGO_TARGET_|CC_|AR_)" || true'
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARGO_TARGET_", "CC_", "AR_"))}
    return subprocess.run(["bash", "-c", probe, "static-env", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_static_env_refuses_an_unknown_architecture_or_c_library():
    for args, said in ((["x86_64", "glibc"], "unknown C library glibc (gnu, musl)"),
                       (["riscv64"], "unknown architecture riscv64 (x86_64, aarch64)")):
        out = static_env(*args)
        assert out.returncode == 2, out
        assert said in out.stderr
        assert "target=" not in out.stdout


def test_static_env_gives_each_target_its_own_flags():
    # The variables' names are built from the triple: one misspelt would leave cargo building
    # that target without +crt-static, RELR or ICF, and nothing would fail until its size grew.
    for arch in ("x86_64", "aarch64"):
        for libc in ("gnu", "musl"):
            out = static_env(arch, libc)
            assert out.returncode == 0, out.stderr
            triple = f"{arch}-unknown-linux-{libc}"
            lines = out.stdout.splitlines()
            assert lines[0] == f"target={triple}"
            exported = dict(line.split("=", 1) for line in lines[1:])
            flags = exported.pop(f"CARGO_TARGET_{triple.replace('-', '_').upper()}_RUSTFLAGS")
            for flag in ("+crt-static", "pack-relative-relocs", "--icf=all", 'getrandom_backend="linux_getrandom"'):
                assert flag in flags, (triple, flags)
            # Nothing for another target, and the C compiler (where one is set) for this one.
            suffix = triple.replace("-", "_")
            assert all(name.endswith((suffix, suffix.upper() + "_LINKER")) for name in exported), (triple, exported)
