"""PTZ presets: list them, go to one by name or token. Peer: ipycam (digital PTZ) on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from peers.onvif_events_sim import EventsSimulator
from peers.process import PeerProcess, ipycam_argv

from campusguard.adapters.onvif import PresetNotFound, Unsupported
from campusguard.adapters.onvif.client import OnvifSession, OnvifTarget, connected
from campusguard.adapters.onvif.ptz import goto_preset, list_presets, ptz_profile_token, set_preset


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    peer = PeerProcess(ipycam_argv("127.0.0.1"), cwd=tmp_path_factory.mktemp("ipycam")).start()
    try:
        yield peer.port
    finally:
        peer.stop()


def hall(port: int) -> OnvifTarget:
    return OnvifTarget("hall", "127.0.0.1", port, "admin", "secret", timeout=5)


async def move(session: OnvifSession, pan: float, tilt: float, zoom: float) -> None:
    token = await ptz_profile_token(session)
    position = {"PanTilt": {"x": pan, "y": tilt}, "Zoom": {"x": zoom}}
    await session.call("ptz", "AbsoluteMove", {"ProfileToken": token, "Position": position})


async def position(session: OnvifSession) -> tuple[float, float, float]:
    status = await session.call("ptz", "GetStatus", {"ProfileToken": await ptz_profile_token(session)})
    where = status.Position
    return (where.PanTilt.x, where.PanTilt.y, where.Zoom.x)


async def test_go_to_a_preset_by_its_name(camera: int) -> None:
    async with connected(hall(camera)) as session:
        assert await ptz_profile_token(session) == "Profile_Main"
        assert "Home" in [p.name for p in await list_presets(session)]  # ipycam's own

        await move(session, 0.5, -0.25, 0.3)
        token = await set_preset(session, "Front door")
        await move(session, -0.8, 0.6, 0.0)

        reached = await goto_preset(session, "front DOOR")  # names are matched without case
        assert reached.token == token and reached.name == "Front door"
        assert await position(session) == pytest.approx((0.5, -0.25, 0.3))

        presets = {p.name: p for p in await list_presets(session)}
        assert (presets["Front door"].pan, presets["Front door"].tilt, presets["Front door"].zoom) == pytest.approx(
            (0.5, -0.25, 0.3)
        )


async def test_go_to_a_preset_by_its_token(camera: int) -> None:
    async with connected(hall(camera)) as session:
        await move(session, 0.2, 0.2, 0.2)
        home = await goto_preset(session, "home", speed=0.5)
        assert home.name == "Home"
        assert await position(session) == pytest.approx((0.0, 0.0, 0.0))


async def test_an_unknown_preset_names_the_ones_there_are(camera: int) -> None:
    async with connected(hall(camera)) as session:
        with pytest.raises(PresetNotFound, match=r"camera 'hall' has no PTZ preset 'Gym'; it has: 'Home' \(home\)"):
            await goto_preset(session, "Gym")


async def test_a_camera_without_ptz_says_so() -> None:
    sim = await EventsSimulator().start()  # a device with only Device and Events services
    try:
        async with connected(OnvifTarget("lobby", sim.host, sim.port, "admin", "secret")) as session:
            with pytest.raises(Unsupported, match="camera 'lobby' offers no ONVIF PTZ service"):
                await list_presets(session)
    finally:
        await sim.stop()
