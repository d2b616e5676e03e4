"""RTSP cameras through PyAV: TCP by default, UDP on request, bounded connect and read times."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from campusguard.sdk import CameraSourceConfig
from campusguard.sdk.video import DecodeOptions, DecodingCamera, with_credentials


class RtspCamera(DecodingCamera):
    kind = "rtsp"

    class Config(CameraSourceConfig):
        url: str = Field(description="rtsp://host:port/path, without credentials")
        username: str | None = None
        password: SecretStr | None = Field(default=None, description='use { env = "NAME" }')
        transport: Literal["tcp", "udp"] = "tcp"
        connect_timeout: float = Field(default=5.0, gt=0, description="seconds to connect")
        read_timeout: float = Field(default=5.0, gt=0, description="seconds without data before reconnecting")

        @field_validator("url")
        @classmethod
        def _rtsp_url(cls, url: str) -> str:
            if not url.startswith(("rtsp://", "rtsps://")):
                raise ValueError("must start with rtsp:// or rtsps://")
            if "@" in url.split("/", 3)[2]:
                raise ValueError("put credentials in username/password, not in the URL (they would be logged)")
            return url

    def open_container(self) -> Any:
        import av

        assert isinstance(self.config, RtspCamera.Config)
        config = self.config
        password = config.password.get_secret_value() if config.password else None
        return av.open(
            with_credentials(config.url, config.username, password),
            options={
                "rtsp_transport": config.transport,
                "allowed_media_types": "video",
                # FFmpeg's default 5 s of stream analysis delays every (re)connect; 1 s finds H.264/H.265
                # parameters of any camera that sends a key frame at least every second.
                "analyzeduration": "1000000",
                "probesize": "500000",
            },
            timeout=(config.connect_timeout, config.read_timeout),
        )

    def decode_options(self) -> DecodeOptions:
        options = super().decode_options()
        options.reconnect = True
        return options
