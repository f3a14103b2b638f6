"""Configuration: TOML files validated against one schema."""

from daemon.config.load import ConfigError, load_config, load_embedded_config
from daemon.config.schema import Config

__all__ = ["Config", "ConfigError", "load_config", "load_embedded_config"]
