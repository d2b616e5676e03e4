"""WS-Discovery of ONVIF cameras, and writing what was found into plugins.toml.

Peers, in a network namespace joined to the discovering side's namespace by a veth pair (the
multicast never reaches a real interface): ipycam (a real ONVIF device, whose ProbeMatch is not
quite standard) and wsdiscovery's own publisher (a by-the-book responder with hardware and
location scopes, whose device address deliberately leads nowhere).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from peers.netns import VethLink, veth_link
from peers.process import PEERS, PeerProcess, ipycam_argv

from campusguard.adapters.onvif.config_writer import add_cameras_to_config, env_names, slug_for
from campusguard.adapters.onvif.discovery import DiscoveredDevice
from campusguard.adapters.onvif.media import DeviceInfo
from campusguard.adapters.onvif.wsd import NVT_TYPE, build_probe, parse_probe_matches

PLUGINS_TOML = """\
# campusguard configuration (a school's own, with its comments)

[core]
site = "North High"   # shown in every message

# The camera that was here before discovery.
[cameras.lobby]
type = "rtsp"
url = "rtsp://10.77.0.50/live"
"""


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VethLink, dict[str, Any], Path]]:
    work = tmp_path_factory.mktemp("discovery")
    config = work / "plugins.toml"
    config.write_text(PLUGINS_TOML)
    with veth_link() as link:
        in_a = VethLink.exec_args
        camera = PeerProcess(
            in_a(link.ns_a, ipycam_argv(link.ip_a, extra=["--discovery", "--name", "Gym North"])), cwd=work
        )
        xaddr = f"http://{link.ip_a}:9/onvif/device_service"  # nothing listens there
        scopes = ["--name", "Front Door", "--hardware", "FD-1", "--location", "Building A"]
        responder = PeerProcess(
            in_a(link.ns_a, [sys.executable, str(PEERS / "wsd_publisher.py"), "--xaddr", xaddr, *scopes])
        )
        discoverer = [sys.executable, str(PEERS / "discover_in_netns.py"), "--interface", link.dev_b]
        discoverer += ["--user", "admin", "--password", "secret", "--config", str(config)]
        cli_config = work / "cli-plugins.toml"
        cli_config.write_text(PLUGINS_TOML)
        cli = [str(Path(sys.executable).parent / "campusguard"), "discover", "--json", "--interface", link.dev_b]
        cli += [
            "--timeout",
            "1.5",
            "--username",
            "admin",
            "--password-env",
            "CG_CAMERA_PASSWORD",
            "--add",
            str(cli_config),
        ]
        try:
            camera.start()
            responder.start()
            run = subprocess.run(in_a(link.ns_b, discoverer), capture_output=True, text=True, timeout=60)
            env = {**os.environ, "CG_CAMERA_PASSWORD": "secret"}
            cli_run = subprocess.run(in_a(link.ns_b, cli), capture_output=True, text=True, timeout=60, env=env)
        finally:
            responder.stop()
            camera.stop()
        assert run.returncode == 0, run.stderr
        assert cli_run.returncode == 0, cli_run.stderr
        CLI_RESULTS["json"] = json.loads(cli_run.stdout)
        CLI_RESULTS["stderr"] = cli_run.stderr
        CLI_RESULTS["config"] = cli_config.read_text()
        yield link, json.loads(run.stdout), config


CLI_RESULTS: dict[str, Any] = {}


def test_the_discover_command_lists_and_adds_cameras(found: tuple[VethLink, dict[str, Any], Path]) -> None:
    devices = by_name(CLI_RESULTS["json"]["devices"])
    assert set(devices) == {"Gym North", "Front Door"}
    assert devices["Gym North"]["model"] == "VirtualCam-1"
    assert "added to" in CLI_RESULTS["stderr"]
    written = CLI_RESULTS["config"]
    assert written.startswith("# campusguard configuration (a school's own, with its comments)")
    assert 'type = "onvif"' in written and "secret" not in written  # references, never the password


def by_name(devices: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in devices}


def test_both_cameras_answer_the_probe(found: tuple[VethLink, dict[str, Any], Path]) -> None:
    link, result, _ = found
    devices = by_name(result["devices"])
    assert set(devices) == {"Gym North", "Front Door"}
    for device in devices.values():
        assert device["address"] == link.ip_a and device["interface"] == link.dev_b
        assert "NetworkVideoTransmitter" in device["types"]
        assert device["endpoint"].startswith("urn:uuid:")
    door = devices["Front Door"]
    assert (door["hardware"], door["location"]) == ("FD-1", "Building A")
    assert door["xaddrs"] == [f"http://{link.ip_a}:9/onvif/device_service"]


def test_given_credentials_each_camera_shows_model_firmware_profiles_and_streams(found) -> None:
    link, result, _ = found
    gym = by_name(result["devices"])["Gym North"]
    assert (gym["manufacturer"], gym["model"], gym["firmware"]) == ("PythonCam", "VirtualCam-1", "1.3.0")
    assert gym["host"] == link.ip_a and gym["xaddrs"] == [f"http://{link.ip_a}:{gym['port']}/onvif/device_service"]
    assert [(p["token"], p["width"], p["height"]) for p in gym["profiles"]] == [
        ("Profile_Main", 1920, 1080),
        ("Profile_Sub", 640, 360),
    ]
    assert [p["stream_uri"] for p in gym["profiles"]] == [
        f"rtsp://{link.ip_a}:8554/video_main",
        f"rtsp://{link.ip_a}:8554/video_sub",
    ]
    assert (gym["main_profile"], gym["sub_profile"]) == ("Profile_Main", "Profile_Sub")
    assert gym["error"] is None


def test_a_camera_that_cannot_be_reached_is_listed_with_the_reason(found) -> None:
    link, result, _ = found
    door = by_name(result["devices"])["Front Door"]
    assert door["model"] is None and door["profiles"] == []
    assert (
        door["error"]
        == f"camera 'Front Door' cannot be reached at {link.ip_a}:9: connection refused (nothing listens on that port)"
    )


def test_the_text_and_json_views(found) -> None:
    link, result, _ = found
    assert result["json"] == {"devices": result["devices"]}
    text = result["text"]
    assert text.startswith("Found 2 ONVIF cameras:\n")
    assert f"{link.ip_a}  Gym North  (via {link.dev_b})" in text
    assert "PythonCam VirtualCam-1, firmware 1.3.0" in text
    assert "Profile_Sub 640x360 H264 30 fps  [detection]" in text
    assert f"rtsp://{link.ip_a}:8554/video_main" in text
    assert "hardware: FD-1" in text and "! camera 'Front Door' cannot be reached" in text
    assert "Give a username and password" in result["text_without_credentials"]


def test_probing_one_interface_and_bad_interfaces(found) -> None:
    _, result, _ = found
    assert {d["name"] for d in result["on_interface"]} == {"Gym North", "Front Door"}
    errors = result["interface_errors"]
    assert errors["lo"] == "cannot probe for cameras: 'lo' is the loopback interface; cameras are not on it"
    link = found[0]
    assert errors["no-such-if0"] == (
        f"cannot probe for cameras: there is no interface 'no-such-if0' (there are: {link.dev_b}, lo)"
    )


def test_add_writes_the_cameras_found_into_plugins_toml(found) -> None:
    link, result, config = found
    assert sorted(result["added"]) == ["front_door", "gym_north"]
    text = config.read_text()
    assert text.startswith(PLUGINS_TOML)  # comments and layout kept
    settings = tomllib.loads(text)
    gym = settings["cameras"]["gym_north"]
    assert gym == {
        "type": "onvif",
        "host": link.ip_a,
        "port": by_name(result["devices"])["Gym North"]["port"],
        "username": {"env": "CAMPUSGUARD_GYM_NORTH_USERNAME"},
        "password": {"env": "CAMPUSGUARD_GYM_NORTH_PASSWORD"},
    }
    assert "secret" not in text
    assert "# found by `campusguard discover` on" in text and "PythonCam VirtualCam-1" in text


# -- plugins.toml without a network ------------------------------------------------------------------


def device(name: str | None, host: str, port: int = 80, model: str | None = None) -> DiscoveredDevice:
    scopes = [f"onvif://www.onvif.org/name/{name.replace(' ', '%20')}"] if name else []
    found = DiscoveredDevice(host, f"urn:uuid:{host}", [f"http://{host}:{port}/onvif/device_service"], scopes, [])
    if model:
        found.info = DeviceInfo("Acme", model, "1.0", None, None)
    return found


def test_cameras_already_present_are_skipped_and_slugs_stay_unique(tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text(PLUGINS_TOML + '\n[cameras.gym]\ntype = "onvif"\nhost = "10.0.0.9"\nport = 80\n')
    devices = [
        device("Lobby", "10.77.0.50"),  # configured by its RTSP URL already
        device("Gym", "10.0.0.9"),  # configured by host and port already
        device("Gym", "10.0.0.10"),  # a second camera with the same name
        device(None, "10.0.0.11", 8080, model="X-200"),
        device(None, "10.0.0.12"),
    ]
    assert add_cameras_to_config(config, devices) == ["gym_2", "x_200", "camera_10_0_0_12"]
    assert add_cameras_to_config(config, devices) == []  # a second run adds nothing
    cameras = tomllib.loads(config.read_text())["cameras"]
    assert cameras["x_200"]["port"] == 8080 and cameras["camera_10_0_0_12"]["host"] == "10.0.0.12"


def test_one_account_for_all_cameras_and_a_missing_file(tmp_path: Path) -> None:
    config = tmp_path / "new" / "plugins.toml"
    added = add_cameras_to_config(
        config, [device("Hall", "10.0.0.5")], username_env="ONVIF_USER", password_env="ONVIF_PASS"
    )
    assert added == ["hall"]
    hall = tomllib.loads(config.read_text())["cameras"]["hall"]
    assert (hall["username"], hall["password"]) == ({"env": "ONVIF_USER"}, {"env": "ONVIF_PASS"})


def test_slugs_and_environment_names() -> None:
    assert slug_for(device("Gym North #2", "10.0.0.1")) == "gym_north_2"
    assert slug_for(device("2nd floor", "10.0.0.1")) == "camera_2nd_floor"
    assert env_names("gym_north") == ("CAMPUSGUARD_GYM_NORTH_USERNAME", "CAMPUSGUARD_GYM_NORTH_PASSWORD")


# -- reading answers -----------------------------------------------------------------------------------

STANDARD_MATCH = """<?xml version="1.0"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/{action}</a:Action>
<a:MessageID>urn:uuid:answer</a:MessageID><a:RelatesTo>{relates}</a:RelatesTo></s:Header>
<s:Body><d:ProbeMatches><d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:cam</a:Address></a:EndpointReference>
<d:Types>dn:NetworkVideoTransmitter</d:Types>
<d:Scopes>onvif://www.onvif.org/name/Main Gate onvif://www.onvif.org/location/Yard</d:Scopes>
<d:XAddrs>http://10.0.0.7/onvif/device_service</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion>
</d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"""


def test_probe_matches_are_read_leniently() -> None:
    message_id, payload = build_probe([NVT_TYPE])
    assert b"NetworkVideoTransmitter" in payload and message_id.encode() in payload
    for action in ("ProbeMatches", "ProbeMatch"):  # the second is ipycam's
        (match,) = parse_probe_matches(STANDARD_MATCH.format(action=action, relates=message_id).encode(), message_id)
        assert match.endpoint == "urn:uuid:cam" and match.types == ["NetworkVideoTransmitter"]
        assert match.scopes == ["onvif://www.onvif.org/name/Main Gate", "onvif://www.onvif.org/location/Yard"]
        assert match.xaddrs == ["http://10.0.0.7/onvif/device_service"]


def test_answers_to_other_probes_and_garbage_are_ignored() -> None:
    message_id, _ = build_probe([NVT_TYPE])
    other = STANDARD_MATCH.format(action="ProbeMatches", relates="urn:uuid:someone-else").encode()
    assert parse_probe_matches(other, message_id) == []
    assert parse_probe_matches(b"\x00not xml", message_id) == []
    assert parse_probe_matches(b"<a/>", message_id) == []


def test_a_file_that_cannot_take_more_tables_is_left_alone(tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text('cameras = { hall = { host = "10.0.0.9" } }\n')
    with pytest.raises(ValueError, match=r"cannot add .* add them by hand"):
        add_cameras_to_config(config, [device("Gym", "10.0.0.5")])
    assert config.read_text() == 'cameras = { hall = { host = "10.0.0.9" } }\n'
