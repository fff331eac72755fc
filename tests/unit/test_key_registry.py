"""The key registry file (validated, refused naming the field), the key store's rotation, and who signs acks;
and the organisations' encryption keys beside the signing keys (validity, the key in force, rotation)."""

from __future__ import annotations

import base64
import stat
import tomllib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from mash_broker.contracts import Envelope, PolicyError, ReceiptStatus, SystemReceipt
from mash_broker.core.audit.keys import Ed25519Signer, KeyStore, public_key_b64
from mash_broker.core.crypto import decrypt_payload, encrypt_payload, encryption_key_id
from mash_broker.core.crypto import public_key_b64 as encryption_public_b64
from mash_broker.core.messages import GATE_ORG, reply
from mash_broker.core.signing import (
    KeyMissing,
    KeyRegistry,
    RegisteredKey,
    RegistryFile,
    Signers,
    dump_registry,
    existing_signer,
    load_registry,
    new_key,
    parse_registry,
    register_key,
    require_signer,
    rotate,
    verify,
)
from mash_broker.core.signing.registry import RegisteredEncryptionKey
from mash_broker.core.signing.registry_file import new_encryption_key, register_encryption_key

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
POLICE = "police:examplepolice"
KEY = Ed25519Signer(Ed25519PrivateKey.generate())
PUBLIC = public_key_b64(KEY.public_key)
GOOD = f"""
[[key]]
org = "{POLICE}"
key_id = "{KEY.key_id}"
public_key = "{PUBLIC}"
valid_from = 2026-11-01T00:00:00Z
valid_until = 2027-11-01T00:00:00+01:00
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.toml"
    path.write_text(text)
    return path


# -- the file ------------------------------------------------------------------------------------------


def test_a_valid_registry_loads(tmp_path: Path) -> None:
    registry = load_registry(write(tmp_path, GOOD))

    (k,) = registry.key
    assert (k.org, k.key_id, k.public_key) == (POLICE, KEY.key_id, PUBLIC)
    assert k.valid_from == datetime(2026, 11, 1, tzinfo=UTC)
    assert k.valid_until == datetime(2027, 10, 31, 23, 0, tzinfo=UTC)
    assert registry.find(KEY.key_id) == k
    assert registry.find("0" * 16) is None
    with pytest.raises(ValueError, match="frozen"):
        k.org = "police:other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param(('org = "police:examplepolice"', 'org = "Police Example"'), "key[0].org", id="org"),
        pytest.param(
            (f'key_id = "{KEY.key_id}"', 'key_id = "0123456789abcdef"'), "key[0].key_id", id="key-id-of-another-key"
        ),
        pytest.param((f'key_id = "{KEY.key_id}"', 'key_id = "XYZ"'), "key[0].key_id", id="key-id-format"),
        pytest.param(
            (f'public_key = "{PUBLIC}"', 'public_key = "not base64!"'), "key[0].public_key", id="public-key-not-base64"
        ),
        pytest.param(
            (f'public_key = "{PUBLIC}"', f'public_key = "{base64.b64encode(b"x" * 31).decode()}"'),
            "key[0].public_key",
            id="public-key-31-bytes",
        ),
        pytest.param(
            ("valid_from = 2026-11-01T00:00:00Z", "valid_from = 2026-11-01T00:00:00"),
            "key[0].valid_from",
            id="valid-from-without-offset",
        ),
        pytest.param(("valid_from = 2026-11-01T00:00:00Z", ""), "key[0].valid_from", id="valid-from-missing"),
        pytest.param(
            ("valid_until = 2027-11-01T00:00:00+01:00", "valid_until = 2026-10-01T00:00:00Z"),
            "key[0].valid_until",
            id="valid-until-before-valid-from",
        ),
        pytest.param(
            ("valid_from = 2026-11-01T00:00:00Z", 'valid_from = 2026-11-01T00:00:00Z\ncolour = "red"'),
            "key[0].colour",
            id="unknown-field",
        ),
        pytest.param(("[[key]]", 'owner = "me"\n[[key]]'), "owner", id="unknown-top-level-field"),
    ],
)
def test_an_invalid_entry_is_refused_naming_the_field(tmp_path: Path, change: tuple[str, str], field: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(PolicyError) as caught:
        load_registry(write(tmp_path, GOOD.replace(old, new)))
    assert caught.value.field == field
    assert field in str(caught.value)
    assert str(tmp_path / "registry.toml") in str(caught.value)


def test_a_key_id_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="appears more than once") as caught:
        load_registry(write(tmp_path, GOOD + GOOD))
    assert caught.value.field == "key"


@pytest.mark.parametrize("text", ["[[key]\norg = 1", "key = 3"])
def test_a_file_that_is_not_a_registry_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(PolicyError):
        load_registry(write(tmp_path, text))


def test_a_missing_file_is_refused_saying_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="mash keys new"):
        load_registry(tmp_path / "nope.toml")


def test_an_empty_file_is_an_empty_registry(tmp_path: Path) -> None:
    assert load_registry(write(tmp_path, "# no keys yet\n")) == KeyRegistry()


def test_the_registry_written_reads_back_the_same(tmp_path: Path) -> None:
    other = Ed25519Signer(Ed25519PrivateKey.generate())
    registry = load_registry(write(tmp_path, GOOD)).with_key(
        RegisteredKey(
            org="school:900001",
            key_id=other.key_id,
            public_key=public_key_b64(other.public_key),
            valid_from=NOW + timedelta(microseconds=5),
        )
    )
    assert parse_registry(tomllib.loads(dump_registry(registry)), record="x") == registry


# -- the file while running ------------------------------------------------------------------------------


def test_the_registry_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "registry.toml"
    source = RegistryFile(path)
    assert source.load() == KeyRegistry()
    assert source() == KeyRegistry(), "no file yet: every key unknown"

    register_key(path, load_registry(write(tmp_path, GOOD)).key[0])
    assert source().find(KEY.key_id) is not None

    path.write_text("this is [ not toml")
    assert source().find(KEY.key_id) is not None, "a bad edit while running keeps the last valid registry"
    with pytest.raises(PolicyError):
        RegistryFile(path).load()  # but is refused at start-up


def test_registering_a_key_again_updates_its_entry(tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    first = load_registry(write(tmp_path, GOOD)).key[0]
    path.unlink()
    register_key(path, first)
    register_key(path, first.model_copy(update={"valid_until": None}))
    (k,) = load_registry(path).key
    assert k.valid_until is None


# -- the key store -------------------------------------------------------------------------------------------


def test_a_sender_without_a_key_is_told_how_to_make_one(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    assert existing_signer(store, POLICE) is None
    assert not store.path(POLICE).exists(), "looking does not create a key"
    with pytest.raises(KeyMissing, match=f"mash keys new {POLICE}") as caught:
        require_signer(store, POLICE)
    assert caught.value.code == "key_missing"


def test_rotation_makes_a_new_current_key_and_keeps_the_old_one(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    first = rotate(store, POLICE)
    second = rotate(store, POLICE)

    assert first.key_id != second.key_id
    assert require_signer(store, POLICE).key_id == second.key_id
    retired = [p.name for p in store.directory.glob("*.retired.pem")]
    assert retired == [store.path(POLICE).name.removesuffix(".key.pem") + f".{first.key_id}.retired.pem"]
    for pem in store.directory.glob("*.pem"):
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600, pem
    assert not [p for p in store.directory.iterdir() if p.name.startswith(".new-key-")]


def test_an_organisation_does_not_pick_up_the_retired_keys_of_one_whose_id_extends_its_own(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    rotate(store, "police:example")
    longer = [rotate(store, "police:example.north"), rotate(store, "police:example.north")]

    mine = store.public_keys("police:example")
    assert set(mine) == {require_signer(store, "police:example").key_id}
    assert not set(mine) & {k.key_id for k in longer}
    assert len(store.public_keys("police:example.north")) == 2


def test_new_key_registers_each_key_so_old_messages_still_verify(tmp_path: Path) -> None:
    store, path = KeyStore(tmp_path / "keys"), tmp_path / "keys" / "registry.toml"
    old, old_entry = new_key(store, path, POLICE, NOW - timedelta(days=30), valid_days=365)
    new, new_entry = new_key(store, path, POLICE, NOW)

    registry = load_registry(path)
    assert [k.key_id for k in registry.for_org(POLICE)] == [old.key_id, new.key_id]
    assert old_entry.valid_until == old_entry.valid_from + timedelta(days=365)
    assert new_entry.valid_until is None


# -- who signs acknowledgements -----------------------------------------------------------------------------


def ack(sender: str) -> Envelope:
    """A school's delivered-receipt for a delivery from the gate."""
    first = SystemReceipt(receipted_message_id=uuid.uuid4(), status=ReceiptStatus.ACCEPTED, received_at=NOW)
    delivery = Envelope(
        message_id=uuid.uuid4(),
        kind=first.kind,
        sender_org=GATE_ORG,
        correlation_id=uuid.uuid4(),
        produced_at=NOW,
        payload=first,
    )
    receipt = SystemReceipt(receipted_message_id=delivery.message_id, status=ReceiptStatus.DELIVERED, received_at=NOW)
    return reply(delivery, receipt, sender_org=sender, now=NOW)


