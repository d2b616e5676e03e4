"""The door requests the control socket serves, and the same requests run without a core (the CLI)."""

from __future__ import annotations

from typing import Any

from campusguard.sdk import DoorAction

from ..control import ControlError, Handler
from .gate import DoorGate, DoorRefused, DoorResult


def _person(request: dict[str, Any]) -> str:
    by = str(request.get("by") or "").strip()
    if not by or by.startswith("rule:"):
        raise ControlError("say who you are: --by NAME (every door command is audited)")
    return by


async def serve(gate: DoorGate, request: dict[str, Any], user: str) -> list[DoorResult]:
    """Run one door request from ``user`` (authenticated by the OS) through the safety gate."""
    op = request["op"]
    options: dict[str, Any] = {
        "requested_by": _person(request), "authenticated_as": user, "reason": str(request.get("reason", "")),
        "exercise": bool(request.get("exercise")), "dry_run": bool(request.get("dry_run")),
    }  # fmt: skip
    try:
        if op == "doors.scenario":
            return await gate.scenario(str(request["scenario"]), release=bool(request.get("release")), **options)
        if op == "doors.command":
            action = DoorAction(str(request["action"]))
            return [await gate.command(str(request["door"]), action, **options)]
        if op == "doors.status":
            return [await gate.command(door, DoorAction.QUERY, **options) for door in gate.doors]
    except DoorRefused as exc:
        raise ControlError(str(exc)) from None
    except (KeyError, ValueError) as exc:
        raise ControlError(f"malformed {op} request: {exc}") from None
    raise ControlError(f"unknown op {op!r}")


def handlers(gate: DoorGate) -> dict[str, Handler]:
    async def handle(request: dict[str, Any], user: str) -> dict[str, Any]:
        return {"results": [r.as_dict() for r in await serve(gate, request, user)]}

    return {op: handle for op in ("doors.scenario", "doors.command", "doors.status")}
