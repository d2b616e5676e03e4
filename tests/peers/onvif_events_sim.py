"""A small ONVIF device with an Events service, for what ipycam lacks: PullPoint subscriptions.

SOAP 1.2 over aiohttp, run in the test's own event loop::

    sim = EventsSimulator(username="admin", password="secret", on_response=check)
    await sim.start()
    sim.emit("tns1:RuleEngine/CellMotionDetector/Motion", source={...}, data={"IsMotion": "true"})

Device service: GetSystemDateAndTime (no credentials, as ONVIF requires), GetServices,
GetCapabilities, GetDeviceInformation. Events service: GetServiceCapabilities,
CreatePullPointSubscription. Each subscription is its own absolute URL (the client never echoes
ReferenceParameters): PullMessages (a long poll), Renew, Unsubscribe, SetSynchronizationPoint.
Every request but GetSystemDateAndTime needs a WS-Security UsernameToken digest whose Created time
is within ``max_skew`` of the device's clock (host clock + ``clock_offset``). ``restart()`` drops
the listener and forgets every subscription, like a camera rebooting. Every response body is
handed to ``on_response(service, operation, body)`` so tests can validate it against the WSDL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape, quoteattr

import isodate
from aiohttp import web

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
NAMESPACES = {
    "env": SOAP,
    "tt": "http://www.onvif.org/ver10/schema",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "tns1": "http://www.onvif.org/ver10/topics",
    "ter": "http://www.onvif.org/ver10/error",
    "wsrf-rw": "http://docs.oasis-open.org/wsrf/rw-2",
    "wsrf-r": "http://docs.oasis-open.org/wsrf/r-2",
    "wsrf-bf": "http://docs.oasis-open.org/wsrf/bf-2",
}
CONCRETE_SET = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
ResponseHook = Callable[[str, str, bytes], None]


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Notification:
    topic: str
    source: dict[str, str]
    data: dict[str, str]
    operation: str | None
    utc_time: datetime


@dataclass
class Subscription:
    id: str
    termination: datetime
    queue: list[Notification] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class SoapFault(Exception):
    def __init__(self, status: int, code: str, subcode: str | None, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.status, self.code, self.subcode, self.reason, self.detail = status, code, subcode, reason, detail


class EventsSimulator:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "admin",
        password: str = "secret",
        clock_offset: timedelta = timedelta(0),
        max_skew: float = 10.0,
        max_termination: float | None = None,
        max_poll: float = 60.0,
        on_response: ResponseHook | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.clock_offset, self.max_skew = clock_offset, max_skew
        self.max_termination, self.max_poll = max_termination, max_poll
        self.on_response = on_response
        self.subscriptions: dict[str, Subscription] = {}
        self.properties: dict[tuple[str, tuple[tuple[str, str], ...]], Notification] = {}
        self.counts: dict[str, int] = {}
        self.unsubscribed: list[str] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # -- control from tests --------------------------------------------------------------------

    @property
    def device_url(self) -> str:
        return f"http://{self.host}:{self.port}/onvif/device_service"

    def now(self) -> datetime:
        return datetime.now(UTC) + self.clock_offset

    async def start(self) -> EventsSimulator:
        app = web.Application()
        app.router.add_post("/onvif/device_service", self._device)
        app.router.add_post("/onvif/events_service", self._events)
        app.router.add_post("/onvif/subscription/{id}", self._subscription)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def restart(self, down_for: float = 0.3) -> None:
        """Go away (connections drop), forget every subscription, come back on the same port."""
        await self.stop()
        self.subscriptions.clear()
        await asyncio.sleep(down_for)
        await self.start()
        self.counts["restarts"] = self.counts.get("restarts", 0) + 1

    def emit(
        self,
        topic: str,
        *,
        source: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        operation: str | None = "Changed",
    ) -> None:
        """Deliver one notification to every live subscription; properties are remembered."""
        note = Notification(topic, dict(source or {}), dict(data or {}), operation, self.now())
        if operation is not None:
            self.properties[(topic, tuple(sorted(note.source.items())))] = note
        for sub in self.subscriptions.values():
            sub.queue.append(note)
            sub.wake.set()

    # -- HTTP handlers -------------------------------------------------------------------------

    async def _device(self, request: web.Request) -> web.Response:
        return await self._handle(request, "devicemgmt", self._device_operation)

    async def _events(self, request: web.Request) -> web.Response:
        return await self._handle(request, "events", self._events_operation)

    async def _subscription(self, request: web.Request) -> web.Response:
        return await self._handle(request, "events", self._subscription_operation)

    async def _handle(self, request: web.Request, service: str, dispatch: Callable[..., object]) -> web.Response:
        envelope = ET.fromstring(await request.read())
        body = envelope.find(f"{{{SOAP}}}Body")
        operation_el = body[0] if body is not None and len(body) else None
        operation = operation_el.tag.rpartition("}")[2] if operation_el is not None else "?"
        self.counts[operation] = self.counts.get(operation, 0) + 1
        status = 200
        try:
            if operation != "GetSystemDateAndTime":
                self._authenticate(envelope)
            inner = await dispatch(operation, operation_el, request)  # type: ignore[misc]
        except SoapFault as fault:
            status, inner = fault.status, self._fault(fault)
        payload = self._envelope(str(inner)).encode()
        if self.on_response is not None:
            self.on_response(service, operation, payload)
        return web.Response(status=status, body=payload, content_type="application/soap+xml", charset="utf-8")

    # -- operations ----------------------------------------------------------------------------

    async def _device_operation(self, operation: str, element: ET.Element, request: web.Request) -> str:
        base = f"http://{self.host}:{self.port}/onvif"
        if operation == "GetSystemDateAndTime":
            now = self.now()
            return (
                "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
                "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
                "<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone><tt:UTCDateTime>"
                f"<tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}</tt:Minute>"
                f"<tt:Second>{now.second}</tt:Second></tt:Time>"
                f"<tt:Date><tt:Year>{now.year}</tt:Year><tt:Month>{now.month}</tt:Month><tt:Day>{now.day}</tt:Day></tt:Date>"
                "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
            )
        if operation == "GetServices":
            services = [(NAMESPACES["tds"], f"{base}/device_service"), (NAMESPACES["tev"], f"{base}/events_service")]
            items = "".join(
                f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{url}</tds:XAddr>"
                "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>"
                for ns, url in services
            )
            return f"<tds:GetServicesResponse>{items}</tds:GetServicesResponse>"
        if operation == "GetCapabilities":
            return (
                "<tds:GetCapabilitiesResponse><tds:Capabilities>"
                f"<tt:Events><tt:XAddr>{base}/events_service</tt:XAddr>"
                "<tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>"
                "<tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
                "<tt:WSPausableSubscriptionManagerInterfaceSupport>false</tt:WSPausableSubscriptionManagerInterfaceSupport>"
                "</tt:Events></tds:Capabilities></tds:GetCapabilitiesResponse>"
            )
        if operation == "GetDeviceInformation":
            return (
                "<tds:GetDeviceInformationResponse><tds:Manufacturer>campusguard</tds:Manufacturer>"
                "<tds:Model>EventsSim</tds:Model><tds:FirmwareVersion>1.0</tds:FirmwareVersion>"
                "<tds:SerialNumber>SIM-1</tds:SerialNumber><tds:HardwareId>SIM</tds:HardwareId>"
                "</tds:GetDeviceInformationResponse>"
            )
        raise self._not_supported(operation)

    async def _events_operation(self, operation: str, element: ET.Element, request: web.Request) -> str:
        if operation == "GetServiceCapabilities":
            return (
                '<tev:GetServiceCapabilitiesResponse><tev:Capabilities WSSubscriptionPolicySupport="false" '
                'WSPullPointSupport="true" WSPausableSubscriptionManagerInterfaceSupport="false" '
                'MaxPullPoints="8"/></tev:GetServiceCapabilitiesResponse>'
            )
        if operation == "CreatePullPointSubscription":
            requested = element.findtext(f"{{{NAMESPACES['tev']}}}InitialTerminationTime")
            sub = Subscription(str(next(self._ids)), self._termination(requested))
            sub.queue.extend(
                Notification(n.topic, n.source, n.data, "Initialized", self.now()) for n in self.properties.values()
            )
            self.subscriptions[sub.id] = sub
            address = f"http://{self.host}:{self.port}/onvif/subscription/{sub.id}"
            return (
                "<tev:CreatePullPointSubscriptionResponse>"
                f"<tev:SubscriptionReference><wsa:Address>{address}</wsa:Address></tev:SubscriptionReference>"
                f"<wsnt:CurrentTime>{stamp(self.now())}</wsnt:CurrentTime>"
                f"<wsnt:TerminationTime>{stamp(sub.termination)}</wsnt:TerminationTime>"
                "</tev:CreatePullPointSubscriptionResponse>"
            )
        raise self._not_supported(operation)

    async def _subscription_operation(self, operation: str, element: ET.Element, request: web.Request) -> str:
        sub = self._live(request.match_info["id"])
        if operation == "PullMessages":
            timeout = isodate.parse_duration(element.findtext(f"{{{NAMESPACES['tev']}}}Timeout") or "PT10S")
            limit = int(element.findtext(f"{{{NAMESPACES['tev']}}}MessageLimit") or "100")
            if not sub.queue:
                sub.wake.clear()
                try:
                    await asyncio.wait_for(sub.wake.wait(), min(timeout.total_seconds(), self.max_poll))
                except TimeoutError:
                    pass
            sub = self._live(sub.id)  # it may have been unsubscribed or expired meanwhile
            batch, sub.queue[:] = sub.queue[:limit], sub.queue[limit:]
            messages = "".join(self._notification(n) for n in batch)
            return (
                f"<tev:PullMessagesResponse><tev:CurrentTime>{stamp(self.now())}</tev:CurrentTime>"
                f"<tev:TerminationTime>{stamp(sub.termination)}</tev:TerminationTime>{messages}</tev:PullMessagesResponse>"
            )
        if operation == "Renew":
            sub.termination = self._termination(element.findtext(f"{{{NAMESPACES['wsnt']}}}TerminationTime"))
            # b-2.xsd orders TerminationTime before CurrentTime here (the reverse of Subscribe).
            return (
                f"<wsnt:RenewResponse><wsnt:TerminationTime>{stamp(sub.termination)}</wsnt:TerminationTime>"
                f"<wsnt:CurrentTime>{stamp(self.now())}</wsnt:CurrentTime></wsnt:RenewResponse>"
            )
        if operation == "Unsubscribe":
            del self.subscriptions[sub.id]
            self.unsubscribed.append(sub.id)
            sub.wake.set()
            return "<wsnt:UnsubscribeResponse/>"
        if operation == "SetSynchronizationPoint":
            sub.queue.extend(
                Notification(n.topic, n.source, n.data, "Initialized", self.now()) for n in self.properties.values()
            )
            sub.wake.set()
            return "<tev:SetSynchronizationPointResponse/>"
        raise self._not_supported(operation)

    # -- helpers -------------------------------------------------------------------------------

    def _live(self, sub_id: str) -> Subscription:
        sub = self.subscriptions.get(sub_id)
        if sub is not None and sub.termination < self.now():
            del self.subscriptions[sub_id]
            self.counts["expired"] = self.counts.get("expired", 0) + 1
            sub = None
        if sub is None:
            detail = (
                f"<wsrf-r:ResourceUnknownFault><wsrf-bf:Timestamp>{stamp(self.now())}</wsrf-bf:Timestamp>"
                "</wsrf-r:ResourceUnknownFault>"
            )
            raise SoapFault(400, "env:Sender", "wsrf-rw:ResourceUnknownFault", "No such subscription", detail)
        return sub

    def _termination(self, requested: str | None) -> datetime:
        now = self.now()
        if not requested:
            wanted = timedelta(seconds=60)
        elif requested.startswith(("P", "-P")):
            wanted = isodate.parse_duration(requested)
        else:
            wanted = isodate.parse_datetime(requested) - now
        if self.max_termination is not None:
            wanted = min(wanted, timedelta(seconds=self.max_termination))
        return now + wanted

    def _authenticate(self, envelope: ET.Element) -> None:
        token = envelope.find(f"{{{SOAP}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        if token is None:
            raise self._not_authorized()
        user = token.findtext(f"{{{WSSE}}}Username") or ""
        password = token.findtext(f"{{{WSSE}}}Password") or ""
        nonce = token.findtext(f"{{{WSSE}}}Nonce") or ""
        created = token.findtext(f"{{{WSU}}}Created") or ""
        try:
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
            expected = base64.b64encode(
                hashlib.sha1(base64.b64decode(nonce) + created.encode() + self.password.encode()).digest()
            ).decode()
        except ValueError:
            raise self._not_authorized() from None
        fresh = abs((self.now() - when).total_seconds()) <= self.max_skew
        if not (hmac.compare_digest(user, self.username) and hmac.compare_digest(password, expected) and fresh):
            self.counts["auth_failures"] = self.counts.get("auth_failures", 0) + 1
            raise self._not_authorized()

    @staticmethod
    def _not_authorized() -> SoapFault:
        return SoapFault(400, "env:Sender", "ter:NotAuthorized", "Sender not Authorized")

    @staticmethod
    def _not_supported(operation: str) -> SoapFault:
        return SoapFault(500, "env:Receiver", "ter:ActionNotSupported", f"{operation} is not supported")

    @staticmethod
    def _notification(note: Notification) -> str:
        def items(values: dict[str, str]) -> str:
            return "".join(f"<tt:SimpleItem Name={quoteattr(k)} Value={quoteattr(v)}/>" for k, v in values.items())

        operation = f" PropertyOperation={quoteattr(note.operation)}" if note.operation else ""
        return (
            f'<wsnt:NotificationMessage><wsnt:Topic Dialect="{CONCRETE_SET}">{escape(note.topic)}</wsnt:Topic>'
            f'<wsnt:Message><tt:Message UtcTime="{stamp(note.utc_time)}"{operation}>'
            f"<tt:Source>{items(note.source)}</tt:Source><tt:Data>{items(note.data)}</tt:Data>"
            "</tt:Message></wsnt:Message></wsnt:NotificationMessage>"
        )

    @staticmethod
    def _fault(fault: SoapFault) -> str:
        subcode = f"<env:Subcode><env:Value>{fault.subcode}</env:Value></env:Subcode>" if fault.subcode else ""
        detail = f"<env:Detail>{fault.detail}</env:Detail>" if fault.detail else ""
        return (
            f"<env:Fault><env:Code><env:Value>{fault.code}</env:Value>{subcode}</env:Code>"
            f'<env:Reason><env:Text xml:lang="en">{escape(fault.reason)}</env:Text></env:Reason>{detail}</env:Fault>'
        )

    @staticmethod
    def _envelope(inner: str) -> str:
        # Every prefix a fault Subcode or a topic uses is declared here: an undeclared one turns a
        # Fault into an XMLParseError on the client's side.
        declarations = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NAMESPACES.items())
        head = f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope {declarations}>'
        return f"{head}<env:Body>{inner}</env:Body></env:Envelope>"
