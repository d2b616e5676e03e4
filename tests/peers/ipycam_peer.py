"""ipycam as a test peer: a real ONVIF device (Device, Media, PTZ, WS-Discovery), run as a subprocess.

    python ipycam_peer.py --host 127.0.0.1 [--port 0] [--user U --password P] [--discovery]

Serves only ipycam's ONVIF HTTP handler (and, with ``--discovery``, its WS-Discovery responder):
no encoder, no RTSP, no web UI, so it starts in well under a second. Prints ``READY <port>`` once
it listens and stops cleanly on SIGTERM. Start ``--discovery`` only inside a network namespace:
ipycam multicasts a Hello as it starts.
"""

from __future__ import annotations

import argparse
import signal
import socketserver
import sys
import threading

PTZ_XMLNS = 'xmlns:ptz="http://www.onvif.org/ver20/ptz/wsdl" xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl"'


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--name", default="Virtual Camera")
    parser.add_argument("--model", default="VirtualCam-1")
    parser.add_argument("--discovery", action="store_true")
    parser.add_argument("--rtsp-port", type=int, default=8554, help="where the advertised streams are served")
    parser.add_argument("--raw-ptz", action="store_true", help="keep ipycam's PTZ answers as shipped (broken XML)")
    args = parser.parse_args()

    from ipycam import CameraConfig, IPCamera
    from ipycam.discovery import WSDiscoveryServer
    from ipycam.http import IPCameraHTTPHandler

    server = _Server((args.host, args.port), IPCameraHTTPHandler)
    port = server.server_address[1]
    config = CameraConfig(
        name=args.name, model=args.model, local_ip=args.host, onvif_port=port, rtsp_port=args.rtsp_port
    )
    config.username, config.password = args.user, args.password
    camera = IPCamera(config)
    IPCameraHTTPHandler.camera = camera  # ipycam's handler finds its camera through a class attribute
    if not args.raw_ptz:
        # ipycam 1.3's PTZ answers use the prefixes ptz: and tptz: without declaring them, so they are
        # not well-formed XML; declaring both on the envelope makes them what ipycam meant.
        templates = camera.onvif._templates
        templates["envelope"] = templates["envelope"].replace("<s:Envelope ", f"<s:Envelope {PTZ_XMLNS} ", 1)
    discovery = WSDiscoveryServer(camera.onvif) if args.discovery else None
    if discovery is not None:
        discovery.start()
    threading.Thread(target=server.serve_forever, daemon=True).start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"READY {port}", flush=True)
    while not stop.wait(0.2):  # wakes up so that signal handlers run promptly
        pass
    if discovery is not None:
        discovery.stop()
    camera.ptz.stop()
    server.shutdown()
    server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
