"""Find the line of a key in TOML source, so that every config error can name it.

``tomllib`` keeps no positions, so this scans the text: table headers (``[a.b]``, ``[[a]]``) and
``key = value`` lines, including dotted and quoted keys. It is only used to point at errors; the
values themselves always come from ``tomllib``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*=""")
_PART = re.compile(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*""")


def _split_key(text: str) -> tuple[str, ...]:
    return tuple(m.group(1).strip("\"'") for m in _PART.finditer(text) if m.group(1))


Path = tuple[str | int, ...]


def _in_array(parts: tuple[str, ...], array_counts: dict[Path, int]) -> Path:
    """``[rules.when]`` after the second ``[[rules]]`` is ``("rules", 1, "when")``, as TOML reads it.

    Arrays nest: ``[[rules.actions]]`` belongs to the latest ``[[rules]]``, so its count is kept per rule.
    """
    resolved: Path = ()
    for depth, part in enumerate(parts, start=1):
        resolved = (*resolved, part)
        if depth < len(parts) and resolved in array_counts:
            resolved = (*resolved, array_counts[resolved])
    return resolved


class TomlLocator:
    """Maps a key path such as ``("notifiers", "mqtt", "host")`` to a 1-based line number."""

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple[str | int, ...], int] = {}
        self._index_lines(text)

    def _index_lines(self, text: str) -> None:
        table: tuple[str | int, ...] = ()
        array_counts: dict[Path, int] = {}
        in_multiline = False
        for number, line in enumerate(text.splitlines(), start=1):
            # Skip the body of multi-line strings: their lines are not keys.
            if in_multiline:
                if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                    in_multiline = False
                continue
            header = _HEADER.match(line)
            if header and not _KEY.match(line):
                parts = _split_key(header.group(2))
                table = _in_array(parts, array_counts)
                if header.group(1) == "[[":
                    index = array_counts.get(table, -1) + 1
                    array_counts[table] = index
                    table = (*table, index)
                self._lines.setdefault(table, number)
                for depth in range(1, len(parts)):
                    self._lines.setdefault(parts[:depth], number)
                continue
            key = _KEY.match(line)
            if key:
                path = (*table, *_split_key(key.group(1)))
                self._lines.setdefault(path, number)
                if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                    in_multiline = True

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of ``path``, or of its nearest enclosing table or key that has one."""
        current = tuple(path)
        while current:
            if current in self._lines:
                return self._lines[current]
            current = current[:-1]
        return None
