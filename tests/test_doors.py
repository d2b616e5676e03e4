"""Doors: every command passes the core's safety gate, is audited, and people (not rules) unlock."""

from __future__ import annotations

import asyncio
import getpass
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from test_rules import MONDAY_9AM, PLUGINS, SITE, observed
from test_rules_lifecycle import audit_actions, raised, until

from campusguard.core.control import control_path, request
from campusguard.sdk import (
    CAMERA_EVENTS,
    DOOR_EVENTS,
    OBSERVATIONS,
    AccessControl,
    CameraEvent,
    DoorAction,
    DoorCommand,
    DoorEvent,
    DoorEventKind,
    Registry,
    hookimpl,
)

CLI = str(Path(sys.executable).parent / "campusguard")


class RecordingDoors(AccessControl):
    """An access control that records what reaches it; ``broken`` doors raise."""

    kind = "recording_doors"
    received: ClassVar[list[DoorCommand]] = []
    broken: ClassVar[set[str]] = set()

    async def execute(self, command: DoorCommand) -> str:
        if command.door_id in self.broken:
            raise ConnectionError(f"panel does not answer for {command.door_id}")
        RecordingDoors.received.append(command)
        return f"{command.door_id} {command.action}"


class DoorsPlugin:
    @hookimpl
    def campusguard_register_adapters(self, registry: Registry[Any]) -> None:
        registry.add(RecordingDoors)


ALL_PLUGINS = {**PLUGINS, "doors": DoorsPlugin()}

DOORS = """
[adapters.panel]
type = "recording_doors"

[doors.front]
via = "panel"
zone = "entrance"
egress = true              # free egress hardware: secured from outside only
[doors.gym]
via = "panel"
adapter_door = "reader-7"
zone = "gym"
[doors.stair]
via = "panel"
zone = "gym"
egress = true
locks = "both"             # a maglock that holds it from inside: never locked

[scenarios.lockdown]
kind = "lockdown"
doors = ["front"]
zones = ["gym"]
[scenarios.evacuate]
kind = "evacuate_unlock"
doors = ["front", "gym"]
"""


@pytest.fixture(autouse=True)
def _clear() -> None:
    RecordingDoors.received.clear()
    RecordingDoors.broken.clear()


def sent() -> list[tuple[str, str, str, bool]]:
    return sorted((c.door_id, str(c.action), c.requested_by, c.exercise) for c in RecordingDoors.received)


def scenario_rule(name: str, kind: str, scenario: str, extra: str = "") -> str:
    """The site and its doors, and one rule that starts ``scenario`` on an observation of ``kind``."""
    rule = f'[[rules]]\nname = "{name}"\nwhen = {{ kinds = ["{kind}"] }}\n{extra}'
    return SITE + DOORS + f'\n{rule}[[rules.actions]]\ndo = "door_scenario"\nscenario = "{scenario}"\n'


async def test_a_confirmed_weapon_locks_down_but_never_traps_anyone(campusguard_core) -> None:
    config = scenario_rule("weapon", "weapon", "lockdown", 'exercise = true\nnotify = ["office"]\n')
    async with campusguard_core(config, plugins=ALL_PLUGINS) as core:
        incident = await raised(core, observed(0, kind="weapon"))
        await until(lambda: _audited(core, incident.id, ("rule:weapon", "action.door_scenario")))
        # Front (secured from outside) and the gym reader got it, marked as a drill; the stairwell did not.
        assert sent() == [("front", "lockdown", "rule:weapon", True), ("reader-7", "lockdown", "rule:weapon", True)]
        entries = {(e.subject, e.action): e.detail for e in await core.api.store.audit_entries()}
        assert "could trap people" in entries[("stair", "door.lockdown.refused")]["detail"]
        assert entries[("front", "door.lockdown.done")]["egress"].startswith("secured from outside")
        assert entries[("gym", "door.lockdown.done")]["incident"] == incident.id
        assert all(entries[(d, "door.lockdown.requested")]["exercise"] for d in ("front", "gym"))


async def _audited(core: Any, subject: str, entry: tuple[str, str]) -> bool:
    return entry in await audit_actions(core, subject)


async def test_a_rule_may_not_unlock_and_the_refusal_is_audited(campusguard_core) -> None:
    config = scenario_rule("fire", "smoke", "evacuate")
    async with campusguard_core(config, plugins=ALL_PLUGINS) as core:
        incident = await raised(core, observed(0, kind="smoke"))
        await until(lambda: _audited(core, incident.id, ("rule:fire", "action.door_scenario")))
        assert sent() == []
        refused = [e for e in await core.api.store.audit_entries() if e.action == "door.unlock.refused"]
        assert {e.subject for e in refused} == {"front", "gym"}
        assert all("needs a person; rules may only secure doors" in e.detail["detail"] for e in refused)


