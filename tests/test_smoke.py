from __future__ import annotations

from campusguard.sdk import Incident, Notifier, Registry, hookimpl
from campusguard.sdk.testing import make_incident


class Collector(Notifier):
    kind = "collector"
    received: list[Incident] = []

    async def notify(self, incident: Incident) -> None:
        Collector.received.append(incident)


class Plugin:
    @hookimpl
    def campusguard_register_notifiers(self, registry: Registry[Notifier]) -> None:
        registry.add(Collector)


async def test_incident_reaches_inline_notifier(campusguard_core, campusguard_no_lingering) -> None:
    async with campusguard_core("[notifiers.collector]\n", plugins={"inline": Plugin()}) as core:
        incident = await core.api.raise_incident(make_incident())
        await core.wait_delivered("collector", 1)
    assert [i.id for i in Collector.received] == [incident.id]
