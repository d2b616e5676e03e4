"""Hook specifications of campusguard, in the order the core calls them.

Registration hooks are synchronous, do no I/O, and receive a typed
:class:`~campusguard.sdk.registry.Registry`: call ``registry.add(cls)`` for each component class.
Lifecycle hooks may be ``async def``; the core awaits each implementation on its own, under a
timeout, so one slow or failing plugin never holds up another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .markers import hookspec

if TYPE_CHECKING:
    from .components import (
        Analyzer,
        CameraSource,
        Component,
        Detector,
        EventHandler,
        Notifier,
        Tracker,
    )
    from .context import CoreAPI
    from .registry import Registry

# -------------------------------------------------------------------------------------------------
# Registration hooks: called once, right after the plugins are loaded.
# -------------------------------------------------------------------------------------------------


@hookspec
def campusguard_register_camera_sources(registry: Registry[CameraSource]) -> None:
    """Register camera-source classes (RTSP, file, HTTP snapshot, ...).

    :param registry: call ``registry.add(cls)`` with each
        :class:`~campusguard.sdk.CameraSource` subclass.

    .. versionadded:: 0.1
    """


@hookspec
def campusguard_register_detectors(registry: Registry[Detector]) -> None:
    """Register detector classes (motion, ONNX Runtime, TensorRT, pose, ...).

    :param registry: call ``registry.add(cls)`` with each
        :class:`~campusguard.sdk.Detector` subclass.

    .. versionadded:: 0.1
    """


@hookspec
def campusguard_register_trackers(registry: Registry[Tracker]) -> None:
    """Register tracker classes (ByteTrack, SORT, ...).

    :param registry: call ``registry.add(cls)`` with each
        :class:`~campusguard.sdk.Tracker` subclass.

    .. versionadded:: 0.1
    """


@hookspec
def campusguard_register_analyzers(registry: Registry[Analyzer]) -> None:
    """Register analyzer classes (zones, loitering, crowd, fall, fight, weapon confirmation, ...).

    :param registry: call ``registry.add(cls)`` with each
        :class:`~campusguard.sdk.Analyzer` subclass.

    .. versionadded:: 0.1
    """


@hookspec
def campusguard_register_notifiers(registry: Registry[Notifier]) -> None:
    """Register notifier classes (MQTT, webhook, email, Apprise, ...).

    :param registry: call ``registry.add(cls)`` with each
        :class:`~campusguard.sdk.Notifier` subclass.

    .. versionadded:: 0.1
    """


@hookspec
def campusguard_register_adapters(registry: Registry[Component]) -> None:
    """Register bridges to outside systems: access control, visitor management, dispatch.

    :param registry: call ``registry.add(cls)`` with each subclass of
        :class:`~campusguard.sdk.AccessControl`, :class:`~campusguard.sdk.VisitorSystem` or
        :class:`~campusguard.sdk.Dispatcher`; they are configured under ``[adapters.<name>]``.

    .. versionadded:: 0.1
    """


@hookspec
def campusguard_register_event_handlers(registry: Registry[EventHandler]) -> None:
    """Register handlers that react to bus messages.

    :param registry: call ``registry.add(cls)`` with each
        :class:`~campusguard.sdk.EventHandler` subclass. One instance per class runs while its
        plugin is enabled, subscribed to the class's ``topics``.

    .. versionadded:: 0.1
    """


# -------------------------------------------------------------------------------------------------
# Lifecycle hooks: may be ``async def``; awaited one implementation at a time, each under a timeout.
# -------------------------------------------------------------------------------------------------


@hookspec
def campusguard_startup(core: CoreAPI) -> Any:
    """Called once the store and bus are up and every configured component has been started.

    May be ``async def``. Exceptions and timeouts are logged against the plugin and do not stop the
    core (unless ``strict = true``).

    :param core: the running core: its bus, data folder and ``raise_incident``.

    .. versionadded:: 0.1
    """


@hookspec
def campusguard_shutdown(core: CoreAPI) -> Any:
    """Called once on shutdown, before components are stopped.

    May be ``async def``. Each implementation has a bounded time; shutdown never waits longer.

    :param core: the running core.

    .. versionadded:: 0.1
    """


REGISTRATION_HOOKS: dict[str, str] = {
    "campusguard_register_camera_sources": "camera_sources",
    "campusguard_register_detectors": "detectors",
    "campusguard_register_trackers": "trackers",
    "campusguard_register_analyzers": "analyzers",
    "campusguard_register_notifiers": "notifiers",
    "campusguard_register_adapters": "adapters",
    "campusguard_register_event_handlers": "event_handlers",
}
"""Each registration hook and the ``plugins.toml`` table its components are configured under."""

LIFECYCLE_HOOKS: tuple[str, ...] = ("campusguard_startup", "campusguard_shutdown")
