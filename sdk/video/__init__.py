"""A toolkit for camera-source plugins: a PyAV decoder thread per camera with reconnect and backoff,
a latest-frame mailbox, and :class:`DecodingCamera`, the base the built-in RTSP and file sources
use. A vendor's camera source subclasses it and only says how to open its stream.

PyAV is imported only when a stream is opened, so importing this module stays cheap.
"""

from .camera import DecodingCamera
from .decoder import DecodeOptions, DecoderThread, NotAStream, Pacer, RateCap, scaled_size
from .mailbox import LatestMailbox, MailboxClosed
from .packets import PacketRing, PacketSnapshot, PacketSource, RingPacket
from .redact import describe, redact, with_credentials

__all__ = [
    "DecodeOptions",
    "DecoderThread",
    "DecodingCamera",
    "LatestMailbox",
    "MailboxClosed",
    "NotAStream",
    "Pacer",
    "PacketRing",
    "PacketSnapshot",
    "PacketSource",
    "RateCap",
    "RingPacket",
    "describe",
    "redact",
    "scaled_size",
    "with_credentials",
]
