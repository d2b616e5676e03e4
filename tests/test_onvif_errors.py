"""Bad input: wrong credentials, unreachable cameras, broken answers, clocks that are off.

Each gives an error that names the camera and says what is wrong, within a bounded time, and
never a raw zeep traceback.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from peers.netns import veth_link
from peers.onvif_events_sim import EventsSimulator
from peers.process import PeerProcess, ipycam_argv

from campusguard.adapters.onvif import ClockSkewError, DeviceFault, MalformedResponse
from campusguard.adapters.onvif.client import OnvifTarget, connect, connected
from campusguard.adapters.onvif.clock import format_duration
from campusguard.adapters.onvif.ptz import list_presets
from campusguard.sdk import AuthFailed, NotReady

SOAP = "http://www.w3.org/2003/05/soap-envelope"


@pytest.fixture(scope="module")
def ipycam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    peer = PeerProcess(ipycam_argv("127.0.0.1"), cwd=tmp_path_factory.mktemp("ipycam")).start()
    try:
        yield peer.port
    finally:
        peer.stop()


async def test_wrong_credentials_name_the_camera(ipycam: int) -> None:
    with pytest.raises(AuthFailed) as failure:
        await connect(OnvifTarget("gym", "127.0.0.1", ipycam, "admin", "wrong", timeout=5))
    assert str(failure.value) == (
        "camera 'gym': authentication failed: the camera rejected user 'admin' (GetServices); "
        "check the username and password"
    )
    assert not isinstance(failure.value, ClockSkewError)


async def test_nothing_listening_is_not_ready_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(NotReady, match=r"camera 'gym' cannot be reached at .*: connection refused"):
        await connect(OnvifTarget("gym", "127.0.0.1", 1, "admin", "x", timeout=5))
    assert time.monotonic() - started < 2


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never answers: a camera whose web server hangs."""
    hold: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hold.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in hold:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_camera_that_never_answers_times_out(silent_server: int) -> None:
    started = time.monotonic()
    with pytest.raises(NotReady, match=r"camera 'gym' did not answer at .* within 1 s"):
        await connect(OnvifTarget("gym", "127.0.0.1", silent_server, "admin", "x", timeout=1))
    assert time.monotonic() - started < 3


def test_an_unplugged_camera_is_not_ready_within_the_timeout() -> None:
    """An address on the camera network that nobody holds: ARP gets no answer, no packet leaves."""
    code = (
        "import asyncio, json\n"
        "from campusguard.adapters.onvif.client import OnvifTarget, connect\n"
        "async def main():\n"
        "    try:\n"
        "        await connect(OnvifTarget('annex', '10.77.0.99', 80, 'admin', 'x', timeout=1.5))\n"
        "    except Exception as exc:\n"
        "        print(json.dumps([type(exc).__name__, str(exc)]))\n"
        "asyncio.run(main())\n"
    )
    with veth_link() as link:
        started = time.monotonic()
        run = subprocess.run(
            link.exec_args(link.ns_b, [sys.executable, "-c", code]), capture_output=True, text=True, timeout=30
        )
        elapsed = time.monotonic() - started
    kind, message = json.loads(run.stdout)
    assert kind == "NotReady", run.stderr
    assert message.startswith("camera 'annex'") and "10.77.0.99" in message
    assert elapsed < 10  # interpreter start-up included


# -- answers that are not ONVIF SOAP -----------------------------------------------------------------

CLOCK_ANSWER = (
    f'<?xml version="1.0"?><s:Envelope xmlns:s="{SOAP}" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" '
    'xmlns:tt="http://www.onvif.org/ver10/schema"><s:Body><tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>'
    "<tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings><tt:UTCDateTime>"
    "<tt:Time><tt:Hour>{h}</tt:Hour><tt:Minute>{m}</tt:Minute><tt:Second>{s}</tt:Second></tt:Time>"
    "<tt:Date><tt:Year>{Y}</tt:Year><tt:Month>{M}</tt:Month><tt:Day>{D}</tt:Day></tt:Date>"
    "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse></s:Body></s:Envelope>"
)
BROKEN = {
    "html login page": (200, "text/html", b"<html><body><form>Login</form></body></html>"),
    "html error page": (404, "text/html", b"<!DOCTYPE html><html><body>Not Found</body></html>"),
    "truncated xml": (
        200,
        "application/soap+xml",
        f"<?xml version='1.0'?><s:Envelope xmlns:s='{SOAP}'><s:Body><oo".encode(),
    ),
    "xml but not soap": (200, "application/soap+xml", b"<?xml version='1.0'?><status>ok</status>"),
    "soap without the answer": (
        200,
        "application/soap+xml",
        f"<?xml version='1.0'?><s:Envelope xmlns:s='{SOAP}'><s:Body><x:Other xmlns:x='urn:x'/></s:Body>"
        "</s:Envelope>".encode(),
    ),
    "binary garbage": (200, "application/octet-stream", b"\x00\x01\x02garbage"),
    "empty error": (500, "text/plain", b""),
}


