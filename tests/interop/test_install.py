"""The wheels, installed as a user installs them: `pip install` into a fresh virtualenv, from
`dist/` (scripts/build-wheels) and a local copy of Wove's own wheels, with no cargo on PATH and
nothing of this repository importable. Then `wove-submit --version` is the bundled binary, the
man pages render, the completions load in bash, and the Wove snippet drives a real weave end to
end on Kubernetes' own control plane and through the Batch stand-in, finding its program alone.

Needs WOVE_TEST_DIST (the wheels) and WOVE_TEST_WHEELHOUSE (what pip needs besides: Wove, and
the Python client its executor asks for, with their requirements, as wheels), both set by
scripts/test; skipped without them unless WOVE_TEST_REQUIRE_WHEELS=1 (CI).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from batch_cloud import DEFINITION, QUEUE, BatchCloud
from binaries import bash_completion, described, is_static, render_man
from cluster import Namespace

pytestmark = pytest.mark.wove_worker_only

# PATH of the fresh environment's processes: the system's, where cargo never is (rustup puts it
# under ~/.cargo/bin), plus the venv's own bin.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PIP_TIMEOUT = 300


def _required(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value or not Path(value).is_dir():
        if os.environ.get("WOVE_TEST_REQUIRE_WHEELS") == "1":
            pytest.fail(f"{variable} must name a directory (scripts/test sets it)")
        pytest.skip(f"wheel tests skipped: {variable} is not set (scripts/test sets it)")
    return Path(value)


def _machine() -> str:
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())


def _install(root: Path, extra: str) -> Path:
    dist = _required("WOVE_TEST_DIST")
    wheelhouse = _required("WOVE_TEST_WHEELHOUSE")
    wheels = sorted(dist.glob(f"*_{_machine()}*.whl"))
    assert {w.name.split("-")[0] for w in wheels} >= {"wove_submit", "wove_worker"}, sorted(p.name for p in dist.iterdir())
    # The base interpreter, not this venv's: nothing installed here comes along.
    base = getattr(sys, "_base_executable", None) or shutil.which("python3")
    subprocess.run([base, "-m", "venv", str(root)], check=True, timeout=120)
    env = {"PATH": f"{root / 'bin'}:{SYSTEM_PATH}", "HOME": str(root), "PIP_CONFIG_FILE": os.devnull}
    assert shutil.which("cargo", path=env["PATH"]) is None, "cargo is on the fresh PATH"
    done = subprocess.run([str(root / "bin/python"), "-m", "pip", "install", "--no-index", "--disable-pip-version-check",
                           "--find-links", str(dist), "--find-links", str(wheelhouse),
                           f"wove-submit[{extra}]", "wove-worker"], env=env, timeout=PIP_TIMEOUT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    return root


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install 'wove-submit[kubernetes]' wove-worker`, as the README says."""
    return _install(tmp_path_factory.mktemp("fresh") / "venv", "kubernetes")


