"""``campusguard doors``: list the site's doors; status, lockdown, release and unlock through the core.

With a core running, the request goes over its control socket (the OS tells the core who asks).
Without one, the CLI starts just the access-control adapters itself, acts, and stops them.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from typing import Any

from ..config import LoadedConfig
from ..control import ControlError, control_path, request


def print_list(loaded: LoadedConfig, as_json: bool) -> int:
    settings = loaded.settings
    if as_json:
        print(json.dumps({
            "doors": {n: d.model_dump(mode="json") for n, d in settings.doors.items()},
            "scenarios": {n: s.model_dump(mode="json") for n, s in settings.scenarios.items()},
        }, indent=2))  # fmt: skip
        return 0
    for name, door in settings.doors.items():
        egress = (
            " egress" + (" (locks from inside: never locked)" if door.locks == "both" else "") if door.egress else ""
        )
        print(f"door {name:<20} {door.name or name!r:<28} via {door.via:<14} zone {door.zone or '-'}{egress}")
    for name, scenario in settings.scenarios.items():
        doors = ", ".join(scenario.doors + [f"zone {z}" for z in scenario.zones])
        print(f"scenario {name:<16} {scenario.kind:<18} {doors}")
    return 0


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    common = {"by": args.by or "", "reason": args.reason, "exercise": args.exercise, "dry_run": args.dry_run}
    if args.action == "status":
        return {"op": "doors.status", **common}
    if args.action in ("lockdown", "release"):
        return {"op": "doors.scenario", "scenario": args.target, "release": args.action == "release", **common}
    return {"op": "doors.command", "door": args.target, "action": args.action, **common}


async def standalone(loaded: LoadedConfig, payload: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import Core
    from .service import serve

    core = Core(loaded)
    async with core.running(include=lambda table: table == "adapters", services=False):
        try:
            results = await serve(core.doors, payload, getpass.getuser())
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}
    return {"ok": True, "results": [r.as_dict() for r in results]}


def cmd_doors(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    if args.action == "list":
        return print_list(loaded, args.json)
    if args.action != "status" and not args.target:
        print(f"campusguard doors {args.action}: name the {'door' if args.action == 'unlock' else 'scenario'}",
              file=sys.stderr)  # fmt: skip
        return 2
    payload = build_request(args)

    async def act() -> dict[str, Any]:
        answer = await request(control_path(loaded.data_dir), payload)
        return answer if answer is not None else await standalone(loaded, payload)

    answer = asyncio.run(act())
    if not answer.get("ok"):
        print(f"campusguard doors {args.action}: {answer.get('error')}", file=sys.stderr)
        return 1
    results = answer["results"]
    if args.json:
        print(json.dumps(results, indent=2))
    for r in [] if args.json else results:
        print(f"{r['door']:<20} {r['action']:<18} {r['outcome']:<8} {r['detail']}")
    if not results and not args.json:
        print("no door changes (the scenario only informs people)")
    return 0 if all(r["outcome"] in ("done", "dry_run") for r in results) else 1
