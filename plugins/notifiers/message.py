"""How an incident reads to a person: subject, plain-text and HTML body, and user templates.

Shared by every textual notifier (email, Apprise, webhook templates) so a drill, a severity or a
change reads the same on every channel. Templates are ``str.format`` strings over :data:`FIELDS`,
checked when the config loads so a typo is a config error, not a failed alert at 2 a.m.
"""

from __future__ import annotations

import hashlib
import html
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from campusguard.sdk import Evidence, Incident, IncidentChange, Location

FIELDS: dict[str, str] = {
    "id": "incident id",
    "key": "this delivery's idempotency key (incident id, revision, notifier name)",
    "title": "the incident's title",
    "headline": "severity, kind and title in one line",
    "kind": "what happened (intrusion, weapon, door_forced, ...)",
    "severity": "info, minor, moderate, severe or extreme",
    "status": "new, verifying, confirmed, dismissed, acknowledged or resolved",
    "change": "why this version is sent: raised, confirmed, dismissed, acknowledged, resolved, escalated, evidence",
    "revision": "0 when raised, +1 for every delivered change",
    "camera_id": "the camera, or empty",
    "zone": "the zone, or empty",
    "location": "site, building, floor and room as one label, or empty",
    "confidence": "0.0 to 1.0 (e.g. {confidence:.0%})",
    "exercise": "true for a drill",
    "drill": "'[EXERCISE] ' for a drill, else empty",
    "source": "the component that raised it",
    "rule": "the rule that raised it, or empty",
    "created_at": "when it was raised (a datetime: {created_at:%H:%M})",
    "time": "when it was raised, readable, in the server's time zone",
    "snapshot_sha256": "checksum of the snapshot, or empty",
}
"""Every placeholder a template may use, with what it holds (listed in config errors and docs)."""

DEFAULT_SUBJECT = "{headline}"
EXERCISE_MARK = "[EXERCISE]"
DRILL_BANNER = "*** EXERCISE - THIS IS A DRILL, NOT A REAL EMERGENCY ***"
MAX_SNAPSHOT_BYTES = 10 * 1024 * 1024  # mail servers commonly refuse messages over 10-25 MB

_CHANGE_LINES: dict[str, str] = {
    IncidentChange.CONFIRMED: "UPDATE: confirmed by a person or by verification",
    IncidentChange.DISMISSED: "UPDATE: dismissed as a false alarm",
    IncidentChange.ACKNOWLEDGED: "UPDATE: acknowledged - someone is handling it",
    IncidentChange.RESOLVED: "UPDATE: resolved",
    IncidentChange.ESCALATED: "ESCALATED: nobody acknowledged it in time",
    IncidentChange.EVIDENCE: "UPDATE: evidence is ready",
    IncidentChange.UPDATED: "UPDATE: seen again",
}


# -- the values ---------------------------------------------------------------------------------


def label(value: object) -> str:
    """``medical_fall`` -> ``medical fall``: enum values read as words."""
    return str(value).replace("_", " ")


def location_label(location: Location | None) -> str:
    if location is None:
        return ""
    parts = [location.site, location.building, location.floor and f"floor {location.floor}", location.room]
    return ", ".join(p for p in parts if p)


