"""A standards-following WS-Discovery responder (wsdiscovery's own publisher), run as a subprocess.

    python wsd_publisher.py --xaddr http://10.77.0.1:8080/onvif/device_service --name "Front Door" \
        --hardware "FD-1" --location "Building A"

Answers Probes with a proper ``ProbeMatches`` message (unlike ipycam). Prints ``READY`` once it
listens; stops on SIGTERM. Run it only inside a network namespace: it multicasts.
"""

from __future__ import annotations

import argparse
import signal
import threading
from urllib.parse import quote

from wsdiscovery.publishing import ThreadedWSPublishing
from wsdiscovery.qname import QName
from wsdiscovery.scope import Scope


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--xaddr", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--hardware", required=True)
    parser.add_argument("--location", required=True)
    args = parser.parse_args()

    publisher = ThreadedWSPublishing()
    publisher.start()
    types = [QName("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter", "dn")]
    scopes = [
        Scope(f"onvif://www.onvif.org/{kind}/{quote(value)}")
        for kind, value in (("name", args.name), ("hardware", args.hardware), ("location", args.location))
    ]
    publisher.publishService(types, scopes, [args.xaddr])

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("READY", flush=True)
    while not stop.wait(0.2):
        pass
    publisher.stop()


if __name__ == "__main__":
    main()
