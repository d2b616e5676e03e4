"""Bad config: each problem is named with file, line and key; exit code 1; nothing half-started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from campusguard.core.config import ConfigInvalid, load_config, parse_config_text

CLI = str(Path(sys.executable).parent / "campusguard")


def check(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "check", str(config)], capture_output=True, text=True, timeout=30, env={**os.environ, **(env or {})}
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plugins.toml"
    path.write_text(text)
    return path


GOOD = """\
[core]
site = "Test High"

[notifiers.log]
level = "INFO"

[notifiers.office]
type = "webhook"
url = "http://127.0.0.1:9/hook"
"""


def test_valid_config_passes(tmp_path: Path) -> None:
    result = check(write(tmp_path, GOOD))
    assert result.returncode == 0, result.stderr
    assert "valid (2 components)" in result.stdout


def test_shipped_plugins_toml_is_valid() -> None:
    result = check(Path(__file__).resolve().parents[1] / "plugins.toml")
    assert result.returncode == 0, result.stderr


def test_unknown_component_key_names_file_line_and_suggestion(tmp_path: Path) -> None:
    config = write(tmp_path, GOOD + "timeoutt = 3\n")
    result = check(config)
    assert result.returncode == 1
    assert f"{config}:10: [notifiers.office] unknown key 'timeoutt' (did you mean 'timeout'?)" in result.stderr


def test_unknown_core_key(tmp_path: Path) -> None:
    result = check(write(tmp_path, '[core]\nsitee = "x"\n'))
    assert result.returncode == 1
    assert ":2: [core] unknown key 'sitee' (did you mean 'site'?)" in result.stderr


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    config = write(tmp_path, GOOD.replace('level = "INFO"', 'level = "LOUD"'))
    result = check(config)
    assert result.returncode == 1
    assert f"{config}:5: [notifiers.log] level: input should be 'DEBUG'" in result.stderr
    assert "got 'LOUD'" in result.stderr


def test_wrong_type_in_core(tmp_path: Path) -> None:
    result = check(write(tmp_path, '[core]\nhook_timeout = "soon"\n'))
    assert result.returncode == 1
    assert ":2: [core] hook_timeout: input should be a valid number" in result.stderr


def test_missing_required_value_points_at_table(tmp_path: Path) -> None:
    config = write(tmp_path, '\n[notifiers.office]\ntype = "webhook"\n')
    result = check(config)
    assert result.returncode == 1
    assert f"{config}:2: [notifiers.office] missing required key 'url'" in result.stderr


def test_unknown_component_type_lists_known_ones(tmp_path: Path) -> None:
    result = check(write(tmp_path, '[notifiers.pager]\ntype = "pagerr"\n'))
    assert result.returncode == 1
    assert ":2: [notifiers.pager] unknown notifiers type 'pagerr'; known types: " in result.stderr
    known = result.stderr.split("known types: ")[1].split("\n")[0].split(", ")
    assert {"log", "webhook"} <= set(known) and known == sorted(known)


def test_unknown_top_level_table(tmp_path: Path) -> None:
    result = check(write(tmp_path, "[notifyers.log]\n"))
    assert result.returncode == 1
    assert ":1: unknown key 'notifyers' (did you mean 'notifiers'?)" in result.stderr


def test_invalid_toml_names_line(tmp_path: Path) -> None:
    config = write(tmp_path, "[core]\nsite = \n")
    result = check(config)
    assert result.returncode == 1
    assert f"{config}:2: invalid TOML" in result.stderr


def test_unreadable_file(tmp_path: Path) -> None:
    config = write(tmp_path, GOOD)
    config.chmod(0)
    try:
        if os.access(config, os.R_OK):  # root reads anything: use a directory instead
            config.chmod(0o644)
            config = tmp_path / "dir.toml"
            config.mkdir()
        result = check(config)
    finally:
        if config.is_file():
            config.chmod(0o644)
    assert result.returncode == 1
    assert str(config) in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    result = check(tmp_path / "nope.toml")
    assert result.returncode == 1
    assert f"{tmp_path / 'nope.toml'}: file not found" in result.stderr


def test_every_issue_is_reported_at_once(tmp_path: Path) -> None:
    config = write(tmp_path, '[core]\nsitee = 1\n\n[notifiers.log]\nlevl = "INFO"\n')
    result = check(config)
    assert result.returncode == 1
    assert ":2: [core] unknown key 'sitee'" in result.stderr
    assert ":5: [notifiers.log] unknown key 'levl'" in result.stderr


def test_secret_from_environment_and_never_shown(tmp_path: Path) -> None:
    text = GOOD + 'secret = { env = "CG_TEST_SECRET" }\n'
    config = write(tmp_path, text)
    missing = check(config)
    assert missing.returncode == 1
    assert ":10: [notifiers.office] secret: environment variable 'CG_TEST_SECRET' is not set" in missing.stderr
    ok = check(config, env={"CG_TEST_SECRET": "hunter2-very-secret"})
    assert ok.returncode == 0, ok.stderr
    assert "hunter2" not in ok.stdout + ok.stderr


def test_secret_from_file(tmp_path: Path) -> None:
    (tmp_path / "hook.secret").write_text("s3cret\n")
    config = write(tmp_path, GOOD + 'secret = { file = "hook.secret" }\n')
    assert check(config).returncode == 0
    (tmp_path / "hook.secret").unlink()
    result = check(config)
    assert result.returncode == 1
    assert "[notifiers.office] secret: cannot read secret file" in result.stderr


def test_secret_values_are_hidden_in_errors_and_repr(tmp_path: Path) -> None:
    from campusguard.plugins.notifiers.webhook import WebhookNotifier

    config = WebhookNotifier.Config(url="http://x.invalid/", secret="hunter2")  # type: ignore[arg-type]
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config.model_dump())


def test_environment_overrides_core_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPUSGUARD_SITE", "Env High")
    loaded = load_config(write(tmp_path, GOOD))
    assert loaded.settings.core.site == "Env High"


def test_parse_error_object_lists_issues() -> None:
    with pytest.raises(ConfigInvalid) as info:
        parse_config_text("[plugins]\nstrict = 3\n", display="t.toml", base_dir=Path("."))
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.section) == ("t.toml", 2, None)


def test_bad_config_starts_nothing(tmp_path: Path) -> None:
    """`run` with a bad config exits 1 before creating the store."""
    config = write(tmp_path, GOOD + "timeoutt = 3\n")
    result = subprocess.run([CLI, "run", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "unknown key 'timeoutt'" in result.stderr
    assert not (tmp_path / "var").exists()


def test_an_error_about_a_whole_table_never_prints_its_values(tmp_path: Path) -> None:
    """A rule-level error shows the table's keys, never values that could be secrets."""
    path = tmp_path / "plugins.toml"
    path.write_text('[[rules]]\nname = "auto"\nverification = "auto"\nverifiers = ["hunter22"]\n')
    result = subprocess.run([CLI, "check", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "hunter22" not in result.stderr
    assert "a table with keys name, verification, verifiers" in result.stderr


def test_check_warns_of_an_analyzer_no_detector_can_feed(tmp_path: Path) -> None:
    """Valid, but the weapon analyzer waits for `weapon` tracks that MoveNet (people) never gives."""
    config = tmp_path / "plugins.toml"
    base = (
        '[cameras.gate]\ntype = "file"\npath = "clip.mp4"\n\n'
        '[cameras.gym]\ntype = "file"\npath = "clip.mp4"\ndetectors = ["people"]\n\n'
        '[detectors.people]\ntype = "movenet"\n\n[trackers.main]\ntype = "bytetrack"\n\n'
        '[analyzers.weapons]\ntype = "weapon"\n\n[analyzers.falls]\ntype = "fall"\n'
    )
    config.write_text(base)
    result = check(config)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: analyzer")]
    assert warnings == [
        f"warning: analyzer 'weapons' on camera '{camera}' fires on tracks labelled weapon, but the camera's "
        "detectors (people) report only person: it can never fire. Add a detector that reports weapon (a `yolo` "
        "model, with `label_map` naming its classes so) or change the analyzer's `labels`"
        for camera in ("gate", "gym")
    ]
    # A YOLO model's labels are only known once it is loaded: judged at run time, not here.
    config.write_text(base + '\n[detectors.guns]\ntype = "yolo"\nmodel = "weapons.onnx"\n')
    result = check(config)
    assert [line for line in result.stderr.splitlines() if "gym" in line and "never fire" in line]
    assert not [line for line in result.stderr.splitlines() if "'gate'" in line and "never fire" in line]


def test_check_names_files_that_are_not_there_with_their_lines(tmp_path: Path) -> None:
    """Valid, but the camera's video and the detector's model are missing: check says where, start would fail."""
    (tmp_path / "here.mp4").write_bytes(b"")
    config = tmp_path / "plugins.toml"
    config.write_text(
        '[cameras.gate]\ntype = "file"\npath = "gone.mp4"\n\n'
        '[cameras.hall]\ntype = "file"\npath = "here.mp4"\n\n'
        '[detectors.guns]\ntype = "yolo"\nmodel = "models/guns.onnx"\n'
    )
    result = check(config)
    assert result.returncode == 0, result.stderr  # valid: the files may be copied in after the check
    warnings = [line for line in result.stderr.splitlines() if "it will not start" in line]
    assert warnings == [
        f"warning: {config}:3: [cameras.gate] path: video file '{tmp_path / 'gone.mp4'}' not found; it will not start",
        f"warning: {config}:11: [detectors.guns] model: model file {tmp_path / 'models/guns.onnx'} not found; "
        "it will not start",
    ]
    strict = subprocess.run([CLI, "check", "--strict", str(config)], capture_output=True, text=True, timeout=60)
    assert strict.returncode == 1 and "valid, but 2 warnings (--strict)" in strict.stdout
    # A model that `campusguard models install` fetches: the warning says that command.
    config.write_text('[detectors.people]\ntype = "movenet"\n')
    result = check(config, env={"CAMPUSGUARD_MODELS": str(tmp_path / "no-models")})
    assert result.returncode == 0, result.stderr
    assert "[detectors.people] model: MoveNet model not installed: run `campusguard models install movenet`" in (
        result.stderr
    )
