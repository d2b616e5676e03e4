"""The incident lifecycle a rule declares: verification, actions, escalation, and who hears of each change."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_rules import PLUGINS, SITE, observed

from campusguard.core.incidents import IncidentError, change_status
from campusguard.sdk import OBSERVATIONS, Incident

CLI = str(Path(sys.executable).parent / "campusguard")


async def outbox(core: Any, incident_id: str = "%") -> list[tuple[str, int, str, str]]:
    """Every queued delivery (of one incident) as (target, revision, change, status), in queue order."""
    async with core.api.store.db.execute(
        "SELECT target, payload, status FROM outbox WHERE incident_id LIKE ? ORDER BY seq", (incident_id,)
    ) as cursor:
        rows = await cursor.fetchall()
    return [
        (target, json.loads(p)["revision"], json.loads(p)["change"], status) for target, p, status in rows
    ]  # fmt: skip


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def raised(core: Any, *observations: Any) -> Incident:
    for observation in observations:
        core.api.bus.publish(OBSERVATIONS, observation)
    await core.api.rules.drain()
    return (await core.api.store.list_incidents(limit=1))[0]  # the newest


async def audit_actions(core: Any, incident_id: str) -> list[tuple[str, str]]:
    return [(e.actor, e.action) for e in await core.api.store.audit_entries() if e.subject == incident_id]


# A weapon rule that waits for the office to verify, then notifies the pager.
HUMAN_VERIFIED_WEAPON = (
    SITE
    + """
[[rules]]
name = "weapon"
when = { kinds = ["weapon"] }
verification = "human"
verifiers = ["office"]
notify = ["pager"]
[[rules.actions]]
do = "notify"
targets = ["pager"]
"""
)


async def test_human_verification_holds_actions_until_a_person_confirms(campusguard_core) -> None:
    config = HUMAN_VERIFIED_WEAPON
    async with campusguard_core(config, plugins=PLUGINS) as core:
        incident = await raised(core, observed(0, kind="weapon", confidence=0.7))
        assert incident.status == "verifying" and incident.rule == "weapon"
        await until(lambda: _all_delivered(core))
        assert [(t, r, c) for t, r, c, _ in await outbox(core)] == [("office", 0, "raised")]
        await asyncio.sleep(0.4)  # the lifecycle polls: nothing else may be queued while it waits for a person

        assert len(await outbox(core)) == 1
        confirmed = await change_status(core.api.store, incident.id, "verify", by="ms.rivera", note="seen it")
        assert (confirmed.status, confirmed.revision, confirmed.change) == ("confirmed", 1, "confirmed")
        # The verifier hears it was confirmed, the notify group hears of it for the first time.
        await until(lambda: _count(core, 2))
        await until(lambda: _all_delivered(core))
        deliveries = [(t, r, c) for t, r, c, _ in await outbox(core)]
        assert deliveries == [("office", 0, "raised"), ("office", 1, "confirmed"), ("pager", 1, "confirmed")]
        # The action ran once, after confirmation, and is audited (its pager delivery dedups by key).
        await until(lambda: _audited(core, incident.id, ("rule:weapon", "action.notify")))
        actions = await audit_actions(core, incident.id)
        assert actions.index(("ms.rivera", "incident.confirmed")) < actions.index(("rule:weapon", "action.notify"))


async def _audited(core: Any, incident_id: str, entry: tuple[str, str]) -> bool:
    return entry in await audit_actions(core, incident_id)


async def _all_delivered(core: Any) -> bool:
    rows = await outbox(core)
    return bool(rows) and all(status == "delivered" for *_, status in rows)


async def _count(core: Any, n: int) -> bool:
    return len(await outbox(core)) >= n


async def test_dismissed_incident_runs_no_action_and_tells_only_who_knew(campusguard_core) -> None:
    config = HUMAN_VERIFIED_WEAPON
    async with campusguard_core(config, plugins=PLUGINS) as core:
        incident = await raised(core, observed(0, kind="weapon"))
        await change_status(core.api.store, incident.id, "dismiss", by="ms.rivera", note="a phone")
        await until(lambda: _count(core, 2))
        await until(lambda: _all_delivered(core))
        assert [(t, c) for t, _, c, _ in await outbox(core)] == [("office", "raised"), ("office", "dismissed")]
        with pytest.raises(IncidentError, match="is dismissed: cannot verify it"):
            await change_status(core.api.store, incident.id, "verify", by="ms.rivera")
        assert ("rule:weapon", "action.notify") not in await audit_actions(core, incident.id)


async def test_auto_confirm_above_the_threshold_and_on_a_later_repeat(campusguard_core) -> None:
    config = (
        SITE
        + """
