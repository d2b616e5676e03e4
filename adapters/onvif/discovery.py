"""Find ONVIF cameras with a WS-Discovery Probe for ``NetworkVideoTransmitter``, then ask each for details.

The Probe is multicast to 239.255.255.250:3702 from every IPv4 interface but loopback (or only from
``interface``) with a TTL of 1, so it never leaves the local network segment. wsdiscovery builds
and parses the messages; the sending and listening are asyncio here, because wsdiscovery's own
networking is threads and ``time.sleep`` and cannot be limited to one interface. Answers are
read leniently: ipycam, for one, answers with a non-standard ``ProbeMatch`` action (wsdiscovery
drops those) and puts unescaped spaces into its name scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import unquote, urlsplit

import ifaddr

from campusguard.sdk import CampusguardError

from .client import OnvifTarget, connect, ensure_wsdl
from .media import DeviceInfo, MediaInfo, device_info, resolve_media
from .wsd import NVT_TYPE, build_probe, parse_probe_matches

MULTICAST_GROUP = ("239.255.255.250", 3702)
SCOPE_PREFIX = "onvif://www.onvif.org/"


@dataclass
class DiscoveredDevice:
    """One device that answered the Probe, with its details once :func:`describe` has run."""

    address: str  # the IP the answer came from
    endpoint: str  # WS-Addressing endpoint reference, stable across reboots (urn:uuid:...)
    xaddrs: list[str]
    scopes: list[str]
    types: list[str]
    interface: str | None = None
    info: DeviceInfo | None = None
    media: MediaInfo | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def scope(self, kind: str) -> str | None:
        """The value of an ``onvif://www.onvif.org/<kind>/<value>`` scope, decoded."""
        prefix = f"{SCOPE_PREFIX}{kind}/"
        for scope in self.scopes:
            if scope.lower().startswith(prefix.lower()):
                return unquote(scope[len(prefix) :]).strip() or None
        return None

    @property
    def name(self) -> str | None:
        return self.scope("name")

    @property
    def hardware(self) -> str | None:
        return self.scope("hardware")

    @property
    def location(self) -> str | None:
        return self.scope("location")

    @property
    def device_url(self) -> str | None:
        """The XAddr to use: one on the address that answered, else the first HTTP one."""
        http = [x for x in self.xaddrs if x.startswith(("http://", "https://"))]
        same_host = [x for x in http if urlsplit(x).hostname == self.address]
        chosen = same_host or http
        return chosen[0] if chosen else None

    @property
    def host(self) -> str:
        url = self.device_url
        return (urlsplit(url).hostname if url else None) or self.address

    @property
    def port(self) -> int:
        url = self.device_url
        parts = urlsplit(url) if url else None
        return (parts.port or (443 if parts.scheme == "https" else 80)) if parts else 80


def interface_addresses(interface: str | None = None) -> list[tuple[str, str]]:
    """``(interface, IPv4 address)`` pairs to probe from: all but loopback, or only ``interface``."""
    adapters = ifaddr.get_adapters()
    chosen = [a for a in adapters if interface is None or interface in (a.name, a.nice_name)]
    if not chosen:
        names = ", ".join(sorted(a.nice_name for a in adapters)) or "none"
        raise CampusguardError(f"cannot probe for cameras: there is no interface {interface!r} (there are: {names})")
    found, loopback = [], False
    for adapter in chosen:
        for ip in adapter.ips:
            if ip.is_IPv4 and isinstance(ip.ip, str):
                if ipaddress.ip_address(ip.ip).is_loopback:
                    loopback = True
                else:
                    found.append((adapter.nice_name, ip.ip))
    if not found:
        if interface is None:
            reason = "no interface but loopback has an IPv4 address"
        elif loopback:
            reason = f"{interface!r} is the loopback interface; cameras are not on it"
        else:
            reason = f"interface {interface!r} has no IPv4 address"
        raise CampusguardError(f"cannot probe for cameras: {reason}")
    return found


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, interface: str, inbox: asyncio.Queue[tuple[bytes, str, str]]) -> None:
        self.interface, self.inbox = interface, inbox

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.inbox.put_nowait((data, str(addr[0]), self.interface))


