"""Cameras without a usable stream: poll an HTTP snapshot URL (JPEG) at a fixed interval."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import AnyHttpUrl, Field, SecretStr

from campusguard.sdk import AuthFailed, CameraSource, CameraSourceConfig, ConfigError, Frame, StageStamp
from campusguard.sdk.video import describe, scaled_size


def _decode_jpeg(body: bytes, width: int) -> Any:
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(body, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    target = scaled_size(image.shape[1], image.shape[0], width)
    if target != (image.shape[1], image.shape[0]):
        image = cv2.resize(image, target, interpolation=cv2.INTER_AREA)
    return image


class SnapshotCamera(CameraSource):
    kind = "snapshot"

    class Config(CameraSourceConfig):
        url: AnyHttpUrl
        username: str | None = None
        password: SecretStr | None = Field(default=None, description='use { env = "NAME" }')
        auth: Literal["basic", "digest"] = "digest"
        interval: float = Field(default=1.0, gt=0, description="seconds between snapshots")
        timeout: float = Field(default=5.0, gt=0, description="seconds per request")

    _client: Any = None  # httpx.AsyncClient, imported in start() to keep listing plugins fast

    async def start(self) -> None:
        import httpx

        assert isinstance(self.config, SnapshotCamera.Config)
        config = self.config
        auth: httpx.Auth | None = None
        if config.username:
            password = config.password.get_secret_value() if config.password else ""
            auth = (httpx.DigestAuth if config.auth == "digest" else httpx.BasicAuth)(config.username, password)
        self._client = httpx.AsyncClient(timeout=config.timeout, auth=auth)
        try:
            await self._fetch()  # fail fast on credentials and on a URL that is no image
        except (AuthFailed, ConfigError):
            await self.stop()
            raise
        except Exception as exc:
            self.stats.last_error = describe(exc)
            self.log.warning("camera %r not reachable yet (%s); retrying in the background", self.name, describe(exc))

    async def stop(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            self._client = None
            await client.aclose()

    async def _fetch(self) -> Frame:
        assert isinstance(self.config, SnapshotCamera.Config)
        captured = StageStamp.now()
        response = await self._client.get(str(self.config.url))
        if response.status_code in (401, 403):
            raise AuthFailed(f"camera {self.name!r}: authentication failed (HTTP {response.status_code})")
        response.raise_for_status()
        image = await asyncio.to_thread(_decode_jpeg, response.content, self.config.detect_width)
        if image is None:
            kind = response.headers.get("content-type", "unknown content")
            raise ConfigError(f"camera {self.name!r}: {self.config.url} answered {kind}, not an image")
        self.stats.connected, self.stats.last_error = True, None
        self.stats.width, self.stats.height = image.shape[1], image.shape[0]
        self.stats.decoded += 1
        self.stats.delivered += 1
        frame = Frame(
            camera_id=self.name, sequence=self.stats.decoded, captured=captured,
            width=image.shape[1], height=image.shape[0], image=image,
        )  # fmt: skip
        return frame

    async def frames(self) -> AsyncIterator[Frame]:
        assert isinstance(self.config, SnapshotCamera.Config)
        config = self.config
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                yield await self._fetch()
                attempt = 0
                await asyncio.sleep(max(0.0, config.interval - (time.monotonic() - started)))
            except (AuthFailed, asyncio.CancelledError):
                raise
            except Exception as exc:
                self.stats.connected, self.stats.last_error = False, describe(exc)
                attempt += 1
                self.stats.reconnects += 1
                ceiling = min(config.reconnect_max, config.reconnect_initial * 2 ** (attempt - 1))
                await asyncio.sleep(random.uniform(ceiling / 2, ceiling))
