"""HPKE base mode (X25519 / HKDF-SHA256 / AES-256-GCM): the RFC 9180 test vector, round trips, and refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from mash_broker.contracts import MashError
from mash_broker.core.crypto import (
    ALG,
    HPKE,
    CiphertextInvalid,
    CiphertextReason,
    EncryptionRefused,
    Hpke,
    open_sequence,
    seal_with_ephemeral,
)
from mash_broker.core.crypto.hpke import open as hpke_open
from mash_broker.core.crypto.hpke import seal
from mash_broker.core.crypto.keys import public_raw

VECTORS = json.loads((Path(__file__).with_name("hpke_vectors.json")).read_text())
(VECTOR,) = VECTORS["vectors"]
RECIPIENT = X25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = X25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
SMALL_ORDER = bytes(32)  # the all-zero u-coordinate: X25519 with it gives an all-zero shared secret


def hx(name: str, source: dict[str, Any] = VECTOR) -> bytes:
    return bytes.fromhex(source[name])


# -- RFC 9180 test vector -----------------------------------------------------------------------------------


def test_the_vendored_vector_is_the_suite_we_use() -> None:
    assert "RFC 9180" in VECTORS["source"]
    assert (VECTOR["mode"], VECTOR["kem_id"], VECTOR["kdf_id"], VECTOR["aead_id"]) == (0, 0x0020, 0x0001, 0x0002)
    assert ALG == "HPKE-base-X25519-SHA256-AES256GCM"
    assert len(VECTOR["encryptions"]) == 257  # sequence numbers 0..256: the nonce XOR crosses a byte


def test_the_vector_keys_are_what_they_say() -> None:
    skr = X25519PrivateKey.from_private_bytes(hx("skRm"))
    ske = X25519PrivateKey.from_private_bytes(hx("skEm"))
    assert public_raw(skr.public_key()) == hx("pkRm")
    assert public_raw(ske.public_key()) == hx("pkEm") == hx("enc")


def test_seal_derives_the_vectors_enc_and_first_ciphertext() -> None:
    first = VECTOR["encryptions"][0]
    sealed = seal_with_ephemeral(
        X25519PublicKey.from_public_bytes(hx("pkRm")),
        hx("pt", first),
        hx("info"),
        hx("aad", first),
        X25519PrivateKey.from_private_bytes(hx("skEm")),
    )
    assert sealed.enc == hx("enc")
    assert sealed.ciphertext == hx("ct", first)
    enc, ciphertext = sealed  # the port's (enc, ciphertext) pair
    assert (enc, ciphertext) == (hx("enc"), hx("ct", first))


def test_open_opens_every_encryption_of_the_vector() -> None:
    skr = X25519PrivateKey.from_private_bytes(hx("skRm"))
    encryptions = VECTOR["encryptions"]

    opened = open_sequence(skr, hx("enc"), hx("info"), [(hx("ct", e), hx("aad", e)) for e in encryptions])

    assert opened == [hx("pt", e) for e in encryptions]
    first = encryptions[0]
    assert HPKE.open(skr, hx("enc"), hx("ct", first), hx("info"), hx("aad", first)) == hx("pt", first)


def test_single_shot_open_is_sequence_zero_only() -> None:
    skr = X25519PrivateKey.from_private_bytes(hx("skRm"))
    second = VECTOR["encryptions"][1]
    with pytest.raises(CiphertextInvalid):
        hpke_open(skr, hx("enc"), hx("ct", second), hx("info"), hx("aad", second))


def test_it_interoperates_with_the_openssl_hpke_in_cryptography() -> None:
    hpke = pytest.importorskip(
        "cryptography.hazmat.primitives.hpke", reason="needs cryptography 47+ (its own HPKE) as a second opinion"
    )
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    enc, ciphertext = seal(RECIPIENT.public_key(), b"to the school", b"info", b"")
    assert suite.decrypt(enc + ciphertext, RECIPIENT, info=b"info") == b"to the school"
    theirs = suite.encrypt(b"to the gate", RECIPIENT.public_key(), info=b"info")
    assert hpke_open(RECIPIENT, theirs[:32], theirs[32:], b"info", b"") == b"to the gate"


# -- properties ------------------------------------------------------------------------------------------------

messages = st.binary(max_size=512)
labels = st.binary(max_size=64)


@settings(max_examples=100, deadline=None)
@given(plaintext=messages, info=labels, aad=labels)
def test_open_of_seal_is_the_plaintext(plaintext: bytes, info: bytes, aad: bytes) -> None:
    port: Hpke = HPKE
    enc, ciphertext = port.seal(RECIPIENT.public_key(), plaintext, info, aad)
    assert len(ciphertext) == len(plaintext) + 16
    assert port.open(RECIPIENT, enc, ciphertext, info, aad) == plaintext


def flip(data: bytes, at: int, mask: int) -> bytes:
    i = at % len(data)
    return data[:i] + bytes([data[i] ^ mask]) + data[i + 1 :]


@settings(max_examples=200, deadline=None)
@given(
    plaintext=messages,
    info=st.binary(min_size=1, max_size=64),
    aad=st.binary(min_size=1, max_size=64),
    part=st.sampled_from(["enc", "ciphertext", "info", "aad"]),
    at=st.integers(min_value=0),
    mask=st.integers(min_value=1, max_value=255),
)
def test_any_flipped_byte_is_refused(plaintext: bytes, info: bytes, aad: bytes, part: str, at: int, mask: int) -> None:
    enc, ciphertext = HPKE.seal(RECIPIENT.public_key(), plaintext, info, aad)
    parts = {"enc": enc, "ciphertext": ciphertext, "info": info, "aad": aad}
    parts[part] = flip(parts[part], at, mask)

    with pytest.raises(CiphertextInvalid) as caught:
        HPKE.open(RECIPIENT, parts["enc"], parts["ciphertext"], parts["info"], parts["aad"])

    assert isinstance(caught.value, MashError)
    assert caught.value.code == "ciphertext_invalid"


@settings(max_examples=50, deadline=None)
@given(plaintext=messages, info=labels, aad=labels)
def test_another_recipients_key_is_refused(plaintext: bytes, info: bytes, aad: bytes) -> None:
    enc, ciphertext = HPKE.seal(RECIPIENT.public_key(), plaintext, info, aad)
    with pytest.raises(CiphertextInvalid) as caught:
        HPKE.open(OTHER, enc, ciphertext, info, aad)
    assert caught.value.reason is CiphertextReason.DOES_NOT_OPEN


# -- malformed input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("enc", [b"", bytes(31), bytes(33)], ids=["empty", "31-bytes", "33-bytes"])
def test_an_enc_of_the_wrong_length_is_malformed(enc: bytes) -> None:
    with pytest.raises(CiphertextInvalid) as caught:
        HPKE.open(RECIPIENT, enc, bytes(32), b"", b"")
    assert caught.value.reason is CiphertextReason.MALFORMED


def test_a_small_order_enc_is_refused_not_raised_raw() -> None:
    with pytest.raises(CiphertextInvalid):
        HPKE.open(RECIPIENT, SMALL_ORDER, bytes(32), b"", b"")


def test_sealing_to_a_small_order_public_key_is_refused() -> None:
    with pytest.raises(EncryptionRefused) as caught:
        HPKE.seal(X25519PublicKey.from_public_bytes(SMALL_ORDER), b"x", b"", b"")
    assert caught.value.code == "encryption_refused"


def test_every_seal_uses_a_fresh_ephemeral_key() -> None:
    one = HPKE.seal(RECIPIENT.public_key(), b"same", b"i", b"a")
    two = HPKE.seal(RECIPIENT.public_key(), b"same", b"i", b"a")
    assert one.enc != two.enc
    assert one.ciphertext != two.ciphertext
