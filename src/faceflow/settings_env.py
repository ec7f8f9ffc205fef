"""Settings read from ``FACEFLOW_*`` environment variables, by pydantic-settings.

Imported by :func:`faceflow.config.load_settings` only when a variable names a setting (see
:mod:`faceflow.config`): pydantic-settings costs a process ≈ 0.05–0.1 s of CPU to import.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from faceflow.config import ENV_NESTED_DELIMITER, ENV_PREFIX, Settings


class EnvironmentSettings(Settings, BaseSettings):
    """:class:`~faceflow.config.Settings` whose keyword arguments (a config file's values) are
    overridden by the environment's."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        title="Settings",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # A config file is passed in as init kwargs by load_settings, below the environment.
        return env_settings, init_settings
