"""The running core: loads plugins, checks the whole config, then starts store, bus and components.

Nothing starts until every plugin is loaded and every config table is valid, so a bad config
never leaves anything half-started.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from campusguard.sdk import (
    FRAMES,
    INCIDENTS,
    CameraSource,
    CameraSourceConfig,
    ComponentContext,
    Dispatcher,
    EventHandler,
    Incident,
    IncidentChange,
    IncidentStatus,
    Notifier,
    Stage,
)
from campusguard.sdk.models import keep_files

from .bus import InProcessBus
from .config import ComponentSpec, ConfigInvalid, LoadedConfig, validate_components
from .delivery import DeliveryWorker
from .doors.gate import DoorGate, publisher
from .evidence import EvidenceRecorder
from .plugin_manager import PluginHost
from .store import Job, SQLiteStore
from .supervisor import ComponentState, Supervised, Supervisor

log = logging.getLogger("campusguard.core")


class Core:
    """One running campusguard. Implements :class:`campusguard.sdk.CoreAPI`."""

    def __init__(self, config: LoadedConfig, *, host: PluginHost | None = None, load_entry_points: bool = True) -> None:
        self.config = config
        settings = config.settings
        self.host = host or PluginHost(disabled=settings.plugins.disabled, strict=settings.plugins.strict)
        self._load_entry_points = load_entry_points
        self._bus: InProcessBus | None = None
        self.store = SQLiteStore(self.data_dir / "campusguard.db")
        self.supervisor = Supervisor(
            start_timeout=settings.core.start_timeout,
            stop_timeout=settings.core.stop_timeout,
            retry_initial=settings.core.retry_initial,
            retry_max=settings.core.retry_max,
            on_started=self._component_started,
            on_stopping=self._component_stopping,
        )
        self.workers: dict[str, DeliveryWorker] = {}
        self.cameras: dict[str, Any] = {}  # name -> CameraRunner (imported lazily: it needs OpenCV)
        self._subscriptions: dict[str, list[Any]] = {}
        self.specs: list[ComponentSpec] = []
        self.scheduler: Any = None  # DetectionScheduler, when detectors or analyzers are configured
        self.processor: Any = None
        self.rules: Any = None  # RuleEngine, when the config has [[rules]]
        self.evidence: EvidenceRecorder | None = None  # snapshots and clips of incidents ([evidence])
        self.lifecycle: Any = None  # Lifecycle: escalations, delayed actions, people's decisions
        # Every door command, from rules or people, passes this gate: safety checks and audit.
        self.control: Any = None  # ControlServer: the local socket the CLI talks to
        self.metrics: Any = None  # MetricsServer, when [core] metrics_port is set
        self._camera_configs: dict[str, CameraSourceConfig] | None = None
        self.tailgating: Any = None  # TailgatingWatch, when a door has a camera and a line
        self.visitors: Any = None  # VisitorRoster: who is on site, announced on lockdown and evacuation
        self.event_observations: Any = None  # EventObservations: door and camera alarms for the rules
        self._include: Callable[[str], bool] | None = None
        self.doors = DoorGate(self.store, settings.doors, settings.scenarios, lambda: self.loaded("adapters"))
        self._started = False

    # -- CoreAPI ---------------------------------------------------------------------------------

    @property
    def bus(self) -> InProcessBus:
        if self._bus is None:
            raise RuntimeError("the core is not started")
        return self._bus

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    def camera(self, camera_id: str) -> CameraSourceConfig | None:
        # Looked up several times per frame (detectors, tracker, crop): a dict, built once per config.
        if self._camera_configs is None:
            cameras = [s for s in self.specs if s.table == "cameras"]
            self._camera_configs = {s.name: s.config for s in cameras if isinstance(s.config, CameraSourceConfig)}
        return self._camera_configs.get(camera_id)

    def camera_ids(self) -> list[str]:
        return [s.name for s in self.specs if s.table == "cameras"]

    async def raise_incident(
        self, incident: Incident, targets: Sequence[str] | None = None, *, jobs: Sequence[Job] = ()
    ) -> Incident:
        """The SDK's ``raise_incident``; the rules also pass the incident's lifecycle ``jobs``."""
        incident.stamp(Stage.RAISED)
        targets = self.notifier_names() if targets is None else list(targets)
        if self.evidence is not None:
            await self.evidence.attach_snapshot(incident)  # bounded, never fails: notifiers get it at once
        incident.stamp(Stage.ENQUEUED)  # the moment its deliveries are written (the same transaction)
        await self.store.record_incident(incident, targets, jobs=jobs)
        if self.evidence is not None:
            self.evidence.schedule_clip(incident)
        self.wake_delivery(targets)
        if jobs and self.lifecycle is not None:
            self.lifecycle.wake()
        self.bus.publish(INCIDENTS, incident)
        return incident

    async def resolve_incident(self, incident_id: str, *, actor: str, note: str = "") -> Incident | None:
        """Close an incident the core itself saw end (a camera back online); its receivers hear of it."""
        from .rules.jobs import CLOSED

        def resolve(incident: Incident) -> bool:
            if IncidentStatus(incident.status) in CLOSED:
                return False
            incident.advance(IncidentChange.RESOLVED, IncidentStatus.RESOLVED)
            return True

        resolved = await self.store.change_incident(
            incident_id, resolve, targets=lambda _i, prior: prior, actor=actor, action="incident.resolved",
            detail={"note": note},
        )  # fmt: skip
        if resolved is not None:
            self.wake_delivery(await self.store.targets_of(incident_id))
            self.publish_incident(resolved)
        return resolved

    def wake_delivery(self, targets: Sequence[str]) -> None:
        for target in targets:
            worker = self.workers.get(target)
            if worker is not None:
                worker.wake()

    def publish_incident(self, incident: Incident) -> None:
        """Put a changed incident on the bus (the rules' dedupe, the lifecycle, the detection priority)."""
        if self._bus is not None:
            self._bus.publish(INCIDENTS, incident)

    async def update_incident(self, incident: Incident, *, actor: str | None = None) -> Incident:
        """Store what detection learned since (confidence, evidence, stages) on an incident already raised.

        Status, revision and exercise stay as stored: a person may have changed them meanwhile, and
        a stale copy must not undo that. Deliveries are not queued again: receivers were told once.
        """

        def merge(stored: Incident) -> bool:
            if incident.change == IncidentChange.EVIDENCE:
                # Files only: the stored boxes may be newer than the copy the clip was cut for.
                stored.evidence = keep_files(incident.evidence, stored.evidence)
            else:
                stored.confidence = incident.confidence
                stored.evidence = keep_files(stored.evidence, incident.evidence)
            stored.stages = {**stored.stages, **incident.stages}
            stored.change = incident.change
            return True

        merged = await self.store.change_incident(
            incident.id, merge, actor=actor or incident.source or "core", action="incident.updated"
        )
        if merged is None:
            raise KeyError(f"no incident {incident.id!r} to update")
        return merged

    # -- lifecycle -------------------------------------------------------------------------------

    def prepare(self) -> list[ComponentSpec]:
        """Load plugins and validate every component table. Raises before anything starts."""
        if self._load_entry_points:
            self.host.load_entry_points()
        registries = self.host.collect_registrations()
        from .doors.validate import door_issues
        from .rules.validate import dispatcher_issues, rule_issues

        # Rules are checked along with the components, so that one run reports every issue.
        rule_problems = rule_issues(self.config)
        try:
            specs = validate_components(self.config, registries)
        except ConfigInvalid as exc:
            raise ConfigInvalid([*exc.issues, *rule_problems]) from None
        rule_problems += dispatcher_issues(self.config, specs) + door_issues(self.config, specs)
        if rule_problems:
            raise ConfigInvalid(rule_problems)
        configured = {(s.table, s.kind) for s in specs if s.table == "event_handlers"}
        for registration in registries["event_handlers"]:
            if ("event_handlers", registration.cls.kind) not in configured:
                # Event handlers run whenever their plugin is on; their table only holds options.
                specs.append(
                    ComponentSpec(
                        "event_handlers",
                        registration.cls.kind,
                        registration.cls.kind,
                        registration.cls,
                        registration.plugin,
                        registration.cls.Config(),
                    )
                )
        self.specs = specs
        self._camera_configs = None
        return specs

    def build(self, spec: ComponentSpec) -> Any:
        """The component of ``spec``, constructed (not started: constructors only store their config)."""
        context = ComponentContext(
            name=spec.name,
            logger=logging.getLogger(f"campusguard.{spec.table}.{spec.name}"),
            core=self,
            data_dir=self.data_dir / spec.table / spec.name,
            config_dir=self.config.base_dir,
        )
        return spec.cls(spec.name, spec.config, context)

    async def start(self, include: Callable[[str], bool] | None = None, *, services: bool = True) -> None:
        """Start the store, the bus and every component (of the tables ``include`` accepts)."""
        if not self.specs:
            self.prepare()
        self._include = include
        self.data_dir.mkdir(parents=True, exist_ok=True)
        await self.store.open()
        self._bus = InProcessBus()
        self.doors._publish = publisher(self._bus)
        for spec in self.specs:
            if include is not None and not include(spec.table):
                continue
            self.supervisor.add(spec, self.build(spec))
        await self.supervisor.start_all()
        # services=False: just the components (the doors CLI acting while no core runs), so a command
        # never also runs pending escalations or rules as a side effect.
        if services:
            self.evidence = EvidenceRecorder(self, self.config.settings.evidence)
            await self.evidence.start()
            await self._start_detection()
            await self._start_rules()
            self._start_lifecycle()
            self._start_tailgating()
            self._start_visitors()
            await self._start_control()
            await self._start_metrics()
        self._started = True
        await self.host.call_lifecycle("campusguard_startup", self.config.settings.core.hook_timeout, core=self)
        log.info("campusguard started: %d components, site %r", len(self.specs), self.config.settings.core.site)

    async def stop(self) -> None:
        if not self._started:
            await self.store.close()
            return
        self._started = False
        await self.host.call_lifecycle("campusguard_shutdown", self.config.settings.core.hook_timeout, core=self)
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.lifecycle is not None:
            await self.lifecycle.stop()
            self.lifecycle = None
        if self.control is not None:
            await self.control.stop()
            self.control = None
        if self.metrics is not None:
            await self.metrics.stop()
            self.metrics = None
        if self.tailgating is not None:
            await self.tailgating.stop()
            self.tailgating = None
        if self.visitors is not None:
            self.doors.on_scenario = None
            await self.visitors.stop()
            self.visitors = None
        if self.event_observations is not None:
            await self.event_observations.stop()
            self.event_observations = None
        if self.evidence is not None:
            await self.evidence.stop()  # pending clips are cut now, while cameras and store are up
        await self.supervisor.stop_all()
        if self._bus is not None:
            await self._bus.close()
        await self.store.close()
        log.info("campusguard stopped")

    @contextlib.asynccontextmanager
    async def running(
        self, include: Callable[[str], bool] | None = None, *, services: bool = True
    ) -> AsyncIterator[Core]:
        await self.start(include, services=services)
        try:
            yield self
        finally:
            await asyncio.wait_for(self.stop(), self.config.settings.core.shutdown_timeout)

    async def __aenter__(self) -> Core:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.wait_for(self.stop(), self.config.settings.core.shutdown_timeout)

    # -- wiring of started components ------------------------------------------------------------

    def loaded(self, table: str) -> dict[str, Any]:
        """The components of ``table`` that are running now, by name."""
        return {
            s.spec.name: s.instance
            for s in self.supervisor.components.values()
            if s.spec.table == table and s.state is ComponentState.LOADED
        }

    async def _start_detection(self) -> None:
        if not any(s.table in ("detectors", "analyzers") for s in self.specs):
            return
        from .pipeline.processor import FrameProcessor
        from .pipeline.scheduler import DetectionScheduler
        from .pipeline.second_look import SecondLook

        settings = self.config.settings.detection
        second_look = SecondLook(settings.second_look_seconds, settings.second_look_max)
        self.processor = FrameProcessor(
            self,
            lambda: self.loaded("detectors"),
            lambda: self.loaded("trackers"),
            lambda: self.loaded("analyzers"),
            deadline=settings.deadline,
            second_look=second_look if settings.second_look else None,
        )
        self.scheduler = DetectionScheduler(
            self.processor.process, batch_size=settings.batch_size, hot_seconds=settings.hot_seconds
        )
        self.processor.lag, self.processor.waiting = self.scheduler.lag, self.scheduler.waiting
        self.processor.rate, self.processor.busy = self.scheduler.rate, self.scheduler.busy
        self.bus.subscribe(FRAMES, self.scheduler.offer, name="detection", maxsize=64)
        for incident in await self.store.list_incidents(500):  # still open after a restart: still hot
            await self.scheduler.on_incident(incident)
        self.bus.subscribe(INCIDENTS, self.scheduler.on_incident, name="detection-priority")
        self.scheduler.start()

    async def _start_rules(self) -> None:
        # Also without detectors: plugins (door systems, panic buttons) publish observations too.
        if not self.config.settings.rules:
            return
        from .rules.engine import RuleEngine

        self.rules = RuleEngine(self, self.config.settings.rules)
        await self.rules.restore()  # a restart within a dedupe window updates, not re-raises
        self.rules.start()

    async def _start_metrics(self) -> None:
        core = self.config.settings.core
        if core.metrics_port is None or self._include is not None:
            return
        from .metrics import MetricsServer

        self.metrics = MetricsServer(self, core.metrics_host, core.metrics_port)
        await self.metrics.start()

    async def _start_control(self) -> None:
        """The CLI's way in (doors); only a full core listens, not the CLI's own adapters-only one."""
        if self._include is not None:
            return
        from .control import ControlServer, control_path
        from .doors.service import handlers

        self.control = ControlServer(control_path(self.data_dir), handlers(self.doors))
        await self.control.start()

    def _start_tailgating(self) -> None:
        from .doors.events import EventObservations
        from .doors.tailgating import TailgatingWatch

        # Door and camera alarms become observations, so rules decide what is an incident.
        self.event_observations = EventObservations(self.bus, self.config.settings.doors)
        self.event_observations.start()

        watch = TailgatingWatch(self.bus, self.config.settings.doors)
        if watch.active:
            self.tailgating = watch
            watch.start()

    def _start_visitors(self) -> None:
        from .visitors.roster import VisitorRoster

        self.visitors = VisitorRoster(self)
        self.visitors.start()
        self.doors.on_scenario = self.visitors.on_scenario

    def _start_lifecycle(self) -> None:
        # Always: people change incidents raised by plugins too, and their receivers must hear of it.
        from .rules.actions import ActionRunner
        from .rules.lifecycle import Lifecycle

        self.lifecycle = Lifecycle(self, self.config.settings.rules, ActionRunner(self))
        self.lifecycle.start()

    def notifier_names(self) -> list[str]:
        return [s.name for s in self.specs if s.table == "notifiers"]

    async def _component_started(self, s: Supervised) -> None:
        instance = s.instance
        fail = functools.partial(self.supervisor.fail, s.key)  # a running component reports a fatal error
        if isinstance(instance, Notifier | Dispatcher):
            # Dispatchers take incidents through the outbox exactly like notifiers (rules' dispatch action).
            worker = DeliveryWorker(s.spec.name, instance, self.store, self.config.settings.delivery, on_fatal=fail)
            self.workers[s.spec.name] = worker
            worker.start()
        elif isinstance(instance, CameraSource):
            from .pipeline.camera_runner import CameraRunner

            runner = CameraRunner(instance, self, on_fatal=fail)
            self.cameras[s.spec.name] = runner
            runner.start()
        elif isinstance(instance, EventHandler):
            self._subscriptions[s.key] = [
                self.bus.subscribe(topic, instance.handle, name=s.key) for topic in type(instance).topics
            ]

    async def _component_stopping(self, s: Supervised) -> None:
        worker = self.workers.pop(s.spec.name, None) if s.spec.table in ("notifiers", "adapters") else None
        if worker is not None:
            await worker.stop()
        runner = self.cameras.pop(s.spec.name, None) if s.spec.table == "cameras" else None
        if runner is not None:
            await runner.stop()
        for subscription in self._subscriptions.pop(s.key, []):
            await subscription.close()
