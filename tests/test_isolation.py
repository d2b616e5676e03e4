"""A plugin that raises, hangs or is slow degrades itself, never the core or another plugin."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from campusguard.sdk import AuthFailed, Incident, Notifier, NotReady, Registry, hookimpl
from campusguard.sdk.testing import make_incident


class Healthy(Notifier):
    kind = "healthy"
    received: ClassVar[list[tuple[str, float]]] = []

    async def notify(self, incident: Incident) -> None:
        Healthy.received.append((incident.id, time.monotonic()))


class Hangs(Notifier):
    kind = "hangs"

    async def notify(self, incident: Incident) -> None:
        await asyncio.Event().wait()  # never returns


class Raises(Notifier):
    kind = "raises"
    calls = 0

    async def notify(self, incident: Incident) -> None:
        Raises.calls += 1
        raise RuntimeError("vendor API is broken")


class NotifierPlugin:
    @hookimpl
    def campusguard_register_notifiers(self, registry: Registry[Notifier]) -> None:
        registry.add(Healthy)
        registry.add(Hangs)
        registry.add(Raises)


CONFIG = """
[delivery]
timeout = 2.0
retry_initial = 0.05
retry_max = 0.2

[notifiers.hangs]
[notifiers.raises]
[notifiers.healthy]
"""


async def test_hanging_and_raising_notifiers_do_not_delay_a_healthy_one(campusguard_core) -> None:
    Healthy.received.clear()
    count = 25
    async with campusguard_core(CONFIG, plugins={"notifiers": NotifierPlugin()}) as core:
        raised_at: dict[str, float] = {}
        for _ in range(count):
            incident = await core.api.raise_incident(make_incident())
            raised_at[incident.id] = time.monotonic()
        await core.wait_delivered("healthy", count, timeout=1.5)  # well under the 2 s hang timeout
        deadline = time.monotonic() + 5
        while Raises.calls < 2 and time.monotonic() < deadline:  # its first retry comes after ~0.05-0.2 s
            await asyncio.sleep(0.02)
        counts = await core.core.store.delivery_counts()
        assert core.state("notifiers", "hangs") == "loaded"
    latencies = [at - raised_at[incident_id] for incident_id, at in Healthy.received]
    assert sorted(i for i, _ in Healthy.received) == sorted(raised_at)
    assert max(latencies) < 1.0, f"healthy notifier was delayed: worst {max(latencies):.3f}s"
    assert Raises.calls >= 2  # retried, not given up
    assert counts["raises"] == {"pending": count}
    assert counts["hangs"] == {"pending": count}


class NeverReady(Notifier):
    kind = "never_ready"
    attempts = 0

    async def start(self) -> None:
        NeverReady.attempts += 1
        raise NotReady("device is booting")


class BecomesReady(Notifier):
    kind = "becomes_ready"
    attempts = 0
    received: ClassVar[list[str]] = []

    async def start(self) -> None:
        BecomesReady.attempts += 1
        if BecomesReady.attempts < 3:
            raise NotReady("not yet")

    async def notify(self, incident: Incident) -> None:
        BecomesReady.received.append(incident.id)


class BadCredentials(Notifier):
    kind = "bad_credentials"

    async def start(self) -> None:
        raise AuthFailed("401 from vendor API for user 'campusguard'")


class Crashes(Notifier):
    kind = "crashes"

    async def start(self) -> None:
        raise ValueError("bug in plugin")


class SlowStart(Notifier):
    kind = "slow_start"

    async def start(self) -> None:
        await asyncio.sleep(60)


class RevokedLater(Notifier):
    kind = "revoked_later"

    async def notify(self, incident: Incident) -> None:
        raise AuthFailed("token revoked")


class SupervisedPlugin:
    @hookimpl
    def campusguard_register_notifiers(self, registry: Registry[Notifier]) -> None:
        for cls in (NeverReady, BecomesReady, BadCredentials, Crashes, SlowStart, RevokedLater, Healthy):
            registry.add(cls)


SUPERVISED = """
[core]
retry_initial = 0.05
retry_max = 0.1
start_timeout = 0.5
stop_timeout = 0.5