def readable_time(moment: datetime) -> str:
    """In the server's zone (a school's server runs on its local time), with the zone's name."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def headline(incident: Incident) -> str:
    """``SEVERE intrusion: Person in the east courtyard`` (the title is left out when empty)."""
    head = f"{str(incident.severity).upper()} {label(incident.kind)}"
    return f"{head}: {incident.title}" if incident.title else head


def fields(incident: Incident, target: str = "") -> dict[str, Any]:
    """The values of :data:`FIELDS` for ``incident``; None stays None (templates print it empty)."""
    values: dict[str, Any] = {
        "id": incident.id,
        "key": incident.delivery_key(target) if target else incident.id,
        "title": incident.title,
        "headline": headline(incident),
        "kind": str(incident.kind),
        "severity": str(incident.severity),
        "status": str(incident.status),
        "change": str(incident.change),
        "revision": incident.revision,
        "camera_id": incident.camera_id,
        "zone": incident.zone,
        "location": location_label(incident.location) or None,
        "confidence": incident.confidence,
        "exercise": incident.exercise,
        "drill": f"{EXERCISE_MARK} " if incident.exercise else "",
        "source": incident.source,
        "rule": incident.rule,
        "created_at": incident.created_at,
        "time": readable_time(incident.created_at),
        "snapshot_sha256": incident.evidence.snapshot_sha256,
    }
    assert values.keys() == FIELDS.keys()
    return values


# -- templates ----------------------------------------------------------------------------------

_SAMPLE = Incident(
    kind="intrusion",
    title="sample",
    camera_id="cam",
    zone="zone",
    location=Location(site="site"),
    source="rule",
    rule="rule",
    evidence=Evidence(snapshot_sha256="0" * 64),
)


def _placeholders(template: str) -> list[str]:
    """Every field name in ``template``, nested format specs (``{x:{width}}``) included."""
    names: list[str] = []
    for _, name, spec, _ in string.Formatter().parse(template):
        if name is not None:
            names.append(name)
        if spec:
            names += _placeholders(spec)
    return names


def check_template(template: str) -> None:
    """Raise ``ValueError`` naming the problem when ``template`` cannot render every incident.

    Only plain field names are allowed: no positional ``{}``, no ``{title.attr}`` or ``{x[0]}``
    (attribute access would let a template reach into Python objects).
    """
    try:
        names = _placeholders(template)
    except ValueError as exc:  # unbalanced braces
        hint = "write {{ and }} for a literal brace"
        raise ValueError(f"{template!r} is not a valid template: {exc} ({hint})") from None
    allowed = ", ".join(FIELDS)
    for name in names:
        if name not in FIELDS:
            what = "a positional placeholder {}" if name == "" else f"unknown field {name!r}"
            raise ValueError(f"{what} in {template!r}; allowed fields: {allowed}")
    try:  # a format spec that does not fit the field's type ({title:.2f}) shows up only when rendered
        render(template, _SAMPLE)
        render(template, _SAMPLE.model_copy(update={"camera_id": None, "zone": None, "location": None}))
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"{template!r} cannot be rendered: {exc}") from None


def render(template: str, incident: Incident, target: str = "") -> str:
    """``template`` filled in; an empty field (no zone, say) renders as an empty string."""
    values = {k: "" if v is None else v for k, v in fields(incident, target).items()}
    return template.format_map(values)


def whole_field(template: str) -> str | None:
    """The field name when ``template`` is exactly one bare placeholder (``"{confidence}"``)."""
    parts = list(string.Formatter().parse(template))
    if len(parts) == 1 and parts[0][0] == "" and parts[0][1] and not parts[0][2] and not parts[0][3]:
        return parts[0][1]
    return None


def check_tree(tree: Any, path: str = "") -> None:
    """Check every string in a nested dict/list template; the error names its key (``text``, ``blocks[0]``)."""
    if isinstance(tree, str):
        try:
            check_template(tree)
        except ValueError as exc:
            raise ValueError(f"{path or 'value'}: {exc}") from None
    elif isinstance(tree, Mapping):
        for key, value in tree.items():
            check_tree(value, f"{path}.{key}" if path else str(key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            check_tree(value, f"{path}[{i}]")


def _render_node(tree: Any, incident: Incident, target: str) -> Any:
    if isinstance(tree, str):
        name = whole_field(tree)
        if name is not None:
            value = fields(incident, target)[name]
            return value.isoformat() if isinstance(value, datetime) else value
        return render(tree, incident, target)
    if isinstance(tree, Mapping):
        return {key: _render_node(value, incident, target) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_render_node(value, incident, target) for value in tree]
    return tree


TEXT_KEYS = ("text", "title", "message", "body", "summary", "content", "subject")
"""Where a template that never mentions drills gets the ``[EXERCISE]`` mark (Slack, Teams, ntfy, ...)."""

KeyPath = tuple[str | int, ...]


def _strings(tree: Any, path: KeyPath = ()) -> list[tuple[KeyPath, str]]:
    """Every string in ``tree`` with its path, depth first, in order."""
    if isinstance(tree, str):
        return [(path, tree)]
    if isinstance(tree, Mapping):
        return [item for key, value in tree.items() for item in _strings(value, (*path, key))]
    if isinstance(tree, list):
        return [item for i, value in enumerate(tree) for item in _strings(value, (*path, i))]
    return []


def drill_mark_path(tree: Any) -> KeyPath | None:
    """The string a drill's ``[EXERCISE] `` goes in front of, when the template itself never says
    (no ``{drill}`` or ``{exercise}``): a text-like key (``text``, ``title``, ...) first, else the
    first templated string that is not a URL. None when the template marks drills itself."""
    candidates = []
    for path, text in _strings(tree):
        names = set(_placeholders(text))
        if names & {"drill", "exercise"}:
            return None
        # A bare "{severity}" or "{id}" is a value receivers match on: never prefixed.
        if names and whole_field(text) in (None, "title", "headline") and "://" not in text:
            candidates.append(path)
    for path in candidates:
        if isinstance(path[-1], str) and path[-1].lower() in TEXT_KEYS:
            return path
    return candidates[0] if candidates else None


def render_tree(tree: Any, incident: Incident, target: str = "") -> Any:
    """Render every string of a nested template. A string that is one bare placeholder keeps the
    field's JSON type (``"{confidence}"`` -> ``0.9``, ``"{zone}"`` -> ``null``). A drill is marked
    ``[EXERCISE]`` (see :func:`drill_mark_path`) even where the template forgot to say so."""
    rendered = _render_node(tree, incident, target)
    path = drill_mark_path(tree) if incident.exercise else None
    if path:
        node = rendered
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = f"{EXERCISE_MARK} {node[path[-1]]}"
    return rendered


# -- subject and body ---------------------------------------------------------------------------


def change_line(incident: Incident) -> str | None:
    """What changed, for a later version (None for the first delivery)."""
    if incident.revision == 0 and incident.change == IncidentChange.RAISED:
        return None
    return _CHANGE_LINES.get(str(incident.change), f"UPDATE: {label(incident.change)}")


def subject(incident: Incident, template: str = DEFAULT_SUBJECT, *, reply: bool = False) -> str:
    """One line; always starts with ``[EXERCISE]`` for a drill, whatever the template says.

    ``reply``: later versions read ``Re: <subject>`` so that mail clients thread them with the
    first one; otherwise the change leads (``Resolved: ...``) for channels that do not thread.
    """
    text = " ".join(render(template, incident).split()) or headline(incident)  # a header is one line
    if incident.revision > 0 or incident.change != IncidentChange.RAISED:
        text = f"Re: {text}" if reply else f"{label(incident.change).capitalize()}: {text}"
    if incident.exercise and not text.startswith(EXERCISE_MARK):
        text = f"{EXERCISE_MARK} {text}"
    return text


def details(incident: Incident) -> list[tuple[str, str]]:
    """The facts, as (label, value) rows; empty ones are left out."""
    status = str(incident.status)
    if incident.change not in (IncidentChange.RAISED, incident.status):
        status += f" ({label(incident.change)})"
    rows = [
        ("What", label(incident.kind)),
        ("Severity", str(incident.severity).upper()),
        ("Status", status),
        ("Camera", incident.camera_id or ""),
        ("Zone", incident.zone or ""),
        ("Location", location_label(incident.location)),
        ("Confidence", f"{incident.confidence:.0%}"),
        ("Raised at", readable_time(incident.created_at)),
        ("Rule", incident.rule or ""),
        ("Incident", f"{incident.id} (revision {incident.revision})"),
    ]
    return [(name, value) for name, value in rows if value]


def body_text(incident: Incident, *, notes: list[str] | None = None) -> str:
    """Plain text: the drill banner first and last, then the change, the title and the facts."""
    lines: list[str] = []
    if incident.exercise:
        lines += [DRILL_BANNER, ""]
    change = change_line(incident)
    if change:
        lines.append(change)
    lines += [headline(incident), ""]
    width = max(len(name) for name, _ in details(incident)) + 1
    lines += [f"{name + ':':<{width}} {value}" for name, value in details(incident)]
    if notes:
        lines += ["", *notes]
    if incident.exercise:
        lines += ["", DRILL_BANNER]
    return "\n".join(lines) + "\n"


def body_html(incident: Incident, *, notes: list[str] | None = None) -> str:
    """The same as :func:`body_text` as a small HTML page (every value escaped)."""
    esc = html.escape
    parts = ["<!doctype html><html><body>"]
    banner = '<p style="background:#ffd400;padding:8px;font-weight:bold">{}</p>'
    if incident.exercise:
        parts.append(banner.format(esc(DRILL_BANNER)))
    change = change_line(incident)
    if change:
        parts.append(f"<p><strong>{esc(change)}</strong></p>")
    parts.append(f"<h2>{esc(headline(incident))}</h2><table>")
    parts += [f"<tr><th align=left>{esc(n)}</th><td>{esc(v)}</td></tr>" for n, v in details(incident)]
    parts.append("</table>")
    parts += [f"<p>{esc(note)}</p>" for note in notes or []]
    if incident.exercise:
        parts.append(banner.format(esc(DRILL_BANNER)))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# -- the snapshot -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The verified snapshot bytes, or None with a note saying why it is not attached."""

    data: bytes | None
    filename: str = "snapshot.jpg"
    mimetype: str = "image/jpeg"
    note: str | None = None


