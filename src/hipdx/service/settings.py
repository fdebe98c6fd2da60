"""The service's configuration: environment variables ``HIPDX_*`` over a TOML file over defaults.

Secure by default: no secret is built in. The secret key (signing CSRF tokens) is read from
``HIPDX_SECRET_KEY`` or the file, or else generated once into ``<data_dir>/secret.key`` with
permissions 0600 (a key file readable by others is refused). Authentication of the CDS
services is on unless turned off explicitly; session cookies are ``Secure`` unless turned off
for plain-HTTP local use; no browser origin may call unless listed.

Example (``hipdx serve --config hipdx.toml``, or ``HIPDX_CONFIG=hipdx.toml``)::

    database_url = "postgresql+psycopg://hipdx@127.0.0.1/hipdx"
    cors_origins = ["https://ehr.hospital.org"]
    cds_issuers = "/etc/hipdx/issuers.json"
    token_lifetime_minutes = 480
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hipdx.errors import InputError, Problem


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hipdx"


class SmartServerSetting(BaseModel):
    """One FHIR server of the SMART launch allow-list: its ``iss`` and hipdx's client id there."""

    model_config = ConfigDict(extra="forbid")
    iss: str = Field(pattern=r"^https?://[^\s?#]+$")
    client_id: str = Field(min_length=1, max_length=200)
    name: str = ""
    scopes: Literal["v1", "v2"] = "v2"
    #: a confidential client's secret at that server (client_secret_basic); none: a public client
    client_secret: SecretStr | None = None


class Settings(BaseSettings):
    """Every setting of ``hipdx serve``; each is also ``HIPDX_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="HIPDX_", extra="forbid", frozen=True)

    data_dir: Path = Field(default_factory=_default_data_dir,
                           description="embedded database, secret key and de-identified uploads")
    database_url: str | None = Field(None, description="PostgreSQL or SQLite URL; default: SQLite in data_dir")
    secret_key: SecretStr | None = Field(None, description="default: generated into data_dir/secret.key (0600)")
    cds_issuers: Path | None = Field(None, description="the trusted CDS clients (docs/service.md)")
    insecure_no_auth: bool = Field(False, description="CDS calls without a JWT (local testing only)")
    public_url: str | None = None
    fhir_servers: list[str] = []
    smart_servers: list[SmartServerSetting] = Field([], description="FHIR servers hipdx may be SMART-launched from (docs/web.md)")
    cors_origins: list[str] = []
    trusted_proxies: list[str] = Field(["127.0.0.1", "::1"], description=(
        "reverse proxies whose X-Forwarded-For is believed (addresses or networks; '*' every peer)"))
    #: the absolute URL that opens a patient's case in hipdx, ``{patient}`` replaced by the id (card links)
    case_url: str | None = None
    #: the absolute URL cards give as their source's link (default: this service's /knowledge-base)
    knowledge_base_url: str | None = None
    token_lifetime_minutes: int = Field(480, ge=5, le=7 * 24 * 60)
    session_cookie_secure: bool = Field(True, description="False only for plain-HTTP local use")
    max_upload_mb: int = Field(1024, ge=1, le=16384)
    max_upload_files: int = Field(5000, ge=1, le=100000)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config = os.environ.get("HIPDX_CONFIG")
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        if config:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=Path(config)),)
        return sources

    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'hipdx.db'}"

    def embedded(self) -> bool:
        return self.database_url is None


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment (and ``HIPDX_CONFIG``'s file), with ``overrides`` on top.

    Raises
    ------
    InputError
        A setting is unknown or not valid, or the configuration file cannot be read.
    """
    config = os.environ.get("HIPDX_CONFIG")
    if config and not Path(config).is_file():
        raise InputError(f"HIPDX_CONFIG: configuration file not found: {config}")
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = [Problem(".".join(str(p) for p in e["loc"]) or "settings", e["msg"]) for e in exc.errors()]
        raise InputError("the configuration is not valid", problems) from None
    except (OSError, ValueError) as exc:  # an unreadable or malformed TOML file
        raise InputError(f"the configuration file cannot be read: {exc}") from None


def secret_key(settings: Settings) -> bytes:
    """The configured secret, or the one in ``<data_dir>/secret.key``, created (0600) if absent.

    Raises
    ------
    InputError
        The key file is readable or writable by group or others, or shorter than 32 bytes.
    """
    if settings.secret_key is not None:
        value = settings.secret_key.get_secret_value().encode()
        if len(value) < 32:
            raise InputError("the configuration is not valid", [Problem("secret_key", "at least 32 characters")])
        return value
    path = settings.data_dir / "secret.key"
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"{path} is readable or writable by others (mode {oct(mode & 0o777)}): chmod 600 it")
    value = path.read_bytes().strip()
    if len(value) < 32:
        raise InputError(f"{path} holds fewer than 32 bytes: delete it to have a new key generated")
    return value