@pytest.fixture(scope="module")
def batch_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install 'wove-submit[batch]' wove-worker`: Wove's aws_batch executor asks for boto3."""
    return _install(tmp_path_factory.mktemp("fresh-batch") / "venv", "batch")


def fresh_env(venv: Path, **extra: str) -> Dict[str, str]:
    return {"PATH": f"{venv / 'bin'}:{SYSTEM_PATH}", "HOME": str(venv), **extra}


def run(venv: Path, argv: List[str], env: Dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=venv)


def cargo_version(crate: str) -> str:
    manifest = {"wove-submit": "crates/wove-submit/Cargo.toml", "wove-worker": "Cargo.toml"}[crate]
    text = (Path(__file__).resolve().parents[2] / manifest).read_text()
    return next(line.split('"')[1] for line in text.splitlines() if line.startswith("version = "))


@pytest.mark.parametrize("program", ["wove-submit", "wove-worker"])
def test_the_installed_program_is_the_bundled_static_binary(venv: Path, program: str) -> None:
    done = run(venv, [program, "--version"], fresh_env(venv))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{program} {cargo_version(program)}"
    installed = venv / "bin" / program
    assert shutil.which(program, path=fresh_env(venv)["PATH"]) == str(installed)
    description = described(installed)
    assert is_static(description) and "ELF 64-bit" in description, description


def test_the_module_runs_its_own_program_before_one_on_path(venv: Path, tmp_path: Path) -> None:
    # Another wove-submit earlier on PATH: the module must still pick the one its wheel installed.
    decoy_dir = tmp_path / "decoy"
    decoy_dir.mkdir()
    decoy = decoy_dir / "wove-submit"
    decoy.write_text("#!/bin/sh\necho decoy\n")
    decoy.chmod(0o755)
    env = fresh_env(venv, PATH=f"{decoy_dir}:{venv / 'bin'}:{SYSTEM_PATH}")
    code = "import wove_submit; print(wove_submit.find_wove_submit()); print(wove_submit.__file__)"
    done = run(venv, [str(venv / "bin/python"), "-c", code], env)
    assert done.returncode == 0, done.stderr
    found, module = done.stdout.split()
    assert found == str(venv / "bin/wove-submit")
    assert Path(module).is_relative_to(venv), "wove_submit came from outside the fresh venv"


def test_the_worker_wheel_carries_the_default_flavour(venv: Path) -> None:
    done = run(venv, ["wove-worker", "runners", "--runner-path", ""], fresh_env(venv))
    assert done.returncode == 0, done.stderr
    assert {line.split()[0] for line in done.stdout.splitlines() if "built-in" in line} >= {"wasm", "subprocess", "python"}


@pytest.mark.parametrize("program", ["wove-submit", "wove-worker"])
def test_the_man_pages_render(venv: Path, program: str) -> None:
    pages = sorted((venv / "share/man/man1").glob(f"{program}*.1"))
    assert venv / f"share/man/man1/{program}.1" in pages, pages
    if program == "wove-submit":
        assert venv / "share/man/man1/wove-submit-kubernetes-submit.1" in pages, pages
    for page in pages:
        done = render_man(page)
        assert done.returncode == 0, (page, done.stderr)
        assert program in done.stdout and "SYNOPSIS" in done.stdout, (page, done.stdout[:500])


@pytest.mark.parametrize("program", ["wove-submit", "wove-worker"])
def test_the_completions_load_in_bash_zsh_and_fish_places(venv: Path, program: str) -> None:
    bash = venv / "share/bash-completion/completions" / program
    assert (venv / "share/zsh/site-functions" / f"_{program}").is_file()
    assert (venv / "share/fish/vendor_completions.d" / f"{program}.fish").is_file()
    done, registered, offered = bash_completion(bash, program)
    assert done.returncode == 0, done.stdout + done.stderr
    assert registered.startswith("complete ") and registered.endswith(f" {program}"), done.stdout
    # And the script completes: the subcommands of the program, as bash would offer them.
    expected = {"kubernetes", "batch", "completions", "manpages"} if program == "wove-submit" else {"runners", "completions"}
    assert expected <= offered, offered


WEAVE = """
import json, sys
import wove
from wove import weave
from wove_submit import BatchJobs, KubernetesJobs

def multiply(a, b):
    return a * b

given = json.loads(sys.argv[1])
if given["platform"] == "kubernetes":
    client = KubernetesJobs(image="local", kubeconfig=given["kubeconfig"], namespace=given["namespace"])
    executor, config = "kubernetes_jobs", client.executor_config(callback_host="127.0.0.1")
else:
    client = BatchJobs(job_queue=given["queue"], job_definition=given["definition"], env=given["env"])
    executor, config = "aws_batch", client.executor_config(callback_host="127.0.0.1")
wove.config(environments={"remote": {"executor": executor, "executor_config": config}})
with weave() as w:
    @w.do(environment="remote", delivery_timeout=40)
    def product():
        return multiply(6, 7)
print(json.dumps({"result": w.result["product"], "program": client.program}))
"""


def _weave(venv: Path, tmp_path: Path, given: Dict[str, object]) -> Dict[str, object]:
    script = tmp_path / "weave.py"
    script.write_text(WEAVE)
    done = run(venv, [str(venv / "bin/python"), str(script), json.dumps(given)], fresh_env(venv), timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_snippet_from_the_wheel_runs_a_weave_on_the_control_plane(
        venv: Path, tmp_path: Path, cluster: Namespace) -> None:
    out = _weave(venv, tmp_path, {"platform": "kubernetes", "kubeconfig": str(cluster.kubeconfig),
                                  "namespace": cluster.name})
    assert out == {"result": 42, "program": str(venv / "bin/wove-submit")}


def test_the_snippet_from_the_wheel_runs_a_weave_through_batch(
        batch_venv: Path, tmp_path: Path, batch_cloud: BatchCloud) -> None:
    env = {"PATH": SYSTEM_PATH, "HOME": "/nonexistent", **batch_cloud.env()}
    out = _weave(batch_venv, tmp_path, {"platform": "batch", "queue": QUEUE, "definition": DEFINITION, "env": env})
    assert out == {"result": 42, "program": str(batch_venv / "bin/wove-submit")}
