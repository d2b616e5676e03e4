"""``[core] metrics_port``: a Prometheus text endpoint, ``GET /metrics``, on the loopback by default.

What a district's monitoring wants without reading logs: incidents by kind and status, deliveries
per target and status (a growing ``pending`` is a receiver that is down), each camera's frames and
reconnects, what detection processed and dropped, each component's state, and the latency of each
stage from the frame's capture (quantiles over the recent incidents).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from .incidents import stats

log = logging.getLogger("campusguard.metrics")


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _sample(metric: str, value: float, **labels: object) -> str:
    inside = ",".join(f'{key}="{_label(v)}"' for key, v in labels.items())
    return f"{metric}{{{inside}}} {value:g}" if inside else f"{metric} {value:g}"


def _family(metric: str, kind: str, text: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}", *samples]


CAMERA_COUNTERS = {
    "decoded": "campusguard_camera_frames_decoded_total",
    "delivered": "campusguard_camera_frames_delivered_total",
    "dropped": "campusguard_camera_frames_dropped_total",
    "reconnects": "campusguard_camera_reconnects_total",
}


async def render(core: Any) -> str:
    """The whole exposition, read from the store and the running components."""
    store = core.store
    async with store.db.execute("SELECT kind, status, COUNT(*) FROM incidents GROUP BY kind, status") as cursor:
        incidents = await cursor.fetchall()
    deliveries = await store.delivery_counts()
    summary = await stats(store, 200)
    out: list[str] = []
    out += _family(
        "campusguard_incidents",
        "gauge",
        "Incidents in the store by kind and status.",
        [_sample("campusguard_incidents", n, kind=k, status=s) for k, s, n in incidents],
    )
    delivery_rows = [(t, s, n) for t, by_status in deliveries.items() for s, n in by_status.items()]
    out += _family(
        "campusguard_deliveries",
        "gauge",
        "Outbox deliveries by target and status (pending: not yet accepted).",
        [_sample("campusguard_deliveries", n, target=t, status=s) for t, s, n in delivery_rows],
    )
    cameras = {name: camera.stats for name, camera in core.loaded("cameras").items()}
    for field, metric in CAMERA_COUNTERS.items():
        samples = [_sample(metric, getattr(st, field), camera=name) for name, st in cameras.items()]
        out += _family(metric, "counter", f"Per camera: frames {field}.", samples)
    scheduler = core.scheduler
    if scheduler is not None:
        processed = [
            _sample("campusguard_detection_processed_total", n, camera=c) for c, n in scheduler.processed.items()
        ]
        skipped = [_sample("campusguard_detection_skipped_total", n, camera=c) for c, n in scheduler.dropped.items()]
        out += _family("campusguard_detection_processed_total", "counter", "Frames detection processed.", processed)
        out += _family("campusguard_detection_skipped_total", "counter", "Frames replaced before detection.", skipped)
    components = [
        _sample("campusguard_component_up", int(c.state == "loaded"), table=c.spec.table, name=c.spec.name,
                state=c.state)
        for c in core.supervisor.components.values()
    ]  # fmt: skip
    out += _family("campusguard_component_up", "gauge", "1 when the component is loaded (running).", components)
    processor = core.processor
    if processor is not None:
        blind = [
            _sample("campusguard_analyzer_blind", 1, camera=camera, analyzer=analyzer)
            for camera, analyzer in processor.coverage.gaps
        ]
        text = "1 when no detector of the camera reports a label the analyzer fires on (it can never fire)."
        out += _family("campusguard_analyzer_blind", "gauge", text, blind)
    latency = [
        _sample("campusguard_latency_ms", values[q], stage=stage, quantile=quantile)
        for stage, values in summary["latency_ms"].items()
        for q, quantile in (("p50", "0.5"), ("p99", "0.99"))
    ]
    out += _family(
        "campusguard_latency_ms",
        "gauge",
        "Milliseconds from a frame's capture to each stage (recent incidents).",
        latency,
    )
    return "\n".join(out) + "\n"


class MetricsServer:
    def __init__(self, core: Any, host: str, port: int) -> None:
        self.core = core
        self.host = host
        self.port = port
        self._runner: Any = None

    async def start(self) -> None:
        from aiohttp import web

        async def metrics(_request: web.Request) -> web.Response:
            return web.Response(text=await render(self.core), content_type="text/plain", charset="utf-8")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            with contextlib.suppress(Exception):
                self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
