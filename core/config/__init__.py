"""Configuration: ``plugins.toml`` parsed into pydantic models with precise, located errors."""

from .errors import ConfigInvalid, ConfigIssue
from .loader import ComponentSpec, LoadedConfig, load_config, parse_config_text, validate_components
from .model import COMPONENT_TABLES, CoreSettings, DeliverySettings, DetectionSettings, PluginSettings, Settings

__all__ = [
    "COMPONENT_TABLES",
    "ComponentSpec",
    "ConfigInvalid",
    "ConfigIssue",
    "CoreSettings",
    "DeliverySettings",
    "DetectionSettings",
    "LoadedConfig",
    "PluginSettings",
    "Settings",
    "load_config",
    "parse_config_text",
    "validate_components",
]