def test_a_schools_ack_is_signed_by_its_own_key_else_by_the_gate_on_its_behalf(tmp_path: Path) -> None:
    store, path = KeyStore(tmp_path / "keys"), tmp_path / "keys" / "registry.toml"
    signers = Signers(store)
    assert signers(ack("school:900001")).signature is None, "no key at all: unsigned (and logged)"

    gate, _ = new_key(store, path, GATE_ORG, NOW)
    on_behalf = signers(ack("school:900001"))
    assert on_behalf.signature is not None
    assert gate.key_id in on_behalf.signature

    school, _ = new_key(store, path, "school:900001", NOW)
    own = signers(ack("school:900001"))
    assert own.signature is not None
    assert school.key_id in own.signature
    assert verify(own, load_registry(path), NOW).ok


# -- encryption keys: the registry ------------------------------------------------------------------------------

SCHOOL = "school:900001"
ENC_KEY = X25519PrivateKey.generate()
ENC_PUBLIC = encryption_public_b64(ENC_KEY.public_key())
ENC_ID = encryption_key_id(ENC_KEY.public_key())
ENC_GOOD = f"""
[[encryption_key]]
org = "{SCHOOL}"
key_id = "{ENC_ID}"
public_key = "{ENC_PUBLIC}"
valid_from = 2026-11-01T00:00:00Z
valid_until = 2027-11-01T00:00:00Z
"""