def load_snapshot(incident: Incident, base_dir: Path) -> Snapshot:
    """Read the snapshot and check it against the recorded sha256 (blocking: run it in a thread).

    Never raises: a missing or altered file is a note in the message, never a failed alert. The
    bytes checked are the bytes attached, so the file cannot change in between.
    """
    evidence = incident.evidence
    if not evidence.snapshot_path:
        return Snapshot(None)
    path = Path(evidence.snapshot_path)
    path = path if path.is_absolute() else base_dir / path
    name = f"{incident.id}-snapshot{path.suffix or '.jpg'}"
    if not evidence.snapshot_sha256:
        return Snapshot(None, note="Snapshot not attached: no checksum was recorded for it.")
    try:
        size = path.stat().st_size
        if size > MAX_SNAPSHOT_BYTES:
            return Snapshot(None, note=f"Snapshot not attached: {path.name} is {size // 1024} KiB, too large.")
        data = path.read_bytes()
    except FileNotFoundError:
        return Snapshot(None, note=f"Snapshot not attached: {path.name} is missing on the server.")
    except OSError as exc:
        return Snapshot(None, note=f"Snapshot not attached: {path.name} cannot be read ({exc.strerror}).")
    if hashlib.sha256(data).hexdigest() != evidence.snapshot_sha256.lower():
        return Snapshot(None, note=f"Snapshot not attached: {path.name} does not match its recorded checksum.")
    mimetype = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    return Snapshot(data, filename=name, mimetype=mimetype, note=None)
