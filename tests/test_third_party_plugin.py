"""A real third-party plugin: separate distributions, built into wheels and installed, then discovered.

The sources under ``fixtures/dists`` are built once per session and installed with ``pip --target``
into a temporary directory, never into the project's environment, so no other test sees them: the
``campusguard`` subprocesses find them through ``PYTHONPATH``, the in-process test through ``sys.path``.

- ``campusguard-hello`` (plugin ``hello``): a notifier of type ``hello_file`` that appends JSON lines.
- ``campusguard-broken`` (plugin ``broken``): raises ``RuntimeError`` on import.
- ``campusguard-sentinel`` (plugin ``sentinel``): writes ``$CAMPUSGUARD_SENTINEL_MARKER`` on import.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from campusguard.sdk.testing import make_incident

pytestmark = pytest.mark.slow

DISTS = Path(__file__).parent / "fixtures" / "dists"
DISTRIBUTIONS = ("campusguard-hello", "campusguard-broken", "campusguard-sentinel")
PLUGIN_MODULES = ("campusguard_hello", "campusguard_broken", "campusguard_sentinel")
CAMPUSGUARD = Path(sys.executable).parent / "campusguard"
BROKEN_ERROR = "RuntimeError: campusguard_broken: vendor SDK missing"
MARKER_ENV = "CAMPUSGUARD_SENTINEL_MARKER"


def _run(args: list[Any], *, cwd: Path) -> None:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=180)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        if "ERROR Unmet dependencies" in output:  # `build --no-isolation` checks the backend's requirements
            output += "\n(install the dev extra: pip install -e '.[dev]' brings setuptools>=70.1 and wheel)"
        pytest.fail(f"{' '.join(map(str, args))} exited {result.returncode}:\n{output}")


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the three fixture distributions and install them into a private directory."""
    root = tmp_path_factory.mktemp("third_party")
    wheels = root / "wheels"
    for name in DISTRIBUTIONS:
        # Build from a copy: setuptools writes build/ and *.egg-info/ next to the sources.
        source = shutil.copytree(DISTS / name, root / "src" / name)
        _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", wheels, source], cwd=root)
    built = sorted(wheels.glob("*.whl"))
    assert len(built) == len(DISTRIBUTIONS), built
    site = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile"]
    _run([*pip, "--disable-pip-version-check", "--target", site, *built], cwd=root)
    return site


def _toml_str(path: Path) -> str:
    return json.dumps(str(path))  # a JSON string is a valid TOML basic string


@dataclass
class Cli:
    """Runs the venv's ``campusguard`` with the fixture distributions on its path."""

    env: dict[str, str]
    cwd: Path
    marker: Path

    def __call__(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        command = [str(CAMPUSGUARD), *map(str, args)]
        return subprocess.run(command, env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=60)

    def plugins(self, config: Path) -> dict[str, dict[str, Any]]:
        result = self("plugins", "--json", "-c", config)
        assert result.returncode == 0, result.stderr
        return {record["name"]: record for record in json.loads(result.stdout)}


@pytest.fixture
def cli(plugin_site: Path, tmp_path: Path) -> Cli:
    marker = tmp_path / "sentinel-was-imported"
    # No CAMPUSGUARD_* from the developer's shell: they would override the config under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPUSGUARD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_site), os.environ.get("PYTHONPATH")]))
    env[MARKER_ENV] = str(marker)
    return Cli(env, tmp_path, marker)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plugins.toml"
    path.write_text(text, encoding="utf-8")
    return path


def greeter_config(output: Path, *, plugins: str = 'disabled = ["sentinel"]', key: str = "path") -> str:
    return f"""\
[plugins]
{plugins}

[notifiers.greeter]
type = "hello_file"
{key} = {_toml_str(output)}
greeting = "hi"
"""


# -- subprocess: the command line as an admin runs it ---------------------------------------------


def test_plugins_json_lists_loaded_failed_and_disabled(cli: Cli, tmp_path: Path) -> None:
    records = cli.plugins(write_config(tmp_path, '[plugins]\ndisabled = ["sentinel"]\n'))

    assert records["hello"] == {
        "name": "hello",
        "module": "campusguard_hello",
        "distribution": "campusguard-hello",
        "version": "0.1.0",
        "status": "loaded",
        "error": None,
        "registered": {"notifiers": ["hello_file"]},
    }
    broken = records["broken"]
    assert (broken["status"], broken["distribution"], broken["registered"]) == ("failed", "campusguard-broken", {})
    assert BROKEN_ERROR in broken["error"]
    assert records["sentinel"] == {
        "name": "sentinel",
        "module": "campusguard_sentinel",
        "distribution": "campusguard-sentinel",
        "version": "0.1.0",
        "status": "disabled",
        "error": None,
        "registered": {},
    }
    builtin = records["builtin-notifiers"]
    assert (builtin["status"], builtin["distribution"]) == ("loaded", "campusguard")
    assert {"log", "webhook"} <= set(builtin["registered"]["notifiers"])
    assert not cli.marker.exists(), "a disabled plugin was imported"


def test_plugins_text_output_shows_each_plugin(cli: Cli, tmp_path: Path) -> None:
    result = cli("plugins", "-c", write_config(tmp_path, '[plugins]\ndisabled = ["sentinel"]\n'))

    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if not line.startswith(" ")}
    assert rows["hello"] == ["loaded", "campusguard-hello", "0.1.0"]
    assert rows["broken"] == ["failed", "campusguard-broken", "0.1.0"]
    assert rows["sentinel"] == ["disabled", "campusguard-sentinel", "0.1.0"]
    assert rows["builtin-notifiers"][0] == "loaded"
    assert "    notifiers: hello_file" in result.stdout.splitlines()
    assert f"    error: import failed: {BROKEN_ERROR}" in result.stdout
    assert not cli.marker.exists()