def enc_entry(
    key: X25519PrivateKey, valid_from: datetime, valid_until: datetime | None = None, org: str = SCHOOL
) -> RegisteredEncryptionKey:
    public = key.public_key()
    return RegisteredEncryptionKey(
        org=org,
        key_id=encryption_key_id(public),
        public_key=encryption_public_b64(public),
        valid_from=valid_from,
        valid_until=valid_until,
    )


def test_encryption_keys_load_beside_the_signing_keys(tmp_path: Path) -> None:
    registry = load_registry(write(tmp_path, GOOD + ENC_GOOD))

    (signing,) = registry.key
    (enc,) = registry.encryption_key
    assert signing.key_id == KEY.key_id
    assert (enc.org, enc.key_id, enc.public_key) == (SCHOOL, ENC_ID, ENC_PUBLIC)
    assert registry.find_encryption_key(ENC_ID) == enc
    assert registry.find(ENC_ID) is None, "an encryption key does not verify signatures"
    assert registry.find_encryption_key(KEY.key_id) is None
    assert registry.encryption_keys_for(SCHOOL) == (enc,)
    assert registry.for_org(SCHOOL) == ()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param((f'org = "{SCHOOL}"', 'org = "School 900001"'), "encryption_key[0].org", id="org"),
        pytest.param(
            (f'key_id = "{ENC_ID}"', 'key_id = "0123456789abcdef"'),
            "encryption_key[0].key_id",
            id="key-id-of-another-key",
        ),
        pytest.param(
            (f'public_key = "{ENC_PUBLIC}"', 'public_key = "not base64!"'),
            "encryption_key[0].public_key",
            id="public-key-not-base64",
        ),
        pytest.param(
            (f'public_key = "{ENC_PUBLIC}"', f'public_key = "{base64.b64encode(b"x" * 33).decode()}"'),
            "encryption_key[0].public_key",
            id="public-key-33-bytes",
        ),
        pytest.param(
            ("valid_from = 2026-11-01T00:00:00Z", "valid_from = 2026-11-01T00:00:00"),
            "encryption_key[0].valid_from",
            id="valid-from-without-offset",
        ),
        pytest.param(
            ("valid_until = 2027-11-01T00:00:00Z", "valid_until = 2026-10-01T00:00:00Z"),
            "encryption_key[0].valid_until",
            id="valid-until-before-valid-from",
        ),
        pytest.param(
            ("valid_from = 2026-11-01T00:00:00Z", 'valid_from = 2026-11-01T00:00:00Z\nalg = "x448"'),
            "encryption_key[0].alg",
            id="unknown-field",
        ),
    ],
)
def test_an_invalid_encryption_entry_is_refused_naming_the_field(
    tmp_path: Path, change: tuple[str, str], field: str
) -> None:
    old, new = change
    assert old in ENC_GOOD
    with pytest.raises(PolicyError) as caught:
        load_registry(write(tmp_path, GOOD + ENC_GOOD.replace(old, new)))
    assert caught.value.field == field
    assert field in str(caught.value)


