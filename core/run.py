"""``campusguard run``: start the core, wait for SIGINT/SIGTERM, stop in bounded time."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from pathlib import Path

from .config import ConfigInvalid, load_config
from .plugin_manager import PluginLoadError
from .runtime import Core

log = logging.getLogger("campusguard.run")


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    # These log whole SOAP bodies at DEBUG: credential holder names and WS-Security digests.
    for noisy in ("onvif", "zeep", "httpx", "httpcore", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, getattr(logging, level)))


async def serve(core: Core) -> int:
    """Start ``core``, wait for SIGINT or SIGTERM, stop it within ``shutdown_timeout``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await core.start()
    print("campusguard: running; press Ctrl-C to stop", file=sys.stderr, flush=True)
    await stop.wait()
    log.info("signal received; shutting down")
    timeout = core.config.settings.core.shutdown_timeout
    try:
        await asyncio.wait_for(core.stop(), timeout)
    except TimeoutError:
        log.error("shutdown took longer than %gs; exiting anyway", timeout)
        return 1
    lingering = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    if lingering:
        log.warning("tasks still running at exit: %s", ", ".join(t.get_name() for t in lingering))
    return 0


def run(path: Path) -> int:
    try:
        config = load_config(path, defer=True)
    except ConfigInvalid as exc:
        print(f"campusguard: configuration is invalid:\n{exc}", file=sys.stderr)
        return 1
    _configure_logging(config.settings.core.log_level)
    core = Core(config)
    try:
        core.prepare()
    except ConfigInvalid as exc:
        print(f"campusguard: configuration is invalid:\n{exc}", file=sys.stderr)
        return 1
    except PluginLoadError as exc:
        print(f"campusguard: {exc}", file=sys.stderr)
        return 1
    code = asyncio.run(serve(core))
    extra = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if extra:
        log.warning("threads still running at exit: %s", ", ".join(extra))
    return code
