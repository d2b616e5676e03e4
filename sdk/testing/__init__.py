"""The test kit for plugin authors: a pytest plugin, message factories and conformance suites.

It is registered through the ``pytest11`` entry point but is opt-in like pytester: nothing runs
unless a test asks for one of its fixtures or subclasses a conformance suite.

- ``campusguard_core``: start an in-process core with its own plugin manager and inline plugins.
- ``campusguard_no_lingering``: fail a test that leaves tasks or threads behind.
- :mod:`~campusguard.sdk.testing.factories`: valid messages with sensible defaults.
- :mod:`~campusguard.sdk.testing.conformance`: one suite per component kind for vendors to subclass.
"""

from .factories import make_door_event, make_frame, make_incident, make_observation
from .harness import CoreHarness, RunningCore, load_harness
from .recording import RecordingNotifier, RecordingPlugin
from .stubs import RecordingBus, StubCore, make_context

__all__ = [
    "CoreHarness",
    "RecordingBus",
    "RecordingNotifier",
    "RecordingPlugin",
    "RunningCore",
    "StubCore",
    "load_harness",
    "make_context",
    "make_door_event",
    "make_frame",
    "make_incident",
    "make_observation",
]
