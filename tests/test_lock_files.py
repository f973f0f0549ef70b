"""The lock files in requirements/ (written by `make lock`) against pyproject.toml and the installers that use them:
every line pinned and hashed, every declared requirement satisfied by its locked version (so a range changed in
pyproject.toml without `make lock` fails here, not in a user's install), the files agreeing on shared versions, torch
locked as the CPU build pyproject.toml pins, and `make serve`, `make test` and both Dockerfile stages installing
from them with --require-hashes."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.paths import ROOT

LOCK = ROOT / "requirements"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# The platform the lock files are for: CPython 3.11 on linux x86_64.
PLATFORM = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}
# file -> the extras of pyproject.toml it locks (besides the service's own dependencies)
FILES = {"serve.txt": [], "train.txt": ["train"], "dev.txt": ["train", "test", "distilbert", "tracking"]}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def parse(path: Path) -> dict[str, tuple[Version, list[str]]]:
    """name -> (version, sha256 hashes) of every requirement in a lock file; a line that is neither a pin, a hash,
    a comment nor blank fails."""
    pins: dict[str, tuple[Version, list[str]]] = {}
    name = None
    for line in path.read_text().splitlines():
        text = line.strip().rstrip("\\").strip()
        if not text or text.startswith("#"):
            continue
        if match := PIN.match(text):
            name = canonicalize_name(match[1])
            assert name not in pins, f"{path.name}: {name} twice"
            pins[name] = (Version(match[2]), [])
        elif text.startswith("--hash=sha256:") and name is not None:
            pins[name][1].append(text.removeprefix("--hash=sha256:"))
        else:
            raise AssertionError(f"{path.name}: not a pin or a hash: {line!r}")
    return pins


def declared(extras: list[str]) -> list[Requirement]:
    found = [Requirement(r) for r in PROJECT["dependencies"]]
    found += [Requirement(r) for extra in extras for r in PROJECT["optional-dependencies"][extra]]
    return [r for r in found if r.marker is None or r.marker.evaluate(PLATFORM)]


LOCKS = {name: parse(LOCK / name) for name in [*FILES, "torch.txt", "serve-gpu.txt"]}


@pytest.mark.parametrize("name", LOCKS)
def test_every_locked_package_is_pinned_with_sha256_hashes(name) -> None:
    pins = LOCKS[name]
    assert pins, f"{name} pins nothing"
    unhashed = sorted(p for p, (_, hashes) in pins.items() if not hashes)
    assert not unhashed, f"{name}: no hash for {unhashed}"
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for _, hashes in pins.values() for h in hashes)


@pytest.mark.parametrize("name", FILES)
def test_the_locked_versions_satisfy_pyproject(name) -> None:
    """A requirement of pyproject.toml whose locked version it no longer allows (or that the lock misses) means
    pyproject.toml changed without `make lock`."""
    pins = LOCKS[name] | LOCKS["torch.txt"]
    wrong = []
    for req in declared(FILES[name]):
        locked = pins.get(canonicalize_name(req.name))
        if locked is None or not req.specifier.contains(locked[0], prereleases=True):
            wrong.append(f"{req} (locked: {locked[0] if locked else 'missing'})")
    assert not wrong, f"{name} does not satisfy pyproject.toml: {wrong}; run `make lock`"


def test_the_lock_files_agree_on_every_version_they_share() -> None:
    dev = LOCKS["dev.txt"]
    for name in ("serve.txt", "train.txt"):
        differ = {p: (str(v), str(dev[p][0])) for p, (v, _) in LOCKS[name].items() if p in dev and dev[p][0] != v}
        assert not differ, f"{name} and dev.txt differ: {differ}"
        assert LOCKS[name].keys() <= dev.keys(), f"{name} has packages dev.txt lacks: {LOCKS[name].keys() - dev.keys()}"


def test_torch_is_locked_as_the_cpu_build_pyproject_pins_and_only_in_torch_txt() -> None:
    pinned = next(Requirement(r) for r in PROJECT["optional-dependencies"]["distilbert"] if r.startswith("torch"))
    assert list(LOCKS["torch.txt"]) == ["torch"]
    version, _ = LOCKS["torch.txt"]["torch"]
    assert version.local == "cpu" and pinned.specifier.contains(version), (str(pinned), str(version))
    assert all("torch" not in LOCKS[name] for name in FILES), "torch must come from torch.txt (PyTorch's CPU index)"


def test_the_gpu_lock_swaps_onnxruntime_for_a_cuda_12_build_of_onnxruntime_gpu() -> None:
    """serve-gpu.txt (Dockerfile.gpu, CPython 3.12): the service's dependencies with onnxruntime-gpu instead of
    onnxruntime (the same module: never both), at a version PyPI built for the CUDA major of the image's base
    (1.26 was the last for CUDA 12; 1.28 on load libcublasLt.so.13, and the CUDA provider fails on a CUDA 12 base)."""
    gpu = LOCKS["serve-gpu.txt"]
    assert "onnxruntime" not in gpu and "onnxruntime-gpu" in gpu
    env = PLATFORM | {"python_version": "3.12", "python_full_version": "3.12.3"}
    wrong = [str(r) for r in map(Requirement, PROJECT["dependencies"]) if r.name != "onnxruntime"
             and (r.marker is None or r.marker.evaluate(env))
             and not (canonicalize_name(r.name) in gpu and r.specifier.contains(gpu[canonicalize_name(r.name)][0]))]
    assert not wrong, f"serve-gpu.txt does not satisfy pyproject.toml: {wrong}; run `make lock`"
    cuda = re.search(r"^FROM nvidia/cuda:(\d+)\.", (ROOT / "Dockerfile.gpu").read_text(), re.M)
    assert cuda is not None and cuda[1] == "12", "a new CUDA base: check which onnxruntime-gpu releases match it"
    assert gpu["onnxruntime-gpu"][0] < Version("1.27"), gpu["onnxruntime-gpu"][0]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_serve_and_make_test_install_from_the_lock_files(tmp_path) -> None:
    def commands(target: str) -> str:
        done = subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=True)
        return done.stdout

    serve, test = commands("serve"), commands("test")
    assert "--require-hashes -r requirements/serve.txt" in serve and "--no-deps -e ." in serve, serve
    torch = "--require-hashes --no-deps -r requirements/torch.txt --index-url https://download.pytorch.org/whl/cpu"
    assert torch in test, test
    assert "--require-hashes -r requirements/dev.txt" in test and "--no-deps -e ." in test, test
    assert not re.search(r"pip install (-q )?-e \.|pip install (-q )?-e '\.\[", serve + test), "an unlocked install"


@pytest.mark.parametrize("dockerfile, names", [("Dockerfile", ["serve.txt", "train.txt"]),
                                               ("Dockerfile.gpu", ["serve-gpu.txt"])])
def test_the_dockerfiles_install_from_the_lock_files(dockerfile, names) -> None:
    text = (ROOT / dockerfile).read_text()
    for name in names:
        assert f"pip install --no-cache-dir --require-hashes -r requirements/{name}" in text
        assert f"!requirements/{name}" in (ROOT / ".dockerignore").read_text().splitlines()
    assert "tomllib" not in text, "a stage still resolves pyproject.toml's ranges"
