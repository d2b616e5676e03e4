"""``cap_sip``: a non-interactive emergency call (RFC 8876): a SIP MESSAGE carrying the CAP alert and a
PIDF-LO, over UDP or TCP, with a minimal SIP client of our own.

One MESSAGE per incident version, as one non-INVITE client transaction (RFC 3261 17.1.2): over UDP it is
retransmitted on Timer E (T1, 2*T1, ... up to T2 = 4 s) until a final answer or Timer F (64*T1, capped by
``timeout``); over TCP it is sent once. 2xx is delivered; 401/407 stops the dispatcher (the PSAP wants
credentials we do not have); any other answer, or none, is retried from the outbox. No DNS SRV/NAPTR: the
next hop is the ``proxy`` or the target URI's host and port. No TLS (``sips:``) yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field, field_validator, model_validator

from campusguard.sdk import AuthFailed, Incident, NotReady

from .common import CapDispatcher
from .settings import CapSettings

T2 = 4.0  # RFC 3261: the longest retransmission interval for non-INVITE requests
USER_AGENT = "campusguard"
MAX_UDP = 65_000  # one datagram; RFC 3261 18.1.1 prefers a congestion-controlled transport above ~1300 bytes
CALL_INFO_PURPOSE = "EmergencyCallData.cap"  # RFC 8876's Emergency Call Data Type for CAP


def split_hostport(text: str, default_port: int = 5060) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` as (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed:
            raise ValueError(f"no closing ']' in {text!r}")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError(f"no host in {text!r}")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"bad port in {text!r}")
    return host, int(port) if port else default_port


def uri_hostport(uri: str) -> tuple[str, int] | None:
    """The host and port of a ``sip:`` URI (None for other schemes)."""
    if not uri.lower().startswith("sip:"):
        return None
    rest = uri[4:].split(";", 1)[0].split("?", 1)[0]
    return split_hostport(rest.rpartition("@")[2])


def uri_domain(uri: str) -> str:
    hostport = uri_hostport(uri)
    return hostport[0] if hostport else "campusguard.invalid"


def _hostport_text(host: str, port: int) -> str:
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    return f"{host}:{port}"


@dataclass
class SipResponse:
    status: int
    reason: str
    headers: dict[str, list[str]] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def status_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}".rstrip()


_COMPACT = {"v": "via", "i": "call-id", "f": "from", "t": "to", "l": "content-length", "c": "content-type",
            "m": "contact", "k": "supported"}  # fmt: skip


def parse_response(data: bytes) -> SipResponse | None:
    """A SIP response's status and headers (None if ``data`` is not a response)."""
    head = data.lstrip(b"\r\n").split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = head.replace("\r\n", "\n").split("\n")
    first = lines[0].split(" ", 2)
    if len(first) < 2 or first[0] != "SIP/2.0" or not first[1].isdigit():
        return None
    response = SipResponse(int(first[1]), first[2] if len(first) > 2 else "")
    name = ""
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and name:  # folded continuation line
            response.headers[name][-1] += " " + line.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        name = _COMPACT.get(key.strip().lower(), key.strip().lower())
        response.headers.setdefault(name, []).append(value.strip())
    return response


def answers(response: SipResponse, branch: str) -> bool:
    """Whether ``response`` belongs to our MESSAGE transaction (top Via branch and CSeq method)."""
    via = (response.header("via") or "").replace(" ", "")
    params = {p.partition("=")[0].lower(): p.partition("=")[2] for p in via.split(",")[0].split(";")[1:]}
    cseq = (response.header("cseq") or "").split()
    return params.get("branch") == branch and cseq[-1:] == ["MESSAGE"]


@dataclass(frozen=True)
class Parts:
    """What a MESSAGE carries, and how its parts are named."""

    cap: bytes
    pidf: bytes | None
    cap_cid: str
    pidf_cid: str