def test_an_x25519_error_says_x25519() -> None:
    with pytest.raises(PolicyError, match="an X25519 public key is 32"):
        parse_registry(
            {
                "encryption_key": [
                    {
                        "org": SCHOOL,
                        "key_id": "0" * 16,
                        "public_key": base64.b64encode(b"x" * 31).decode(),
                        "valid_from": NOW,
                    }
                ]
            },
            record="r",
        )


def test_an_encryption_key_id_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="appears more than once") as caught:
        load_registry(write(tmp_path, ENC_GOOD + ENC_GOOD))
    assert caught.value.field == "encryption_key"


def test_a_registry_with_both_kinds_written_reads_back_the_same(tmp_path: Path) -> None:
    registry = load_registry(write(tmp_path, GOOD + ENC_GOOD)).with_encryption_key(
        enc_entry(X25519PrivateKey.generate(), NOW + timedelta(microseconds=5))
    )
    assert parse_registry(tomllib.loads(dump_registry(registry)), record="x") == registry
    assert registry.with_key(registry.key[0]).encryption_key == registry.encryption_key


def test_the_key_in_force_is_chosen_by_time() -> None:
    first, second = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    a = enc_entry(first, NOW - timedelta(days=10), NOW + timedelta(days=30))
    b = enc_entry(second, NOW, NOW + timedelta(days=5))
    registry = KeyRegistry(encryption_key=(a, b, enc_entry(X25519PrivateKey.generate(), NOW, org="school:900002")))

    assert registry.encryption_key_in_force(SCHOOL, NOW - timedelta(days=11)) is None, "before any key"
    assert registry.encryption_key_in_force(SCHOOL, NOW - timedelta(seconds=1)) == a
    assert registry.encryption_key_in_force(SCHOOL, NOW) == b, "of the valid keys, the one that began last"
    assert registry.encryption_key_in_force(SCHOOL, NOW + timedelta(days=6)) == a, "b has ended; a still valid"
    assert registry.encryption_key_in_force(SCHOOL, NOW + timedelta(days=31)) is None, "every key has ended"
    assert registry.encryption_key_in_force("school:900003", NOW) is None


