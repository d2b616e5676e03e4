"""Build a CAP 1.2 alert from an incident, and read a target's CAP acknowledgement.

Every version of an incident that reaches a dispatcher becomes one CAP message:

======================================  ===========  ==============================================
incident change                         msgType      notes
======================================  ===========  ==============================================
raised (confirmed at once, or new)      Alert        identifier ``<prefix><id>``
confirmed (after verification)          Alert        the same identifier: dispatchers only get
                                                     incidents once they are confirmed
acknowledged, escalated, evidence, ...  Update       identifier ``<prefix><id>.<revision>``
resolved                                Update       responseType AllClear, urgency Past
dismissed (a false alarm)               Cancel       responseType None, certainty Unlikely
======================================  ===========  ==============================================

Updates and cancels reference the first alert (``sender,identifier,sent``). Its identity is worked
out from the incident alone, so a retry from the outbox, or a restart, sends exactly the same
message: the identifier comes from the incident's id (and revision), and ``sent`` from the stage
stamp of the change (``stages["raised"]``, ``stages["confirmed"]``, ...), never from the clock.
"""

from __future__ import annotations

import base64
import hashlib
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lxml import etree  # type: ignore[import-untyped]
from lxml.builder import ElementMaker  # type: ignore[import-untyped]

from campusguard.sdk import Incident, IncidentChange, IncidentStatus, Location, Severity

from .settings import CapSettings, Category, KindSettings

CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"
E: Any = ElementMaker(namespace=CAP12, nsmap={None: CAP12})

# Default category and event per known incident kind; ``[adapters.<name>.kinds.<kind>]`` overrides them.
KIND_TABLE: dict[str, tuple[list[Category], str]] = {
    "weapon": (["Security"], "Weapon on campus"),
    "intrusion": (["Security"], "Intrusion"),
    "fight": (["Security"], "Fight"),
    "medical_fall": (["Health", "Rescue"], "Person down (fall)"),
    "panic": (["Security", "Safety"], "Panic alarm"),
    "loitering": (["Security"], "Loitering"),
    "crowd": (["Safety"], "Crowd"),
    "tailgating": (["Security"], "Tailgating through a controlled door"),
    "door_forced": (["Security"], "Door forced open"),
    "door_held": (["Security"], "Door held open"),
    "visitor_watchlist": (["Security"], "Visitor on a watch list"),
    "camera_tamper": (["Security", "Infra"], "Camera tampered with"),
    "camera_offline": (["Infra"], "Camera offline"),
    "camera_online": (["Infra"], "Camera back online"),
    "device_offline": (["Infra"], "Safety device offline"),
}

SEVERITY = {
    Severity.EXTREME: "Extreme",
    Severity.SEVERE: "Severe",
    Severity.MODERATE: "Moderate",
    Severity.MINOR: "Minor",
    Severity.INFO: "Unknown",
}
URGENCY = {
    Severity.EXTREME: "Immediate",
    Severity.SEVERE: "Immediate",
    Severity.MODERATE: "Expected",
    Severity.MINOR: "Expected",
    Severity.INFO: "Unknown",
}
HEADLINE_MAX = 160  # CAP 1.2: "SHOULD be made as direct and actionable as possible ... less than 160 characters"


@dataclass(frozen=True)
class AlertRef:
    """One CAP message's identity: ``sender,identifier,sent`` as ``references`` lists it."""

    sender: str
    identifier: str
    sent: str

    def __str__(self) -> str:
        return f"{self.sender},{self.identifier},{self.sent}"


@dataclass(frozen=True)
class SnapshotFile:
    """The snapshot's bytes (checked against the recorded SHA-256), for a CAP resource."""

    data: bytes
    mime_type: str

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.data).hexdigest()  # CAP 1.2 resource digest is SHA-1 (FIPS 180-2)


class AckError(Exception):
    """The target answered 2xx, but not with a CAP acknowledgement of our alert."""


# -- identity --------------------------------------------------------------------------------------


def cap_time(moment: datetime, zone: str = "UTC") -> str:
    """A CAP ``sent``: ISO 8601 with its offset, whole seconds, and ``-00:00`` for UTC (never ``Z``)."""
    text = moment.astimezone(zoneinfo.ZoneInfo(zone)).replace(microsecond=0).isoformat()
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


