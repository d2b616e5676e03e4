"""Emergency dispatch: CAP 1.2 alerts (checked against the OASIS XSD), over HTTP, over SIP (RFC 8876, with
SIPp as the PSAP), and the 911-partner share that never places a call."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from peers.cap_schema import CAP12, validate_cap
from peers.sipp import Sipp, body_parts, split_message
from pydantic import ValidationError
from test_rules import PLUGINS, SITE, observed
from test_rules_lifecycle import outbox, until

import campusguard.adapters.cap.hooks as cap_hooks
from campusguard.adapters.cap.alert import (
    AckError,
    alert_ref,
    build_alert,
    cap_time,
    check_ack,
    first_alert,
    read_snapshot,
)
from campusguard.adapters.cap.http import CapHttpDispatcher
from campusguard.adapters.cap.partner import NEVER_CALLS, Partner911Dispatcher
from campusguard.adapters.cap.settings import CapSettings
from campusguard.adapters.cap.sip import CapSipDispatcher, answers, parse_response
from campusguard.core.incidents import change_status
from campusguard.sdk import (
    AuthFailed,
    Component,
    Dispatcher,
    Evidence,
    Incident,
    IncidentChange,
    IncidentStatus,
    Location,
    NotReady,
    Severity,
    StageStamp,
)
from campusguard.sdk.testing import make_incident
from campusguard.sdk.testing.conformance import DispatcherConformance, ErrorMapping
from campusguard.sdk.testing.stubs import StubCore, make_context

NS = {"cap": CAP12}
PIDF_NS = {
    "p": "urn:ietf:params:xml:ns:pidf",
    "dm": "urn:ietf:params:xml:ns:pidf:data-model",
    "gp": "urn:ietf:params:xml:ns:pidf:geopriv10",
    "gml": "http://www.opengis.net/gml",
    "gs": "http://www.opengis.net/pidflo/1.0",
    "ca": "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr",
}
RAISED = datetime(2026, 3, 2, 14, 5, 9, 123456, tzinfo=UTC)  # fractional seconds: CAP must drop them
SCHOOL = {"latitude": 40.7128, "longitude": -74.006, "radius_km": 0.3}


def cap_settings(**options: Any) -> CapSettings:
    return CapSettings.model_validate({"sender": "safety@lincoln-hs.example", **options})


def stamp(at: datetime) -> StageStamp:
    return StageStamp(monotonic=at.timestamp(), wall=at)


def raised(**fields: Any) -> Incident:
    """A weapon incident as the rules raise it: confirmed at once, its raise time stamped."""
    fields.setdefault("kind", "weapon")
    fields.setdefault("status", IncidentStatus.CONFIRMED)
    incident = make_incident(**fields)
    incident.stages = {"raised": stamp(RAISED), **incident.stages}
    return incident


def changed(incident: Incident, change: IncidentChange, status: IncidentStatus | None, seconds: float) -> Incident:
    """The next version, as a person or the lifecycle makes it (new revision, the change's stage stamped)."""
    version = incident.model_copy(deep=True)
    version.revision += 1
    version.change = change
    if status is not None:
        version.status = status
    key = str(change) if change != IncidentChange.ESCALATED else f"escalated:0:{version.revision}"
    version.stages = {**version.stages, key: stamp(RAISED + timedelta(seconds=seconds))}
    return version


def texts(root: Any, path: str) -> list[str]:
    return [e.text for e in root.findall(path, NS)]


def text(root: Any, path: str) -> str | None:
    return root.findtext(path, namespaces=NS)


def check_cap_rules(root: Any) -> None:
    """What CAP 1.2 requires beyond its XSD."""
    for name in ("identifier", "sender"):
        value = text(root, f"cap:{name}") or ""
        assert value and not any(c in value for c in " ,<&"), f"{name} {value!r}"
    for path in ("cap:sent", "cap:info/cap:onset"):
        for value in texts(root, path):
            assert "." not in value and not value.endswith("Z") and not value.endswith("+00:00"), value
    scope = text(root, "cap:scope")
    assert (scope == "Restricted") == (text(root, "cap:restriction") is not None)
    assert (scope == "Private") == (text(root, "cap:addresses") is not None)
    if text(root, "cap:msgType") in ("Update", "Cancel"):
        references = (text(root, "cap:references") or "").split()
        assert references and all(len(r.split(",")) == 3 for r in references)
    for polygon in texts(root, "cap:info/cap:area/cap:polygon"):
        points = polygon.split()
        assert len(points) >= 4 and points[0] == points[-1], polygon
    for circle in texts(root, "cap:info/cap:area/cap:circle"):
        point, radius = circle.split()
        lat, lon = map(float, point.split(","))
        assert -90 <= lat <= 90 and -180 <= lon <= 180 and float(radius) >= 0
    headline = text(root, "cap:info/cap:headline") or ""
    assert len(headline) <= 160


def valid(document: bytes) -> Any:
    root = validate_cap(document)
    check_cap_rules(root)
    return root


# -- the alert -------------------------------------------------------------------------------------


def lifecycle() -> list[Incident]:
    first = raised(location=Location(site="Lincoln HS", building="B", floor="2", room="214"))
    ack = changed(first, IncidentChange.ACKNOWLEDGED, IncidentStatus.ACKNOWLEDGED, 30)
    escalated = changed(ack, IncidentChange.ESCALATED, None, 60)
    evidence = escalated.model_copy(update={"change": IncidentChange.EVIDENCE})
    resolved = changed(escalated, IncidentChange.RESOLVED, IncidentStatus.RESOLVED, 600)
    return [first, ack, escalated, evidence, resolved]


def dismissed_lifecycle() -> list[Incident]:
    first = raised(status=IncidentStatus.NEW, kind="panic", confidence=1.0)
    return [first, changed(first, IncidentChange.DISMISSED, IncidentStatus.DISMISSED, 45)]


def verified_lifecycle() -> list[Incident]:
    first = raised(status=IncidentStatus.VERIFYING, kind="medical_fall", confidence=0.4)
    confirmed = changed(first, IncidentChange.CONFIRMED, IncidentStatus.CONFIRMED, 20)
    return [first, confirmed, changed(confirmed, IncidentChange.RESOLVED, IncidentStatus.RESOLVED, 300)]


SHAPES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "public-with-site": {"scope": "Public", "sender_name": "Lincoln High School", "area": SCHOOL},
    "private": {"scope": "Private", "addresses": ["psap@county.example", "Principal Office"]},
    "test-status-polygon": {
        "status": "Test",
        "timezone": "America/New_York",
        "area": {"description": "Lincoln HS campus", "polygon": [[40.71, -74.01], [40.72, -74.01], [40.72, -74.0]]},
        "kinds": {"weapon": {"category": ["Security", "Safety"], "instruction": "Lock down.", "response": ["Shelter"]}},
        "web": "https://campusguard.lincoln-hs.example/incidents/{incident_id}",
        "contact": "+1 555 0100",
    },
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("exercise", [False, True], ids=["actual", "exercise"])
@pytest.mark.parametrize("versions", [lifecycle, dismissed_lifecycle, verified_lifecycle])
def test_every_alert_validates_against_the_oasis_xsd(
    shape: str, exercise: bool, versions: Callable[[], list[Incident]]
) -> None:
    settings = cap_settings(**SHAPES[shape])
    seen_types = set()
    for incident in versions():
        incident.exercise = exercise
        root = valid(build_alert(incident, settings))
        seen_types.add(text(root, "cap:msgType"))
        expected_status = "Exercise" if exercise else settings.status
        assert text(root, "cap:status") == expected_status
    assert seen_types >= {"Alert"} and seen_types & {"Update", "Cancel"}


def test_msg_types_and_references_follow_the_incident() -> None:
    settings = cap_settings()
    first, ack, escalated, evidence, resolved = lifecycle()
    alert = valid(build_alert(first, settings))
    assert text(alert, "cap:msgType") == "Alert" and text(alert, "cap:references") is None
    assert text(alert, "cap:identifier") == f"campusguard.{first.id}"
    assert text(alert, "cap:sent") == "2026-03-02T14:05:09-00:00"  # the raise time, whole seconds, "-00:00"
    triple = f"safety@lincoln-hs.example,campusguard.{first.id},2026-03-02T14:05:09-00:00"
    identifiers = {text(alert, "cap:identifier")}
    for version in (ack, escalated, evidence, resolved):
        root = valid(build_alert(version, settings))
        assert text(root, "cap:msgType") == "Update"
        assert text(root, "cap:references") == triple
        identifiers.add(text(root, "cap:identifier"))
    assert len(identifiers) == 4  # evidence shares the escalated revision: the same version's identity
    all_clear = valid(build_alert(resolved, settings))
    assert texts(all_clear, "cap:info/cap:responseType") == ["AllClear"]
    assert text(all_clear, "cap:info/cap:urgency") == "Past"
    assert text(all_clear, "cap:info/cap:headline").startswith("All clear: ")  # type: ignore[union-attr]
    assert text(all_clear, "cap:sent") == "2026-03-02T14:15:09-00:00"  # when it was resolved

    panic, false_alarm = dismissed_lifecycle()
    cancel = valid(build_alert(false_alarm, settings))
    assert text(cancel, "cap:msgType") == "Cancel"
    assert text(cancel, "cap:references") == str(alert_ref(panic, settings))
    assert text(cancel, "cap:info/cap:certainty") == "Unlikely"
    assert "false alarm" in (text(cancel, "cap:note") or "")


def test_the_same_version_renders_the_same_alert_on_every_retry() -> None:
    """Retries from the outbox (and restarts) must send the identical message: no clock in it."""
    settings = cap_settings(area=SCHOOL)
    for incident in lifecycle():
        again = Incident.model_validate_json(incident.model_dump_json())  # what the outbox stores and reloads
        assert build_alert(incident, settings) == build_alert(again, settings)


def test_confirmed_after_verification_is_the_first_alert() -> None:
    settings = cap_settings()
    verifying, confirmed, resolved = verified_lifecycle()
    alert = valid(build_alert(confirmed, settings))
    assert text(alert, "cap:msgType") == "Alert"
    assert text(alert, "cap:sent") == "2026-03-02T14:05:29-00:00"  # it originated when a person confirmed it
    assert text(alert, "cap:info/cap:certainty") == "Observed"
    assert texts(alert, "cap:info/cap:category") == ["Health", "Rescue"]
    assert text(valid(build_alert(resolved, settings)), "cap:references") == str(first_alert(confirmed, settings))
    assert text(valid(build_alert(verifying, settings)), "cap:info/cap:certainty") == "Possible"  # 40 %


@pytest.mark.parametrize(
    ("severity", "cap_severity", "urgency"),
    [("extreme", "Extreme", "Immediate"), ("severe", "Severe", "Immediate"), ("moderate", "Moderate", "Expected"),
     ("minor", "Minor", "Expected"), ("info", "Unknown", "Unknown")],
)  # fmt: skip
def test_severity_and_urgency(severity: str, cap_severity: str, urgency: str) -> None:
    root = valid(build_alert(raised(severity=Severity(severity)), cap_settings()))
    assert text(root, "cap:info/cap:severity") == cap_severity
    assert text(root, "cap:info/cap:urgency") == urgency


@pytest.mark.parametrize(
    ("status", "confidence", "certainty"),
    [("confirmed", 0.3, "Observed"), ("verifying", 0.7, "Likely"), ("verifying", 0.3, "Possible"),
     ("new", 0.9, "Likely"), ("acknowledged", 0.5, "Observed")],
)  # fmt: skip
def test_certainty_from_status_and_confidence(status: str, confidence: float, certainty: str) -> None:
    root = valid(build_alert(raised(status=IncidentStatus(status), confidence=confidence), cap_settings()))
    assert text(root, "cap:info/cap:certainty") == certainty


@pytest.mark.parametrize(
    ("kind", "categories", "event"),
    [("weapon", ["Security"], "Weapon on campus"), ("intrusion", ["Security"], "Intrusion"),
     ("fight", ["Security"], "Fight"), ("medical_fall", ["Health", "Rescue"], "Person down (fall)"),
     ("gas_leak", ["Other"], "Gas leak")],
)  # fmt: skip
def test_category_table(kind: str, categories: list[str], event: str) -> None:
    root = valid(build_alert(raised(kind=kind), cap_settings()))
    assert texts(root, "cap:info/cap:category") == categories
    assert text(root, "cap:info/cap:event") == event


def test_configured_kind_text_and_sender() -> None:
    settings = cap_settings(
        sender_name="Lincoln High School",
        instruction="Follow staff directions.",
        kinds={"weapon": {"event": "Armed person", "instruction": "Lockdown: lock, lights, out of sight.",
                          "response": ["Shelter"]}},
    )  # fmt: skip
    root = valid(build_alert(raised(), settings))
    assert text(root, "cap:info/cap:event") == "Armed person"
    assert text(root, "cap:info/cap:instruction") == "Lockdown: lock, lights, out of sight."
    assert texts(root, "cap:info/cap:responseType") == ["Shelter"]
    assert text(root, "cap:info/cap:senderName") == "Lincoln High School"
    fight = valid(build_alert(raised(kind="fight"), settings))
    assert text(fight, "cap:info/cap:instruction") == "Follow staff directions."


def test_times_carry_their_offset() -> None:
    assert cap_time(RAISED) == "2026-03-02T14:05:09-00:00"
    assert cap_time(RAISED, "America/New_York") == "2026-03-02T09:05:09-05:00"
    root = valid(build_alert(raised(), cap_settings(timezone="Europe/Berlin")))
    assert text(root, "cap:sent") == "2026-03-02T15:05:09+01:00"


def test_exercise_is_marked_everywhere_in_the_alert() -> None:
    root = valid(build_alert(raised(exercise=True), cap_settings(status="Test")))
    assert text(root, "cap:status") == "Exercise"  # a drill is Exercise, whatever the target's status
    assert "Exercise" in (text(root, "cap:note") or "")
    assert (text(root, "cap:info/cap:headline") or "").startswith("EXERCISE: ")
    assert (text(root, "cap:info/cap:description") or "").startswith("THIS IS AN EXERCISE")


def test_area_from_the_incident_or_the_site() -> None:
    settings = cap_settings(area={**SCHOOL, "description": "Lincoln HS"})
    site = valid(build_alert(raised(), settings))
    assert text(site, "cap:info/cap:area/cap:areaDesc") == "Lincoln HS"
    assert texts(site, "cap:info/cap:area/cap:circle") == ["40.7128,-74.006 0.3"]
    own = raised(location=Location(building="Gym", latitude=40.7131, longitude=-74.0052))
    root = valid(build_alert(own, settings))
    assert texts(root, "cap:info/cap:area/cap:circle") == ["40.7131,-74.0052 0.3"]
    nothing = valid(build_alert(raised(location=Location(building="Gym", floor="1")), cap_settings()))
    assert text(nothing, "cap:info/cap:area/cap:areaDesc") == "Gym, floor 1, zone courtyard"
    assert texts(nothing, "cap:info/cap:area/cap:circle") == []


def snapshot_incident(tmp_path: Path, data: bytes, **fields: Any) -> Incident:
    path = tmp_path / "evidence" / "snap.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    return raised(evidence=Evidence(snapshot_path="evidence/snap.jpg", snapshot_sha256=sha256), **fields)


JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9"


def test_snapshot_embedded_with_sha1_digest(tmp_path: Path) -> None:
    incident = snapshot_incident(tmp_path, JPEG)
    snapshot = read_snapshot(incident, tmp_path)
    assert snapshot is not None
    settings = cap_settings(snapshot="embed", snapshot_uri="https://cg.example/i/{incident_id}/snapshot.jpg")
    root = valid(build_alert(incident, settings, snapshot))
    resource = root.find("cap:info/cap:resource", NS)
    assert resource.findtext("cap:mimeType", namespaces=NS) == "image/jpeg"
    assert resource.findtext("cap:size", namespaces=NS) == str(len(JPEG))
    assert resource.findtext("cap:digest", namespaces=NS) == hashlib.sha1(JPEG).hexdigest()
    assert base64.b64decode(resource.findtext("cap:derefUri", namespaces=NS)) == JPEG
    assert resource.findtext("cap:uri", namespaces=NS) == f"https://cg.example/i/{incident.id}/snapshot.jpg"
    # Too large to embed: linked only; not configured: nothing.
    small = cap_settings(snapshot="embed", max_embed_kb=1, snapshot_uri="https://cg.example/{incident_id}.jpg")
    linked = valid(build_alert(incident, small, snapshot)).find("cap:info/cap:resource", NS)
    assert linked.findtext("cap:derefUri", namespaces=NS) is None and linked.findtext("cap:uri", namespaces=NS)
    assert valid(build_alert(incident, cap_settings(), snapshot)).find("cap:info/cap:resource", NS) is None


def test_altered_or_missing_snapshot_is_left_out(tmp_path: Path) -> None:
    incident = snapshot_incident(tmp_path, JPEG)
    (tmp_path / "evidence" / "snap.jpg").write_bytes(JPEG + b"tampered")
    assert read_snapshot(incident, tmp_path) is None
    (tmp_path / "evidence" / "snap.jpg").unlink()
    assert read_snapshot(incident, tmp_path) is None
    # By link, the alert still names where it is (without size or digest, which we cannot vouch for).
    settings = cap_settings(snapshot="uri", snapshot_uri="https://cg.example/{incident_id}.jpg")
    resource = valid(build_alert(incident, settings, None)).find("cap:info/cap:resource", NS)
    assert resource.findtext("cap:digest", namespaces=NS) is None and resource.findtext("cap:uri", namespaces=NS)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"sender": "safety office"}, "must not contain spaces, commas"),
     ({"identifier_prefix": "a,b"}, "must not contain spaces, commas"),
     ({"scope": "Restricted", "restriction": None}, "needs restriction"),
     ({"scope": "Private"}, "needs addresses"),
     ({"snapshot": "uri"}, "needs snapshot_uri"),
     ({"timezone": "Mars/Olympus"}, "unknown time zone"),
     ({"web": "https://x/{id}"}, "the only field is {incident_id}"),
     ({"area": {"latitude": 40.0}}, "both latitude and longitude"),
     ({"area": {"polygon": [[1, 2], [1, 2], [3, 4]]}}, "at least 3 distinct"),
     ({"area": {"civic": {"street": "Main"}}}, "unknown civic address field"),
     ({"kinds": {"weapon": {"category": ["Police"]}}}, "Security"),
     ({"colour": "red"}, "Extra inputs are not permitted")],
)  # fmt: skip
def test_config_errors_are_clear(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("{", r"\{").replace("}", r"\}")):
        cap_settings(**options)