[[rules]]
name = "fight"
when = { kinds = ["fight"] }
verification = "auto"
auto_confirm = 0.8
verifiers = ["office"]
notify = ["pager"]
dedupe_seconds = 30
"""
    )
    async with campusguard_core(config, plugins=PLUGINS) as core:
        incident = await raised(core, observed(0, kind="fight", confidence=0.5, track_ids=[1, 2]))
        assert incident.status == "verifying"
        # The same fight seen again, surer: confirmed without waiting for a person.
        updated = await raised(core, observed(1, kind="fight", confidence=0.9, track_ids=[1, 2]))
        assert updated.id == incident.id and updated.status == "confirmed" and updated.revision == 1
        await until(lambda: _count(core, 3))
        await until(lambda: _all_delivered(core))
        assert [(t, r, c) for t, r, c, _ in await outbox(core)] == [
            ("office", 0, "raised"), ("office", 1, "confirmed"), ("pager", 1, "confirmed"),
        ]  # fmt: skip
        assert ("rule:fight", "incident.confirmed") in await audit_actions(core, incident.id)

    # Sure enough at once: confirmed when raised, straight to the notify group.
    async with campusguard_core(config, plugins=PLUGINS) as core:
        incident = await raised(core, observed(0, kind="fight", confidence=0.95))
        assert incident.status == "confirmed"
        await until(lambda: _all_delivered(core))
        assert [(t, c) for t, _, c, _ in await outbox(core, incident.id)] == [("pager", "raised")]


ESCALATING = (
    SITE
    + """
