"""Loading plugins: one pluggy manager per core, each plugin isolated, every failure reported.

Follows tox's and pytest's lessons: blocked plugins are never imported, each entry point loads in
its own try/except (pytest #1479), hooks are called one implementation at a time so a raising
plugin is attributed and unregistered instead of stopping everyone.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

import pluggy

from campusguard.sdk import ADAPTER_BASES, ENTRY_POINT_GROUP, PROJECT_NAME, hookspecs
from campusguard.sdk import components as c
from campusguard.sdk.registry import Registry

log = logging.getLogger("campusguard.plugins")

PluginStatus = Literal["loaded", "failed", "disabled"]


class PluginLoadError(Exception):
    """Raised in strict mode when any plugin fails to load or register."""


@dataclass
class PluginRecord:
    """What ``campusguard plugins`` shows for one plugin."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    status: PluginStatus
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "registered": self.registered,
        }


def new_registries() -> dict[str, Registry[Any]]:
    """One empty registry per registration hook, keyed as in ``REGISTRATION_HOOKS``."""
    return {
        "camera_sources": Registry("camera_sources", (c.CameraSource,)),
        "detectors": Registry("detectors", (c.Detector,)),
        "trackers": Registry("trackers", (c.Tracker,)),
        "analyzers": Registry("analyzers", (c.Analyzer,)),
        "notifiers": Registry("notifiers", (c.Notifier,)),
        "adapters": Registry("adapters", ADAPTER_BASES),
        "event_handlers": Registry("event_handlers", (c.EventHandler,)),
    }


def _short_error(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" ({frame.filename}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


class PluginHost:
    """Owns the pluggy manager of one core and the record of every plugin it tried."""

    def __init__(
        self,
        *,
        disabled: list[str] | None = None,
        strict: bool = False,
        group: str = ENTRY_POINT_GROUP,
    ) -> None:
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.group = group
        self.strict = strict
        self.disabled = set(disabled or [])
        self.records: dict[str, PluginRecord] = {}
        self.registries = new_registries()

    # -- loading ---------------------------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Import every plugin of the entry-point group except the disabled ones."""
        for ep in sorted(entry_points(group=self.group), key=lambda e: e.name):
            self._load_entry_point(ep)
        unknown = self.disabled - set(self.records)
        for name in sorted(unknown):
            log.warning("[plugins] disabled lists %r, but no installed plugin has that name", name)

    def _load_entry_point(self, ep: EntryPoint) -> None:
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        if ep.name in self.records:
            # Two distributions claim one name: keep the first, report the second under its own key.
            other = self.records[ep.name].distribution
            self._fail(
                PluginRecord(f"{ep.name} ({dist})", ep.value, dist, version, "failed"),
                f"entry-point name {ep.name!r} is already used by distribution {other!r}",
            )
            return
        if ep.name in self.disabled:
            self.pm.set_blocked(ep.name)  # never imported, and never registrable later
            self.records[ep.name] = PluginRecord(ep.name, ep.value, dist, version, "disabled")
            return
        try:
            plugin = ep.load()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            self._fail(
                PluginRecord(ep.name, ep.value, dist, version, "failed"),
                f"import failed: {_short_error(exc)}",
            )
            return
        self.register(plugin, ep.name, module=ep.value, distribution=dist, version=version)

    def register(
        self,
        plugin: object,
        name: str,
        *,
        module: str | None = None,
        distribution: str | None = None,
        version: str | None = None,
    ) -> bool:
        """Register one plugin object (a module or an instance). Returns whether it was accepted."""
        record = PluginRecord(
            name,
            module or str(getattr(plugin, "__name__", type(plugin).__name__)),
            distribution,
            version,
            "loaded",
        )
        if self.pm.is_blocked(name) or name in self.disabled:
            record.status = "disabled"
            self.records[name] = record
            return False
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except Exception as exc:
            if self.pm.get_plugin(name) is not None:
                self.pm.unregister(name=name)
            self._fail(record, f"invalid hooks: {exc}")
            return False
        self.records[name] = record
        return True

    def _fail(self, record: PluginRecord, error: str) -> None:
        record.status = "failed"
        record.error = error
        self.records[record.name] = record
        log.error("plugin %r failed: %s", record.name, error)

    # -- registration hooks ----------------------------------------------------------------------

    def collect_registrations(self) -> Mapping[str, Registry[Any]]:
        """Call every registration hook, one implementation at a time, attributing each result."""
        for hook_name, registry_name in hookspecs.REGISTRATION_HOOKS.items():
            registry = self.registries[registry_name]
            hook = getattr(self.pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                plugin_name = impl.plugin_name
                record = self.records.get(plugin_name)
                if record is None or record.status != "loaded":
                    continue
                registry.current_plugin = plugin_name
                before = set(registry.kinds())
                try:
                    result = impl.function(**{arg: registry for arg in impl.argnames})
                    if inspect.isawaitable(result):
                        _close_awaitable(result)
                        raise TypeError(f"{hook_name} must be synchronous (no I/O); it returned an awaitable")
                except Exception as exc:
                    self._unregister_failed(plugin_name, f"{hook_name} raised {_short_error(exc)}")
                    continue
                added = sorted(set(registry.kinds()) - before)
                if added:
                    record.registered.setdefault(registry_name, []).extend(added)
        if self.strict:
            self.raise_if_failed()
        return self.registries

    def _unregister_failed(self, plugin_name: str, error: str) -> None:
        record = self.records[plugin_name]
        for registry in self.registries.values():
            registry.remove_plugin(plugin_name)
        record.registered = {}
        if self.pm.get_plugin(plugin_name) is not None:
            self.pm.unregister(name=plugin_name)
        self._fail(record, error)

    def failures(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status == "failed"]

    def raise_if_failed(self) -> None:
        failed = self.failures()
        if failed:
            lines = "\n".join(f"  {r.name}: {r.error}" for r in failed)
            raise PluginLoadError(f"strict mode: {len(failed)} plugin(s) failed:\n{lines}")

    # -- lifecycle hooks -------------------------------------------------------------------------

    async def call_lifecycle(self, hook_name: str, timeout: float, **kwargs: Any) -> None:
        """Await each implementation of an (optionally async) hook on its own, under ``timeout``.

        pluggy is synchronous and stops at the first exception, so the hook is never called
        through ``pm.hook``: a failing or hanging plugin is logged and the next one still runs.
        """
        hook = getattr(self.pm.hook, hook_name)
        errors = []
        for impl in hook.get_hookimpls():  # registration order (pluggy itself would call LIFO)
            args = {name: kwargs[name] for name in impl.argnames if name in kwargs}
            try:
                result = impl.function(**args)
                if inspect.isawaitable(result):
                    await asyncio.wait_for(_as_coroutine(result), timeout)
            except TimeoutError:
                errors.append(f"{impl.plugin_name}: {hook_name} took longer than {timeout:g}s")
            except Exception as exc:
                errors.append(f"{impl.plugin_name}: {hook_name} raised {_short_error(exc)}")
        for error in errors:
            log.error("%s", error)
        if errors and self.strict:
            raise PluginLoadError("strict mode: " + "; ".join(errors))


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable


def _close_awaitable(result: Any) -> None:
    close = getattr(result, "close", None)
    if callable(close):
        close()  # avoid "coroutine was never awaited" noise
