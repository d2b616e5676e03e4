"""Publish incidents to an MQTT broker: retained state, a stream of changes, Home Assistant discovery.

Topic layout (``prefix`` defaults to ``campusguard``; docs/mqtt.md shows every payload):

- ``{prefix}/status``: ``online`` / ``offline``, retained; ``offline`` is also the last will.
- ``{prefix}/incidents/{id}``: JSON of an open incident's latest version, retained, so a late
  subscriber sees what is open; cleared (empty retained payload) when resolved or dismissed.
- ``{prefix}/events/{kind}``: every delivered change as JSON (change, revision, exercise,
  delivery_key), not retained.
- ``{prefix}/cameras/{camera}/availability``: ``online`` / ``offline``, retained.
- ``{prefix}/cameras/{camera}/{kind}``: ``ON`` while an incident of that kind on that camera is
  open, ``OFF`` once none is, retained; ``.../{kind}/attributes`` holds the latest one's details.
- ``{discovery_prefix}/binary_sensor/{node_id}/{camera}_{sensor}/config``: Home Assistant discovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from campusguard.sdk import (
    CAMERA_EVENTS,
    AuthFailed,
    CameraEvent,
    ComponentContext,
    Incident,
    Notifier,
    NotReady,
    Subscription,
)
from campusguard.sdk import __version__ as campusguard_version

from .mqtt_discovery import Discovery
from .mqtt_topics import (
    OFFLINE,
    ONLINE,
    OpenIncidents,
    Topics,
    availability_from_incident,
    camera_availability,
    document,
    encode,
    is_open,
    segment,
    slot_of,
)

if TYPE_CHECKING:
    import ssl

    import aiomqtt

T = TypeVar("T")
TOPIC_PATTERN = r"^[^/#+\s]+(/[^/#+\s]+)*$"  # one or more levels, no wildcards, no empty level
ANNOUNCE_BATCH = 10  # publishes in flight at once when (re)announcing; aiomqtt warns above 10
AUTH_REFUSED = {4, 5, 134, 135}  # CONNACK: bad user name or password / not authorised (MQTT 3.1.1 and 5)


@dataclass
class _Link:
    """One connection to the broker. ``lost`` is set the moment the broker goes away."""

    client: aiomqtt.Client
    stack: contextlib.AsyncExitStack
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None
    marker: str = ""  # the topic that ends the retained-state read at connect
    synced: asyncio.Event = field(default_factory=asyncio.Event)


class MqttNotifier(Notifier):
    """Publishes incidents to an MQTT broker, with retained state and Home Assistant discovery (docs/mqtt.md).

    Every payload carries ``exercise`` and the delivery's idempotency key.
    """

    kind = "mqtt"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        host: str = Field(description="broker host name or address")
        port: int | None = Field(default=None, ge=1, le=65535, description="1883, or 8883 with tls")
        username: str | None = Field(default=None, description="none: anonymous")
        password: SecretStr | None = Field(default=None, description='use { env = "NAME" }')
        client_id: str | None = Field(default=None, description="default: cg-<name>-<random>")
        prefix: str = Field(default="campusguard", pattern=TOPIC_PATTERN, description="first level(s) of every topic")
        tls: bool = Field(default=False, description="TLS with the system CAs (or ca_file)")
        ca_file: Path | None = Field(default=None, description="CA bundle for TLS; turns tls on")
        keepalive: int = Field(default=30, ge=5, le=65535, description="seconds; the broker sends the will after 1.5x")
        qos: Literal[0, 1, 2] = Field(default=1, description="1: each publish waits for the broker's PUBACK")
        connect_timeout: float = Field(default=5.0, gt=0, description="seconds to connect and be accepted")
        publish_timeout: float = Field(default=5.0, gt=0, description="seconds to wait for a PUBACK")
        discovery: bool = Field(default=True, description="publish Home Assistant MQTT discovery configs")
        discovery_prefix: str = Field(
            default="homeassistant", pattern=TOPIC_PATTERN, description="as set in Home Assistant"
        )
        node_id: str = Field(
            default="campusguard", pattern=r"^[A-Za-z0-9_-]+$", description="groups discovery ids; one per site"
        )

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        assert isinstance(self.config, MqttNotifier.Config)
        self.cfg = self.config
        self.topics = Topics(self.cfg.prefix)
        self.client_id = self.cfg.client_id or f"cg-{segment(name)[:12]}-{secrets.token_hex(3)}"
        use_tls = self.cfg.tls or self.cfg.ca_file is not None
        self.where = f"{self.cfg.host}:{self.cfg.port or (8883 if use_tls else 1883)}"
        self._link: _Link | None = None
        self._lock = asyncio.Lock()
        self._running = False
        self._subscription: Subscription | None = None
        self._open = OpenIncidents()  # what this notifier delivered and is still open
        self._availability: dict[str, str] = {}
        self._seeded = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        await self._connected()  # NotReady (unreachable) and AuthFailed (refused) reach the supervisor
        if self._subscription is None:
            self._subscription = self.context.bus.subscribe(
                CAMERA_EVENTS, self._on_camera_event, name=f"notifiers.{self.name}.availability"
            )

    async def stop(self) -> None:
        self._running = False
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.close()
        async with self._lock:
            link, self._link = self._link, None
            if link is None:
                return
            try:
                if not link.lost.is_set():
                    with contextlib.suppress(NotReady):  # a clean stop says so; a lost link leaves it to the will
                        await self._publish(link, self.topics.status, OFFLINE, retain=True)
            finally:
                await self._close(link)

    # -- work ------------------------------------------------------------------------------------

    async def notify(self, incident: Incident) -> None:
        link = await self._connected()
        doc = document(incident, incident.delivery_key(self.name))
        self._open.apply(incident, doc)  # a retry publishes the same state again
        messages: list[tuple[str, str | bytes, bool]] = [
            (self.topics.incident(incident.id), encode(doc) if is_open(incident) else b"", True)
        ]
        availability = availability_from_incident(incident)
        if availability is not None and incident.camera_id:
            self._availability[incident.camera_id] = availability
            messages.append((self.topics.availability(incident.camera_id), availability, True))
        if (slot := slot_of(doc)) is not None:
            messages.append((self.topics.state(*slot), self._open.value(slot), True))
            messages.append((self.topics.attributes(*slot), encode(self._open.attributes(slot, doc)), True))
        messages.append((self.topics.event(str(incident.kind)), encode(doc), False))  # last: state is current
        # Sent in this order on one connection (the broker keeps a client's order), acknowledged together:
        # one round trip per incident instead of one per message.
        results = await asyncio.gather(
            *(self._publish(link, topic, payload, retain=retain) for topic, payload, retain in messages),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _on_camera_event(self, event: CameraEvent) -> None:
        state = camera_availability(event)
        if state is None:
            return
        self._availability[event.camera_id] = state
        try:
            link = await self._connected()
            await self._publish(link, self.topics.availability(event.camera_id), state, retain=True)
        except (NotReady, AuthFailed) as exc:
            self.log.info("camera %r is %s: published once the broker is back (%s)", event.camera_id, state, exc)

    # -- connection ------------------------------------------------------------------------------

    async def _connected(self) -> _Link:
        """The live connection, or a new one; NotReady/AuthFailed when the broker is not there for us."""
        link = self._link
        if link is not None and not link.lost.is_set():
            return link
        async with self._lock:
            if not self._running:
                raise NotReady(f"MQTT notifier {self.name!r} is stopped")
            link = self._link
            if link is not None and not link.lost.is_set():
                return link
            self._link = None
            if link is not None:
                await self._close(link)
            link, lost = await self._connect(), link
            try:
                await self._announce(link)
            except BaseException:
                await self._close(link)
                raise
            if lost is not None:
                self.log.info("reconnected to the MQTT broker %s", self.where)
            self._link = link
            return link

    async def _connect(self) -> _Link:
        import aiomqtt  # here, so that listing plugins stays fast

        c = self.cfg
        host, port = self.where.rsplit(":", 1)
        client = aiomqtt.Client(
            host,
            int(port),
            username=c.username,
            password=c.password.get_secret_value() if c.password else None,
            identifier=self.client_id,
            will=aiomqtt.Will(self.topics.status, OFFLINE, qos=1, retain=True),
            clean_session=True,
            keepalive=c.keepalive,
            timeout=c.connect_timeout,  # aiomqtt's wait for the CONNACK
            tls_context=self._tls_context(),
            # Small publishes must not wait for Nagle and the broker's delayed ACK (~40 ms stalls).
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )
        client._client.connect_timeout = c.connect_timeout  # paho's TCP connect; aiomqtt has no option for it
        stack = contextlib.AsyncExitStack()
        try:
            await stack.enter_async_context(client)
        except aiomqtt.MqttCodeError as exc:
            _abandon(client)
            if _code(exc.rc) in AUTH_REFUSED:
                who = f"user {c.username!r}" if c.username else "anonymous access (no username set)"
                raise AuthFailed(
                    f"MQTT broker {self.where} refused {who}: {exc}; check username and password"
                ) from None
            raise NotReady(f"MQTT broker {self.where} refused the connection: {exc}") from None
        except aiomqtt.MqttError as exc:
            _abandon(client)
            raise NotReady(f"MQTT broker {self.where} unreachable: {exc}") from None
        link = _Link(client, stack)
        link.reader = asyncio.create_task(self._read(link), name=f"mqtt:{self.name}:reader")
        return link

    def _tls_context(self) -> ssl.SSLContext | None:
        if not (self.cfg.tls or self.cfg.ca_file):
            return None
        import ssl

        ca_file = self.context.resolve(self.cfg.ca_file) if self.cfg.ca_file else None
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    async def _announce(self, link: _Link) -> None:
        """Say who we are: discovery, current state (the broker may have lost it), then ``online``."""
        if not self._seeded:
            await self._seed(link)
        messages: list[tuple[str, str | bytes]] = []
        if self.cfg.discovery:
            discovery = Discovery(self.topics, self.cfg.discovery_prefix, self.cfg.node_id, campusguard_version)
            messages += [(t, json.dumps(p)) for t, p in discovery.configs(self.context.core.camera_ids())]
        for doc in self._open.docs.values():
            messages.append((self.topics.incident(str(doc["id"])), encode(doc)))
        for slot in self._open.slots():
            latest = self._open.in_slot(slot)[-1]
            messages.append((self.topics.state(*slot), self._open.value(slot)))
            messages.append((self.topics.attributes(*slot), encode(self._open.attributes(slot, latest))))
        messages += [(self.topics.availability(cam), state) for cam, state in self._availability.items()]
        for start in range(0, len(messages), ANNOUNCE_BATCH):
            batch = messages[start : start + ANNOUNCE_BATCH]
            results = await asyncio.gather(
                *(self._publish(link, t, p, retain=True) for t, p in batch), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        await self._publish(link, self.topics.status, ONLINE, retain=True)

    async def _seed(self, link: _Link) -> None:
        """Read the open incidents retained from before a restart, so sensors stay ON for them.

        The broker sends retained messages right after the SUBACK, in order, so a marker published
        after subscribing arrives after all of them.
        """
        wildcard = f"{self.cfg.prefix}/incidents/+"
        link.marker = f"{self.cfg.prefix}/sync/{segment(self.client_id)}"
        granted = await self._call(link, link.client.subscribe([(wildcard, 1), (link.marker, 1)]))
        if any((_code(code) or 0) >= 0x80 for code in granted):
            self.log.warning(
                "MQTT broker %s refused a subscription to %s: sensors start from OFF", self.where, wildcard
            )
        else:
            await self._publish(link, link.marker, b"", retain=False)
            try:
                async with asyncio.timeout(self.cfg.publish_timeout):
                    await link.synced.wait()
            except TimeoutError:
                self.log.warning("MQTT broker %s: retained incidents not read in time", self.where)
        await self._call(link, link.client.unsubscribe([wildcard, link.marker]))
        self._seeded = True

    async def _read(self, link: _Link) -> None:
        """Take the retained incidents at connect; notice at once when the broker goes away."""
        import aiomqtt

        try:
            async for message in link.client.messages:
                topic = str(message.topic)
                if topic == link.marker:
                    link.synced.set()
                elif message.retain and not link.synced.is_set() and isinstance(message.payload, bytes | str):
                    with contextlib.suppress(ValueError):
                        self._open.adopt(json.loads(message.payload))
        except aiomqtt.MqttError as exc:
            if self._running:
                reason = exc.__cause__ or exc  # aiomqtt wraps the actual reason
                self.log.warning("lost the MQTT broker %s (%s); reconnecting on the next delivery", self.where, reason)
        finally:
            link.lost.set()

    async def _call(self, link: _Link, operation: Awaitable[T]) -> T:
        """Await one broker round trip, but give up the moment the connection is lost (NotReady)."""
        import aiomqtt

        work = asyncio.ensure_future(operation)
        lost = asyncio.ensure_future(link.lost.wait())
        try:
            await asyncio.wait((work, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, lost):
                task.cancel()  # no-op on the one that finished
            await asyncio.gather(work, lost, return_exceptions=True)
        if work.cancelled():
            raise NotReady(f"lost the MQTT broker {self.where}")
        error = work.exception()
        if isinstance(error, aiomqtt.MqttError):
            link.lost.set()  # no PUBACK in time or a broken socket: reconnect next time
            raise NotReady(f"MQTT broker {self.where}: {error}") from error
        return work.result()

    async def _publish(self, link: _Link, topic: str, payload: str | bytes, *, retain: bool) -> None:
        client = link.client
        await self._call(
            link, client.publish(topic, payload, qos=self.cfg.qos, retain=retain, timeout=self.cfg.publish_timeout)
        )

    async def _close(self, link: _Link) -> None:
        link.lost.set()
        if link.reader is not None:
            link.reader.cancel()
            await asyncio.gather(link.reader, return_exceptions=True)
        try:
            await link.stack.aclose()  # a clean DISCONNECT: the broker drops the will
        except Exception as exc:
            self.log.debug("MQTT disconnect from %s: %s", self.where, exc)


def _code(rc: object) -> int | None:
    """The number of a paho ReasonCode (or of a plain int code)."""
    value = getattr(rc, "value", rc)
    return value if isinstance(value, int) else None


def _abandon(client: aiomqtt.Client) -> None:
    """Close the socket of a connection that was never accepted (aiomqtt leaves it open on a timeout)."""
    with contextlib.suppress(Exception):
        client._client.disconnect()