def test_sentinel_is_imported_when_enabled(cli: Cli, tmp_path: Path) -> None:
    # The control for every "never imported" check: the marker does appear once the plugin is on.
    records = cli.plugins(write_config(tmp_path, "[plugins]\n"))

    assert records["sentinel"]["status"] == "loaded"
    assert records["sentinel"]["registered"] == {"notifiers": ["sentinel"]}
    assert cli.marker.exists()


def test_check_accepts_the_third_party_notifier_config(cli: Cli, tmp_path: Path) -> None:
    config = write_config(tmp_path, greeter_config(tmp_path / "incidents.jsonl"))

    result = cli("check", config)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{config}: valid (1 component)"
    assert f"warning: plugin 'broken' failed: import failed: {BROKEN_ERROR}" in result.stderr
    assert not cli.marker.exists()


def test_check_points_at_a_misspelt_key_of_the_third_party_config(cli: Cli, tmp_path: Path) -> None:
    text = greeter_config(tmp_path / "incidents.jsonl", key="pathh")
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if row.startswith("pathh"))
    config = write_config(tmp_path, text)

    result = cli("check", config)

    assert result.returncode == 1
    assert f"{config}:{line}: [notifiers.greeter] unknown key 'pathh' (did you mean 'path'?)" in result.stderr
    assert "valid" not in result.stdout


def test_strict_mode_fails_on_the_broken_plugin(cli: Cli, tmp_path: Path) -> None:
    plugins = 'strict = true\ndisabled = ["sentinel"]'
    config = write_config(tmp_path, greeter_config(tmp_path / "incidents.jsonl", plugins=plugins))

    check = cli("check", config)
    listing = cli("plugins", "-c", config)

    assert check.returncode == 1
    assert f"broken: import failed: {BROKEN_ERROR}" in check.stderr
    assert "valid" not in check.stdout
    assert listing.returncode == 1
    assert not cli.marker.exists()


# -- in process: the same distributions loaded by an embedded core ---------------------------------


@pytest.fixture
def plugin_on_path(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Put the installed distributions on ``sys.path`` for one test, and forget their modules after."""
    assert not any(m in sys.modules for m in PLUGIN_MODULES)
    monkeypatch.syspath_prepend(str(plugin_site))  # also invalidates the import caches
    yield plugin_site
    for name in list(sys.modules):
        if name.partition(".")[0] in PLUGIN_MODULES:
            del sys.modules[name]


async def test_incident_reaches_the_installed_notifier(
    plugin_on_path: Path,
    campusguard_core: Any,
    campusguard_no_lingering: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "sentinel-was-imported"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    output = tmp_path / "incidents.jsonl"

    async with campusguard_core(greeter_config(output), entry_points=True) as core:
        assert core.plugin_status("hello") == ("loaded", None)
        status, error = core.plugin_status("broken")
        assert status == "failed"
        assert BROKEN_ERROR in error
        assert core.plugin_status("sentinel") == ("disabled", None)
        assert core.state("notifiers", "greeter") == "loaded"

        incident = await core.api.raise_incident(make_incident(exercise=True))
        await core.wait_delivered("greeter", 1)

    lines = output.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "greeting": "hi",
            "incident": incident.id,
            "kind": "intrusion",
            "exercise": True,
            "key": f"{incident.id}:greeter",
        }
    ]
    assert "campusguard_sentinel" not in sys.modules
    assert not marker.exists()