[[rules]]
name = "medical"
when = { kinds = ["medical_fall"] }
notify = ["office"]
escalation_repeat = 0.3
[[rules.escalation]]
after = 0.3
notify = ["pager"]
"""
)


async def test_escalation_repeats_until_someone_acknowledges(campusguard_core) -> None:
    async with campusguard_core(ESCALATING, plugins=PLUGINS) as core:
        incident = await raised(core, observed(0, kind="medical_fall"))
        assert incident.status == "confirmed"
        await until(lambda: _escalations(core, 2))  # the step, then a repeat
        acknowledged = await change_status(core.api.store, incident.id, "ack", by="nurse.kim")
        await until(lambda: _all_delivered(core))
        await asyncio.sleep(0.8)  # more than two repeat periods: none may come after the acknowledgement
        rows = await outbox(core)
        escalated = [r for t, r, c, _ in rows if c == "escalated"]
        assert all(t == "pager" for t, _, c, _ in rows if c == "escalated")
        assert escalated == sorted(escalated) and len(escalated) == len(set(escalated))
        assert all(r < acknowledged.revision for r in escalated)
        # Both who were told hear that someone took it on.
        assert {t for t, r, c, _ in rows if c == "acknowledged"} == {"office", "pager"}
        actions = await audit_actions(core, incident.id)
        assert actions.count(("rule:medical", "incident.escalated")) == len(escalated)
        assert ("nurse.kim", "incident.acknowledged") in actions


async def _escalations(core: Any, n: int) -> bool:
    return sum(1 for *_, c, _ in await outbox(core) if c == "escalated") >= n


async def test_no_escalation_when_acknowledged_in_time(campusguard_core) -> None:
    async with campusguard_core(ESCALATING, plugins=PLUGINS) as core:
        incident = await raised(core, observed(0, kind="medical_fall"))
        await change_status(core.api.store, incident.id, "ack", by="nurse.kim")
        await asyncio.sleep(0.9)
        await until(lambda: _all_delivered(core))
        assert [(t, c) for t, _, c, _ in await outbox(core)] == [("office", "raised"), ("office", "acknowledged")]
        jobs = await core.api.store.jobs_of(incident.id)
        assert [(kind, status) for _, kind, status in jobs if kind == "escalate"] == [("escalate", "done")]


async def test_escalation_survives_a_restart(campusguard_core) -> None:
    config = ESCALATING.replace("after = 0.3", "after = 1.5").replace("escalation_repeat = 0.3", "")
    async with campusguard_core(config, plugins=PLUGINS) as core:
        incident = await raised(core, observed(0, kind="medical_fall"))
        data_dir = core.api.data_dir
    # Down before the step was due; a new core on the same data dir escalates on time.
    config = f'[core]\ndata_dir = "{data_dir}"\n' + config
    async with campusguard_core(config, plugins=PLUGINS) as core:
        await until(lambda: _escalations(core, 1))
        stored = await core.api.store.get_incident(incident.id)
        assert stored is not None and stored.change == "escalated"


async def test_a_person_changes_status_from_the_cli_while_the_core_runs(campusguard_core, tmp_path: Path) -> None:
    config = ESCALATING.replace("after = 0.3", "after = 30").replace("escalation_repeat = 0.3", "")
    async with campusguard_core(config, plugins=PLUGINS) as core:
        incident = await raised(core, observed(0, kind="medical_fall"))
        path = tmp_path / "cli.toml"
        path.write_text(f'[core]\ndata_dir = "{core.api.data_dir}"\n')
        done = await asyncio.to_thread(
            subprocess.run,
            [CLI, "incidents", "resolve", incident.id, "--by", "nurse.kim", "-c", str(path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        # The running core picks the person's change up from the store and tells the office.
        await until(lambda: _count(core, 2))
        await until(lambda: _all_delivered(core))
        assert [(t, c) for t, _, c, _ in await outbox(core)] == [("office", "raised"), ("office", "resolved")]


@pytest.mark.slow
def test_lifecycle_config_errors_name_file_and_line(tmp_path: Path) -> None:
    from test_rules import check, line_of

    result = check(
        tmp_path,
        """
[[rules]]
name = "bad-verifier"
verification = "human"
verifiers = ["desk"]

[[rules]]
name = "bad-escalation"
[[rules.escalation]]
after = 60
notify = ["principal"]

[[rules]]
name = "bad-dispatch"
[[rules.actions]]
do = "dispatch"
targets = ["psap"]