def raised_at(incident: Incident) -> datetime:
    stamp = incident.stages.get("raised")
    return stamp.wall if stamp is not None else incident.created_at


def first_alert_at(incident: Incident) -> datetime:
    """When the first alert originated: when the incident was confirmed, or raised if it needed no verifying."""
    stamp = incident.stages.get(str(IncidentStatus.CONFIRMED))
    return stamp.wall if stamp is not None else raised_at(incident)


def version_at(incident: Incident) -> datetime:
    """When this version's change happened, from the stage stamps (stable across retries)."""
    change = str(incident.change)
    if change == IncidentChange.RAISED:
        return raised_at(incident)
    stamp = incident.stages.get(change)
    if stamp is None:
        same = [s for key, s in incident.stages.items() if key.startswith(f"{change}:")]  # escalated:<step>:<round>
        candidates = same or list(incident.stages.values())
        stamp = max(candidates, key=lambda s: s.wall) if candidates else None
    return max(stamp.wall, raised_at(incident)) if stamp is not None else raised_at(incident)


def msg_type(incident: Incident) -> str:
    change = str(incident.change)
    if change == IncidentChange.DISMISSED:
        return "Cancel"
    if change in (IncidentChange.RAISED, IncidentChange.CONFIRMED):
        return "Alert"
    return "Update"


def first_alert(incident: Incident, settings: CapSettings) -> AlertRef:
    """The identity of the incident's first alert (what updates and cancels reference)."""
    identifier = f"{settings.identifier_prefix}{incident.id}"
    return AlertRef(settings.sender, identifier, cap_time(first_alert_at(incident), settings.timezone))


def alert_ref(incident: Incident, settings: CapSettings) -> AlertRef:
    """The identity of the message for this version of the incident."""
    if msg_type(incident) == "Alert":
        return first_alert(incident, settings)
    identifier = f"{settings.identifier_prefix}{incident.id}.{incident.revision}"
    return AlertRef(settings.sender, identifier, cap_time(version_at(incident), settings.timezone))


# -- content ---------------------------------------------------------------------------------------


def kind_settings(incident: Incident, settings: CapSettings) -> tuple[list[Category], str, KindSettings]:
    kind = str(incident.kind)
    own = settings.kinds.get(kind, KindSettings())
    default_category, default_event = KIND_TABLE.get(kind, (["Other"], kind.replace("_", " ").capitalize()))
    return (own.category or default_category), (own.event or default_event), own


def certainty(incident: Incident) -> str:
    status = IncidentStatus(incident.status)
    if status is IncidentStatus.DISMISSED:
        return "Unlikely"
    if status in (IncidentStatus.CONFIRMED, IncidentStatus.ACKNOWLEDGED, IncidentStatus.RESOLVED):
        return "Observed"
    return "Likely" if incident.confidence >= 0.5 else "Possible"  # new or verifying: p > ~50% is Likely


def location_label(location: Location | None, zone: str | None = None) -> str:
    parts: list[str] = []
    if location is not None:
        parts += [p for p in (location.site, location.building) if p]
        if location.floor:
            parts.append(f"floor {location.floor}")
        if location.room:
            parts.append(f"room {location.room}")
    if zone:
        parts.append(f"zone {zone}")
    return ", ".join(parts)


def incident_point(incident: Incident, settings: CapSettings) -> tuple[float, float] | None:
    """The incident's own coordinates when it has them (more precise), else the site's from the config."""
    location = incident.location
    if location is not None and location.latitude is not None and location.longitude is not None:
        return (location.latitude, location.longitude)
    return settings.area.point