@pytest.fixture
async def broken_server() -> AsyncIterator[tuple[int, dict[str, object]]]:
    """Answers with ``state["answer"]``; with ``state["clock_ok"]`` it answers the time properly first."""
    state: dict[str, object] = {"answer": BROKEN["html login page"], "clock_ok": False}

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if state["clock_ok"] and b"GetSystemDateAndTime" in body:
            now = datetime.now(UTC)
            text = CLOCK_ANSWER.format(h=now.hour, m=now.minute, s=now.second, Y=now.year, M=now.month, D=now.day)
            return web.Response(body=text.encode(), headers={"Content-Type": "application/soap+xml"})
        status, content_type, payload = state["answer"]  # type: ignore[misc]
        return web.Response(status=status, body=payload, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    yield site._server.sockets[0].getsockname()[1], state
    await runner.cleanup()


@pytest.mark.parametrize("clock_ok", [False, True], ids=["first-request", "after-the-clock"])
@pytest.mark.parametrize("kind", list(BROKEN))
async def test_a_broken_answer_is_a_clear_error(
    broken_server: tuple[int, dict[str, object]], kind: str, clock_ok: bool
) -> None:
    port, state = broken_server
    state.update(answer=BROKEN[kind], clock_ok=clock_ok)
    started = time.monotonic()
    with pytest.raises(MalformedResponse) as failure:
        await connect(OnvifTarget("gym", "127.0.0.1", port, "admin", "x", timeout=3))
    message = str(failure.value)
    assert isinstance(failure.value, NotReady)  # the core retries: a booting camera serves its web page first
    assert message.startswith("camera 'gym' at 127.0.0.1:")
    assert "Traceback" not in message and "<Element" not in message
    assert time.monotonic() - started < 3


async def test_ipycams_own_ptz_answers_are_reported_as_malformed(tmp_path) -> None:
    """ipycam 1.3 answers GetPresets with undeclared namespace prefixes: not well-formed XML."""
    peer = PeerProcess(ipycam_argv("127.0.0.1", extra=["--raw-ptz"]), cwd=tmp_path).start()
    try:
        async with connected(OnvifTarget("hall", "127.0.0.1", peer.port, "admin", "secret", timeout=5)) as session:
            with pytest.raises(MalformedResponse, match=r"camera 'hall' at 127\.0\.0\.1:\d+ answered GetPresets with"):
                await list_presets(session)
    finally:
        peer.stop()


async def test_a_refused_request_is_a_device_fault() -> None:
    sim = await EventsSimulator().start()
    try:
        async with connected(OnvifTarget("gym", sim.host, sim.port, "admin", "secret")) as session:
            with pytest.raises(DeviceFault, match=r"camera 'gym' refused GetHostname: GetHostname is not supported"):
                await session.call("devicemgmt", "GetHostname")
    finally:
        await sim.stop()


# -- clocks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "words"),
    # Device clocks tick in whole seconds: a skew is known to within a second.
    [(timedelta(hours=3, minutes=12), "3h12m ahead of"), (timedelta(minutes=-7, seconds=-30), "7m(29|30|31)s behind")],
)
async def test_a_skewed_clock_is_named_when_digests_fail(offset: timedelta, words: str) -> None:
    sim = await EventsSimulator(clock_offset=offset).start()
    try:
        target = OnvifTarget("gym", sim.host, sim.port, "admin", "secret", compensate_clock=False)
        with pytest.raises(ClockSkewError) as failure:
            await connect(target)
    finally:
        await sim.stop()
    assert isinstance(failure.value, AuthFailed)
    expected = rf"^camera 'gym' clock is {words} this host; WS-Security digests fail; set the camera's time \(NTP\)"
    assert re.match(expected, str(failure.value))


async def test_a_skewed_clock_is_compensated_and_still_reported() -> None:
    sim = await EventsSimulator(clock_offset=timedelta(hours=3, minutes=12)).start()
    try:
        async with connected(OnvifTarget("gym", sim.host, sim.port, "admin", "secret")) as session:
            info = await session.call("devicemgmt", "GetDeviceInformation")
            assert info.Model == "EventsSim"
            assert session.clock is not None and session.clock.significant
            (warning,) = session.warnings
    finally:
        await sim.stop()
    assert warning.startswith("camera 'gym' clock is 3h12m ahead of this host; campusguard compensates")
    assert "set the camera's time (NTP)" in warning


def test_durations_read_like_people_write_them() -> None:
    assert format_duration(timedelta(hours=3, minutes=12, seconds=10)) == "3h12m"
    assert format_duration(timedelta(hours=3, minutes=12, seconds=40)) == "3h13m"  # rounded, not cut
    assert format_duration(timedelta(minutes=59, seconds=59.6)) == "1h00m"
    assert format_duration(timedelta(minutes=4, seconds=5)) == "4m05s"
    assert format_duration(timedelta(seconds=-42)) == "42s"
    assert format_duration(timedelta(days=2, hours=3)) == "2d3h"