def ack_for(alert: bytes, msg_type: str = "Ack", references: str | None = None) -> bytes:
    root = etree.fromstring(alert)
    ref = ",".join(text(root, f"cap:{n}") or "" for n in ("sender", "identifier", "sent"))
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><alert xmlns="{CAP12}"><identifier>ack-1</identifier>'
        f"<sender>psap@county.example</sender><sent>2026-03-02T14:05:10-00:00</sent><status>Actual</status>"
        f"<msgType>{msg_type}</msgType><scope>Public</scope><note>bad area</note>"
        f"<references>{ref if references is None else references}</references></alert>"
    ).encode()


def test_ack_parsing() -> None:
    incident = raised()
    settings = cap_settings()
    alert = build_alert(incident, settings)
    ref = alert_ref(incident, settings)
    valid(ack_for(alert))  # our test acks are valid CAP themselves
    check_ack(ack_for(alert), ref)
    for body, reason in [
        (b"", "empty"),
        (b"OK", "not XML"),
        (b"<ok/>", "not a CAP 1.2 alert"),
        (ack_for(alert, "Update"), "not an Ack"),
        (ack_for(alert, "Error"), "rejected the alert .msgType Error.: bad area"),
        (ack_for(alert, references="someone,else,2026-03-02T14:05:10-00:00"), "not our alert"),
        (b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>', "not a CAP 1.2 alert"),
    ]:
        with pytest.raises(AckError, match=reason):
            check_ack(body, ref)


# -- a real HTTP receiver --------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


Answer = tuple[int, bytes] | Callable[[Received], tuple[int, bytes]]


class Receiver:
    """An HTTP server in a thread: records every POST and answers from ``answers`` (then 200)."""

    def __init__(self, *answers: Answer, token: str | None = None) -> None:
        self.answers: deque[Answer] = deque(answers)
        self.token = token
        self.requests: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                receiver.requests.append(request)
                if receiver.token is not None and request.headers.get("authorization") != f"Bearer {receiver.token}":
                    status, answer = 401, b"bad token"
                else:
                    item = receiver.answers.popleft() if receiver.answers else (200, b"")
                    status, answer = item(request) if callable(item) else item
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), name="cap-receiver", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/cap"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(cls: type[Component], tmp_path: Path, **options: Any) -> Any:
    config = cls.Config.model_validate(options)
    return cls("cap", config, make_context("cap", tmp_path, StubCore(tmp_path)))