[[rules]]
name = "bad-ptz"
[[rules.actions]]
do = "ptz_preset"
camera = "roof"
preset = "gate"
""",
    )
    assert result.returncode == 1
    err = result.stderr
    assert f":{line_of(tmp_path, 'verifiers = ')}: [rules.bad-verifier] verifiers: unknown notifier 'desk'" in err
    assert f":{line_of(tmp_path, 'principal')}: [rules.bad-escalation] escalation[0].notify: unknown notifier" in err
    assert f":{line_of(tmp_path, 'psap')}: [rules.bad-dispatch] actions[0].targets: unknown dispatcher 'psap'" in err
    assert f":{line_of(tmp_path, 'roof')}: [rules.bad-ptz] actions[0].camera: unknown camera 'roof'" in err
    # A rule that is wrong in itself is reported at its own line too.
    result = check(tmp_path, '\n[[rules]]\nname = "auto"\nverification = "auto"\n')
    assert result.returncode == 1
    line = line_of(tmp_path, "[[rules]]")  # the rule's own table
    assert f":{line}:" in result.stderr
    assert "verification = 'auto' needs auto_confirm" in result.stderr


async def test_a_repeat_keeps_the_incidents_snapshot_and_clip(campusguard_core) -> None:
    config = SITE + '\n[[rules]]\nname = "loiter"\nwhen = { kinds = ["loitering"] }\ndedupe_seconds = 60\n'
    async with campusguard_core(config, plugins=PLUGINS) as core:
        incident = await raised(core, observed(0, track_ids=[3]))
        files = {"clip_path": "/evidence/x.mp4", "clip_sha256": "ab" * 32}
        clipped = incident.model_copy(
            update={"change": "evidence", "evidence": incident.evidence.model_copy(update=files)}
        )
        await core.api.update_incident(clipped, actor="evidence")
        again = await raised(core, observed(5, track_ids=[3], confidence=0.9))
        assert again.id == incident.id and again.confidence == 0.9 and again.change == "updated"
        assert (again.evidence.clip_path, again.evidence.clip_sha256) == (files["clip_path"], files["clip_sha256"])
        assert ("evidence", "incident.updated") in await audit_actions(core, incident.id)


async def test_dedupe_and_cooldown_survive_a_restart(campusguard_core) -> None:
    from campusguard.sdk import StageStamp
    from campusguard.sdk.testing import make_observation

    config = SITE + '\n[[rules]]\nname = "loiter"\nwhen = { kinds = ["loitering"] }\ndedupe_seconds = 60\n'

    def now(**fields: Any) -> Any:
        return make_observation(camera_id="gate", zone="lamp", captured=StageStamp.now(), **fields)

    async with campusguard_core(config, plugins=PLUGINS) as core:
        first = await raised(core, now(track_ids=[7]))
        data_dir = core.api.data_dir
    config = f'[core]\ndata_dir = "{data_dir}"\n' + config
    async with campusguard_core(config, plugins=PLUGINS) as core:
        again = await raised(core, now(track_ids=[7], confidence=0.8))
        assert again.id == first.id and again.change == "updated"  # the same situation, not a new incident
        assert len(await core.api.store.list_incidents()) == 1


async def test_show_gives_each_delivery_and_the_latency_of_each_stage(campusguard_core) -> None:
    from campusguard.core.incidents import describe

    config = SITE + '\n[[rules]]\nname = "weapon"\nwhen = { kinds = ["weapon"] }\nnotify = ["office", "pager"]\n'
    async with campusguard_core(config, plugins=PLUGINS) as core:
        incident = await raised(core, observed(0, kind="weapon"))
        await until(lambda: _all_delivered(core))
        await change_status(core.api.store, incident.id, "ack", by="officer.lee")
        await until(lambda: _count(core, 4))
        await until(lambda: _all_delivered(core))
        shown = await describe(core.api.store, (await core.api.store.get_incident(incident.id)))  # type: ignore[arg-type]
        rows = [(d["target"], d["revision"], d["change"], d["status"]) for d in shown["deliveries"]]
        assert rows == [
            ("office", 0, "raised", "delivered"), ("pager", 0, "raised", "delivered"),
            ("office", 1, "acknowledged", "delivered"), ("pager", 1, "acknowledged", "delivered"),
        ]  # fmt: skip
        assert set(shown["latency_ms"]) == {"detected", "raised", "delivered:office", "delivered:pager"}


async def test_stats_summarise_latency_per_stage(campusguard_core) -> None:
    from campusguard.core.incidents import stats

    config = SITE + '\n[[rules]]\nname = "weapon"\nwhen = { kinds = ["weapon"] }\ndedupe_seconds = 0\n'
    async with campusguard_core(config, plugins=PLUGINS) as core:
        for n in range(3):
            await raised(core, observed(n, kind="weapon"))
        await until(lambda: _all_delivered(core))
        summary = await stats(core.api.store)
        assert summary["incidents"] == 3 and summary["kinds"] == {"weapon": 3}
        assert summary["statuses"] == {"confirmed": 3}
        assert {"detected", "raised", "delivered:office", "delivered:pager"} == set(summary["latency_ms"])
        assert all(s["n"] == 3 and s["p50"] <= s["p99"] <= s["max"] for s in summary["latency_ms"].values())
