"""Two network namespaces joined by a veth pair, so WS-Discovery multicast never touches a real interface.

    with veth_link() as link:
        camera = PeerProcess(link.exec_args(link.ns_a, [python, "ipycam_peer.py", "--host", link.ip_a])).start()

Each namespace has only ``lo`` and its end of the veth, with a route for 224.0.0.0/4 on the veth
(without it multicast has no way out). Names are unique per run; the namespaces (and with them the
veth) are deleted on the way out, even when the test fails. Needs root and ``ip netns``: the tests
that use this fail, rather than skip, without them (CI runs as root).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

SUBNET = "10.77.0"


def require_netns() -> None:
    """Fail the test with a clear message when namespaces cannot be made here."""
    if shutil.which("ip") is None:
        pytest.fail("this test needs iproute2's `ip` (Debian: apt-get install iproute2)")
    if os.geteuid() != 0:
        pytest.fail("this test needs root to create network namespaces (`ip netns add`); CI runs as root")
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"`ip netns` does not work here: {probe.stderr.strip()}")


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


@dataclass(frozen=True)
class VethLink:
    ns_a: str
    ns_b: str
    dev_a: str
    dev_b: str
    ip_a: str
    ip_b: str

    @staticmethod
    def exec_args(namespace: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", namespace, *argv]


@contextmanager
def veth_link() -> Iterator[VethLink]:
    require_netns()
    tag = secrets.token_hex(3)
    link = VethLink(f"cg-{tag}-a", f"cg-{tag}-b", f"cg{tag}a", f"cg{tag}b", f"{SUBNET}.1", f"{SUBNET}.2")
    try:
        _ip("netns", "add", link.ns_a)
        _ip("netns", "add", link.ns_b)
        # Created straight inside the namespaces: the host's own namespace never sees the veth.
        _ip(
            "link",
            "add",
            link.dev_a,
            "netns",
            link.ns_a,
            "type",
            "veth",
            "peer",
            "name",
            link.dev_b,
            "netns",
            link.ns_b,
        )
        for ns, dev, address in ((link.ns_a, link.dev_a, link.ip_a), (link.ns_b, link.dev_b, link.ip_b)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev)
        yield link
    finally:
        for ns in (link.ns_a, link.ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
