"""How the test kit reaches a runtime without ``sdk`` importing ``core``.

The runtime registers a :class:`CoreHarness` under the ``campusguard.harness`` entry-point group;
the test kit looks it up when a test asks for a core. Another runtime (a district hub, say) can
register its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from campusguard.sdk.components import Component
from campusguard.sdk.context import CoreAPI

HARNESS_GROUP = "campusguard.harness"


class RunningCore(Protocol):
    """A started in-process core, as a test sees it."""

    @property
    def api(self) -> CoreAPI: ...

    def component(self, table: str, name: str) -> Component: ...

    def state(self, table: str, name: str) -> str:
        """``loaded``, ``setup_retry``, ``setup_error``, ``failed`` or ``stopped``."""
        ...

    def error(self, table: str, name: str) -> str | None: ...

    def plugin_status(self, name: str) -> tuple[str, str | None]:
        """The load status of a plugin and its error, as ``campusguard plugins`` shows them."""
        ...

    async def wait_delivered(self, target: str, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` deliveries to ``target`` are done; raise ``TimeoutError`` otherwise."""
        ...


class CoreHarness(Protocol):
    def __call__(
        self,
        config: str,
        *,
        data_dir: Path,
        plugins: Mapping[str, object] = ...,
        entry_points: bool = ...,
    ) -> AbstractAsyncContextManager[RunningCore]: ...


def load_harness(name: str = "default") -> CoreHarness:
    """The runtime registered under ``name`` in the ``campusguard.harness`` group."""
    for ep in entry_points(group=HARNESS_GROUP):
        if ep.name == name:
            harness: CoreHarness = ep.load()
            return harness
    raise LookupError(f"no campusguard runtime registered as {name!r} in entry-point group {HARNESS_GROUP!r}")
