"""What ``campusguard check`` can tell, beyond a valid config, without starting anything.

Each component's :meth:`~campusguard.sdk.Component.preflight` (a file that is not there), with the
config line it comes from, and the analyzers that no detector of their camera can feed. Both are
warnings: the config is valid, and a model may well be copied into place after it is checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .config import ComponentSpec
from .config.errors import ConfigIssue
from .pipeline.coverage import configured_gaps

if TYPE_CHECKING:
    from .runtime import Core


def preflight_warnings(core: Core, specs: Sequence[ComponentSpec]) -> list[str]:
    loaded, warnings = core.config, []
    built = {id(spec): core.build(spec) for spec in specs}  # constructed only: nothing starts
    for spec in specs:
        for key, message in built[id(spec)].preflight():
            locator = loaded.locator
            line = locator.line_of((spec.table, spec.name, key)) or locator.line_of((spec.table, spec.name))
            issue = ConfigIssue(loaded.display, line, f"{spec.table}.{spec.name}", f"{key}: {message}")
            warnings.append(f"{issue}; it will not start")
    warnings += [gap.message() for gap in configured_gaps(specs, lambda spec: built[id(spec)])]
    return warnings
