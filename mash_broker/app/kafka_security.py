"""How the broker's Kafka clients authenticate: TLS, mutual TLS or SASL (SCRAM) from MASH_KAFKA_* settings.

One place turns the settings into what each client library takes: aiokafka keyword arguments (producers,
consumers and the admin client) and a FastStream security object (the gate's ``KafkaBroker``). Settings that
cannot work together are refused at start-up, naming the setting, before any connection is tried.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from mash_broker.contracts.errors import MashError
from mash_broker.core.settings import Settings


class KafkaSettingsError(MashError):
    """The MASH_KAFKA_* settings do not describe a connection that can work."""

    code = "kafka_settings_invalid"


@dataclass(frozen=True)
class KafkaSecurity:
    """What every client of one deployment uses to reach Kafka."""

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = None
    ssl_context: ssl.SSLContext | None = None

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        kw: dict[str, Any] = {"security_protocol": self.protocol}
        if self.ssl_context is not None:
            kw["ssl_context"] = self.ssl_context
        if self.mechanism is not None:
            kw |= {
                "sasl_mechanism": self.mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password,
            }
        return kw

    def faststream(self) -> BaseSecurity | None:
        """The same, as FastStream's security object for ``KafkaBroker(security=...)``."""
        if self.protocol == "PLAINTEXT":
            return None
        if self.mechanism is None:
            return BaseSecurity(ssl_context=self.ssl_context, use_ssl=True)
        assert self.username is not None
        assert self.password is not None
        kinds = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}
        return kinds[self.mechanism](self.username, self.password, ssl_context=self.ssl_context, use_ssl=self.uses_tls)


PLAINTEXT = KafkaSecurity()


def _readable(path: Path, setting: str) -> Path:
    if not path.is_file():
        raise KafkaSettingsError(f"{path} is not a readable file", field=setting)
    return path


def kafka_security(settings: Settings) -> KafkaSecurity:
    """The clients' security from the settings; refuses combinations that cannot work, naming the setting."""
    protocol = settings.kafka_security_protocol
    if settings.kafka_bootstrap is None:
        if protocol != "PLAINTEXT":
            raise KafkaSettingsError(
                "the embedded broker has no TLS or SASL: set MASH_KAFKA_BOOTSTRAP to use them",
                field="MASH_KAFKA_SECURITY_PROTOCOL",
            )
        return PLAINTEXT
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        ca = _readable(settings.kafka_ca_file, "MASH_KAFKA_CA_FILE") if settings.kafka_ca_file else None
        cert, key = settings.kafka_cert_file, settings.kafka_key_file
        if (cert is None) != (key is None):
            raise KafkaSettingsError(
                "a client certificate needs its key, and a key its certificate",
                field="MASH_KAFKA_CERT_FILE" if cert is None else "MASH_KAFKA_KEY_FILE",
            )
        try:
            context = create_ssl_context(
                cafile=str(ca) if ca else None,
                certfile=str(_readable(cert, "MASH_KAFKA_CERT_FILE")) if cert else None,
                keyfile=str(_readable(key, "MASH_KAFKA_KEY_FILE")) if key else None,
            )
        except (ssl.SSLError, OSError) as exc:
            raise KafkaSettingsError(f"the TLS files cannot be used: {exc}", field="MASH_KAFKA_CA_FILE") from exc
    elif settings.kafka_cert_file or settings.kafka_ca_file:
        raise KafkaSettingsError(
            "certificates are set but the protocol has no TLS (use SSL or SASL_SSL)",
            field="MASH_KAFKA_SECURITY_PROTOCOL",
        )
    if not protocol.startswith("SASL_"):
        return KafkaSecurity(protocol=protocol, ssl_context=context)
    if not settings.kafka_username:
        raise KafkaSettingsError(f"{protocol} needs a user name", field="MASH_KAFKA_USERNAME")
    password = _password(settings)
    if settings.kafka_sasl_mechanism == "PLAIN" and protocol != "SASL_SSL":
        raise KafkaSettingsError(
            "SASL PLAIN sends the password as it is: only over SASL_SSL", field="MASH_KAFKA_SASL_MECHANISM"
        )
    return KafkaSecurity(
        protocol=protocol,
        mechanism=settings.kafka_sasl_mechanism,
        username=settings.kafka_username,
        password=password,
        ssl_context=context,
    )


def _password(settings: Settings) -> str:
    if settings.kafka_password is not None and settings.kafka_password_file is not None:
        raise KafkaSettingsError("set the password or its file, not both", field="MASH_KAFKA_PASSWORD_FILE")
    if settings.kafka_password_file is not None:
        text = _readable(settings.kafka_password_file, "MASH_KAFKA_PASSWORD_FILE").read_text(encoding="utf-8")
        password = text.rstrip("\r\n")
    elif settings.kafka_password is not None:
        password = settings.kafka_password.get_secret_value()
    else:
        raise KafkaSettingsError(
            "SASL needs a password (MASH_KAFKA_PASSWORD_FILE or MASH_KAFKA_PASSWORD)", field="MASH_KAFKA_PASSWORD_FILE"
        )
    if not password:
        raise KafkaSettingsError("the password is empty", field="MASH_KAFKA_PASSWORD_FILE")
    return password
