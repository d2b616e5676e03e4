"""ONVIF notification messages (as onvif-zeep-async parses them) turned into :class:`CameraEvent`.

A ``wsnt:NotificationMessage`` carries a topic (``tns1:RuleEngine/CellMotionDetector/Motion``)
and a ``tt:Message`` with ``UtcTime``, ``PropertyOperation``, and ``Source``/``Data`` lists of
SimpleItems. zeep returns the message as an object when it knows the schema, or as a raw XML
element when it does not (vendor extensions); both are read here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lxml import etree  # type: ignore[import-untyped]  # zeep's XML library: it hands out lxml elements

from campusguard.sdk import CameraEvent, CameraEventKind

# Data items that carry a boolean state, in the order they are looked for.
_STATE_ITEMS = ("IsMotion", "IsTamper", "State", "LogicalState", "IsInside", "IsActive", "Value")
_TRUE = frozenset({"true", "1", "active", "on"})
_FALSE = frozenset({"false", "0", "inactive", "off"})
_TAMPER_WORDS = ("tamper", "globalscenechange", "imagetooblurry", "imagetoodark", "imagetoobright", "signalloss")


def classify(topic: str) -> CameraEventKind:
    """What kind of event a topic is, by the words the ONVIF topic tree and vendors use."""
    path = "/".join(part.rpartition(":")[2] for part in topic.split("/")).casefold()
    if any(word in path for word in _TAMPER_WORDS):
        return CameraEventKind.TAMPER
    if "motion" in path or "vmd" in path.split("/"):  # Axis calls its motion detection VMD
        return CameraEventKind.MOTION
    if "digitalinput" in path or path.startswith("device/trigger"):
        return CameraEventKind.DIGITAL_INPUT
    if path.startswith("ruleengine/") or "analytics" in path:
        return CameraEventKind.ANALYTICS
    return CameraEventKind.OTHER


def state_of(data: dict[str, str]) -> bool | None:
    for name in _STATE_ITEMS:
        value = data.get(name)
        if value is not None:
            word = value.strip().casefold()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
    return None


def to_camera_event(camera_id: str, notification: Any) -> CameraEvent:
    """One ``wsnt:NotificationMessage`` as a :class:`CameraEvent`. Raises ``ValueError`` if it has no topic."""
    topic = _topic(notification)
    if not topic:
        raise ValueError("notification without a topic")
    message: Any = getattr(getattr(notification, "Message", None), "_value_1", None)
    if _is_element(message):
        source, data = _element_items(message, "Source"), _element_items(message, "Data")
        operation, when = message.get("PropertyOperation"), _time(message.get("UtcTime"))
    else:
        source, data = _object_items(getattr(message, "Source", None)), _object_items(getattr(message, "Data", None))
        operation, when = getattr(message, "PropertyOperation", None), _time(getattr(message, "UtcTime", None))
    return CameraEvent(
        camera_id=camera_id,
        topic=topic,
        kind=classify(topic),
        source=source,
        data=data,
        property_operation=str(operation) if operation else None,
        active=state_of(data),
        utc_time=when,
    )


def _topic(notification: Any) -> str:
    topic = getattr(notification, "Topic", None)
    value: Any = getattr(topic, "_value_1", topic)
    if _is_element(value):
        value = value.text
    return " ".join(str(value).split()) if value is not None else ""


def _is_element(value: Any) -> bool:
    # Raw lxml elements: zeep hands these over for content it has no schema for.
    return hasattr(value, "tag") and hasattr(value, "iterchildren")


def _object_items(container: Any) -> dict[str, str]:
    items: dict[str, str] = {}
    for item in getattr(container, "SimpleItem", None) or []:
        if getattr(item, "Name", None) is not None:
            items[str(item.Name)] = "" if item.Value is None else str(item.Value)
    for item in getattr(container, "ElementItem", None) or []:
        if getattr(item, "Name", None) is not None:
            items[str(item.Name)] = _element_text(getattr(item, "_value_1", None))
    return items


def _element_items(message: Any, part: str) -> dict[str, str]:
    items: dict[str, str] = {}
    for child in message.iterchildren():
        if _local(child.tag) != part:
            continue
        for item in child.iterchildren():
            name = item.get("Name")
            if name is None:
                continue
            if _local(item.tag) == "SimpleItem":
                items[name] = item.get("Value") or ""
            elif _local(item.tag) == "ElementItem":
                items[name] = _element_text(next(item.iterchildren(), None))
    return items


def _element_text(element: Any) -> str:
    if element is None:
        return ""
    if _is_element(element):
        return str(etree.tostring(element, encoding="unicode"))
    return str(element)


def _local(tag: Any) -> str:
    return str(tag).rpartition("}")[2]


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
