"""A real mosquitto broker on a free loopback port, and an aiomqtt subscriber that records what it sees.

The broker runs from a config file in the test's folder: one listener on 127.0.0.1, anonymous access
or a password file (made with ``mosquitto_passwd``), no persistence unless asked for. ``stop()`` and
``start()`` again reuse the same port, so a client can reconnect to "the same" broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiomqtt

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_certificates(folder: Path) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it; returns the CA file."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca, server = folder / "ca", folder / "server"

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", *key, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "1", "-subj", "/CN=test CA")
    openssl("req", *key, "-keyout", f"{server}.key", "-out", f"{server}.csr", "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509", "-req", "-in", f"{server}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-out", f"{server}.pem", "-days", "1", "-extfile", str(folder / "san.ext"),
    )  # fmt: skip
    return Path(f"{ca}.pem")


class Mosquitto:
    """``users`` turns anonymous access off; ``persistence`` keeps sessions across a restart."""

    host = "127.0.0.1"

    def __init__(
        self,
        folder: Path,
        *,
        users: dict[str, str] | None = None,
        persistence: bool = False,
        tls: bool = False,
        port: int | None = None,
    ) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.users = users
        self.persistence = persistence
        self.ca_file: Path | None = make_certificates(folder) if tls else None
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / "mosquitto.log"

    def _write_config(self) -> Path:
        # set_tcp_nodelay: as docs/mqtt.md recommends; mosquitto's default (Nagle on) delays ~2% of QoS-1
        # acknowledgements by the 40 ms delayed-ACK timer.
        lines = [
            f"listener {self.port} {self.host}",
            f"log_dest file {self.log}",
            "log_type all",
            "set_tcp_nodelay true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to its own user, who cannot read tmp_path
        if self.users is None:
            lines.append("allow_anonymous true")
        else:
            passwords = self.folder / "passwords"
            passwords.unlink(missing_ok=True)
            for i, (user, password) in enumerate(self.users.items()):
                flags = ["-b", "-c"] if i == 0 else ["-b"]
                subprocess.run([MOSQUITTO_PASSWD, *flags, str(passwords), user, password], check=True)
            passwords.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        if self.ca_file is not None:
            lines += [
                f"cafile {self.ca_file}",
                f"certfile {self.folder}/server.pem",
                f"keyfile {self.folder}/server.key",
            ]
        if self.persistence:
            lines += ["persistence true", f"persistence_location {self.folder}/"]
        else:
            lines.append("persistence false")
        config = self.folder / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout: float = 10.0) -> Mosquitto:
        config = self._write_config()
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while not self.accepts():
            if self.process.poll() is not None:
                _, errors = self.process.communicate()
                raise RuntimeError(f"mosquitto exited {self.process.returncode}: {errors.decode()} {self.log_text()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port} in {timeout:g}s")
            time.sleep(0.02)
        return self

    def accepts(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
            return True
        return False

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file then), SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if process.stderr is not None:
            process.stderr.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.stop()

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode()


class Subscriber:
    """Subscribes to ``topics`` (QoS 1) and records every message, in arrival order.

    With ``clean_session=False`` and a fixed ``identifier`` the broker queues messages while the
    subscriber is away; ``reconnect()`` picks them up.
    """

    def __init__(
        self,
        broker: Mosquitto,
        *topics: str,
        username: str | None = None,
        password: str | None = None,
        identifier: str | None = None,
        clean_session: bool = True,
    ) -> None:
        self.broker = broker
        self.topics = topics
        self.options: dict[str, Any] = {"username": username, "password": password, "identifier": identifier}
        if broker.ca_file is not None:
            self.options["tls_context"] = ssl.create_default_context(cafile=str(broker.ca_file))
        self.clean_session = clean_session
        self.received: list[Received] = []
        self._stack: contextlib.AsyncExitStack | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._marker = f"test-sync/{id(self)}"
        self._settled = asyncio.Event()

    async def connect(self) -> Subscriber:
        client = aiomqtt.Client(
            self.broker.host, self.broker.port, clean_session=self.clean_session, timeout=5, **self.options
        )
        self._stack = contextlib.AsyncExitStack()
        await self._stack.enter_async_context(client)
        for topic in (*self.topics, self._marker):
            await client.subscribe(topic, qos=1)
        self._client = client
        self._task = asyncio.create_task(self._collect(client), name="mqtt-test-subscriber")
        return self

    async def _collect(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # the broker went away: reconnect() resumes
            async for message in client.messages:
                if str(message.topic) == self._marker:
                    self._settled.set()
                    continue
                payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
                self.received.append(Received(str(message.topic), payload, bool(message.retain)))

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await stack.aclose()

    async def reconnect(self, timeout: float = 10.0) -> None:
        await self.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.connect()
                return
            except aiomqtt.MqttError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def settle(self, timeout: float = 5.0) -> None:
        """Return once everything the broker queued for us before now has arrived.

        The broker handles one client's packets in order: a marker published now reaches us after
        the retained messages of our subscriptions and after anything published before it.
        """
        assert self._client is not None, "not connected"
        self._settled.clear()
        await self._client.publish(self._marker, b"", qos=1)
        async with asyncio.timeout(timeout):
            await self._settled.wait()

    def on(self, topic: str) -> list[Received]:
        return [r for r in self.received if r.topic == topic]

    def last(self, topic: str) -> Received | None:
        found = self.on(topic)
        return found[-1] if found else None

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 5.0, what: str = "messages") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                seen = [(r.topic, r.payload[:80]) for r in self.received[-10:]]
                raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last seen: {seen}")
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> Subscriber:
        return await self.connect()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
