"""`campusguard incidents`: list, show and handle incidents; every change is audited."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from campusguard.core.store import SQLiteStore
from campusguard.sdk.testing import make_incident

CLI = str(Path(sys.executable).parent / "campusguard")


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "incidents", *args, "-c", str(config)], capture_output=True, text=True, timeout=60)


def seeded(tmp_path: Path) -> tuple[Path, str, str]:
    config = tmp_path / "plugins.toml"
    config.write_text('[core]\ndata_dir = "var"\n')
    weapon, drill = make_incident(kind="weapon", title="Weapon at the gym door"), make_incident(exercise=True)

    async def seed() -> None:
        store = SQLiteStore(tmp_path / "var" / "campusguard.db")
        await store.open()
        await store.record_incident(weapon, ["log"])
        await store.record_incident(drill, ["log"])
        await store.close()

    asyncio.run(seed())
    return config, weapon.id, drill.id


def test_list_and_show(tmp_path: Path) -> None:
    config, weapon, drill = seeded(tmp_path)
    listing = cli(config, "list")
    assert listing.returncode == 0, listing.stderr
    assert weapon in listing.stdout and "Weapon at the gym door" in listing.stdout
    assert f"{drill}" in listing.stdout and "[EXERCISE]" in listing.stdout
    as_json = json.loads(cli(config, "list", "--json").stdout)
    assert {i["id"] for i in as_json} == {weapon, drill}
    shown = json.loads(cli(config, "show", weapon).stdout)
    assert shown["kind"] == "weapon" and shown["status"] == "new"


def test_handling_moves_through_the_lifecycle_and_is_audited(tmp_path: Path) -> None:
    config, weapon, _ = seeded(tmp_path)
    assert cli(config, "verify", weapon, "--by", "ms.rivera", "--note", "seen on camera").returncode == 0
    assert cli(config, "ack", weapon, "--by", "officer.lee").returncode == 0
    done = cli(config, "resolve", weapon, "--by", "officer.lee", "--json")
    assert json.loads(done.stdout) == {"id": weapon, "status": "resolved"}
    again = cli(config, "ack", weapon, "--by", "officer.lee")
    assert again.returncode == 1 and "is resolved: cannot ack it; allowed: nothing (it is closed)" in again.stderr
    shown = json.loads(cli(config, "show", weapon).stdout)
    assert {"confirmed", "acknowledged", "resolved"} <= set(shown["stages"])

    async def audit() -> list[tuple[str, str, str]]:
        store = SQLiteStore(tmp_path / "var" / "campusguard.db")
        await store.open()
        entries = await store.audit_entries()
        await store.close()
        return [(e.actor, e.action, e.detail.get("note", "")) for e in entries if e.subject == weapon]

    assert asyncio.run(audit())[1:] == [
        ("ms.rivera", "incident.confirmed", "seen on camera"),
        ("officer.lee", "incident.acknowledged", ""),
        ("officer.lee", "incident.resolved", ""),
    ]


def test_bad_requests_are_refused_clearly(tmp_path: Path) -> None:
    config, weapon, _ = seeded(tmp_path)
    anonymous = cli(config, "ack", weapon)
    assert anonymous.returncode == 1 and "--by NAME" in anonymous.stderr
    unknown = cli(config, "verify", "nope", "--by", "x")
    assert unknown.returncode == 1 and "no incident 'nope'" in unknown.stderr
    assert cli(config, "dismiss", weapon, "--by", "ms.rivera").returncode == 0
    late = cli(config, "verify", weapon, "--by", "ms.rivera")
    assert late.returncode == 1 and "is dismissed" in late.stderr
    missing = cli(config, "show")
    assert missing.returncode == 1 and "give the incident id" in missing.stderr
