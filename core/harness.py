"""The embedded runtime as the SDK's test kit drives it (entry point ``campusguard.harness``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from campusguard.sdk import Component

from .config import parse_config_text
from .plugin_manager import PluginHost
from .runtime import Core


class RunningEmbeddedCore:
    def __init__(self, core: Core) -> None:
        self.core = core

    @property
    def api(self) -> Core:
        return self.core

    def component(self, table: str, name: str) -> Component:
        return self.core.supervisor.components[f"{table}.{name}"].instance

    def state(self, table: str, name: str) -> str:
        return str(self.core.supervisor.components[f"{table}.{name}"].state)

    def error(self, table: str, name: str) -> str | None:
        return self.core.supervisor.components[f"{table}.{name}"].error

    def plugin_status(self, name: str) -> tuple[str, str | None]:
        record = self.core.host.records[name]
        return record.status, record.error

    async def wait_delivered(self, target: str, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            counts = await self.core.store.delivery_counts()
            done = counts.get(target, {}).get("delivered", 0)
            if done >= count:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target}: {done} of {count} deliveries after {timeout:g}s")
            await asyncio.sleep(0.01)


@asynccontextmanager
async def EmbeddedHarness(
    config: str,
    *,
    data_dir: Path,
    plugins: Mapping[str, object] = {},
    entry_points: bool = False,
) -> AsyncIterator[RunningEmbeddedCore]:
    loaded = parse_config_text(config, display="<test config>", base_dir=data_dir)
    loaded.settings.core.data_dir = data_dir
    settings = loaded.settings.plugins
    host = PluginHost(disabled=settings.disabled, strict=settings.strict)
    if entry_points:
        host.load_entry_points()
    for name, plugin in plugins.items():
        host.register(plugin, name, module=getattr(plugin, "__module__", None))
    core = Core(loaded, host=host, load_entry_points=False)
    core.prepare()
    async with core:
        yield RunningEmbeddedCore(core)
