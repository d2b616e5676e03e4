"""``type = "onvif"``: a camera configured with only its ONVIF address and credentials.

On start it logs in (WS-Security, clock skew compensated and reported), resolves its profiles,
takes the sub-stream for detection (the main stream and snapshot URI are kept for evidence and
live view), decodes it like any RTSP camera, and subscribes to the camera's own events
(PullPoint), which go onto the bus as ``CameraEvent`` messages.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr

from campusguard.sdk import CAMERA_EVENTS, CameraEvent, CameraSourceConfig
from campusguard.sdk.video import DecodeOptions, DecodingCamera, with_credentials


class OnvifCamera(DecodingCamera):
    kind = "onvif"

    class Config(CameraSourceConfig):
        host: str
        port: int = Field(default=80, ge=1, le=65535)
        username: str | None = None
        password: SecretStr | None = Field(default=None, description='use { env = "NAME" }')
        timeout: float = Field(default=10.0, gt=0, description="seconds per ONVIF request")
        compensate_clock: bool = Field(default=True, description="sign requests with the camera's clock if it is off")
        stream: Literal["sub", "main"] = Field(default="sub", description="which stream detection decodes")
        min_sub_width: int = Field(default=320, ge=64, description="narrowest sub-stream worth detecting on")
        events: bool = Field(default=True, description="subscribe to the camera's own events (PullPoint)")
        transport: Literal["tcp", "udp"] = "tcp"
        read_timeout: float = Field(default=5.0, gt=0)

    media: Any = None  # MediaInfo once resolved: main (evidence) and sub (detection) streams, snapshot URI
    _events: Any = None

    def _target(self) -> Any:
        from .client import OnvifTarget

        assert isinstance(self.config, OnvifCamera.Config)
        c = self.config
        return OnvifTarget(
            camera_id=self.name, host=c.host, port=c.port, username=c.username,
            password=c.password.get_secret_value() if c.password else None,
            timeout=c.timeout, compensate_clock=c.compensate_clock,
        )  # fmt: skip

    async def start(self) -> None:
        from .client import connected
        from .events import PullPointSubscriber
        from .media import resolve_media

        assert isinstance(self.config, OnvifCamera.Config)
        # NotReady (unreachable, booting) and AuthFailed (credentials, clock) reach the supervisor.
        async with connected(self._target()) as session:
            for warning in session.warnings:
                self.log.warning("%s", warning)
            self.media = await resolve_media(session, min_sub_width=self.config.min_sub_width)
        chosen = self.media.sub if self.config.stream == "sub" else self.media.main
        self.log.info(
            "camera %r: detecting on %s (%sx%s), evidence from %s", self.name, chosen.name, chosen.width,
            chosen.height, self.media.main.name,
        )  # fmt: skip
        if self.config.events:
            self._events = PullPointSubscriber(self._target(), self._publish, logger=self.log)
            self._events.start()
        await super().start()

    async def goto_preset(self, preset: str) -> str:
        """PTZ to a preset (the ``PtzControl`` capability: rules point cameras at an incident)."""
        from .client import connected
        from .errors import PresetNotFound
        from .ptz import goto_preset

        async with connected(self._target()) as session:
            try:
                found = await goto_preset(session, preset)
            except PresetNotFound as exc:
                raise LookupError(str(exc)) from exc
        return f"camera {self.name!r} moved to preset {found.name!r} ({found.token})"

    async def _publish(self, event: CameraEvent) -> None:
        self.context.bus.publish(CAMERA_EVENTS, event)

    def open_container(self) -> Any:
        import av

        assert isinstance(self.config, OnvifCamera.Config) and self.media is not None
        c = self.config
        profile = self.media.sub if c.stream == "sub" else self.media.main
        password = c.password.get_secret_value() if c.password else None
        return av.open(
            with_credentials(profile.stream_uri, c.username, password),
            options={"rtsp_transport": c.transport, "allowed_media_types": "video",
                     "analyzeduration": "1000000", "probesize": "500000"},
            timeout=(c.timeout, c.read_timeout),
        )  # fmt: skip

    def decode_options(self) -> DecodeOptions:
        options = super().decode_options()
        options.reconnect = True
        return options

    async def stop(self) -> None:
        events, self._events = self._events, None
        if events is not None:
            await events.stop()
        await super().stop()