def _probe_socket(interface: str, address: str, bind_device: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)  # never routed off this segment
        if bind_device and hasattr(socket, "SO_BINDTODEVICE"):
            with contextlib.suppress(PermissionError):  # needs CAP_NET_RAW; MULTICAST_IF suffices
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.bind((address, 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def probe(
    *, timeout: float = 3.0, interface: str | None = None, types: Sequence[Any] = (NVT_TYPE,), repeats: int = 2
) -> list[DiscoveredDevice]:
    """Multicast a Probe and collect the answers for ``timeout`` seconds, one entry per device."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[bytes, str, str]] = asyncio.Queue()
    message_id, payload = build_probe(types)
    transports: list[asyncio.DatagramTransport] = []
    devices: dict[str, DiscoveredDevice] = {}
    try:
        for name, address in interface_addresses(interface):
            sock = _probe_socket(name, address, bind_device=interface is not None)
            transport, _ = await loop.create_datagram_endpoint(partial(_Collector, name, inbox), sock=sock)
            transports.append(transport)
        deadline = loop.time() + timeout
        # UDP may drop a datagram: send the Probe more than once (WS-Discovery repeats it too).
        for attempt in range(max(1, repeats)):
            for transport in transports:
                transport.sendto(payload, MULTICAST_GROUP)
            if attempt + 1 < repeats:
                await _collect(inbox, devices, message_id, min(deadline, loop.time() + 0.25))
        await _collect(inbox, devices, message_id, deadline)
    finally:
        for transport in transports:
            transport.close()
    return sorted(devices.values(), key=lambda d: (_ip_key(d.address), d.endpoint))


async def _collect(
    inbox: asyncio.Queue[tuple[bytes, str, str]], devices: dict[str, DiscoveredDevice], message_id: str, until: float
) -> None:
    loop = asyncio.get_running_loop()
    while (left := until - loop.time()) > 0:
        try:
            data, sender, interface = await asyncio.wait_for(inbox.get(), left)
        except TimeoutError:
            return
        for match in parse_probe_matches(data, message_id):
            known = devices.get(match.endpoint)
            if known is None:
                devices[match.endpoint] = DiscoveredDevice(
                    sender, match.endpoint, match.xaddrs, match.scopes, match.types, interface
                )
            else:  # the same device on a second interface, or a repeated answer
                known.xaddrs += [x for x in match.xaddrs if x not in known.xaddrs]


def _ip_key(address: str) -> tuple[int, int]:
    try:
        return (0, int(ipaddress.ip_address(address)))
    except ValueError:
        return (1, 0)


async def describe(
    devices: Iterable[DiscoveredDevice],
    username: str | None,
    password: str | None,
    *,
    timeout: float = 5.0,
    concurrency: int = 8,
) -> list[DiscoveredDevice]:
    """Log in to each device and fill in ``info`` and ``media`` (or ``error``); never raises for one device."""
    devices = list(devices)
    await ensure_wsdl("devicemgmt")  # parse shared WSDLs once before fanning out
    await ensure_wsdl("media")
    gate = asyncio.Semaphore(concurrency)

    async def one(device: DiscoveredDevice) -> None:
        target = OnvifTarget(device.name or device.address, device.host, device.port, username, password, timeout)
        async with gate:
            try:
                async with await connect(target) as session:
                    device.warnings += session.warnings
                    device.info = await device_info(session)
                    device.media = await resolve_media(session)
            except CampusguardError as exc:
                device.error = str(exc)

    await asyncio.gather(*(one(device) for device in devices))
    return devices


async def discover(
    *,
    timeout: float = 3.0,
    interface: str | None = None,
    username: str | None = None,
    password: str | None = None,
    camera_timeout: float = 5.0,
) -> list[DiscoveredDevice]:
    """What ``campusguard discover`` shows: every camera that answers, with details given credentials."""
    devices = await probe(timeout=timeout, interface=interface)
    if username is not None:
        await describe(devices, username, password, timeout=camera_timeout)
    return devices
