"""Webhook payload templates (Slack/Teams-style receivers), against a real HTTP receiver and a real core."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import campusguard.plugins.notifiers.hooks as builtin_notifiers
from campusguard.core.config import ConfigInvalid, load_config, validate_components
from campusguard.core.plugin_manager import PluginHost
from campusguard.plugins.notifiers.webhook import WebhookNotifier, sign
from campusguard.sdk.testing import make_context, make_incident

SECRET = "template-secret"


class Receiver:
    """A real HTTP endpoint answering each POST with the next queued status (204 when none)."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.attempts: list[tuple[dict[str, str], bytes, int]] = []  # every request, with the answer
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 204
                    receiver.attempts.append((dict(self.headers), body, status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def accepted(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(headers, body) for headers, body, status in self.attempts if status < 300]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


async def post(tmp_path: Path, options: dict[str, Any], **incident: Any) -> None:
    config = WebhookNotifier.Config.model_validate(options)
    notifier = WebhookNotifier("slack", config, make_context("slack", tmp_path))
    await notifier.start()
    try:
        await notifier.notify(make_incident(**incident))
    finally:
        await notifier.stop()


async def test_template_renders_fields_and_keeps_signature_and_key(receiver: Receiver, tmp_path: Path) -> None:
    template = {
        "text": "{title} on {camera_id} ({confidence:.0%})",
        "severity": "{severity}",
        "confidence": "{confidence}",  # one bare placeholder keeps the JSON type
        "zone": "{zone}",
        "location": "{location}",
        "blocks": [{"type": "mrkdwn", "text": "*{headline}*"}, 3, True],
    }
    await post(tmp_path, {"url": receiver.url, "secret": SECRET, "template": template}, location=None)
    ((headers, body),) = receiver.accepted()
    assert json.loads(body) == {
        "text": "Person in the east courtyard after hours on test-camera (90%)",
        "severity": "severe",
        "confidence": 0.9,
        "zone": "courtyard",
        "location": None,
        "blocks": [{"type": "mrkdwn", "text": "*SEVERE intrusion: Person in the east courtyard after hours*"}, 3, True],
    }
    assert headers["X-Campusguard-Signature"] == sign(SECRET, headers["X-Campusguard-Timestamp"], body)
    assert headers["Idempotency-Key"].endswith(":slack")
    assert headers["X-Campusguard-Exercise"] == "false"


async def test_drill_is_marked_even_when_the_template_forgets(receiver: Receiver, tmp_path: Path) -> None:
    await post(tmp_path, {"url": receiver.url, "template": {"text": "{title}", "sev": "{severity}"}}, exercise=True)
    await post(tmp_path, {"url": receiver.url, "template": {"text": "{drill}{kind}"}}, exercise=True)
    await post(tmp_path, {"url": receiver.url, "template": {"text": "{title}"}}, exercise=False)
    bodies = [json.loads(body) for _, body in receiver.accepted()]
    assert bodies == [
        {"text": "[EXERCISE] Person in the east courtyard after hours", "sev": "severe"},
        {"text": "[EXERCISE] intrusion"},
        {"text": "Person in the east courtyard after hours"},
    ]
    assert [h["X-Campusguard-Exercise"] for h, _ in receiver.accepted()] == ["true", "true", "false"]


async def test_no_template_sends_the_incident_json(receiver: Receiver, tmp_path: Path) -> None:
    await post(tmp_path, {"url": receiver.url})
    ((_, body),) = receiver.accepted()
    assert json.loads(body)["title"] == "Person in the east courtyard after hours"
    assert json.loads(body)["kind"] == "intrusion"


def registries() -> Any:
    host = PluginHost()
    host.register(builtin_notifiers, "builtin-notifiers", module=builtin_notifiers.__name__)
    return host.collect_registrations()


BAD = """\
[core]
site = "Test High"

[notifiers.slack]
type = "webhook"
url = "https://hooks.example/services/T0/B0"
template = {{ text = "{text}", severity = "{{severity}}" }}
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{title} on {camera}", "text: unknown field 'camera' in '{title} on {camera}'; allowed fields: id,"),
        ("{title.__class__}", "text: unknown field 'title.__class__'"),
        ("{}", "text: a positional placeholder {}"),
        ("{title:.2f}", "text: '{title:.2f}' cannot be rendered: Unknown format code 'f'"),
        ("{title", "text: '{title' is not a valid template: expected '}' before end of string"),
    ],
)
def test_bad_placeholder_is_a_config_error_with_file_and_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "plugins.toml"
    path.write_text(BAD.format(text=text))
    with pytest.raises(ConfigInvalid) as invalid:
        validate_components(load_config(path), registries())
    ((issue,),) = [invalid.value.issues]
    assert str(issue).startswith(f"{path}:7: [notifiers.slack] template: value error, ")
    assert problem in str(issue)


def test_campusguard_check_reports_the_bad_field(tmp_path: Path) -> None:
    path = tmp_path / "plugins.toml"
    path.write_text(BAD.format(text="{title} on {camera}"))
    cli = str(Path(sys.executable).parent / "campusguard")
    result = subprocess.run([cli, "check", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{path}:7: [notifiers.slack] template: value error, text: unknown field 'camera'" in result.stderr
    assert "camera_id" in result.stderr  # the allowed fields are listed


GOOD = """
[delivery]
retry_initial = 0.1
retry_max = 0.2
poll_interval = 0.1

[notifiers.slack]
type = "webhook"
url = "{url}"
secret = {{ env = "CG_TEST_WEBHOOK_SECRET" }}
template = {{ text = "{{title}} on {{camera_id}}", key = "{{key}}" }}
"""


async def test_500_then_200_delivers_each_once_in_order(
    campusguard_core: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CG_TEST_WEBHOOK_SECRET", SECRET)
    receiver.statuses = [500]
    async with campusguard_core(GOOD.format(url=receiver.url), plugins={"notifiers": builtin_notifiers}) as core:
        raised = [await core.api.raise_incident(make_incident(title=f"incident {i}")) for i in range(3)]
        await core.wait_delivered("slack", 3)
    keys = [f"{incident.id}:slack" for incident in raised]
    accepted = receiver.accepted()
    assert [headers["Idempotency-Key"] for headers, _ in accepted] == keys  # each once, in order
    assert [json.loads(body) for _, body in accepted] == [
        {"text": f"incident {i} on test-camera", "key": key} for i, key in enumerate(keys)
    ]
    for headers, body in accepted:
        assert headers["X-Campusguard-Signature"] == sign(SECRET, headers["X-Campusguard-Timestamp"], body)
    statuses = [status for _, _, status in receiver.attempts]
    assert statuses == [500, 204, 204, 204]  # the first was retried before the second went out
    assert receiver.attempts[0][0]["Idempotency-Key"] == keys[0]
