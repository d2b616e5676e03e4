"""Socket errors in words a school's IT lead can act on."""

from __future__ import annotations

import errno


def describe_os_error(exc: OSError) -> str:
    """``connection refused (nothing listens on that port)`` rather than an errno dump."""
    return _ERRNO_WORDS.get(exc.errno or 0) or exc.strerror or str(exc) or type(exc).__name__


_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused (nothing listens on that port)",
    errno.EHOSTUNREACH: "no route to host (is it switched on and on this network?)",
    errno.ENETUNREACH: "network unreachable from this host",
    errno.ETIMEDOUT: "connection timed out",
    errno.ECONNRESET: "connection reset by the device",
}