[notifiers.never_ready]
[notifiers.becomes_ready]
[notifiers.bad_credentials]
[notifiers.crashes]
[notifiers.slow_start]
[notifiers.revoked_later]
[notifiers.healthy]
"""


async def test_supervisor_states_and_retries(campusguard_core, campusguard_no_lingering) -> None:
    NeverReady.attempts = BecomesReady.attempts = 0
    Healthy.received.clear()
    BecomesReady.received.clear()
    async with campusguard_core(SUPERVISED, plugins={"supervised": SupervisedPlugin()}) as core:
        incident = await core.api.raise_incident(make_incident())
        await core.wait_delivered("healthy", 1)
        await core.wait_delivered("becomes_ready", 1, timeout=3)
        deadline = time.monotonic() + 3
        while core.state("notifiers", "revoked_later") != "failed" and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert core.state("notifiers", "never_ready") == "setup_retry"
        assert "device is booting" in (core.error("notifiers", "never_ready") or "")
        assert NeverReady.attempts >= 2
        assert core.state("notifiers", "becomes_ready") == "loaded"
        assert core.state("notifiers", "bad_credentials") == "failed"
        assert "authentication failed: 401" in (core.error("notifiers", "bad_credentials") or "")
        assert core.state("notifiers", "crashes") == "setup_error"
        assert "ValueError: bug in plugin" in (core.error("notifiers", "crashes") or "")
        assert core.state("notifiers", "slow_start") == "setup_retry"
        assert "longer than 0.5s" in (core.error("notifiers", "slow_start") or "")
        assert core.state("notifiers", "revoked_later") == "failed"
        assert "token revoked" in (core.error("notifiers", "revoked_later") or "")
        counts = await core.core.store.delivery_counts()
        assert counts["revoked_later"] == {"pending": 1}  # kept for when credentials are fixed
    assert Healthy.received[0][0] == incident.id
    assert BecomesReady.received == [incident.id]
    assert core.state("notifiers", "healthy") == "stopped"


class LifecyclePlugin:
    def __init__(self, name: str, behaviour: str, log: list[str]) -> None:
        self.name, self.behaviour, self.log = name, behaviour, log

    @hookimpl
    async def campusguard_startup(self, core: object) -> None:
        if self.behaviour == "raise":
            raise RuntimeError("startup bug")
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        self.log.append(f"{self.name}:startup")

    @hookimpl
    def campusguard_shutdown(self, core: object) -> None:
        self.log.append(f"{self.name}:shutdown")


async def test_lifecycle_hooks_are_isolated_and_bounded(campusguard_core, campusguard_no_lingering) -> None:
    log: list[str] = []
    plugins = {
        "raises": LifecyclePlugin("raises", "raise", log),
        "hangs": LifecyclePlugin("hangs", "hang", log),
        "good": LifecyclePlugin("good", "ok", log),
    }
    started = time.monotonic()
    async with campusguard_core("[core]\nhook_timeout = 0.3\n", plugins=plugins) as core:
        assert core.api.data_dir.exists()
    assert time.monotonic() - started < 2.0
    assert "good:startup" in log
    assert {"raises:shutdown", "hangs:shutdown", "good:shutdown"} <= set(log)


class CountingConfig(Notifier):
    kind = "needs_value"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        value: int


def test_registry_rejects_a_config_that_accepts_unknown_keys() -> None:
    import pytest

    from campusguard.core.plugin_manager import new_registries

    class Loose(Notifier):
        kind = "loose"

        class Config(BaseModel):
            pass

    registry = new_registries()["notifiers"]
    with pytest.raises(TypeError, match="must reject unknown keys"):
        registry.add(Loose)
    with pytest.raises(TypeError, match="subclasses of Notifier"):
        registry.add(Healthy.__mro__[-1])  # type: ignore[arg-type]
    registry.add(CountingConfig)
    assert registry.kinds() == ["needs_value"]
