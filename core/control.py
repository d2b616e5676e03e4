"""The local control socket: the CLI asks the running core to act, and the OS vouches for who asks.

A Unix socket in the data folder, readable and writable by the core's own user only (0600). The
peer's uid comes from the kernel (``SO_PEERCRED``), so "authenticated" means the operating system
authenticated that person's login; ``--by`` adds the name they go by on the audit log.
One JSON request per line, one JSON answer per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import pwd
import socket
import struct
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("campusguard.control")

SOCKET_NAME = "control.sock"
MAX_REQUEST = 64 * 1024

Handler = Callable[[dict[str, Any], str], Awaitable[dict[str, Any]]]


def control_path(data_dir: Path) -> Path:
    """The core's socket: in its data folder, unless that path is too long for a Unix socket (108 bytes)."""
    path = data_dir.resolve() / SOCKET_NAME
    if len(str(path).encode()) <= 100:
        return path
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"campusguard-{digest}.sock"


class ControlError(Exception):
    """A request the core refused, with the reason to show the person."""


def peer_user(writer: asyncio.StreamWriter) -> str:
    sock = writer.get_extra_info("socket")
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


class ControlServer:
    def __init__(self, path: Path, handlers: dict[str, Handler]) -> None:
        self.path = path
        self.handlers = handlers
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by a core that was killed
        old_umask = os.umask(0o177)  # created 0600: no window in which others could connect
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_REQUEST)
        finally:
            os.umask(old_umask)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            user = peer_user(writer)
            line = await reader.readline()
            answer = await self._answer(line, user)
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            log.warning("control: a request failed: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, line: bytes, user: str) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("op"), str):
                raise ControlError("a request is a JSON object with an 'op'")
            handler = self.handlers.get(request["op"])
            if handler is None:
                raise ControlError(f"unknown op {request['op']!r}; ops: {', '.join(sorted(self.handlers))}")
            return {"ok": True, **await handler(request, user)}
        except json.JSONDecodeError as exc:
            return {"ok": False, "error": f"not JSON: {exc}"}
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a bug in a handler must not take the core's socket down
            log.exception("control: %s failed", line[:200])
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


async def request(path: Path, payload: dict[str, Any], timeout: float = 30.0) -> dict[str, Any] | None:
    """Ask the core at ``path``; None when no core is listening there."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path), limit=MAX_REQUEST), 2.0)
    except (FileNotFoundError, ConnectionRefusedError, TimeoutError):
        return None
    try:
        writer.write(json.dumps(payload).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    answer: dict[str, Any] = json.loads(line)
    return answer
