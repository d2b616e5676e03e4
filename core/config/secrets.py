"""Secrets in ``plugins.toml`` are references, never values: ``{ env = "NAME" }`` or ``{ file = "PATH" }``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class SecretMissing(Exception):
    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        self.path = path
        super().__init__(message)


def _is_reference(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("env", "file")


def resolve_secrets(value: Any, *, base_dir: Path, path: tuple[str | int, ...] = ()) -> Any:
    """Replace every secret reference in ``value`` by the secret it names.

    Raises :class:`SecretMissing` naming the key when the variable is unset or the file unreadable.
    The secret itself never appears in a message.
    """
    if _is_reference(value):
        ((source, name),) = value.items()
        if source == "env":
            if name not in os.environ:
                raise SecretMissing(path, f"environment variable {name!r} is not set")
            return os.environ[name]
        file = Path(name) if Path(name).is_absolute() else base_dir / name
        try:
            return file.read_text().strip()
        except OSError as exc:
            raise SecretMissing(path, f"cannot read secret file {str(file)!r}: {exc.strerror}") from None
    if isinstance(value, dict):
        return {k: resolve_secrets(v, base_dir=base_dir, path=(*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_secrets(v, base_dir=base_dir, path=(*path, i)) for i, v in enumerate(value)]
    return value