async def dispatched(component: Dispatcher, incident: Incident) -> None:
    await component.start()
    try:
        await component.dispatch(incident)
    finally:
        await component.stop()


async def test_http_posts_the_alert(receiver: Receiver, tmp_path: Path) -> None:
    receiver.token = "s3cret"
    dispatcher = build(CapHttpDispatcher, tmp_path, url=receiver.url, sender="safety@lincoln-hs.example",
                       token="s3cret", headers={"X-Site": "lincoln"})  # fmt: skip
    incident = raised(exercise=True)
    await dispatched(dispatcher, incident)
    (request,) = receiver.requests
    assert request.headers["content-type"] == "application/xml; charset=utf-8"
    assert request.headers["idempotency-key"] == incident.delivery_key("cap")
    assert request.headers["x-campusguard-exercise"] == "true" and request.headers["x-site"] == "lincoln"
    root = valid(request.body)
    assert text(root, "cap:status") == "Exercise" and text(root, "cap:identifier") == f"campusguard.{incident.id}"


async def test_http_basic_auth(receiver: Receiver, tmp_path: Path) -> None:
    dispatcher = build(CapHttpDispatcher, tmp_path, url=receiver.url, sender="s@x.example", username="cg",
                       password="pw")  # fmt: skip
    await dispatched(dispatcher, raised())
    assert receiver.requests[0].headers["authorization"] == "Basic " + base64.b64encode(b"cg:pw").decode()


