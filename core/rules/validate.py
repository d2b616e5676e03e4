"""Check ``[[rules]]`` against the rest of the file: cameras, zones and notifiers that exist."""

from __future__ import annotations

from typing import Any

from ..config import ConfigIssue, LoadedConfig


def _enabled(tables: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    # A disabled camera or notifier never runs: a rule naming it would wait forever.
    return {name: options for name, options in tables.items() if options.get("enabled", True) is not False}


def _known(names: Any) -> str:
    return ", ".join(sorted(names)) or "none"


def rule_issues(loaded: LoadedConfig) -> list[ConfigIssue]:
    """Every problem of every rule, each at the line of the offending key."""
    settings = loaded.settings
    cameras = _enabled(settings.cameras)
    notifiers = _enabled(settings.notifiers)
    issues: list[ConfigIssue] = []
    seen: dict[str, int] = {}

    def issue(index: int, key: tuple[str, ...], message: str) -> None:
        line = loaded.locator.line_of(("rules", index, *key))
        issues.append(ConfigIssue(loaded.display, line, f"rules.{settings.rules[index].name}", message))

    for index, rule in enumerate(settings.rules):
        if rule.name in seen:
            issue(index, ("name",), f"duplicate rule name {rule.name!r} (first at rule {seen[rule.name] + 1})")
        seen.setdefault(rule.name, index)
        for camera in rule.when.cameras:
            if camera not in cameras:
                issue(
                    index, ("when", "cameras"), f"when.cameras: unknown camera {camera!r}; cameras: {_known(cameras)}"
                )
        # A zone must exist on the cameras the rule watches (on every camera when it names none).
        watched = rule.when.cameras or list(cameras)
        zones = {z for c in watched if c in cameras for z in (cameras[c].get("zones") or {})}
        for zone in rule.when.zones:
            if zone not in zones:
                where = ", ".join(watched) or "no camera"
                issue(index, ("when", "zones"), f"when.zones: unknown zone {zone!r} of {where}; zones: {_known(zones)}")
        for target in rule.notify:
            if target not in notifiers:
                issue(index, ("notify",), f"notify: unknown notifier {target!r}; notifiers: {_known(notifiers)}")
    return issues
