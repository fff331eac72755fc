"""Settings from environment variables (``MASH_*``); the README documents each one."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an operator may set. Unset Kafka means the embedded broker; unset database means SQLite."""

    model_config = SettingsConfigDict(env_prefix="MASH_", extra="ignore", frozen=True)

    data_dir: Path = Field(default=Path(".mash"), description="Where the SQLite ledger and runtime files live.")
    kafka_bootstrap: str | None = Field(
        default=None, description="Apache Kafka bootstrap servers; unset: the embedded broker."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT"] = Field(
        default="PLAINTEXT",
        description="How to reach Apache Kafka: SASL_SSL (SCRAM) or SSL (mutual TLS) in production; "
        "PLAINTEXT only for the embedded broker or a test cluster on loopback.",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism with SASL_SSL (PLAIN only over TLS)."
    )
    kafka_username: str | None = Field(default=None, description="SASL user name (this agency's or the gate's).")
    kafka_password: SecretStr | None = Field(
        default=None, description="SASL password; prefer MASH_KAFKA_PASSWORD_FILE."
    )
    kafka_password_file: Path | None = Field(
        default=None, description="File holding the SASL password (a mounted secret); trailing newline ignored."
    )
    kafka_ca_file: Path | None = Field(
        default=None, description="PEM file of the CA that signed the brokers' certificates; unset: system CAs."
    )
    kafka_cert_file: Path | None = Field(
        default=None, description="PEM client certificate for mutual TLS (with MASH_KAFKA_KEY_FILE)."
    )
    kafka_key_file: Path | None = Field(default=None, description="PEM private key of the client certificate.")
    kafka_partitions: int = Field(
        default=6, ge=1, description="Partitions of the topics it creates on Apache Kafka (gate replicas share them)."
    )
    kafka_replication_factor: int = Field(
        default=3, ge=1, description="Replication factor of the topics the broker creates on Apache Kafka."
    )
    kafka_min_insync_replicas: int = Field(
        default=2, ge=1, description="min.insync.replicas of the topics it creates on Apache Kafka (acks=all)."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; unset: sqlite+aiosqlite in the data dir."
    )
    timezone: str = Field(default="Europe/London", description="Local time zone for school days.")
    notify_by: time = Field(default=time(10, 0), description="Encompass deadline time on the school day.")
    school_day_starts: time = Field(default=time(8, 30), description="When a school day starts.")
    school_calendar: Path | None = Field(
        default=None,
        description="TOML file of local school closure dates (see mash_broker/defaults/school-calendar.toml).",
    )
    policy_file: Path | None = Field(
        default=None,
        description="Sharing policy TOML; default: mash_broker/defaults/policy.toml shipped with the broker.",
    )
    areas_dir: Path | None = Field(
        default=None,
        description="A region's folder: region.toml, postcode-districts.csv and one folder per local authority "
        "(README: Setting up a region); unset: one area, as before.",
    )
    health_teams: Path | None = Field(
        default=None,
        description="Health visitor and school nurse teams CSV (mash_broker/demo/data/health-teams.csv); "
        "unset: domestic abuse notifications are not routed to health.",
    )
    consent_settle_s: float = Field(
        default=3.0, ge=0, description="How long a consent-based share waits before it is published."
    )
    receipt_timeout_s: float = Field(
        default=10.0, description="How long ingest waits with no new receipt before sending unrecorded rows again."
    )
    send_attempts: int = Field(default=3, ge=1, description="Times ingest sends a row without a receipt.")
    relay_interval_s: float = Field(default=0.2, description="Outbox relay poll interval.")
    key_registry: Path | None = Field(
        default=None,
        description="Key registry TOML the gate verifies signatures with; unset: keys/registry.toml in the data dir.",
    )
    require_signatures: bool = Field(
        default=True, description="Quarantine inbound messages whose signature does not verify."
    )
    encrypt_to_gate: bool = Field(
        default=False,
        description="`mash police ingest` and `mash send` seal each message's content to the gate's encryption key "
        "(HPKE, RFC 9180) and sign the sealed envelope. Off by default until the gate opens sealed records; "
        "on needs the gate's key in the registry (`mash keys encryption new mash:gate`).",
    )
    checkpoint_interval_s: float = Field(
        default=60.0, gt=0, description="How often the running stack signs a checkpoint of the audited log."
    )
    clocks_file: Path | None = Field(
        default=None,
        description="Declared clocks TOML; default: mash_broker/defaults/clocks.toml shipped with the broker.",
    )
    clock_tick_s: float = Field(
        default=30.0, gt=0, description="How often the running stack checks clocks for warnings and breaches."
    )
    projector_interval_s: float = Field(
        default=0.25,
        gt=0,
        le=60,
        description="How often the running stack looks for audited events to apply to clocks and alerts "
        "(any process's; its own are applied at once).",
    )
    web_host: str = Field(default="127.0.0.1", description="Address the web pages listen on (loopback by default).")
    web_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of the web pages (inbox, MASH board); 0: any free port."
    )
    web_base_url: str | None = Field(
        default=None, description="The pages' public address, for links in alerts; unset: http://WEB_HOST:PORT."
    )
    web_session_idle_min: float = Field(
        default=30.0, gt=0, description="Minutes without a request after which a web session ends."
    )
    web_session_max_hours: float = Field(default=12.0, gt=0, description="A web session ends this long after sign-in.")
    oidc_issuer: str | None = Field(
        default=None, description="OIDC provider for web sign-in (its discovery document); unset: passwords only."
    )
    oidc_client_id: str | None = Field(
        default=None, validate_default=True, description="This broker's client id at the OIDC provider."
    )
    oidc_client_secret: SecretStr | None = Field(default=None, description="The client secret at the OIDC provider.")
    smtp_host: str | None = Field(default=None, description="SMTP server for content-free alerts; unset: no email.")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(default="mash-broker@localhost", description="Sender address of alert emails.")
    smtp_starttls: bool = Field(default=False, description="Use STARTTLS with the SMTP server.")
    alert_webhook: str | None = Field(
        default=None, description="URL that gets a JSON POST (a link only) for each notification delivered."
    )
    alert_interval_s: float = Field(default=5.0, gt=0, description="How often queued alerts are sent or retried.")
    health_host: str = Field(
        default="127.0.0.1", description="Address of `mash serve`'s probes and /metrics (loopback by default)."
    )
    health_port: int = Field(
        default=8081, ge=0, le=65535, description="Port of /healthz, /readyz and /metrics; 0: any free port."
    )
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP collector for traces (needs the [otel] extra); unset: no tracing."
    )
    log_level: str = Field(default="INFO")
    log_json: bool | None = Field(default=None, description="JSON logs; default: JSON unless on a terminal.")

    @property
    def ledger_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'ledger.sqlite3').resolve()}"

    @property
    def keys_dir(self) -> Path:
        """Ed25519 private keys (the gate's checkpoint key among them), one 0600 PEM file each."""
        return self.data_dir / "keys"

    @property
    def key_registry_file(self) -> Path:
        return self.key_registry or self.keys_dir / "registry.toml"

    @property
    def web_url(self) -> str:
        """Where people open the pages (links in alerts point here)."""
        return (self.web_base_url or f"http://{self.web_host}:{self.web_port}").rstrip("/")

    @field_validator("oidc_issuer")
    @classmethod
    def _issuer_is_https(cls, v: str | None) -> str | None:
        if v is not None:
            parts = urlsplit(v)
            loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
            if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
                raise ValueError("an https URL (http only on this machine's loopback, for testing)")
        return v

    @field_validator("oidc_client_id")
    @classmethod
    def _oidc_is_whole(cls, v: str | None, info: ValidationInfo) -> str | None:
        issuer = info.data.get("oidc_issuer")
        if issuer and not v:
            raise ValueError("MASH_OIDC_ISSUER is set, so this must be too (the broker's client id there)")
        if v and not issuer and "oidc_issuer" in info.data:
            raise ValueError("needs MASH_OIDC_ISSUER (the provider) as well")
        return v

    @property
    def oidc_enabled(self) -> bool:
        """Sign-in through an OIDC provider is offered (issuer and client id both set)."""
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def broker_file(self) -> Path:
        """Where `mash up` records the embedded broker's address for other commands."""
        return self.data_dir / "broker.json"


def load_settings() -> Settings:
    return Settings()