@pytest.mark.parametrize("status", [401, 403])
async def test_http_rejected_credentials_are_auth_failed(receiver: Receiver, tmp_path: Path, status: int) -> None:
    receiver.answers.append((status, b"no"))
    dispatcher = build(CapHttpDispatcher, tmp_path, url=receiver.url, sender="s@x.example", token="wrong")
    with pytest.raises(AuthFailed, match=f"refused our credentials .HTTP {status}."):
        await dispatched(dispatcher, raised())


async def test_http_errors_are_not_ready(receiver: Receiver, tmp_path: Path) -> None:
    receiver.answers.extend([(500, b"database down"), (400, b"")])
    dispatcher = build(CapHttpDispatcher, tmp_path, url=receiver.url, sender="s@x.example")
    with pytest.raises(NotReady, match="answered HTTP 500: database down"):
        await dispatched(dispatcher, raised())
    with pytest.raises(NotReady, match="answered HTTP 400"):
        await dispatched(dispatcher, raised())
    down = build(CapHttpDispatcher, tmp_path, url=f"http://127.0.0.1:{closed_port()}/", sender="s@x.example")
    with pytest.raises(NotReady, match="unreachable: ConnectError"):
        await dispatched(down, raised())


async def test_http_expect_ack(receiver: Receiver, tmp_path: Path) -> None:
    def ack(request: Received) -> tuple[int, bytes]:
        return 200, ack_for(request.body)

    receiver.answers.extend([ack, (200, b"thanks!"), (202, b""), lambda r: (200, ack_for(r.body, "Error"))])
    dispatcher = build(CapHttpDispatcher, tmp_path, url=receiver.url, sender="s@x.example", expect_ack=True)
    incident = raised()
    await dispatched(dispatcher, incident)
    for reason in ("not XML", "empty", "rejected the alert"):
        with pytest.raises(
            NotReady, match=f"not with a CAP acknowledgement of alert campusguard.{incident.id}.*{reason}"
        ):
            await dispatched(dispatcher, incident)
    assert len(receiver.requests) == 4  # nothing lost: each failure is a NotReady, retried from the outbox


