"""Home Assistant MQTT discovery: one device per camera, with binary sensors for what it watches.

Keys checked against Home Assistant's MQTT integration (``homeassistant/components/mqtt/schemas.py``
device and origin schemas, ``binary_sensor.py`` and ``BinarySensorDeviceClass``): ``default_entity_id``
replaces ``object_id``, deprecated in 2025.10; older releases drop keys they do not know.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from campusguard.sdk import IncidentKind

from .mqtt_topics import OFF, OFFLINE, ON, ONLINE, Topics

K = IncidentKind
# The kinds a camera gets a binary sensor for, with Home Assistant's device class for each:
# safety = "on means unsafe", problem = "on means a problem", tamper = "on means tampering".
SENSOR_KINDS: dict[str, tuple[str, str]] = {
    K.WEAPON.value: ("Weapon", "safety"),
    K.FIGHT.value: ("Fight", "safety"),
    K.MEDICAL_FALL.value: ("Person down", "safety"),
    K.INTRUSION.value: ("Intrusion", "safety"),
    K.LOITERING.value: ("Loitering", "problem"),
    K.CROWD.value: ("Crowd", "problem"),
    K.CAMERA_TAMPER.value: ("Tampering", "tamper"),
}

_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")


def slug(value: str) -> str:
    """An id Home Assistant accepts in discovery topics and entity ids: ``[a-z0-9_-]``.

    A name that had to change gets a short hash of itself, so ``Gym 1`` and ``gym_1`` stay apart.
    """
    cleaned = _NOT_ID.sub("_", value).strip("_").lower() or "camera"
    if cleaned == value:
        return cleaned
    return f"{cleaned}_{hashlib.sha1(value.encode()).hexdigest()[:6]}"


@dataclass(frozen=True)
class Discovery:
    topics: Topics
    discovery_prefix: str
    node_id: str
    sw_version: str

    def device(self, camera: str) -> dict[str, Any]:
        return {
            "identifiers": [f"{self.node_id}_{slug(camera)}"],
            "name": f"campusguard {camera}",
            "manufacturer": "campusguard",
            "model": "camera",
            "sw_version": self.sw_version,
        }

    def _entity(self, camera: str, key: str, name: str, device_class: str, state_topic: str) -> dict[str, Any]:
        unique_id = f"{self.node_id}_{slug(camera)}_{key}"
        return {
            "name": name,
            "unique_id": unique_id,
            "default_entity_id": f"binary_sensor.{unique_id}",
            "state_topic": state_topic,
            "device_class": device_class,
            "availability_topic": self.topics.status,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "qos": 1,
            "device": self.device(camera),
            "origin": {"name": "campusguard", "sw_version": self.sw_version},
        }

    def config_topic(self, camera: str, key: str) -> str:
        return f"{self.discovery_prefix}/binary_sensor/{self.node_id}/{slug(camera)}_{key}/config"

    def configs(self, cameras: list[str]) -> list[tuple[str, dict[str, Any]]]:
        """Every (config topic, payload) to publish retained: a connectivity sensor and one per kind, per camera."""
        out: list[tuple[str, dict[str, Any]]] = []
        for camera in cameras:
            connectivity = self._entity(
                camera, "connectivity", "Connectivity", "connectivity", self.topics.availability(camera)
            )
            connectivity.update(payload_on=ONLINE, payload_off=OFFLINE)
            out.append((self.config_topic(camera, "connectivity"), connectivity))
            for kind, (name, device_class) in SENSOR_KINDS.items():
                sensor = self._entity(camera, kind, name, device_class, self.topics.state(camera, kind))
                sensor.update(
                    payload_on=ON, payload_off=OFF, json_attributes_topic=self.topics.attributes(camera, kind)
                )
                out.append((self.config_topic(camera, kind), sensor))
        return out
