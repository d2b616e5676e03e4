"""The shape of ``plugins.toml``: core settings, plugin selection, component tables and secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ..doors.model import DoorSettings, ScenarioSettings
from ..rules.model import Rule

# Tables of component instances, and the registration hook that fills each one's registry.
COMPONENT_TABLES: dict[str, str] = {
    "cameras": "camera_sources",
    "detectors": "detectors",
    "trackers": "trackers",
    "analyzers": "analyzers",
    "notifiers": "notifiers",
    "adapters": "adapters",
    "event_handlers": "event_handlers",
}

# Keys every component table may have besides its own config.
RESERVED_KEYS = ("type", "enabled")


class CoreSettings(BaseSettings):
    """``[core]``. Each key can be overridden by ``CAMPUSGUARD_<KEY>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="CAMPUSGUARD_", extra="forbid")

    site: str = Field(default="campus", description="name of the site, shown in every message")
    data_dir: Path = Field(default=Path("var"), description="store, evidence; relative to the config")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    hook_timeout: float = Field(default=10.0, gt=0, description="seconds per lifecycle hook call")
    start_timeout: float = Field(default=30.0, gt=0, description="seconds a component may take to start")
    stop_timeout: float = Field(default=5.0, gt=0, description="seconds a component may take to stop")
    shutdown_timeout: float = Field(default=15.0, gt=0, description="upper bound of a clean shutdown")
    retry_initial: float = Field(default=1.0, gt=0, description="first NotReady retry delay, seconds")
    retry_max: float = Field(default=300.0, gt=0, description="longest NotReady retry delay, seconds")
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="serve Prometheus metrics at http://metrics_host:PORT/metrics"
    )
    metrics_host: str = Field(default="127.0.0.1", description="address the metrics endpoint listens on")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file: that is how a deployment overrides a shipped config.
        return env_settings, init_settings


class PluginSettings(BaseModel):
    """``[plugins]``: which plugins load, and how strictly."""

    model_config = ConfigDict(extra="forbid")

    strict: bool = Field(default=False, description="any plugin failure is fatal (for CI)")
    disabled: list[str] = Field(default_factory=list, description="entry-point names never imported")


class DeliverySettings(BaseModel):
    """``[delivery]``: how the outbox retries."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(default=10.0, gt=0, description="seconds one notify() call may take")
    retry_initial: float = Field(default=0.5, gt=0)
    retry_max: float = Field(default=60.0, gt=0)
    poll_interval: float = Field(default=1.0, gt=0, description="seconds between outbox scans")


class DetectionSettings(BaseModel):
    """``[detection]``: how cameras share the detectors."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(default=4, ge=1, le=64, description="frames (of different cameras) per detector call")
    deadline: float = Field(default=10.0, gt=0, description="seconds a detector, tracker or analyzer may take")
    hot_seconds: float = Field(
        default=60.0, ge=0, description="priority of a camera after incident news on it; open incidents keep it too"
    )
    second_look: bool = Field(
        default=True, description="look again, closer, where a person vanished mid-view (a fall, in a busy scene)"
    )
    second_look_seconds: float = Field(default=10.0, gt=0, description="how long to keep looking at such a spot")
    second_look_max: int = Field(default=2, ge=1, le=8, description="spots looked at again per camera at once")


class EvidenceSettings(BaseModel):
    """``[evidence]``: a snapshot and a clip per incident, kept ``retention_days``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="write evidence files for incidents on cameras")
    snapshot: bool = Field(default=True, description="a JPEG of the incident's frame, its boxes drawn")
    clip: bool = Field(default=True, description="an MP4 of the camera's own stream, not re-encoded")
    pre_seconds: float = Field(default=5.0, ge=0, le=120, description="seconds of video before the incident")
    post_seconds: float = Field(default=5.0, ge=0, le=120, description="seconds of video after the incident")
    retention_days: float = Field(default=30, ge=0, description="evidence files older than this are deleted; 0 keeps")
    buffer_mb: float = Field(default=64, gt=0, description="most encoded video kept in memory per camera, MiB")


class Settings(BaseModel):
    """The whole file after the first pass; component tables are checked once plugins registered."""

    model_config = ConfigDict(extra="forbid")

    core: CoreSettings = Field(default_factory=CoreSettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    cameras: dict[str, dict[str, Any]] = Field(default_factory=dict)
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    trackers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    analyzers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    notifiers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    adapters: dict[str, dict[str, Any]] = Field(default_factory=dict)
    event_handlers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list, description="[[rules]]: observations to incidents")
    doors: dict[str, DoorSettings] = Field(default_factory=dict, description="[doors.NAME]: doors and their adapter")
    scenarios: dict[str, ScenarioSettings] = Field(default_factory=dict, description="[scenarios.NAME]: door sets")
