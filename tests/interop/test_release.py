"""What `scripts/release` writes, checked as a user downloading a release would check it: the
checksums verify, every binary is static and of the architecture its name says, every wheel is
tagged for the architecture whose binary it carries, and the SBOM lists the crates Cargo.lock
locks, at their locked versions.

Needs WOVE_TEST_RELEASE (the directory scripts/release wrote), set by scripts/test; skipped
without it unless WOVE_TEST_REQUIRE_WHEELS=1 (CI).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Dict, Set

import pytest

from binaries import described, is_static, machine_of

pytestmark = pytest.mark.wove_worker_only

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def release() -> Path:
    value = os.environ.get("WOVE_TEST_RELEASE")
    if not value or not Path(value).is_dir():
        if os.environ.get("WOVE_TEST_REQUIRE_WHEELS") == "1":
            pytest.fail("WOVE_TEST_RELEASE must name the directory scripts/release wrote (scripts/test sets it)")
        pytest.skip("release tests skipped: WOVE_TEST_RELEASE is not set")
    return Path(value)


def test_the_checksums_cover_every_file_and_verify(release: Path) -> None:
    listed = {line.split()[1] for line in (release / "SHA256SUMS").read_text().splitlines()}
    present = {p.name for p in release.iterdir() if p.is_file() and p.name != "SHA256SUMS"}
    assert listed == present, (listed ^ present)
    done = subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=release,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_binary_is_static_and_of_the_architecture_its_name_says(release: Path) -> None:
    binaries = [p for p in release.iterdir() if re.fullmatch(r"wove-(worker|submit)-[0-9.]+-(x86_64|aarch64)-linux(-.*)?", p.name)]
    archs = {re.search(r"-(x86_64|aarch64)-linux", p.name).group(1) for p in binaries}
    assert archs == {"x86_64", "aarch64"}, sorted(p.name for p in binaries)
    assert {p.name.split("-")[1] for p in binaries} == {"worker", "submit"}
    for binary in binaries:
        assert machine_of(binary.read_bytes()[:20]) == re.search(r"-(x86_64|aarch64)-linux", binary.name).group(1)
        description = described(binary)
        assert is_static(description) and ", stripped" in description, description


def test_each_wheel_is_tagged_for_the_binary_it_carries(release: Path) -> None:
    wheels = sorted(release.glob("*.whl"))
    assert {(w.name.split("-")[0], "aarch64" if "aarch64" in w.name else "x86_64") for w in wheels} == {
        (name, arch) for name in ("wove_submit", "wove_worker") for arch in ("x86_64", "aarch64")}, wheels
    for wheel in wheels:
        arch = "aarch64" if "aarch64" in wheel.name else "x86_64"
        tags = wheel.name[:-len(".whl")].split("-")[-1]
        assert set(tags.split(".")) == {f"manylinux_2_17_{arch}", f"manylinux2014_{arch}", f"musllinux_1_1_{arch}"}, tags
        program = wheel.name.split("-")[0].replace("_", "-")
        with zipfile.ZipFile(wheel) as z:
            (member,) = [n for n in z.namelist() if n.endswith(f".data/scripts/{program}")]
            assert machine_of(z.read(member)[:20]) == arch, (wheel.name, member)
            assert any(n.endswith(f".data/data/share/man/man1/{program}.1") for n in z.namelist()), wheel.name
            if program == "wove-submit":
                assert "wove_submit/__init__.py" in z.namelist()


def locked() -> Dict[str, Set[str]]:
    versions: Dict[str, Set[str]] = {}
    for block in (REPO / "Cargo.lock").read_text().split("[[package]]")[1:]:
        name = re.search(r'^name = "(.+)"$', block, re.M).group(1)
        version = re.search(r'^version = "(.+)"$', block, re.M).group(1)
        versions.setdefault(name, set()).add(version)
    return versions


def test_the_sbom_lists_the_locked_crates_at_their_versions(release: Path) -> None:
    sboms = {p.name: json.loads(p.read_text()) for p in release.glob("*.cdx.json")}
    assert {"wove-worker.cdx.json", "wove-submit.cdx.json"} <= set(sboms), sorted(sboms)
    lock = locked()
    for name, sbom in sboms.items():
        assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5", name
        components = {c["name"]: c["version"] for c in sbom.get("components", [])}
        for component, version in components.items():
            assert version in lock.get(component, set()), (name, component, version)
    worker = {c["name"] for c in sboms["wove-worker.cdx.json"]["components"]}
    assert {"wasmtime", "tokio", "reqwest", "rustls", "ring", "object_store"} <= worker, sorted(worker)[:50]
    submit = {c["name"] for c in sboms["wove-submit.cdx.json"]["components"]}
    assert {"kube-client", "aws-sdk-batch", "aws-sdk-s3", "rustls"} <= submit, sorted(submit)[:50]
