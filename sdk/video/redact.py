"""Make stream errors plain: what went wrong, for which camera, never with its password."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]*@")


def redact(text: str) -> str:
    """Remove ``user:password@`` from every URL in ``text``."""
    return _CREDENTIALS.sub(r"\1***@", text)


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    """``url`` with the credentials inserted (used only to open the stream, never logged)."""
    if not username:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    from urllib.parse import quote

    auth = quote(username, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, parts.fragment))


def describe(exc: BaseException) -> str:
    """One line: the error's kind and its message, credentials removed."""
    message = getattr(exc, "strerror", None) or str(exc)
    return redact(f"{type(exc).__name__}: {message}")