def test_registering_an_encryption_key_keeps_the_signing_keys(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    register_encryption_key(path, enc_entry(ENC_KEY, NOW))
    register_key(path, load_registry(path).key[0].model_copy(update={"valid_until": None}))

    registry = load_registry(path)
    assert [k.key_id for k in registry.key] == [KEY.key_id]
    assert registry.key[0].valid_until is None
    assert [k.key_id for k in registry.encryption_key] == [ENC_ID]


# -- encryption keys: the key store and rotation ---------------------------------------------------------------


def test_an_organisation_has_no_encryption_key_until_one_is_made(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    assert store.encryption_key(SCHOOL) is None
    assert store.encryption_keys(SCHOOL) == {}
    assert not store.directory.exists(), "looking does not create a key"


def test_rotation_keeps_old_messages_readable(tmp_path: Path) -> None:
    store, path = KeyStore(tmp_path / "keys"), tmp_path / "keys" / "registry.toml"
    first = new_encryption_key(store, path, SCHOOL, NOW - timedelta(days=30), valid_days=365)
    old_message = encrypt_payload(
        notification_for(SCHOOL),
        SCHOOL,
        load_registry(path).encryption_key_in_force(SCHOOL, NOW) or pytest.fail("no key in force"),
    )

    second = new_encryption_key(store, path, SCHOOL, NOW)

    registry = load_registry(path)
    old, new = (registry.find_encryption_key(k.key_id) for k in (first, second))
    assert old is not None
    assert new is not None
    assert old.valid_until == NOW == new.valid_from, "the old key stops being sealed to when the new one starts"
    assert registry.encryption_key_in_force(SCHOOL, NOW) == new
    assert registry.encryption_key_in_force(SCHOOL, NOW - timedelta(days=1)) == old
    held = store.encryption_keys(SCHOOL)
    assert set(held) == {first.key_id, second.key_id}
    current = store.encryption_key(SCHOOL)
    assert current is not None
    assert encryption_key_id(current.public_key()) == second.key_id
    opened = decrypt_payload(old_message, held, recipient_org=SCHOOL)
    assert opened.subject == notification_for(SCHOOL).subject
    new_message = encrypt_payload(notification_for(SCHOOL), SCHOOL, new)
    assert decrypt_payload(new_message, held).payload == notification_for(SCHOOL).payload
    for pem in store.directory.glob("*.pem"):
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600, pem
    assert not [p for p in store.directory.iterdir() if p.name.startswith(".new-key-")]


def test_encryption_keys_are_not_signing_keys_in_the_store(tmp_path: Path) -> None:
    store, path = KeyStore(tmp_path / "keys"), tmp_path / "keys" / "registry.toml"
    new_encryption_key(store, path, POLICE, NOW - timedelta(days=1))
    new_encryption_key(store, path, POLICE, NOW)
    assert existing_signer(store, POLICE) is None
    assert store.public_keys(POLICE) == {}
    signer = rotate(store, POLICE)
    assert set(store.public_keys(POLICE)) == {signer.key_id}
    assert len(store.encryption_keys(POLICE)) == 2


def test_an_invalid_registry_refuses_rotation_before_the_key_store_changes(tmp_path: Path) -> None:
    store, path = KeyStore(tmp_path / "keys"), tmp_path / "keys" / "registry.toml"
    new_encryption_key(store, path, SCHOOL, NOW)
    before = store.encryption_keys(SCHOOL)
    path.write_text("this is [ not toml")
    with pytest.raises(PolicyError):
        new_encryption_key(store, path, SCHOOL, NOW + timedelta(days=1))
    assert set(store.encryption_keys(SCHOOL)) == set(before)


def notification_for(org: str) -> Envelope:
    occurred = NOW - timedelta(hours=9)
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid5(uuid.NAMESPACE_URL, org),
            "kind": "notification.encompass",
            "sender_org": POLICE,
            "correlation_id": uuid.uuid5(uuid.NAMESPACE_DNS, org),
            "produced_at": NOW,
            "recipients": [org],
            "subject": {"given_name": "Zebedee", "family_name": "Quillfeather", "date_of_birth": "2016-05-12"},
            "payload": {
                "kind": "notification.encompass",
                "police_reference": "EXP/2026/1001",
                "force": "examplepolice",
                "occurred_at": occurred,
                "reported_at": occurred,
                "child_present": "yes",
                "school_urn": "900001",
                "summary_for_school": "Officers attended.",
            },
        }
    )