def test_http_config_errors() -> None:
    with pytest.raises(ValidationError, match=r"either token \(bearer\) or username and password"):
        CapHttpDispatcher.Config.model_validate({"url": "http://x/", "sender": "s", "token": "t", "username": "u",
                                                 "password": "p"})  # fmt: skip
    with pytest.raises(ValidationError, match="needs both username and password"):
        CapHttpDispatcher.Config.model_validate({"url": "http://x/", "sender": "s", "username": "u"})
    with pytest.raises(ValidationError, match="url"):
        CapHttpDispatcher.Config.model_validate({"url": "ftp://x/", "sender": "s"})


# -- through a real core: rule -> outbox -> cap_http -------------------------------------------------


def core_config(url: str, *, exercise: bool = False, extra: str = "") -> str:
    return (
        SITE
        + f"""
[delivery]
retry_initial = 0.05
retry_max = 0.2
poll_interval = 0.05

[adapters.cap]
type = "cap_http"
url = "{url}"
sender = "safety@lincoln-hs.example"
sender_name = "Lincoln High School"
{extra}
[adapters.cap.area]
latitude = 40.7128
longitude = -74.006

[[rules]]
name = "weapon"
when = {{ kinds = ["weapon"] }}
incident = {{ severity = "extreme", title = "Weapon seen at the {{zone}} on {{camera_id}}" }}
exercise = {"true" if exercise else "false"}
[[rules.actions]]
do = "dispatch"
targets = ["cap"]
"""
    )


CORE_PLUGINS = {**PLUGINS, "cap": cap_hooks}


async def published(core: Any, *observations: Any) -> Incident:
    from campusguard.sdk import OBSERVATIONS

    for observation in observations:
        core.api.bus.publish(OBSERVATIONS, observation)
    await core.api.rules.drain()
    return (await core.api.store.list_incidents(limit=1))[0]