def _coordinate(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") if value != 0 else "0"


def _headline(incident: Incident, event: str) -> str:
    text = incident.title or event
    change = str(incident.change)
    if change == IncidentChange.RESOLVED:
        text = f"All clear: {text}"
    elif change == IncidentChange.DISMISSED:
        text = f"Cancelled, false alarm: {text}"
    elif msg_type(incident) == "Update":
        text = f"Update ({change}): {text}"
    if incident.exercise:
        text = f"EXERCISE: {text}"
    return text if len(text) <= HEADLINE_MAX else text[: HEADLINE_MAX - 1] + "…"


def _description(incident: Incident, event: str, settings: CapSettings) -> str:
    lines: list[str] = []
    if incident.exercise:
        lines.append("THIS IS AN EXERCISE (A DRILL), NOT A REAL EMERGENCY.")
    lines.append(incident.title or event)
    where = location_label(incident.location, incident.zone)
    if where:
        lines.append(f"Where: {where}")
    if incident.camera_id:
        lines.append(f"Camera: {incident.camera_id}")
    lines.append(f"Status: {incident.status} (change: {incident.change}, revision {incident.revision})")
    lines.append(f"Detection confidence: {incident.confidence:.0%}")
    lines.append(f"Raised: {cap_time(raised_at(incident), settings.timezone)}")
    return "\n".join(lines)


def _note(incident: Incident) -> str | None:
    notes: list[str] = []
    if incident.exercise:
        notes.append("Exercise: a drill raised by campusguard; no emergency is taking place.")
    if str(incident.change) == IncidentChange.DISMISSED:
        notes.append("Cancelled: a person judged the incident a false alarm.")
    return " ".join(notes) or None


def _resources(incident: Incident, settings: CapSettings, snapshot: SnapshotFile | None) -> list[Any]:
    if settings.snapshot == "none":
        return []
    uri = settings.snapshot_uri.format(incident_id=incident.id) if settings.snapshot_uri else None
    embed = settings.snapshot == "embed" and snapshot is not None and len(snapshot.data) <= settings.max_embed_kb * 1024
    if snapshot is None and uri is None:
        return []
    if not embed and uri is None:
        return []  # too large to embed, and no link configured
    children: list[Any] = [E.resourceDesc("Camera snapshot of the incident"),
                           E.mimeType(snapshot.mime_type if snapshot else "image/jpeg")]  # fmt: skip
    if snapshot is not None:
        children.append(E.size(str(len(snapshot.data))))
    if uri is not None:
        children.append(E.uri(uri))
    if embed and snapshot is not None:
        children.append(E.derefUri(base64.b64encode(snapshot.data).decode("ascii")))
    if snapshot is not None:
        children.append(E.digest(snapshot.sha1))
    return [E.resource(*children)]


def _area(incident: Incident, settings: CapSettings) -> Any:
    area = settings.area
    description = area.description or location_label(incident.location, incident.zone) or "School campus"
    children: list[Any] = [E.areaDesc(description)]
    polygon = area.closed_polygon()
    if polygon:
        children.append(E.polygon(" ".join(f"{_coordinate(lat)},{_coordinate(lon)}" for lat, lon in polygon)))
    point = incident_point(incident, settings)
    own_point = incident.location is not None and incident.location.latitude is not None
    if point is not None and (own_point or not polygon):
        lat, lon = point
        children.append(E.circle(f"{_coordinate(lat)},{_coordinate(lon)} {area.radius_km:g}"))
    return E.area(*children)


def _parameters(incident: Incident) -> Iterable[Any]:
    values = {
        "campusguard:incident": incident.id,
        "campusguard:revision": str(incident.revision),
        "campusguard:change": str(incident.change),
        "campusguard:kind": str(incident.kind),
        "campusguard:status": str(incident.status),
        "campusguard:confidence": f"{incident.confidence:.2f}",
        "campusguard:camera": incident.camera_id,
        "campusguard:zone": incident.zone,
        "campusguard:rule": incident.rule,
    }
    for name, value in values.items():
        if value:
            yield E.parameter(E.valueName(name), E.value(value))


def build_alert(incident: Incident, settings: CapSettings, snapshot: SnapshotFile | None = None) -> bytes:
    """The CAP 1.2 alert for this version of ``incident`` (UTF-8 XML, with its declaration)."""
    kind_categories, event, own = kind_settings(incident, settings)
    message_type = msg_type(incident)
    ref = alert_ref(incident, settings)
    change = str(incident.change)
    severity = Severity(incident.severity)

    alert: list[Any] = [
        E.identifier(ref.identifier),
        E.sender(ref.sender),
        E.sent(ref.sent),
        E.status("Exercise" if incident.exercise else settings.status),
        E.msgType(message_type),
        E.source(incident.source or "campusguard"),
        E.scope(settings.scope),
    ]
    if settings.scope == "Restricted":
        alert.append(E.restriction(settings.restriction))
    if settings.scope == "Private":
        alert.append(E.addresses(" ".join(f'"{a}"' if " " in a else a for a in settings.addresses)))
    note = _note(incident)
    if note:
        alert.append(E.note(note))
    if message_type != "Alert":
        alert.append(E.references(str(first_alert(incident, settings))))
    alert.append(E.incidents(incident.id))

    instruction: str | None
    if change == IncidentChange.RESOLVED:
        responses, urgency, instruction = ["AllClear"], "Past", settings.all_clear_instruction
    elif change == IncidentChange.DISMISSED:
        responses, urgency, instruction = ["None"], "Past", "No action needed: the alert was a false alarm."
    else:
        responses, urgency, instruction = list(own.response), URGENCY[severity], own.instruction or settings.instruction

    info: list[Any] = [E.language(settings.language)]
    info += [E.category(c) for c in kind_categories]
    info.append(E.event(event))
    info += [E.responseType(r) for r in responses]
    info += [E.urgency(urgency), E.severity(SEVERITY[severity]), E.certainty(certainty(incident))]
    info.append(E.onset(cap_time(raised_at(incident), settings.timezone)))
    if settings.sender_name:
        info.append(E.senderName(settings.sender_name))
    info.append(E.headline(_headline(incident, event)))
    info.append(E.description(_description(incident, event, settings)))
    if instruction:
        info.append(E.instruction(instruction))
    if settings.web:
        info.append(E.web(settings.web.format(incident_id=incident.id)))
    if settings.contact:
        info.append(E.contact(settings.contact))
    info += list(_parameters(incident))
    info += _resources(incident, settings, snapshot)
    info.append(_area(incident, settings))
    alert.append(E.info(*info))
    document: bytes = etree.tostring(E.alert(*alert), xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return document


# -- snapshot --------------------------------------------------------------------------------------


def read_snapshot(incident: Incident, base_dir: Path, max_bytes: int = 20 * 1024 * 1024) -> SnapshotFile | None:
    """The incident's snapshot, when it exists and matches its recorded SHA-256 (blocking: use a thread).

    Never raises: a missing, oversized or altered file means no snapshot in the alert.
    """
    evidence = incident.evidence
    if not evidence.snapshot_path or not evidence.snapshot_sha256:
        return None
    path = Path(evidence.snapshot_path)
    path = path if path.is_absolute() else base_dir / path
    try:
        if path.stat().st_size > max_bytes:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != evidence.snapshot_sha256.lower():
        return None
    mime_type = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    return SnapshotFile(data, mime_type)


# -- acknowledgements ------------------------------------------------------------------------------


def safe_parser() -> Any:
    """No entities, no DTD fetching, no network: the answer comes from outside."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def check_ack(body: bytes, sent: AlertRef) -> None:
    """Raise :class:`AckError` unless ``body`` is a CAP 1.2 ``Ack`` that references ``sent``."""
    if not body.strip():
        raise AckError("the answer is empty")
    try:
        root = etree.fromstring(body, safe_parser())
    except etree.XMLSyntaxError as exc:
        raise AckError(f"the answer is not XML ({exc})") from None
    tag: str = root.tag
    if tag != f"{{{CAP12}}}alert":
        raise AckError(f"the answer is not a CAP 1.2 alert (its root is {tag!r})")

    def text(name: str) -> str:
        return (root.findtext(f"{{{CAP12}}}{name}") or "").strip()

    missing = [name for name in ("identifier", "sender", "sent", "msgType") if not text(name)]
    if missing:
        raise AckError(f"the acknowledgement lacks {', '.join(missing)}")
    kind = text("msgType")
    if kind == "Error":
        raise AckError(f"the target rejected the alert (msgType Error): {text('note') or 'no note given'}")
    if kind != "Ack":
        raise AckError(f"the answer is a CAP {kind!r}, not an Ack")
    acknowledged = {tuple(ref.split(",")[:2]) for ref in text("references").split()}
    if (sent.sender, sent.identifier) not in acknowledged:
        listed = text("references") or "nothing"
        raise AckError(f"the Ack references {listed}, not our alert {sent.identifier}")
