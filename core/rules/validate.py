"""Check ``[[rules]]`` against the rest of the file: cameras, zones and notifiers that exist."""

from __future__ import annotations

from typing import Any

from campusguard.sdk import Dispatcher

from ..config import ComponentSpec, ConfigIssue, LoadedConfig


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

    def issue(index: int, key: tuple[str | int, ...], message: str) -> None:
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
        for target in rule.verifiers:
            if target not in notifiers:
                issue(index, ("verifiers",), f"verifiers: unknown notifier {target!r}; notifiers: {_known(notifiers)}")
        for step_index, step in enumerate(rule.escalation):
            for target in step.notify:
                if target not in notifiers:
                    issue(
                        index, ("escalation", step_index, "notify"),
                        f"escalation[{step_index}].notify: unknown notifier {target!r}; notifiers: {_known(notifiers)}",
                    )  # fmt: skip
        issues.extend(_action_issues(loaded, index, cameras, notifiers))
    return issues


def _action_issues(
    loaded: LoadedConfig, index: int, cameras: dict[str, Any], notifiers: dict[str, Any]
) -> list[ConfigIssue]:
    rule = loaded.settings.rules[index]
    adapters = _enabled(loaded.settings.adapters)
    issues: list[ConfigIssue] = []
    for action_index, action in enumerate(rule.actions):
        found: list[tuple[str, str]] = []  # (key, message)
        if action.do == "notify":
            found += [
                ("targets", f"unknown notifier {t!r}; notifiers: {_known(notifiers)}")
                for t in action.targets
                if t not in notifiers
            ]
        elif action.do == "dispatch":
            found += [
                ("targets", f"unknown dispatcher {t!r}; adapters: {_known(adapters)}")
                for t in action.targets
                if t not in adapters
            ]
        elif action.do == "door_scenario":
            scenarios = loaded.settings.scenarios
            if action.scenario not in scenarios:
                found.append(("scenario", f"unknown scenario {action.scenario!r}; scenarios: {_known(scenarios)}"))
        elif action.camera not in cameras:
            found.append(("camera", f"unknown camera {action.camera!r}; cameras: {_known(cameras)}"))
        for key, message in found:
            line = loaded.locator.line_of(("rules", index, "actions", action_index, key))
            issues.append(
                ConfigIssue(loaded.display, line, f"rules.{rule.name}", f"actions[{action_index}].{key}: {message}")
            )
    return issues


def dispatcher_issues(loaded: LoadedConfig, specs: list[ComponentSpec]) -> list[ConfigIssue]:
    """A dispatch action must name an adapter that is a dispatcher (known once plugins are loaded)."""
    kinds = {s.name: s.cls for s in specs if s.table == "adapters"}
    issues: list[ConfigIssue] = []
    for index, rule in enumerate(loaded.settings.rules):
        for action_index, action in enumerate(rule.actions):
            for target in action.targets if action.do == "dispatch" else []:
                cls = kinds.get(target)
                if cls is not None and not issubclass(cls, Dispatcher):
                    line = loaded.locator.line_of(("rules", index, "actions", action_index, "targets"))
                    message = f"actions[{action_index}].targets: adapter {target!r} ({cls.kind}) is not a dispatcher"
                    issues.append(ConfigIssue(loaded.display, line, f"rules.{rule.name}", message))
    return issues
