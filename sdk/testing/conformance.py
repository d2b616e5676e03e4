"""Conformance suites: subclass one per component you ship, and pytest runs the contract checks.

    from campusguard.sdk.testing.conformance import NotifierConformance

    class TestMyPager(NotifierConformance):
        component_class = MyPager

        def valid_config(self) -> dict[str, object]:
            return {"url": "https://pager.example.org/"}

Each suite checks that unknown config keys are rejected, that ``start()``/``stop()`` are
idempotent and finish within a deadline, that cancelling the work method mid-way is clean, and
(with :class:`ErrorMapping`) that an unreachable peer raises ``NotReady`` and bad credentials
raise ``AuthFailed``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ValidationError

from campusguard.sdk.components import (
    AccessControl,
    Analyzer,
    CameraSource,
    Component,
    Detector,
    Dispatcher,
    EventHandler,
    Notifier,
    Tracker,
    VisitorSystem,
)
from campusguard.sdk.errors import AuthFailed, NotReady
from campusguard.sdk.models import DoorAction, DoorCommand, Visitor

from .factories import make_frame, make_incident, make_observation
from .stubs import StubCore, make_context

UNKNOWN_KEY = "campusguard_conformance_unknown_key"


class ComponentConformance:
    """The checks every component kind shares. Subclass a kind-specific suite, not this one."""

    component_class: ClassVar[type[Component]]
    base_class: ClassVar[type[Component]] = Component
    #: seconds ``start()`` and ``stop()`` may take each
    deadline: ClassVar[float] = 10.0

    def valid_config(self) -> dict[str, Any]:
        """Options that make a working component (override when ``Config`` has required keys)."""
        return {}

    def build(self, tmp_path: Path, options: dict[str, Any] | None = None) -> Component:
        config = self.component_class.Config.model_validate(self.valid_config() if options is None else options)
        return self.component_class("conformance", config, make_context("conformance", tmp_path, StubCore(tmp_path)))

    async def exercise(self, component: Component) -> Any:
        """Call the work method once. Kind-specific suites supply this; override for special needs."""
        raise NotImplementedError

    # -- the checks ------------------------------------------------------------------------------

    def test_is_a_registered_kind(self) -> None:
        assert issubclass(self.component_class, self.base_class)
        assert isinstance(self.component_class.kind, str) and self.component_class.kind.isidentifier()
        assert issubclass(self.component_class.Config, BaseModel)

    def test_unknown_config_key_is_rejected(self) -> None:
        with pytest.raises(ValidationError, match=UNKNOWN_KEY):
            self.component_class.Config.model_validate({**self.valid_config(), UNKNOWN_KEY: 1})

    async def test_start_and_stop_are_idempotent_within_the_deadline(self, tmp_path: Path) -> None:
        component = self.build(tmp_path)
        await asyncio.wait_for(component.start(), self.deadline)
        await asyncio.wait_for(component.stop(), self.deadline)
        await asyncio.wait_for(component.stop(), self.deadline)
        await asyncio.wait_for(component.start(), self.deadline)  # restartable after stop
        await asyncio.wait_for(component.stop(), self.deadline)

    async def test_stop_without_start_is_safe(self, tmp_path: Path) -> None:
        await asyncio.wait_for(self.build(tmp_path).stop(), self.deadline)

    def test_preflight_of_a_working_config_finds_nothing_and_creates_nothing(self, tmp_path: Path) -> None:
        """``campusguard check`` calls it on every component: quick, quiet, and no files left behind."""
        component = self.build(tmp_path)
        before = sorted(tmp_path.rglob("*"))
        problems = component.preflight()
        assert isinstance(problems, list) and all(isinstance(k, str) and isinstance(m, str) for k, m in problems)
        assert problems == [], f"a working config should pass preflight: {problems}"
        assert sorted(tmp_path.rglob("*")) == before

    async def test_work_after_start_returns(self, tmp_path: Path) -> None:
        component = self.build(tmp_path)
        await component.start()
        try:
            await asyncio.wait_for(self.exercise(component), self.deadline)
        finally:
            await component.stop()

    async def test_cancellation_during_work_is_clean(self, tmp_path: Path) -> None:
        component = self.build(tmp_path)
        await component.start()
        before = set(asyncio.all_tasks())
        work = asyncio.ensure_future(self.exercise(component))
        await asyncio.sleep(0)
        work.cancel()
        try:
            await asyncio.wait_for(work, self.deadline)
        except asyncio.CancelledError:
            pass
        await asyncio.wait_for(component.stop(), self.deadline)
        await asyncio.sleep(0)
        left = [t for t in set(asyncio.all_tasks()) - before if not t.done() and t is not asyncio.current_task()]
        assert left == [], f"tasks left after cancel and stop: {[t.get_name() for t in left]}"


class ErrorMapping:
    """Mix in with a suite when your component talks to a peer: errors must map to the SDK's."""

    def unreachable_config(self) -> dict[str, Any]:
        """Options pointing at a peer that does not answer."""
        raise NotImplementedError

    def bad_credentials_config(self) -> dict[str, Any]:
        """Options with credentials the peer rejects (the suite's test double must reject them)."""
        raise NotImplementedError

    async def _start_and_work(self, tmp_path: Path, options: dict[str, Any]) -> None:
        suite: Any = self
        component = suite.build(tmp_path, options)
        try:
            await component.start()
            await suite.exercise(component)
        finally:
            await component.stop()

    def _limit(self) -> float:
        # start + work + stop, each within the suite's deadline
        return 3 * float(getattr(self, "deadline", 10.0))

    async def test_unreachable_peer_raises_not_ready(self, tmp_path: Path) -> None:
        with pytest.raises(NotReady):
            await asyncio.wait_for(self._start_and_work(tmp_path, self.unreachable_config()), self._limit())

    async def test_bad_credentials_raise_auth_failed(self, tmp_path: Path) -> None:
        with pytest.raises(AuthFailed):
            await asyncio.wait_for(self._start_and_work(tmp_path, self.bad_credentials_config()), self._limit())


