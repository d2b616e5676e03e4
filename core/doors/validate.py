"""Check ``[doors]`` and ``[scenarios]`` against the adapters, cameras and each other, with lines."""

from __future__ import annotations

from campusguard.sdk import AccessControl

from ..config import ComponentSpec, ConfigIssue, LoadedConfig


def door_issues(loaded: LoadedConfig, specs: list[ComponentSpec]) -> list[ConfigIssue]:
    settings = loaded.settings
    adapters = {s.name: s.cls for s in specs if s.table == "adapters"}
    cameras = {s.name for s in specs if s.table == "cameras"}
    issues: list[ConfigIssue] = []

    def issue(path: tuple[str, ...], where: str, message: str) -> None:
        issues.append(ConfigIssue(loaded.display, loaded.locator.line_of(path), where, message))

    for name, door in settings.doors.items():
        where = f"doors.{name}"
        cls = adapters.get(door.via)
        if cls is None:
            known = ", ".join(n for n, c in adapters.items() if issubclass(c, AccessControl)) or "none"
            issue(("doors", name, "via"), where, f"via: unknown access control {door.via!r}; access controls: {known}")
        elif not issubclass(cls, AccessControl):
            issue(("doors", name, "via"), where, f"via: adapter {door.via!r} ({cls.kind}) is not an access control")
        if door.camera is not None and door.camera not in cameras:
            issue(("doors", name, "camera"), where, f"camera: unknown camera {door.camera!r}")
        if door.line is not None:
            lines = (settings.cameras.get(door.camera or "") or {}).get("lines") or {}
            if door.camera is None:
                issue(("doors", name, "line"), where, "line: needs the door's camera (camera = ...)")
            elif door.line not in lines:
                known = ", ".join(sorted(lines)) or "none"
                issue(
                    ("doors", name, "line"),
                    where,
                    f"line: camera {door.camera!r} has no line {door.line!r}; lines: {known}",
                )
    zones = {door.zone for door in settings.doors.values() if door.zone}
    for name, scenario in settings.scenarios.items():
        where = f"scenarios.{name}"
        for door_name in scenario.doors:
            if door_name not in settings.doors:
                known = ", ".join(sorted(settings.doors)) or "none"
                issue(("scenarios", name, "doors"), where, f"doors: unknown door {door_name!r}; doors: {known}")
        for zone in scenario.zones:
            if zone not in zones:
                known = ", ".join(sorted(zones)) or "none"
                issue(("scenarios", name, "zones"), where, f"zones: no door is in zone {zone!r}; door zones: {known}")
        if not scenario.doors and not scenario.zones:
            issue(("scenarios", name), where, "a scenario needs doors or zones")
    return issues
