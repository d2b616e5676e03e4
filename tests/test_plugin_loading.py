"""Plugins load one by one: a broken one is reported and unregistered, the rest run."""

from __future__ import annotations

import pytest

from campusguard.core.plugin_manager import PluginHost, PluginLoadError
from campusguard.sdk import Incident, Notifier, Registry, hookimpl
from campusguard.sdk.testing import make_incident


class Good(Notifier):
    kind = "good"
    received: list[str] = []

    async def notify(self, incident: Incident) -> None:
        Good.received.append(incident.id)


class GoodPlugin:
    @hookimpl
    def campusguard_register_notifiers(self, registry: Registry[Notifier]) -> None:
        registry.add(Good)


class Other(Notifier):
    kind = "other"


class RaisesAfterRegistering:
    """Registers a class, then raises: what it registered must be removed too."""

    @hookimpl
    def campusguard_register_notifiers(self, registry: Registry[Notifier]) -> None:
        registry.add(Other)
        raise RuntimeError("half-done registration")


class UnknownHook:
    @hookimpl
    def campusguard_register_notifierz(self, registry: object) -> None:  # typo: no such hook
        pass


class WrongArgument:
    @hookimpl
    def campusguard_register_notifiers(self, registri: object) -> None:  # typo in the argument
        pass


class AsyncRegistration:
    @hookimpl
    async def campusguard_register_notifiers(self, registry: Registry[Notifier]) -> None:
        registry.add(Other)


class DuplicateKind:
    @hookimpl
    def campusguard_register_notifiers(self, registry: Registry[Notifier]) -> None:
        class Impostor(Notifier):
            kind = "good"

        registry.add(Impostor)


def host_with(**plugins: object) -> PluginHost:
    host = PluginHost()
    for name, plugin in plugins.items():
        host.register(plugin, name)
    host.collect_registrations()
    return host


def test_each_kind_of_broken_plugin_is_reported_and_the_good_one_kept() -> None:
    host = host_with(
        good=GoodPlugin(),
        raises=RaisesAfterRegistering(),
        unknown_hook=UnknownHook(),
        wrong_arg=WrongArgument(),
        is_async=AsyncRegistration(),
        duplicate=DuplicateKind(),
    )
    status = {name: (r.status, r.error or "") for name, r in host.records.items()}
    assert status["good"] == ("loaded", "")
    assert status["raises"][0] == "failed" and "half-done registration" in status["raises"][1]
    assert status["unknown_hook"][0] == "failed" and "campusguard_register_notifierz" in status["unknown_hook"][1]
    assert status["wrong_arg"][0] == "failed" and "registri" in status["wrong_arg"][1]
    assert status["is_async"][0] == "failed" and "must be synchronous" in status["is_async"][1]
    assert status["duplicate"][0] == "failed" and "already registered by plugin 'good'" in status["duplicate"][1]
    assert host.registries["notifiers"].kinds() == ["good"]
    assert host.records["good"].registered == {"notifiers": ["good"]}
    assert host.pm.get_plugin("raises") is None


def test_strict_mode_makes_any_failure_fatal() -> None:
    host = PluginHost(strict=True)
    host.register(GoodPlugin(), "good")
    host.register(RaisesAfterRegistering(), "raises")
    with pytest.raises(PluginLoadError, match="raises: campusguard_register_notifiers raised RuntimeError"):
        host.collect_registrations()


def test_disabled_plugin_is_not_registered() -> None:
    host = PluginHost(disabled=["good"])
    assert host.register(GoodPlugin(), "good") is False
    host.collect_registrations()
    assert host.records["good"].status == "disabled"
    assert host.registries["notifiers"].kinds() == []


def test_one_plugin_manager_per_core() -> None:
    assert PluginHost().pm is not PluginHost().pm


async def test_core_runs_with_a_broken_plugin_beside_a_good_one(campusguard_core) -> None:
    Good.received.clear()
    plugins = {"good": GoodPlugin(), "raises": RaisesAfterRegistering()}
    async with campusguard_core("[notifiers.good]\n", plugins=plugins) as core:
        incident = await core.api.raise_incident(make_incident())
        await core.wait_delivered("good", 1)
        assert core.plugin_status("raises")[0] == "failed"
    assert Good.received == [incident.id]


async def test_config_naming_a_kind_of_a_failed_plugin_is_an_error(campusguard_core) -> None:
    from campusguard.core.config import ConfigInvalid

    with pytest.raises(ConfigInvalid, match=r"\[notifiers.other\] unknown notifiers type 'other'; known types: good"):
        async with campusguard_core(
            "[notifiers.other]\n", plugins={"good": GoodPlugin(), "r": RaisesAfterRegistering()}
        ):
            pass
