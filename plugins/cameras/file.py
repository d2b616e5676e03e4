"""A video file as a camera: paced in real time (the embedded default), or as fast as possible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from campusguard.sdk import CameraSourceConfig, ConfigError
from campusguard.sdk.video import DecodeOptions, DecodingCamera


class FileCamera(DecodingCamera):
    kind = "file"

    class Config(CameraSourceConfig):
        path: Path = Field(description="a video file; relative to the config file's folder")
        realtime: bool = Field(default=True, description="pace frames by their timestamps, like a live camera")
        loop: bool = Field(default=True, description="start again at the end")

    def _path(self) -> Path:
        assert isinstance(self.config, FileCamera.Config)
        return self.context.resolve(self.config.path)

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
