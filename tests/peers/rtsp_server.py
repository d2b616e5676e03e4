#!/usr/bin/python3
"""A real RTSP server (GStreamer's gst-rtsp-server), run under the SYSTEM Python as a test peer.

    /usr/bin/python3 rtsp_server.py --port 8554 [--file PATH [--file-mounts N]] [--user U --password P]

Mounts ``/live`` (a live 640x360 15 fps H.264 test pattern with a moving ball) and, given
``--file``, ``/file`` (an MP4's H.264 stream, from its start for each client). ``--file-mounts N``
also serves the file as ``/file0`` ... ``/fileN-1`` for load tests: no encoder runs, so the server
costs next to no CPU, and each client gets its own pipeline from the file's start. Prints
``READY <port>`` once it listens. Needs Debian's gir1.2-gst-rtsp-server-1.0, python3-gi and the
GStreamer base/good/ugly plugins (x264enc).
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

LIVE = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},framerate={fps}/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=800 "
    "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
FILE = "( filesrc location={path} ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--mounts", type=int, default=1, help="also serve /live1 ... /liveN-1 (load tests)")
    parser.add_argument("--alias", action="append", default=[], help="also serve the live pattern at this path")
    parser.add_argument("--file-mounts", type=int, default=0, help="also serve --file as /file0 ... /fileN-1")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()

    def mount(path, launch, shared=True):
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(shared)
        if args.user:
            permissions = GstRtspServer.RTSPPermissions()
            permissions.add_permission_for_role("campusguard", "media.factory.access", True)
            permissions.add_permission_for_role("campusguard", "media.factory.construct", True)
            factory.set_permissions(permissions)
        mounts.add_factory(path, factory)

    live = LIVE.format(w=args.width, h=args.height, fps=args.fps)
    mount("/live", live)
    for index in range(1, args.mounts):
        mount(f"/live{index}", live)
    for path in args.alias:
        mount(path if path.startswith("/") else f"/{path}", live)
    if args.file:
        file_factory_launch = FILE.format(path=args.file)
        mount("/file", file_factory_launch)
        for index in range(args.file_mounts):
            # Not shared: when a client joins a shared file media, the timestamps of those already
            # watching jump back (by 2 s in a test), which stalls their frame-rate cap for as long.
            mount(f"/file{index}", file_factory_launch, shared=False)

    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "campusguard")
        basic = GstRtspServer.RTSPAuth.make_basic(args.user, args.password)
        auth.add_basic(basic, token)
        server.set_auth(auth)

    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", file=sys.stderr, flush=True)
        sys.exit(2)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print(f"READY {args.port}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
