"""MASH_KAFKA_* settings become the clients' security: SCRAM over TLS, mutual TLS, and refusals that name the
setting before any connection is tried."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream.security import BaseSecurity, SASLScram512

from mash_broker.app.kafka_security import KafkaSettingsError, kafka_security
from mash_broker.core.settings import Settings

KAFKA = "127.0.0.1:19093"


def _pem_pair(tmp: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate and its key (a throwaway CA is all these tests need)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def settings(**kw: object) -> Settings:
    return Settings(kafka_bootstrap=KAFKA, **kw)  # type: ignore[arg-type]


def test_plaintext_by_default_and_on_the_embedded_broker() -> None:
    assert kafka_security(Settings()).client_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert kafka_security(Settings()).faststream() is None
    assert kafka_security(settings()).protocol == "PLAINTEXT"


def test_scram_over_tls_with_a_password_file(tmp_path: Path) -> None:
    ca, _ = _pem_pair(tmp_path, "ca")
    secret = tmp_path / "password"
    secret.write_text("s3cret-for-tests\n")
    sec = kafka_security(
        settings(
            kafka_security_protocol="SASL_SSL", kafka_username="mash-gate", kafka_password_file=secret, kafka_ca_file=ca
        )
    )
    kw = sec.client_kwargs()
    assert kw["security_protocol"] == "SASL_SSL"
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("mash-gate", "s3cret-for-tests")
    assert isinstance(kw["ssl_context"], ssl.SSLContext)
    assert kw["ssl_context"].verify_mode is ssl.CERT_REQUIRED
    assert kw["ssl_context"].check_hostname
    fs = sec.faststream()
    assert isinstance(fs, SASLScram512)
    assert fs.use_ssl is True
    assert fs.ssl_context is kw["ssl_context"]


def test_mutual_tls_with_a_client_certificate(tmp_path: Path) -> None:
    ca, _ = _pem_pair(tmp_path, "ca")
    cert, key = _pem_pair(tmp_path, "police-northumbria")
    sec = kafka_security(
        settings(kafka_security_protocol="SSL", kafka_ca_file=ca, kafka_cert_file=cert, kafka_key_file=key)
    )
    assert sec.mechanism is None
    assert sec.client_kwargs()["security_protocol"] == "SSL"
    fs = sec.faststream()
    assert type(fs) is BaseSecurity
    assert fs.use_ssl is True


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"kafka_security_protocol": "SASL_SSL", "kafka_password": "x"}, "MASH_KAFKA_USERNAME"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_username": "u"}, "MASH_KAFKA_PASSWORD_FILE"),
        (
            {
                "kafka_security_protocol": "SASL_SSL",
                "kafka_username": "u",
                "kafka_password": "pw-not-to-echo",
                "kafka_password_file": "/nonexistent",
            },
            "MASH_KAFKA_PASSWORD_FILE",
        ),
        (
            {
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": "PLAIN",
                "kafka_username": "u",
                "kafka_password": "x",
            },
            "MASH_KAFKA_SASL_MECHANISM",
        ),
        ({"kafka_security_protocol": "SSL", "kafka_ca_file": "/nonexistent/ca.pem"}, "MASH_KAFKA_CA_FILE"),
        ({"kafka_security_protocol": "SSL", "kafka_cert_file": "/x.crt"}, "MASH_KAFKA_KEY_FILE"),
        ({"kafka_security_protocol": "PLAINTEXT", "kafka_ca_file": "/x.pem"}, "MASH_KAFKA_SECURITY_PROTOCOL"),
    ],
)
def test_settings_that_cannot_work_are_refused_naming_the_setting(kw: dict[str, object], field: str) -> None:
    with pytest.raises(KafkaSettingsError) as err:
        kafka_security(settings(**kw))
    assert err.value.field == field
    assert "pw-not-to-echo" not in str(err.value)  # a password is never repeated back


def test_the_embedded_broker_refuses_tls_rather_than_silently_ignoring_it() -> None:
    with pytest.raises(KafkaSettingsError) as err:
        kafka_security(Settings(kafka_security_protocol="SASL_SSL"))
    assert err.value.field == "MASH_KAFKA_SECURITY_PROTOCOL"
    assert "embedded" in err.value.message