class NotifierConformance(ComponentConformance):
    base_class = Notifier

    async def exercise(self, component: Component) -> Any:
        assert isinstance(component, Notifier)
        return await component.notify(make_incident(exercise=True))


class CameraSourceConformance(ComponentConformance):
    base_class = CameraSource

    async def exercise(self, component: Component) -> Any:
        assert isinstance(component, CameraSource)
        frames = component.frames()
        try:
            return await anext(frames)
        finally:
            aclose = getattr(frames, "aclose", None)  # async generators hold resources until closed
            if aclose is not None:
                await aclose()


class DetectorConformance(ComponentConformance):
    base_class = Detector

    async def exercise(self, component: Component) -> Any:
        assert isinstance(component, Detector)
        frames = [make_frame(sequence=0), make_frame(sequence=1)]
        result = await component.detect(frames)
        assert len(result) == len(frames), "detect() must return one list per frame"
        return result


class TrackerConformance(ComponentConformance):
    base_class = Tracker

    async def exercise(self, component: Component) -> Any:
        assert isinstance(component, Tracker)
        return await component.update(make_frame(), [])


class AnalyzerConformance(ComponentConformance):
    base_class = Analyzer

    async def exercise(self, component: Component) -> Any:
        assert isinstance(component, Analyzer)
        return await component.analyze(make_frame(), [])


class AccessControlConformance(ComponentConformance):
    """Checks an access-control adapter. Set ``door`` to a door your ``valid_config`` drives.

    The core's safety gate decides who may do what before a command reaches an adapter; an adapter
    must still never claim a door moved when it could not move it.
    """

    base_class = AccessControl
    #: a door id the adapter knows with ``valid_config()``
    door: ClassVar[str] = "door-1"

    async def exercise(self, component: Component) -> Any:
        assert isinstance(component, AccessControl)
        return await component.execute(
            DoorCommand(door_id=self.door, action=DoorAction.QUERY, requested_by="conformance")
        )

    async def test_query_answers_in_words(self, tmp_path: Path) -> None:
        component = self.build(tmp_path)
        await component.start()
        try:
            answer = await asyncio.wait_for(self.exercise(component), self.deadline)
        finally:
            await component.stop()
        assert isinstance(answer, str) and answer.strip(), "execute() returns what happened, for the audit log"

    async def test_an_unknown_door_is_a_clear_error(self, tmp_path: Path) -> None:
        component = self.build(tmp_path)
        assert isinstance(component, AccessControl)
        await component.start()
        try:
            command = DoorCommand(door_id="campusguard-no-such-door", action=DoorAction.LOCK, requested_by="rule:test")
            with pytest.raises((LookupError, ValueError), match="campusguard-no-such-door"):
                await asyncio.wait_for(component.execute(command), self.deadline)
        finally:
            await component.stop()


class VisitorSystemConformance(ComponentConformance):
    """Checks a visitor system: the roster is a list of visitors, and a lockdown is answered in words."""

    base_class = VisitorSystem

    async def exercise(self, component: Component) -> Any:
        assert isinstance(component, VisitorSystem)
        return await component.on_site()

    async def test_on_site_is_a_list_of_visitors(self, tmp_path: Path) -> None:
        component = self.build(tmp_path)
        await component.start()
        try:
            roster = await asyncio.wait_for(self.exercise(component), self.deadline)
        finally:
            await component.stop()
        assert isinstance(roster, list) and all(isinstance(v, Visitor) for v in roster)

    async def test_an_emergency_is_answered_in_words(self, tmp_path: Path) -> None:
        component = self.build(tmp_path)
        assert isinstance(component, VisitorSystem)
        await component.start()
        try:
            answer = await asyncio.wait_for(component.on_emergency("lockdown", [], exercise=True), self.deadline)
        finally:
            await component.stop()
        assert isinstance(answer, str) and answer.strip(), "on_emergency() returns what was done, for the audit log"


class DispatcherConformance(ComponentConformance):
    """Checks a dispatcher: drills and later changes of an incident (updates, cancels) are accepted."""

    base_class = Dispatcher

    async def exercise(self, component: Component) -> Any:
        assert isinstance(component, Dispatcher)
        return await component.dispatch(make_incident(exercise=True))

    async def test_a_later_change_of_an_incident_is_dispatched(self, tmp_path: Path) -> None:
        component = self.build(tmp_path)
        assert isinstance(component, Dispatcher)
        await component.start()
        try:
            incident = make_incident(exercise=True)
            await asyncio.wait_for(component.dispatch(incident), self.deadline)
            resolved = incident.model_copy(update={"status": "resolved", "revision": 1, "change": "resolved"})
            await asyncio.wait_for(component.dispatch(resolved), self.deadline)
        finally:
            await component.stop()


class EventHandlerConformance(ComponentConformance):
    base_class = EventHandler

    async def exercise(self, component: Component) -> Any:
        assert isinstance(component, EventHandler)
        return await component.handle(make_observation())
