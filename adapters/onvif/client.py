"""Opening and closing onvif-zeep-async's ``ONVIFCamera`` safely, with every error in plain words.

The library has side effects that are neutralised: ``import onvif`` calls
``logging.basicConfig(level=INFO)`` (undone in :mod:`.lib`), ``ONVIFCamera()`` deletes ``http_proxy`` and
``https_proxy`` from the environment (restored), and zeep keeps a cache file under the home
directory (``no_cache=True``). Its parsed-WSDL cache has no guard against simultaneous first use
(200 cameras starting together parse the same WSDL 200 times), so the first parse of each WSDL is
serialised here. Each call runs under this adapter's own timeout (the library's are 30-90 s).
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from campusguard.sdk import AuthFailed, CampusguardError

from . import lib
from .clock import ClockReport, clock_from_zeep, read_device_clock, skew_failure_message, skew_warning_message
from .errors import ClockSkewError
from .translate import translate_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnvifTarget:
    """Where one camera is and how to log in. ``camera_id`` names it in every message."""

    camera_id: str
    host: str
    port: int = 80
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    compensate_clock: bool = True  # sign with the camera's time when its clock is off (and say so)

    @property
    def device_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{host}:{self.port}/onvif/device_service"


# -- the parsed-WSDL cache, warmed once per file ---------------------------------------------------
_warm_files: set[str] = set()
_warm_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


async def ensure_wsdl(service: str) -> None:
    """Parse the WSDL of ``service`` once, whoever asks first; later cameras reuse it (~5 ms)."""
    wsdl = lib.SERVICES[service]["wsdl"]
    if wsdl in _warm_files:
        return
    lock = _warm_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:
        if wsdl in _warm_files:
            return
        definition = lib.SERVICES[service]
        binding = f"{{{definition['ns']}}}{definition['binding']}"
        # A throwaway service parses the file into onvif-zeep-async's module-level cache, off the loop.
        warm = lib.onvif.ONVIFService(
            "http://127.0.0.1:9/", None, None, f"{lib.WSDL_DIR}/{wsdl}", no_cache=True, binding_name=binding
        )
        try:
            await warm.setup()
        finally:
            await warm.close()
        _warm_files.add(wsdl)


def _new_camera(target: OnvifTarget, *, adjust_time: bool) -> Any:
    saved = {key: os.environ[key] for key in ("http_proxy", "https_proxy") if key in os.environ}
    try:
        return lib.onvif.ONVIFCamera(
            target.host, target.port, target.username, target.password, no_cache=True, adjust_time=adjust_time
        )
    finally:
        os.environ.update(saved)  # ONVIFCamera() deletes these for the whole process


class OnvifSession:
    """One connected camera: its services, its clock report and a guard for every call."""

    def __init__(self, target: OnvifTarget, camera: Any, clock: ClockReport | None) -> None:
        self.target = target
        self.camera = camera  # onvif.ONVIFCamera
        self.clock = clock
        self.warnings: list[str] = []
        self.cache: dict[str, Any] = {}  # per-session results (profiles) that modules share
        self._closed = False

    @property
    def camera_id(self) -> str:
        return self.target.camera_id

    def offers(self, namespace: str) -> bool:
        """Whether the device listed a service with this namespace (GetServices/GetCapabilities)."""
        return namespace in self.camera.xaddrs

    @asynccontextmanager
    async def guard(self, action: str, timeout: float | None = None) -> AsyncIterator[None]:
        """Bound the body by a timeout and turn library errors into campusguard errors."""
        limit = timeout if timeout is not None else self.target.timeout
        try:
            async with asyncio.timeout(limit):
                yield
        except CampusguardError:
            raise
        except Exception as exc:
            translated = translate_error(exc, self.target, action, limit)
            if translated is None:
                raise
            raise translated from exc

    async def service(self, name: str, port_type: str | None = None) -> Any:
        await ensure_wsdl(name)
        async with self.guard(f"setting up its {name} service"):
            return await self.camera.create_onvif_service(name, port_type=port_type)

    async def call(
        self,
        service: str,
        operation: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        port_type: str | None = None,
    ) -> Any:
        """``await session.call("media", "GetProfiles")``: one SOAP call, guarded."""
        proxy = await self.service(service, port_type)
        async with self.guard(operation, timeout):
            return await getattr(proxy, operation)(dict(params) if params is not None else None)

    async def close(self) -> None:
        """Close every HTTP session the library opened. Idempotent; never raises."""
        if self._closed:
            return
        self._closed = True
        with suppress(Exception):
            async with asyncio.timeout(5):
                await self.camera.close()

    async def __aenter__(self) -> OnvifSession:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def connect(target: OnvifTarget) -> OnvifSession:
    """Reach the camera, check its clock, log in and learn its service addresses.

    Raises ``NotReady`` (unreachable, no answer in time, :class:`MalformedResponse`),
    ``AuthFailed`` (credentials rejected; :class:`ClockSkewError` when the camera's clock is
    the likely cause) or :class:`DeviceFault`.
    """
    clock = await read_device_clock(target.camera_id, target.device_url, target.timeout)
    compensate = target.compensate_clock and clock is not None and clock.significant
    await ensure_wsdl("devicemgmt")
    session = OnvifSession(target, _new_camera(target, adjust_time=compensate), clock)
    try:
        async with session.guard("GetServices"):
            await session.camera.update_xaddrs()
        if session.clock is None:
            session.clock = await _authenticated_clock(session)
    except AuthFailed as exc:
        await session.close()
        if clock is not None and clock.significant and not compensate:
            raise ClockSkewError(skew_failure_message(clock)) from exc
        raise
    except BaseException:
        await session.close()
        raise
    if session.clock is not None and session.clock.significant:
        report = session.clock
        session.warnings.append(
            skew_warning_message(report) if compensate else f"{report.describe()}; set the camera's time (NTP)"
        )
        log.warning("%s", session.warnings[-1])
    return session


async def _authenticated_clock(session: OnvifSession) -> ClockReport | None:
    """The clock of a device that wants credentials even for its time (best effort)."""
    try:
        result = await session.call("devicemgmt", "GetSystemDateAndTime")
    except CampusguardError:
        return None
    return clock_from_zeep(session.camera_id, result)


@asynccontextmanager
async def connected(target: OnvifTarget) -> AsyncIterator[OnvifSession]:
    """``async with connected(target) as session:`` closes the session on the way out."""
    session = await connect(target)
    try:
        yield session
    finally:
        await session.close()