async def test_core_dispatches_retries_and_sends_the_all_clear(receiver: Receiver, campusguard_core: Any) -> None:
    receiver.answers.append((500, b"busy"))
    async with campusguard_core(core_config(receiver.url), plugins=CORE_PLUGINS) as core:
        assert core.state("adapters", "cap") == "loaded"
        incident = await published(core, observed(0, kind="weapon", confidence=0.9))
        await core.wait_delivered("cap", 1, timeout=10)
        # 500 first, then the outbox retried the very same alert, which was accepted.
        assert len(receiver.requests) == 2 and receiver.requests[0].body == receiver.requests[1].body
        alert = valid(receiver.requests[1].body)
        assert text(alert, "cap:msgType") == "Alert" and text(alert, "cap:status") == "Actual"
        assert text(alert, "cap:info/cap:severity") == "Extreme"
        assert text(alert, "cap:info/cap:headline") == "Weapon seen at the lamp on gate"
        assert text(alert, "cap:sent") == cap_time(incident.stages["raised"].wall)
        assert receiver.requests[1].headers["idempotency-key"] == f"{incident.id}:cap"

        await change_status(core.api.store, incident.id, "resolve", by="ms.rivera", note="police left")
        await core.wait_delivered("cap", 2, timeout=10)
        update = valid(receiver.requests[-1].body)
        assert text(update, "cap:msgType") == "Update"
        assert texts(update, "cap:info/cap:responseType") == ["AllClear"]
        first = ",".join(text(alert, f"cap:{n}") or "" for n in ("sender", "identifier", "sent"))
        assert text(update, "cap:references") == first
        assert receiver.requests[-1].headers["idempotency-key"] == f"{incident.id}:1:cap"
        assert [(t, c, s) for t, _, c, s in await outbox(core) if t == "cap"] == [
            ("cap", "raised", "delivered"), ("cap", "resolved", "delivered")
        ]  # fmt: skip


async def test_core_exercise_rule_sends_exercise_end_to_end(receiver: Receiver, campusguard_core: Any) -> None:
    async with campusguard_core(core_config(receiver.url, exercise=True), plugins=CORE_PLUGINS) as core:
        await published(core, observed(0, kind="weapon"))
        await core.wait_delivered("cap", 1, timeout=10)
        (request,) = receiver.requests
        assert text(valid(request.body), "cap:status") == "Exercise"
        assert request.headers["x-campusguard-exercise"] == "true"


async def test_core_auth_failure_stops_the_dispatcher_and_keeps_the_alert(
    receiver: Receiver, campusguard_core: Any
) -> None:
    receiver.token = "right"
    config = core_config(receiver.url, extra='token = "wrong"')
    async with campusguard_core(config, plugins=CORE_PLUGINS) as core:
        await published(core, observed(0, kind="weapon"))
        await until(lambda: core.state("adapters", "cap") == "failed")
        assert "right" not in (core.error("adapters", "cap") or "") and "wrong" not in (
            core.error("adapters", "cap") or ""
        )
        assert [(t, s) for t, _, _, s in await outbox(core) if t == "cap"] == [("cap", "pending")]


# -- SIP MESSAGE (RFC 8876) against SIPp ------------------------------------------------------------


def sip_dispatcher(tmp_path: Path, **options: Any) -> CapSipDispatcher:
    options = {"sender": "safety@lincoln-hs.example", "sender_name": "Lincoln High School",
               "from_uri": "sip:campusguard@lincoln-hs.example", "area": {**SCHOOL, "civic": {"country": "US",
               "A1": "NY", "A3": "New York", "RD": "Main St", "HNO": "100"}}, **options}  # fmt: skip
    dispatcher: CapSipDispatcher = build(CapSipDispatcher, tmp_path, **options)
    return dispatcher


def check_sip_message(raw: bytes, transport: str, incident: Incident) -> None:
    request_line, headers, body = split_message(raw)
    assert request_line.startswith("MESSAGE sip:psap@127.0.0.1:") and request_line.endswith(" SIP/2.0")
    assert headers["via"].startswith(f"SIP/2.0/{transport.upper()} 127.0.0.1:") and ";branch=z9hG4bK" in headers["via"]
    assert headers["cseq"] == "1 MESSAGE" and headers["max-forwards"] == "70"
    assert headers["from"].startswith('"Lincoln High School" <sip:campusguard@lincoln-hs.example>;tag=')
    assert int(headers["content-length"]) == len(body)
    parts = {part["Content-ID"].strip("<>"): part for part in body_parts(headers["content-type"], body)}
    # Geolocation points at the PIDF-LO part, Call-Info at the CAP part, both by cid.
    geolocation = headers["geolocation"].removeprefix("<cid:").removesuffix(">")
    cap_cid, purpose = headers["call-info"].split(";", 1)
    assert purpose == "purpose=EmergencyCallData.cap" and headers["geolocation-routing"] == "yes"
    cap_part, pidf_part = parts[cap_cid.removeprefix("<cid:").removesuffix(">")], parts[geolocation]
    assert cap_part.get_content_type() == "application/emergencycalldata.cap+xml"
    assert pidf_part.get_content_type() == "application/pidf+xml"
    alert = valid(cap_part.get_payload(decode=True))
    assert text(alert, "cap:identifier") == f"campusguard.{incident.id}"
    pidf = etree.fromstring(pidf_part.get_payload(decode=True))
    assert pidf.tag == "{urn:ietf:params:xml:ns:pidf}presence"
    assert pidf.get("entity") == "pres:campusguard@lincoln-hs.example"
    circle = pidf.find("dm:device/gp:geopriv/gp:location-info/gs:Circle", PIDF_NS)
    assert circle.get("srsName") == "urn:ogc:def:crs:EPSG::4326"
    assert circle.findtext("gml:pos", namespaces=PIDF_NS) == "40.7128000 -74.0060000"
    assert circle.findtext("gs:radius", namespaces=PIDF_NS) == "300"
    civic = pidf.find("dm:device/gp:geopriv/gp:location-info/ca:civicAddress", PIDF_NS)
    assert [c.tag.split("}")[1] for c in civic] == ["country", "A1", "A3", "RD", "HNO", "LOC", "FLR", "BLD"]
    assert civic.findtext("ca:BLD", namespaces=PIDF_NS) == "B"


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sip_message_accepted_by_sipp(tmp_path: Path, transport: str) -> None:
    incident = raised(location=Location(building="B", floor="2"))
    async with Sipp("message_200.xml", tmp_path / "sipp", transport) as psap:
        dispatcher = sip_dispatcher(tmp_path, target=psap.uri, transport=transport)
        await dispatched(dispatcher, incident)
        assert await psap.done() == 0, psap.error_file.read_text() if psap.error_file.exists() else ""
    (raw,) = psap.received()
    check_sip_message(raw, transport, incident)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sip_503_is_not_ready(tmp_path: Path, transport: str) -> None:
    async with Sipp("message_503.xml", tmp_path / "sipp", transport) as psap:
        dispatcher = sip_dispatcher(tmp_path, target=psap.uri, transport=transport)
        with pytest.raises(NotReady, match=r"answered SIP/2.0 503 Service Unavailable \(Retry-After: 30\)"):
            await dispatched(dispatcher, raised())
        assert await psap.done() == 0
    assert len(psap.received()) == 1


