"""Errors a plugin raises to tell the core what to do next."""

from __future__ import annotations


class CampusguardError(Exception):
    """Base class of every error campusguard defines."""


class NotReady(CampusguardError):
    """The component cannot start *yet* (device booting, network down).

    The core retries ``start()`` with exponential backoff and jitter, like Home Assistant's
    ``ConfigEntryNotReady``. Give a reason a school's IT lead can act on.
    """


class AuthFailed(CampusguardError):
    """The outside system rejected our credentials.

    Retrying will not help, so the core stops this component, marks it ``failed`` and reports the
    message; every other component keeps running.
    """


class ConfigError(CampusguardError):
    """A configuration value is wrong.

    ``source`` names where it came from (``plugins.toml:14``) when that is known.
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.message = message
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)