async def test_a_person_unlocks_through_the_cli_and_the_os_vouches(campusguard_core, tmp_path: Path) -> None:
    async with campusguard_core(SITE + DOORS, plugins=ALL_PLUGINS) as core:
        path = tmp_path / "cli.toml"
        path.write_text(f'[core]\ndata_dir = "{core.api.data_dir}"\n' + DOORS)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([CLI, "doors", *args, "-c", str(path)], capture_output=True, text=True, timeout=60)

        done = await asyncio.to_thread(cli, "unlock", "gym", "--by", "ms.rivera", "--reason", "let the nurse in")
        assert done.returncode == 0, done.stderr
        assert "reader-7" in done.stdout and "done" in done.stdout
        assert sent() == [("reader-7", "unlock", "ms.rivera", False)]
        (entry,) = [e for e in await core.api.store.audit_entries() if e.action == "door.unlock.done"]
        assert entry.actor == "ms.rivera" and entry.detail["authenticated_as"] == getpass.getuser()
        assert entry.detail["reason"] == "let the nurse in"

        # Without a name, nothing moves; a dry run checks and audits but reaches no door.
        nameless = await asyncio.to_thread(cli, "unlock", "gym")
        assert nameless.returncode == 1 and "--by NAME" in nameless.stderr
        dry = await asyncio.to_thread(cli, "lockdown", "lockdown", "--by", "ms.rivera", "--dry-run", "--json")
        assert dry.returncode == 1  # the stairwell is refused even in a dry run
        outcomes = {r["door"]: r["outcome"] for r in json.loads(dry.stdout)}
        assert outcomes == {"front": "dry_run", "gym": "dry_run", "stair": "refused"}
        assert len(RecordingDoors.received) == 1
        release = await asyncio.to_thread(cli, "release", "lockdown", "--by", "ms.rivera", "--exercise")
        assert release.returncode == 0, release.stderr
        assert ("front", "lockdown_release", "ms.rivera", True) in sent()


async def test_unauthenticated_and_unknown_requests_are_refused(campusguard_core) -> None:
    async with campusguard_core(SITE + DOORS, plugins=ALL_PLUGINS) as core:
        gate = core.api.doors
        result = await gate.command("front", DoorAction.UNLOCK, requested_by="mallory")  # a name, no OS identity
        assert result.outcome == "refused" and "authenticated person" in result.detail
        sock = control_path(core.api.data_dir)
        unknown = await request(sock, {"op": "doors.command", "door": "roof", "action": "unlock", "by": "x"})
        assert unknown == {"ok": False, "error": "no door 'roof'; doors: front, gym, stair"}
        bad = await request(sock, {"op": "doors.command", "door": "gym", "action": "explode", "by": "x"})
        assert bad is not None and not bad["ok"] and "malformed doors.command request" in bad["error"]
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b"{not json\n")
        answer = json.loads(await reader.readline())
        writer.close()
        assert answer["ok"] is False and answer["error"].startswith("not JSON")
        # The core still serves after all that.
        status = await request(sock, {"op": "doors.status", "by": "ms.rivera"})
        assert status is not None and [r["outcome"] for r in status["results"]] == ["done"] * 3
        assert {action for _, action, _, _ in sent()} == {"query"}  # nothing but the three queries moved


async def test_a_failing_panel_is_a_result_to_audit_and_the_action_retries(campusguard_core) -> None:
    config = scenario_rule("weapon", "weapon", "lockdown")
    RecordingDoors.broken.add("front")
    async with campusguard_core(config, plugins=ALL_PLUGINS) as core:
        incident = await raised(core, observed(0, kind="weapon"))
        await until(lambda: _failed_once(core))
        RecordingDoors.broken.clear()  # the panel answers again: the retry secures the front door
        await until(lambda: _audited(core, incident.id, ("rule:weapon", "action.door_scenario")), timeout=15)
        assert ("front", "lockdown", "rule:weapon", False) in sent()


async def _failed_once(core: Any) -> bool:
    return any(e.action == "door.lockdown.failed" for e in await core.api.store.audit_entries())


@pytest.mark.slow
def test_door_config_errors_name_file_and_line(tmp_path: Path) -> None:
    from test_rules import check, line_of

    result = check(
        tmp_path,
        """
[doors.front]
via = "nowhere"
[scenarios.lockdown]
kind = "lockdown"
doors = ["front", "back"]
[scenarios.empty]
kind = "hold"
""",
    )
    assert result.returncode == 1
    err = result.stderr
    assert f":{line_of(tmp_path, 'nowhere')}: [doors.front] via: unknown access control 'nowhere'" in err
    assert f":{line_of(tmp_path, 'back')}: [scenarios.lockdown] doors: unknown door 'back'; doors: front" in err
    assert "[scenarios.empty] a scenario needs doors or zones" in err