@pytest.mark.slow
async def test_sip_401_is_auth_failed(tmp_path: Path) -> None:
    async with Sipp("message_401.xml", tmp_path / "sipp", "udp") as psap:
        dispatcher = sip_dispatcher(tmp_path, target=psap.uri, transport="udp")
        with pytest.raises(AuthFailed, match=r"asks for credentials: SIP/2\.0 401 Unauthorized"):
            await dispatched(dispatcher, raised())
        assert await psap.done() == 0


async def test_sip_udp_retransmits_until_timer_f(tmp_path: Path) -> None:
    """A silent UDP peer: the MESSAGE goes out again at T1, 2*T1, 4*T1, ... then NotReady at Timer F."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent.setblocking(False)
    port = silent.getsockname()[1]
    try:
        dispatcher = sip_dispatcher(tmp_path, target=f"sip:psap@127.0.0.1:{port}", transport="udp", t1=0.05,
                                    timeout=0.7)  # fmt: skip
        started = time.monotonic()
        with pytest.raises(NotReady, match=r"no final answer within 0.7s \(SIP Timer F\)"):
            await dispatched(dispatcher, raised())
        assert 0.65 < time.monotonic() - started < 3
        copies: list[bytes] = []
        while True:
            try:
                copies.append(silent.recv(65536))
            except BlockingIOError:
                break
    finally:
        silent.close()
    # Sent at 0, then 0.05, 0.15, 0.35 s (intervals double, capped at T2; the next would be 0.75): four copies
    # of one transaction.
    assert len(copies) == 4 and len(set(copies)) == 1


async def test_sip_provisional_answer_then_final(tmp_path: Path) -> None:
    """100 Trying, then 202 Accepted: a provisional answer is not the end of the transaction."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    port = peer.getsockname()[1]

    def answer() -> None:
        data, address = peer.recvfrom(65536)
        head = data.split(b"\r\n\r\n")[0].decode().split("\r\n")
        keep = "\r\n".join(h for h in head[1:] if h.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq"))
        for status in ("100 Trying", "202 Accepted"):
            peer.sendto(f"SIP/2.0 {status}\r\n{keep}\r\nContent-Length: 0\r\n\r\n".encode(), address)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        await dispatched(sip_dispatcher(tmp_path, target=f"sip:psap@127.0.0.1:{port}", transport="udp"), raised())
    finally:
        thread.join(5)
        peer.close()


async def test_sip_unreachable_is_not_ready(tmp_path: Path) -> None:
    for transport in ("udp", "tcp"):
        dispatcher = sip_dispatcher(tmp_path, target=f"sip:psap@127.0.0.1:{closed_port()}", transport=transport,
                                    timeout=2)  # fmt: skip
        with pytest.raises(NotReady, match="ConnectionRefusedError"):
            await dispatched(dispatcher, raised())


def test_sip_response_parsing() -> None:
    response = parse_response(
        b"\r\nSIP/2.0 503 Service Unavailable\r\nv: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\nCSeq: 1 MESSAGE\r\n"
        b"Retry-After: 30\r\n (busy)\r\n\r\n"
    )
    assert response is not None and response.status_line == "SIP/2.0 503 Service Unavailable"
    assert response.header("via") == "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx"
    assert response.header("retry-after") == "30 (busy)"
    assert answers(response, "z9hG4bKx") and not answers(response, "z9hG4bK")  # another transaction's answer
    assert parse_response(b"MESSAGE sip:a@b SIP/2.0\r\n\r\n") is None


@pytest.mark.parametrize(
    ("options", "message"),
    [({"target": "sips:psap@county.example"}, "sips: .SIP over TLS. is not supported"),
     ({"target": "urn:service:sos"}, "has no host to send to: set proxy"),
     ({"target": "psap@county.example"}, "is not a SIP URI"),
     ({"target": "sip:psap@county.example:99999"}, "bad port"),
     ({"proxy": "[::1"}, "no closing"),
     ({"area": {}}, "must say where: set area.latitude"),
     ({"transport": "udp", "snapshot": "embed"}, "does not fit a UDP datagram"),
     ({"transport": "sctp"}, "transport")],
)  # fmt: skip
def test_sip_config_errors(options: dict[str, Any], message: str) -> None:
    base = {"sender": "s@x.example", "target": "sip:psap@county.example", "area": SCHOOL}
    with pytest.raises(ValidationError, match=message):
        CapSipDispatcher.Config.model_validate({**base, **options})
    CapSipDispatcher.Config.model_validate({**base, "target": "urn:service:sos", "proxy": "esrp.county.example:5060"})


# -- the 911 partner ---------------------------------------------------------------------------------


async def test_partner_shares_data_and_never_asks_for_a_call(receiver: Receiver, tmp_path: Path) -> None:
    receiver.token = "k"
    dispatcher = build(Partner911Dispatcher, tmp_path, url=receiver.url, token="k", site="Lincoln HS",
                       callback="+15550100", area=SCHOOL)  # fmt: skip
    incident = raised(exercise=True, location=Location(building="B", floor="2"))
    await dispatched(dispatcher, incident)
    (request,) = receiver.requests
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == incident.delivery_key("cap")
    shared = json.loads(request.body)
    assert shared["call_requested"] is False and shared["exercise"] is True
    assert shared["incident"]["id"] == incident.id and shared["incident"]["kind"] == "weapon"
    assert shared["location"]["latitude"] == 40.7128 and shared["location"]["building"] == "B"
    assert set(shared) == {"schema", "call_requested", "exercise", "idempotency_key", "site", "callback", "incident",
                           "location"}  # fmt: skip


@pytest.mark.parametrize("options", [{"mode": "call"}, {"mode": "auto"}, {"auto_call": True}, {"call_911": True}])
def test_partner_refuses_any_config_that_would_call(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as error:
        Partner911Dispatcher.Config.model_validate({"url": "https://partner.example/share", **options})
    assert "never places or requests a 911 call" in str(error.value) and "a person places the call" in NEVER_CALLS


async def test_partner_errors(receiver: Receiver, tmp_path: Path) -> None:
    receiver.answers.extend([(401, b""), (503, b"maintenance")])
    dispatcher = build(Partner911Dispatcher, tmp_path, url=receiver.url)
    with pytest.raises(AuthFailed, match="HTTP 401"):
        await dispatched(dispatcher, raised())
    with pytest.raises(NotReady, match="HTTP 503: maintenance"):
        await dispatched(dispatcher, raised())


# -- the SDK's conformance suite ---------------------------------------------------------------------


class _WithReceiver(ErrorMapping):
    receiver: Receiver

    @pytest.fixture(autouse=True)
    def _receiver(self) -> Iterator[None]:
        self.receiver = Receiver(token="good")
        yield
        self.receiver.close()

    def unreachable_config(self) -> dict[str, Any]:
        return {**self.valid_config(), "url": f"http://127.0.0.1:{closed_port()}/cap"}

    def bad_credentials_config(self) -> dict[str, Any]:
        return {**self.valid_config(), "token": "bad"}

    def valid_config(self) -> dict[str, Any]:
        raise NotImplementedError


class TestCapHttpConformance(_WithReceiver, DispatcherConformance):
    component_class = CapHttpDispatcher

    def valid_config(self) -> dict[str, Any]:
        return {"url": self.receiver.url, "sender": "safety@lincoln-hs.example", "token": "good"}


class TestPartnerConformance(_WithReceiver, DispatcherConformance):
    component_class = Partner911Dispatcher

    def valid_config(self) -> dict[str, Any]:
        return {"url": self.receiver.url, "token": "good"}


class TestCapSipConformance(ErrorMapping, DispatcherConformance):
    component_class = CapSipDispatcher

    @pytest.fixture(autouse=True)
    def _psap(self) -> Iterator[None]:
        """A UDP PSAP in a thread: 200 OK, or 401 to a From it does not know."""
        self.psap = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.psap.bind(("127.0.0.1", 0))
        self.psap.settimeout(0.1)
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                try:
                    data, address = self.psap.recvfrom(65536)
                except TimeoutError:
                    continue
                head = data.split(b"\r\n\r\n")[0].decode().split("\r\n")
                keep = "\r\n".join(h for h in head[1:] if h.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq"))
                status = "200 OK" if "sip:campusguard@lincoln-hs.example" in keep else "401 Unauthorized"
                self.psap.sendto(f"SIP/2.0 {status}\r\n{keep}\r\nContent-Length: 0\r\n\r\n".encode(), address)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield
        stop.set()
        thread.join(5)
        self.psap.close()

    def valid_config(self) -> dict[str, Any]:
        port = self.psap.getsockname()[1]
        return {"sender": "safety@lincoln-hs.example", "target": f"sip:psap@127.0.0.1:{port}", "transport": "udp",
                "from_uri": "sip:campusguard@lincoln-hs.example", "area": SCHOOL}  # fmt: skip

    def unreachable_config(self) -> dict[str, Any]:
        return {**self.valid_config(), "target": f"sip:psap@127.0.0.1:{closed_port()}"}

    def bad_credentials_config(self) -> dict[str, Any]:
        return {**self.valid_config(), "from_uri": "sip:stranger@elsewhere.example"}


def test_registered_kinds() -> None:
    from campusguard.sdk import Registry

    registry: Registry[Component] = Registry("adapters", (Dispatcher,))
    cap_hooks.campusguard_register_adapters(registry)
    assert registry.kinds() == ["cap_http", "cap_sip", "partner_911"]


def test_listing_plugins_imports_no_xml_or_http_library() -> None:
    import subprocess
    import sys

    code = "import sys, campusguard.adapters.cap.hooks; print(sorted(m for m in ('lxml', 'httpx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
