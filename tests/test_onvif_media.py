"""A camera configured with only its ONVIF address and credentials finds its streams.

Peer: ipycam, a real ONVIF device (Device, Media, PTZ), on loopback without WS-Discovery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from onveef import AsyncOnvifClient
from peers.process import PeerProcess, ipycam_argv

from campusguard.adapters.onvif import client as onvif_client
from campusguard.adapters.onvif.client import OnvifTarget, connect, connected, ensure_wsdl
from campusguard.adapters.onvif.lib import onvif
from campusguard.adapters.onvif.media import (
    StreamProfile,
    choose_streams,
    device_info,
    resolve_media,
    with_credentials,
)


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    peer = PeerProcess(ipycam_argv("127.0.0.1"), cwd=tmp_path_factory.mktemp("ipycam")).start()
    try:
        yield peer.port
    finally:
        peer.stop()


def gym(port: int) -> OnvifTarget:
    return OnvifTarget("gym", "127.0.0.1", port, "admin", "secret", timeout=5)


async def test_main_stream_for_evidence_and_sub_stream_for_detection(camera: int) -> None:
    async with connected(gym(camera)) as session:
        media = await resolve_media(session)

    assert [p.token for p in media.profiles] == ["Profile_Main", "Profile_Sub"]
    assert (media.main.token, media.main.width, media.main.height) == ("Profile_Main", 1920, 1080)
    assert (media.sub.token, media.sub.width, media.sub.height) == ("Profile_Sub", 640, 360)
    assert media.main.stream_uri == "rtsp://127.0.0.1:8554/video_main"
    assert media.sub.stream_uri == "rtsp://127.0.0.1:8554/video_sub"
    assert media.sub.encoding == "H264" and media.sub.fps == 30
    assert media.snapshot_uri == f"http://127.0.0.1:{camera}/snapshot.jpg"
    assert media.media2_offered is False  # ipycam has Media1 only; onvif-zeep-async has no Media2 WSDL anyway


async def test_device_information_and_clock(camera: int) -> None:
    async with connected(gym(camera)) as session:
        info = await device_info(session)
        # ipycam wants credentials even for its time (ONVIF says it should not): read after login.
        assert session.clock is not None and abs(session.clock.skew.total_seconds()) < 5
        assert session.warnings == []
    assert (info.manufacturer, info.model, info.firmware) == ("PythonCam", "VirtualCam-1", "1.3.0")


async def test_onveef_sees_the_same_streams(camera: int) -> None:
    """Cross-check with a second, independent ONVIF client."""
    async with connected(gym(camera)) as session:
        ours = await resolve_media(session)
    async with AsyncOnvifClient("127.0.0.1", camera, "admin", "secret", timeout_s=5) as client:
        theirs = {
            p["token"]: await client.get_stream_uri(profile_token=p["token"]) for p in await client.get_profiles()
        }
    assert theirs == {p.token: p.stream_uri for p in ours.profiles}


async def test_many_cameras_at_once_parse_each_wsdl_once(camera: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """onvif-zeep-async's WSDL cache has no guard: 200 cameras starting together parsed it 200 times."""
    loads: list[str] = []
    original = onvif.client.DocumentWithDeferredLoad.original_load

    def counting(self: object, url: str, *args: object, **kwargs: object) -> None:
        loads.append(Path(url).name)
        original(self, url, *args, **kwargs)

    monkeypatch.setattr(onvif.client, "_DOCUMENT_CACHE", {})
    monkeypatch.setattr(onvif.client.DocumentWithDeferredLoad, "original_load", counting)
    monkeypatch.setattr(onvif_client, "_warm_files", set())

    async def start_one() -> str:
        async with connected(gym(camera)) as session:
            await ensure_wsdl("media")
            return (await resolve_media(session)).sub.token

    assert await asyncio.gather(*(start_one() for _ in range(12))) == ["Profile_Sub"] * 12
    assert sorted(loads) == ["devicemgmt.wsdl", "media.wsdl"]


async def test_closing_twice_is_harmless(camera: int) -> None:
    session = await connect(gym(camera))
    await session.close()
    await session.close()


# -- choosing streams ------------------------------------------------------------------------------


def profile(token: str, width: int, height: int, encoding: str = "H264", fps: float = 25) -> StreamProfile:
    return StreamProfile(token, token, encoding, width, height, fps)


def test_the_sub_stream_is_the_smallest_at_least_320_wide() -> None:
    profiles = [profile("4k", 3840, 2160), profile("d1", 704, 576), profile("cif", 352, 288), profile("q", 176, 144)]
    main, sub = choose_streams(profiles)
    assert (main.token, sub.token) == ("4k", "cif")


def test_h264_wins_over_mjpeg_of_the_same_size() -> None:
    main, sub = choose_streams([profile("mj", 640, 480, "JPEG"), profile("h", 640, 480), profile("big", 1920, 1080)])
    assert (main.token, sub.token) == ("big", "h")


def test_a_single_profile_serves_both() -> None:
    main, sub = choose_streams([profile("only", 1280, 720)])
    assert main == sub


def test_nothing_wide_enough_falls_back_to_the_main_stream() -> None:
    main, sub = choose_streams([profile("a", 176, 144), profile("b", 160, 120)])
    assert main.token == sub.token == "a"


def test_credentials_go_into_the_rtsp_url_escaped() -> None:
    assert (
        with_credentials("rtsp://10.0.0.5:554/live", "admin", "p@ss:w/rd")
        == "rtsp://admin:p%40ss%3Aw%2Frd@10.0.0.5:554/live"
    )
    assert with_credentials("rtsp://old:x@10.0.0.5/live", "admin", None) == "rtsp://admin@10.0.0.5/live"
    assert with_credentials("rtsp://10.0.0.5/live", None, "x") == "rtsp://10.0.0.5/live"