# -- tailgating ------------------------------------------------------------------------------------

TAILGATE = (
    SITE.replace(
        "[cameras.yard]", "[cameras.gate.lines.threshold]\npoints = [[0.2, 0.8], [0.8, 0.8]]\n\n[cameras.yard]"
    )
    + DOORS.replace('[doors.gym]\nvia = "panel"', '[doors.gym]\nvia = "panel"\ncamera = "gate"\nline = "threshold"')
    + """
[[rules]]
name = "tailgating"
when = { kinds = ["tailgating"] }
dedupe_seconds = 0
notify = ["office"]
"""
)


def crossing(seconds: float, track: int, direction: str = "in") -> Any:
    return observed(
        seconds, kind="line_crossing", zone=None, track_ids=[track],
        attributes={"direction": direction, "line": "threshold"},
    )  # fmt: skip


def grant(seconds: float, door: str = "reader-7") -> DoorEvent:
    event = DoorEvent(door_id=door, kind=DoorEventKind.ACCESS_GRANTED, source="panel", credential_holder="h:1")
    return event.model_copy(update={"created_at": MONDAY_9AM + timedelta(seconds=seconds)})


async def test_two_people_on_one_badge_is_tailgating(campusguard_core) -> None:
    async with campusguard_core(TAILGATE, plugins=ALL_PLUGINS) as core:
        bus = core.api.bus
        bus.publish(DOOR_EVENTS, grant(0))
        await asyncio.sleep(0.05)
        bus.publish(OBSERVATIONS, crossing(2, track=1))  # the badge holder
        bus.publish(OBSERVATIONS, crossing(3, track=2))  # right behind them: tailgating
        bus.publish(OBSERVATIONS, crossing(4, track=3, direction="out"))  # someone leaving: not counted
        bus.publish(DOOR_EVENTS, grant(30))
        await asyncio.sleep(0.05)
        bus.publish(OBSERVATIONS, crossing(31, track=4))  # one badge, one person: fine
        bus.publish(OBSERVATIONS, crossing(60, track=5))  # no grant at all in the window: not tailgating
        await until(lambda: _incidents(core, "tailgating"))
        await asyncio.sleep(0.2)
        (incident,) = await _incidents(core, "tailgating")
        assert incident.camera_id == "gate" and incident.evidence.track_ids == [2]


async def _incidents(core: Any, kind: str) -> list[Any]:
    await core.api.rules.drain()
    return [i for i in await core.api.store.list_incidents() if i.kind == kind]


@pytest.mark.slow
def test_a_tailgating_line_must_exist_on_the_doors_camera(tmp_path: Path) -> None:
    from test_rules import check, line_of

    result = check(tmp_path, '\n[doors.gym]\nvia = "panel"\ncamera = "gate"\nline = "sill"\n')
    assert result.returncode == 1
    expected = f":{line_of(tmp_path, 'sill')}: [doors.gym] line: camera 'gate' has no line 'sill'; lines: none"
    assert expected in result.stderr


# -- door and camera alarms reach the rules ---------------------------------------------------------


async def test_a_forced_door_and_a_panic_button_become_incidents_through_rules(campusguard_core) -> None:
    config = (
        TAILGATE
        + """
[[rules]]
name = "forced"
when = { kinds = ["door_forced"] }
incident = { severity = "severe" }
dedupe_seconds = 0

[[rules]]
name = "panic"
when = { kinds = ["camera_input"] }
incident = { kind = "panic", severity = "extreme" }
"""
    )
    async with campusguard_core(config, plugins=ALL_PLUGINS) as core:
        bus = core.api.bus
        bus.publish(DOOR_EVENTS, DoorEvent(door_id="reader-7", kind=DoorEventKind.FORCED_OPEN, source="panel"))
        bus.publish(DOOR_EVENTS, DoorEvent(door_id="reader-7", kind=DoorEventKind.ACCESS_DENIED, source="panel"))
        panic = {"camera_id": "yard", "topic": "tns1:Device/Trigger/DigitalInput", "kind": "digital_input"}
        bus.publish(CAMERA_EVENTS, CameraEvent(**panic, active=True, property_operation="Initialized"))  # a state
        bus.publish(CAMERA_EVENTS, CameraEvent(**panic, active=True, property_operation="Changed"))
        bus.publish(CAMERA_EVENTS, CameraEvent(**panic, active=False, property_operation="Changed"))  # released
        forced = await until(lambda: _incidents(core, "door_forced"))
        panics = await until(lambda: _incidents(core, "panic"))
        await asyncio.sleep(0.2)
        assert [(i.camera_id, i.severity) for i in await _incidents(core, "door_forced")] == [("gate", "severe")]
        assert len(await _incidents(core, "panic")) == 1 and panics[0].camera_id == "yard"
        assert forced[0].rule == "forced"
