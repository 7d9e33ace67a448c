"""`completions SHELL` and `manpages DIR` of both programs, as a user or a packager runs them:
the bash script loads (`complete -p`) and offers the subcommands, zsh's and fish's name the
program, every man page renders with `man -l`, and the failures exit with the documented codes
(the worker's 78 for a configuration error, wove-submit's 2 for a wrong command line and 64 for
a refused one) without writing half a result.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from binaries import SYSTEM_PATH, bash_completion, render_man

pytestmark = pytest.mark.wove_worker_only

SUBCOMMANDS = {"wove-worker": {"runners", "completions", "manpages"},
               "wove-submit": {"kubernetes", "batch", "completions", "manpages"}}


@pytest.fixture(params=["wove-worker", "wove-submit"])
def program(request: pytest.FixtureRequest, worker_command: List[str], submit_bin: str) -> Dict[str, str]:
    path = worker_command[0] if request.param == "wove-worker" else submit_bin
    return {"name": request.param, "path": path}


def run(argv: List[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env={"PATH": SYSTEM_PATH}, **kwargs)


def test_the_bash_completion_loads_and_offers_the_subcommands(program: Dict[str, str], tmp_path: Path) -> None:
    done = run([program["path"], "completions", "bash"])
    assert done.returncode == 0, done.stderr
    script = tmp_path / program["name"]
    script.write_text(done.stdout)
    name = program["name"]
    loaded, registered, offered = bash_completion(script, name)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert registered.startswith("complete ") and registered.endswith(f" {name}"), loaded.stdout
    assert SUBCOMMANDS[name] <= offered, offered


@pytest.mark.parametrize("shell,marker", [("zsh", "#compdef"), ("fish", "complete -c")])
def test_zsh_and_fish_get_a_script_for_the_program(program: Dict[str, str], shell: str, marker: str) -> None:
    done = run([program["path"], "completions", shell])
    assert done.returncode == 0, done.stderr
    assert marker in done.stdout and program["name"] in done.stdout, done.stdout[:300]


def test_an_unknown_shell_is_refused_with_the_documented_code(program: Dict[str, str]) -> None:
    done = run([program["path"], "completions", "tcsh"])
    assert done.returncode == (78 if program["name"] == "wove-worker" else 2), done
    assert "tcsh" in done.stderr and done.stdout == "", done


def test_every_man_page_renders(program: Dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "man1"
    done = run([program["path"], "manpages", str(out)])
    assert done.returncode == 0, done.stderr
    pages = sorted(p.name for p in out.iterdir())
    assert f"{program['name']}.1" in pages, pages
    assert len(pages) > len(SUBCOMMANDS[program["name"]]), pages
    for page in pages:
        shown = render_man(out / page)
        assert shown.returncode == 0, (page, shown.stderr)
        assert "NAME" in shown.stdout and "SYNOPSIS" in shown.stdout, (page, shown.stdout[:400])


def test_man_pages_into_a_path_that_cannot_be_a_directory_fail_cleanly(program: Dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    done = run([program["path"], "manpages", str(blocker / "man1")])
    assert done.returncode == (78 if program["name"] == "wove-worker" else 64), done
    assert str(blocker) in done.stderr, done.stderr
    assert blocker.read_text() == "in the way"
