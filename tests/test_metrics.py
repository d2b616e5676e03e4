"""``[core] metrics_port``: Prometheus text with incidents, deliveries, cameras, components and latency."""

from __future__ import annotations

import socket

import httpx
from test_rules import PLUGINS, SITE
from test_rules_lifecycle import _all_delivered, raised, until

from campusguard.sdk import StageStamp
from campusguard.sdk.testing import make_observation


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_metrics_show_incidents_deliveries_components_and_latency(campusguard_core) -> None:
    port = free_port()
    config = (
        f"[core]\nmetrics_port = {port}\n"
        + SITE
        + '\n[[rules]]\nname = "weapon"\nwhen = { kinds = ["weapon"] }\nnotify = ["office"]\n'
    )
    async with campusguard_core(config, plugins=PLUGINS) as core:
        observation = make_observation(kind="weapon", camera_id="gate", zone="lamp", captured=StageStamp.now())
        await raised(core, observation)
        await until(lambda: _all_delivered(core))
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        lines = response.text.splitlines()
        assert 'campusguard_incidents{kind="weapon",status="confirmed"} 1' in lines
        assert 'campusguard_deliveries{target="office",status="delivered"} 1' in lines
        assert 'campusguard_component_up{table="cameras",name="gate",state="loaded"} 1' in lines
        assert any(
            line.startswith('campusguard_latency_ms{stage="delivered:office",quantile="0.99"}') for line in lines
        )
        assert any(line.startswith('campusguard_camera_frames_decoded_total{camera="gate"}') for line in lines)
        assert "# TYPE campusguard_incidents gauge" in lines
    # Stopped with the core: nothing listens any more.
    async with httpx.AsyncClient() as client:
        try:
            await client.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            raise AssertionError("the metrics endpoint outlived the core")
        except httpx.ConnectError:
            pass
