"""What the tests check of a built program from the outside, as a packager would: the
architecture in its ELF header, `file`'s word that it is static, what its bash completion script
offers, and how `man` renders its pages. Shared by the completion, image, wheel and release tests.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Set, Tuple

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
# ELF e_machine → the architecture's name in Rust triples and wheel tags.
MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}


def machine_of(elf: bytes) -> str:
    """The architecture of an ELF file, from its first 20 bytes."""
    assert elf[:4] == b"\x7fELF", elf[:16]
    return MACHINES.get(int.from_bytes(elf[18:20], "little"), "unknown")


def described(path: Path) -> str:
    """What `file` says of `path` (links followed)."""
    return subprocess.run(["file", "-L", str(path)], capture_output=True, text=True, timeout=30).stdout


def is_static(description: str) -> bool:
    # x86_64 builds are static PIE, aarch64 ones plain static: neither has an interpreter.
    return "statically linked" in description or "static-pie linked" in description


def bash_completion(script: Path, program: str) -> Tuple[subprocess.CompletedProcess, str, Set[str]]:
    """Source `script` in a bare bash, then ask its completion function what it offers after
    `program `, as bash would at a prompt: the run, `complete -p`'s line, the words offered."""
    probe = f"""
        source {script} || exit 9
        complete -p {program} || exit 8
        COMP_WORDS=({program} ''); COMP_CWORD=1; COMP_LINE='{program} '; COMP_POINT=${{#COMP_LINE}}
        func=$(complete -p {program} | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p')
        "$func" {program} '' {program}
        printf 'offered %s\\n' "${{COMPREPLY[@]}}"
    """
    done = subprocess.run(["bash", "--norc", "-c", probe], capture_output=True, text=True, timeout=30,
                          env={"PATH": SYSTEM_PATH})
    lines = done.stdout.splitlines()
    offered = {line.split()[1] for line in lines if line.startswith("offered ") and len(line.split()) > 1}
    return done, (lines[0] if lines else ""), offered


def render_man(page: Path) -> subprocess.CompletedProcess:
    """`man -l page`, printed rather than paged."""
    return subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, timeout=60,
                          env={"PATH": SYSTEM_PATH, "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "100"})
