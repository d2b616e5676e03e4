"""Run inside a network namespace by the discovery tests: probe, describe, render; print one JSON object.

ip netns exec NS python discover_in_netns.py --interface DEV --user admin --password secret [--config F]
"""

from __future__ import annotations

import argparse
import asyncio
import json

from campusguard.adapters.onvif.config_writer import add_cameras_to_config
from campusguard.adapters.onvif.discovery import discover, interface_addresses, probe
from campusguard.adapters.onvif.render import device_to_dict, render_json, render_text
from campusguard.sdk import CampusguardError


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interface", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--timeout", type=float, default=1.5)
    parser.add_argument("--config", help="plugins.toml to add the cameras found to")
    args = parser.parse_args()

    found = await discover(timeout=args.timeout, username=args.user, password=args.password)
    on_interface = await probe(timeout=args.timeout, interface=args.interface)
    added = add_cameras_to_config(args.config, found) if args.config else []
    errors = {}
    for name in ("lo", "no-such-if0"):
        try:
            interface_addresses(name)
        except CampusguardError as exc:
            errors[name] = str(exc)
    print(
        json.dumps(
            {
                "devices": [device_to_dict(d) for d in found],
                "json": json.loads(render_json(found)),
                "text": render_text(found),
                "text_without_credentials": render_text(on_interface, credentials_given=False),
                "on_interface": [device_to_dict(d) for d in on_interface],
                "interface_errors": errors,
                "added": added,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