def build_message(
    *,
    request_uri: str,
    from_uri: str,
    display_name: str | None,
    transport: str,
    local: tuple[str, int],
    parts: Parts,
    cap_content_type: str,
    branch: str,
    tag: str,
    call_id: str,
) -> bytes:
    """The SIP MESSAGE request (RFC 3428 + RFC 8876): multipart/mixed with the CAP and the PIDF-LO."""
    boundary = f"campusguard-{secrets.token_hex(12)}"
    body = b""
    body_parts = [(cap_content_type, parts.cap_cid, parts.cap)]
    if parts.pidf is not None:
        body_parts.append(("application/pidf+xml", parts.pidf_cid, parts.pidf))
    for content_type, cid, content in body_parts:
        body += (
            (
                f"--{boundary}\r\nContent-Type: {content_type}\r\nContent-ID: <{cid}>\r\n"
                "Content-Disposition: by-reference;handling=optional\r\n\r\n"
            ).encode()
            + content.rstrip(b"\r\n")
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    name = display_name.replace("\\", "\\\\").replace('"', '\\"') if display_name else None
    from_value = f'"{name}" <{from_uri}>' if name else f"<{from_uri}>"
    headers = [
        f"MESSAGE {request_uri} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {_hostport_text(*local)};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: {from_value};tag={tag}",
        f"To: <{request_uri}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 MESSAGE",
    ]
    if parts.pidf is not None:
        headers += [f"Geolocation: <cid:{parts.pidf_cid}>", "Geolocation-Routing: yes"]
    headers += [
        f"Call-Info: <cid:{parts.cap_cid}>;purpose={CALL_INFO_PURPOSE}",
        f"User-Agent: {USER_AGENT}",
        f"Content-Type: multipart/mixed;boundary={boundary}",
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


MakeMessage = Callable[..., bytes]  # build_message with everything but ``local`` bound


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.received.put_nowait(exc)  # e.g. ICMP port unreachable on our connected socket


class CapSipDispatcher(CapDispatcher):
    """A CAP 1.2 alert and a PIDF-LO in a SIP MESSAGE (RFC 8876 non-interactive emergency call), over UDP or TCP.

    Sends data, never starts a call: a person calls 911. 2xx is delivered; 401/407 stops the dispatcher;
    any other answer, or no answer before ``timeout``, is retried from the outbox.
    """

    kind = "cap_sip"

    class Config(CapSettings):
        target: str = Field(
            default="urn:service:sos", description="Request-URI and To: urn:service:sos, or sip:psap@host[:port]"
        )
        proxy: str | None = Field(default=None, description="host[:port] the MESSAGE is sent to; default: target's")
        transport: Literal["udp", "tcp"] = Field(default="tcp", description="udp or tcp")
        from_uri: str = Field(default="sip:campusguard@campusguard.invalid", description="From: who sends it")
        t1: float = Field(default=0.5, gt=0, le=10, description="RFC 3261 T1 (s): the first UDP retransmission")
        timeout: float = Field(
            default=8.0, gt=0, description="seconds to wait for a final answer (Timer F); keep under [delivery] timeout"
        )
        cap_content_type: str = Field(
            default="application/EmergencyCallData.cap+xml",
            description="media type of the CAP part (RFC 8876); some take application/common-alerting-protocol+xml",
        )
        location: bool = Field(default=True, description="attach a PIDF-LO and a Geolocation header")

        @field_validator("target", "from_uri")
        @classmethod
        def _uri(cls, value: str) -> str:
            scheme = value.split(":", 1)[0].lower()
            if scheme == "sips":
                raise ValueError(f"{value!r}: sips: (SIP over TLS) is not supported yet; use sip: over tcp")
            if scheme not in ("sip", "urn", "tel") or ":" not in value or any(c in value for c in " <>\r\n"):
                raise ValueError(f"{value!r} is not a SIP URI (sip:user@host[:port]) or urn:service:sos")
            if scheme == "sip":
                uri_hostport(value)  # raises on a bad host or port
            return value

        @field_validator("proxy")
        @classmethod
        def _proxy(cls, value: str | None) -> str | None:
            if value is not None:
                split_hostport(value)
            return value

        @model_validator(mode="after")
        def _route(self) -> CapSipDispatcher.Config:
            if self.proxy is None and uri_hostport(self.target) is None:
                raise ValueError(f"target {self.target!r} has no host to send to: set proxy = 'host[:port]'")
            if not self.from_uri.lower().startswith("sip:"):
                raise ValueError("from_uri must be a sip: URI")
            if self.location and self.area.point is None and not self.area.civic:
                raise ValueError(
                    "an emergency MESSAGE must say where: set area.latitude and area.longitude, or area.civic "
                    "(or location = false)"
                )
            if self.transport == "udp" and self.snapshot == "embed":
                raise ValueError("snapshot = 'embed' does not fit a UDP datagram: use transport = 'tcp' or 'uri'")
            return self

    @property
    def settings(self) -> CapSipDispatcher.Config:
        config = self.config
        assert isinstance(config, CapSipDispatcher.Config)
        return config

    def next_hop(self) -> tuple[str, int]:
        config = self.settings
        if config.proxy is not None:
            return split_hostport(config.proxy)
        hostport = uri_hostport(config.target)
        assert hostport is not None  # the config checks
        return hostport

    async def parts(self, incident: Incident) -> tuple[Parts, str]:
        from .pidf import build_pidf, has_location

        config = self.settings
        cap, ref = await self.render(incident)
        domain = uri_domain(config.from_uri)
        token = secrets.token_hex(8)
        pidf = None
        if config.location and has_location(incident, config):
            user = config.from_uri[4:].split(";", 1)[0]
            pidf = build_pidf(incident, config, entity=f"pres:{user if '@' in user else f'campusguard@{user}'}")
        return Parts(cap, pidf, f"cap-{token}@{domain}", f"loc-{token}@{domain}"), ref.identifier

    async def dispatch(self, incident: Incident) -> None:
        config = self.settings
        host, port = self.next_hop()
        parts, identifier = await self.parts(incident)
        what = f"SIP target {config.target} via {config.transport.upper()} {_hostport_text(host, port)}"
        try:
            async with asyncio.timeout(config.timeout):  # not wait_for: a cancel must get through (3.11)
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_DGRAM if config.transport == "udp" else socket.SOCK_STREAM
                )
        except (OSError, TimeoutError) as exc:
            raise NotReady(f"{what}: cannot resolve {host!r}: {exc}") from exc
        family, _, _, _, sockaddr = infos[0]
        address = (str(sockaddr[0]), int(sockaddr[1]))
        branch = f"z9hG4bK{secrets.token_hex(10)}"  # RFC 3261 magic cookie
        make = functools.partial(
            build_message, request_uri=config.target, from_uri=config.from_uri, display_name=config.sender_name,
            transport=config.transport, parts=parts, cap_content_type=config.cap_content_type, branch=branch,
            tag=secrets.token_hex(6), call_id=f"{secrets.token_hex(12)}@{uri_domain(config.from_uri)}",
        )  # fmt: skip
        try:
            if config.transport == "udp":
                response = await self._udp(family, address, make, branch)
            else:
                response = await self._tcp(family, address, make, branch)
        except TimeoutError:
            raise NotReady(f"{what}: no final answer within {self._timer_f():g}s (SIP Timer F)") from None
        except OSError as exc:
            raise NotReady(f"{what}: {type(exc).__name__}: {exc}") from exc
        if 200 <= response.status < 300:
            self.log.info("CAP %s %s delivered to %s (%s)", identifier, incident.change, config.target,
                          response.status_line)  # fmt: skip
            return
        if response.status in (401, 407):
            raise AuthFailed(f"{what} asks for credentials: {response.status_line}")
        retry = response.header("retry-after")
        hint = f" (Retry-After: {retry})" if retry else ""
        raise NotReady(f"{what} answered {response.status_line}{hint}; the delivery stays queued and is retried")

    def _timer_f(self) -> float:
        config = self.settings
        return min(64 * config.t1, config.timeout) if config.transport == "udp" else config.timeout

    async def _udp(self, family: int, address: tuple[str, int], make: MakeMessage, branch: str) -> SipResponse:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(_UdpClient, remote_addr=address, family=family)
        try:
            local = transport.get_extra_info("sockname")
            data = make(local=(str(local[0]), int(local[1])))
            if len(data) > MAX_UDP:
                raise OSError(f"the MESSAGE is {len(data)} bytes, too large for UDP: use transport = 'tcp'")
            t1 = self.settings.t1
            deadline = loop.time() + self._timer_f()
            interval = t1
            resend_at = loop.time() + interval
            transport.sendto(data)
            while True:
                now = loop.time()
                if now >= deadline:
                    raise TimeoutError
                try:
                    async with asyncio.timeout(min(resend_at, deadline) - now):
                        item = await protocol.received.get()
                except TimeoutError:
                    if loop.time() >= deadline:
                        raise
                    transport.sendto(data)  # Timer E
                    interval = min(2 * interval, T2)
                    resend_at = loop.time() + interval
                    continue
                if isinstance(item, Exception):
                    raise item
                response = parse_response(item)
                if response is None or not answers(response, branch):
                    continue
                if response.status >= 200:
                    return response
                interval = T2  # provisional: the server has it; keep retransmitting every T2 until final
                resend_at = loop.time() + interval
        finally:
            transport.close()

    async def _tcp(self, family: int, address: tuple[str, int], make: MakeMessage, branch: str) -> SipResponse:
        async with asyncio.timeout(self._timer_f()):
            reader, writer = await asyncio.open_connection(*address, family=family)
            try:
                local = writer.get_extra_info("sockname")
                writer.write(make(local=(str(local[0]), int(local[1]))))
                await writer.drain()
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    head = head.lstrip(b"\r\n")  # keep-alive CRLFs (RFC 5626)
                    response = parse_response(head)
                    length = response.header("content-length") if response is not None else None
                    if length and length.isdigit() and int(length) > 0:
                        await reader.readexactly(int(length))
                    if response is None or not answers(response, branch):
                        continue
                    if response.status >= 200:
                        return response
            except asyncio.IncompleteReadError as exc:
                raise ConnectionResetError("the connection closed before a final answer") from exc
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
