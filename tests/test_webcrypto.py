"""The webcrypto cipher suite with freshly generated identities."""

from __future__ import annotations

from base64 import b64decode, b64encode
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from roupn_webcrypto import WebcryptoIdentity, WebcryptoPeer, WebcryptoSuite

from roupn.conformance import CipherSuiteConformance
from roupn.errors import CryptoError, DecryptionError
from roupn.interfaces import CipherSuite
from roupn.messages import CODE_ALPHABET
from roupn.plugins import BackendKind, get_registry

# Each direct round trip runs four RSA-4096 operations, so examples stay few.
ROUND_TRIPS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

PEER_FIELDS = ("publicEncryptKey", "publicExchangeKey", "publicSignKey")


@pytest.fixture(scope="module")
def suite() -> WebcryptoSuite:
    return WebcryptoSuite()


@pytest.fixture(scope="module")
def alice(suite: WebcryptoSuite) -> WebcryptoIdentity:
    return suite.generate_identity()


@pytest.fixture(scope="module")
def bob(suite: WebcryptoSuite) -> WebcryptoIdentity:
    return suite.generate_identity()


@pytest.fixture(scope="module")
def alice_peer(suite: WebcryptoSuite, alice: WebcryptoIdentity) -> WebcryptoPeer:
    return suite.load_peer(suite.public_fields(alice))


@pytest.fixture(scope="module")
def bob_peer(suite: WebcryptoSuite, bob: WebcryptoIdentity) -> WebcryptoPeer:
    return suite.load_peer(suite.public_fields(bob))


def spki_b64(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64encode(der).decode()


def pkcs8_b64(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return b64encode(der).decode()


# Registration.


def test_registered_as_cipher_suite() -> None:
    backend = get_registry().get(BackendKind.CIPHER_SUITE, "webcrypto")
    loaded = backend.load()
    assert isinstance(loaded, WebcryptoSuite)
    assert isinstance(loaded, CipherSuite)


def test_field_names() -> None:
    assert WebcryptoSuite.name == "webcrypto"
    assert WebcryptoSuite.room_fields == ("E", "I")
    assert WebcryptoSuite.direct_fields == ("V", "K", "P", "G")


# Identities and peers.


def test_public_fields_formats(suite: WebcryptoSuite, alice: WebcryptoIdentity) -> None:
    fields = suite.public_fields(alice)
    assert sorted(fields) == sorted(PEER_FIELDS)

    exchange_key = b64decode(fields["publicExchangeKey"], validate=True)
    assert len(exchange_key) == 65
    assert exchange_key[0] == 0x04

    for name in ("publicEncryptKey", "publicSignKey"):
        der = b64decode(fields[name], validate=True)
        key = serialization.load_der_public_key(der)
        assert isinstance(key, rsa.RSAPublicKey), name
        assert key.key_size == 4096, name
        assert key.public_numbers().e == 65537, name


def test_identity_keys_differ(suite: WebcryptoSuite, alice: WebcryptoIdentity) -> None:
    fields = suite.public_fields(alice)
    assert fields["publicEncryptKey"] != fields["publicSignKey"]


def test_identity_repr_hides_private_keys(alice: WebcryptoIdentity) -> None:
    text = repr(alice)
    assert "RSAPrivateKey" not in text
    assert "EllipticCurvePrivateKey" not in text


def test_private_keys_round_trip(
    suite: WebcryptoSuite, alice: WebcryptoIdentity
) -> None:
    loaded = WebcryptoSuite.identity_from_private_keys(
        pkcs8_b64(alice.encrypt_key),
        pkcs8_b64(alice.sign_key),
        pkcs8_b64(alice.exchange_key),
    )
    assert suite.public_fields(loaded) == suite.public_fields(alice)
    assert suite.sign_exchange(loaded) == suite.sign_exchange(alice)


@pytest.mark.parametrize(
    "argument", ["encrypt_pkcs8_b64", "sign_pkcs8_b64", "exchange_pkcs8_b64"]
)
@pytest.mark.parametrize("bad_value", [None, 42, "not base64!", "AAAA"])
def test_private_keys_reject_malformed(
    alice: WebcryptoIdentity, argument: str, bad_value: Any
) -> None:
    arguments: dict[str, Any] = {
        "encrypt_pkcs8_b64": pkcs8_b64(alice.encrypt_key),
        "sign_pkcs8_b64": pkcs8_b64(alice.sign_key),
        "exchange_pkcs8_b64": pkcs8_b64(alice.exchange_key),
    }
    arguments[argument] = bad_value
    with pytest.raises(CryptoError, match=argument):
        WebcryptoSuite.identity_from_private_keys(**arguments)


def test_private_keys_reject_swapped_types(
    alice: WebcryptoIdentity,
) -> None:
    with pytest.raises(CryptoError, match="encrypt_pkcs8_b64"):
        WebcryptoSuite.identity_from_private_keys(
            pkcs8_b64(alice.exchange_key),
            pkcs8_b64(alice.sign_key),
            pkcs8_b64(alice.exchange_key),
        )
    with pytest.raises(CryptoError, match="exchange_pkcs8_b64"):
        WebcryptoSuite.identity_from_private_keys(
            pkcs8_b64(alice.encrypt_key),
            pkcs8_b64(alice.sign_key),
            pkcs8_b64(alice.sign_key),
        )


@pytest.fixture(scope="module")
def malformed_keys() -> dict[str, str]:
    """Keys that are valid encodings but wrong for a field."""
    small_rsa = rsa.generate_private_key(65537, 2048)
    p384 = ec.generate_private_key(ec.SECP384R1())
    p256 = ec.generate_private_key(ec.SECP256R1())
    compressed = p256.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    return {
        "rsa_2048": spki_b64(small_rsa.public_key()),
        "ec_spki": spki_b64(p256.public_key()),
        "p384_point": b64encode(
            p384.public_key().public_bytes(
                serialization.Encoding.X962,
                serialization.PublicFormat.UncompressedPoint,
            )
        ).decode(),
        "compressed_point": b64encode(compressed).decode(),
        "off_curve_point": b64encode(b"\x04" + b"\xff" * 64).decode(),
    }


@pytest.mark.parametrize("field", PEER_FIELDS)
@pytest.mark.parametrize(
    "bad_value", [None, 42, b"bytes", "not base64!", "QUJD", "", "rsa_2048", "ec_spki"]
)
def test_load_peer_rejects_malformed_field(
    suite: WebcryptoSuite,
    alice: WebcryptoIdentity,
    malformed_keys: dict[str, str],
    field: str,
    bad_value: Any,
) -> None:
    fields: dict[str, Any] = dict(suite.public_fields(alice))
    fields[field] = malformed_keys.get(bad_value, bad_value)
    with pytest.raises(CryptoError, match=field):
        suite.load_peer(fields)


@pytest.mark.parametrize(
    "bad_value", ["p384_point", "compressed_point", "off_curve_point"]
)
def test_load_peer_rejects_bad_exchange_point(
    suite: WebcryptoSuite,
    alice: WebcryptoIdentity,
    malformed_keys: dict[str, str],
    bad_value: str,
) -> None:
    fields = dict(suite.public_fields(alice))
    fields["publicExchangeKey"] = malformed_keys[bad_value]
    with pytest.raises(CryptoError, match="publicExchangeKey"):
        suite.load_peer(fields)


@pytest.mark.parametrize("field", PEER_FIELDS)
def test_load_peer_rejects_missing_field(
    suite: WebcryptoSuite, alice: WebcryptoIdentity, field: str
) -> None:
    fields = dict(suite.public_fields(alice))
    del fields[field]
    with pytest.raises(CryptoError, match=f"{field}.*missing"):
        suite.load_peer(fields)


def test_load_peer_ignores_other_fields(
    suite: WebcryptoSuite, alice: WebcryptoIdentity
) -> None:
    fields: dict[str, Any] = {
        "type": "_X0",
        "publicData": {"name": "alice"},
        **suite.public_fields(alice),
    }
    peer = suite.load_peer(fields)
    assert peer.exchange_key_bytes == alice.exchange_key_bytes


# Exchange signatures.


def test_exchange_signature_verifies(
    suite: WebcryptoSuite,
    alice: WebcryptoIdentity,
    alice_peer: WebcryptoPeer,
    bob_peer: WebcryptoPeer,
) -> None:
    signature = suite.sign_exchange(alice)
    assert len(b64decode(signature, validate=True)) == 512
    assert suite.verify_exchange(alice_peer, signature)
    assert not suite.verify_exchange(bob_peer, signature)


@pytest.mark.parametrize("bad_value", [None, 42, b"bytes", "", "not base64!", "QUJD"])
def test_exchange_signature_rejects_malformed(
    suite: WebcryptoSuite, alice_peer: WebcryptoPeer, bad_value: Any
) -> None:
    assert suite.verify_exchange(alice_peer, bad_value) is False


# Pairwise keys and verification codes.


def test_pairwise_keys_agree(
    suite: WebcryptoSuite,
    alice: WebcryptoIdentity,
    bob: WebcryptoIdentity,
    alice_peer: WebcryptoPeer,
    bob_peer: WebcryptoPeer,
) -> None:
    alice_side = suite.pairwise_key(alice, bob_peer)
    bob_side = suite.pairwise_key(bob, alice_peer)
    assert len(alice_side) == 32
    assert alice_side == bob_side


@pytest.mark.parametrize("length", [1, 6, 8, 32])
def test_verification_codes_agree(
    suite: WebcryptoSuite,
    alice: WebcryptoIdentity,
    bob: WebcryptoIdentity,
    alice_peer: WebcryptoPeer,
    bob_peer: WebcryptoPeer,
    length: int,
) -> None:
    alice_code = suite.verification_code(
        "QTBA7Y", suite.pairwise_key(alice, bob_peer), length
    )
    bob_code = suite.verification_code(
        "QTBA7Y", suite.pairwise_key(bob, alice_peer), length
    )
    assert alice_code == bob_code
    assert len(alice_code) == length
    assert set(alice_code) <= set(CODE_ALPHABET)


def test_verification_code_prefix_stable(suite: WebcryptoSuite) -> None:
    key = bytes(range(32))
    short = suite.verification_code("ROOM22", key, 6)
    long = suite.verification_code("ROOM22", key, 32)
    assert long.startswith(short)


def test_code_depends_on_room_and_key(suite: WebcryptoSuite) -> None:
    key = bytes(range(32))
    code = suite.verification_code("ROOM22", key, 32)
    assert suite.verification_code("ROOM23", key, 32) != code
    assert suite.verification_code("ROOM22", bytes(32), 32) != code


@pytest.mark.parametrize("length", [-1, 0, 33, 100])
def test_verification_code_rejects_length(suite: WebcryptoSuite, length: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 32"):
        suite.verification_code("ROOM22", bytes(32), length)


# Room keys.


def test_new_room_keys_are_random(suite: WebcryptoSuite) -> None:
    first = suite.new_room_key()
    second = suite.new_room_key()
    assert len(first) == 32
    assert first != second


def test_room_key_export_import(suite: WebcryptoSuite) -> None:
    room_key = suite.new_room_key()
    exported = suite.export_room_key(room_key)
    assert isinstance(exported, str)
    assert suite.import_room_key(exported) == room_key


@pytest.mark.parametrize(
    "bad_value",
    [
        None,
        42,
        bytes(32),
        "",
        "not base64!",
        b64encode(bytes(16)).decode(),
        b64encode(bytes(33)).decode(),
        b64encode(bytes(32)).decode().rstrip("="),
    ],
)
def test_import_room_key_rejects(suite: WebcryptoSuite, bad_value: Any) -> None:
    with pytest.raises(CryptoError, match="room key"):
        suite.import_room_key(bad_value)


# Room messages.


@ROUND_TRIPS
@given(plaintext=st.binary(max_size=4096))
def test_room_round_trip(suite: WebcryptoSuite, plaintext: bytes) -> None:
    room_key = suite.new_room_key()
    sealed = suite.seal_room(room_key, plaintext)
    assert set(sealed) == set(WebcryptoSuite.room_fields)
    assert len(sealed["I"]) == 12
    assert len(sealed["E"]) == len(plaintext) + 16
    assert suite.open_room(room_key, sealed) == plaintext


def test_room_seal_uses_fresh_iv(suite: WebcryptoSuite) -> None:
    room_key = suite.new_room_key()
    first = suite.seal_room(room_key, b"same")
    second = suite.seal_room(room_key, b"same")
    assert first["I"] != second["I"]
    assert first["E"] != second["E"]


def test_room_open_with_wrong_key_fails(suite: WebcryptoSuite) -> None:
    sealed = suite.seal_room(suite.new_room_key(), b"secret")
    with pytest.raises(DecryptionError, match="failed authentication"):
        suite.open_room(suite.new_room_key(), sealed)


@pytest.mark.parametrize("field", ["E", "I"])
def test_room_open_missing_field_fails(suite: WebcryptoSuite, field: str) -> None:
    room_key = suite.new_room_key()
    sealed = suite.seal_room(room_key, b"secret")
    del sealed[field]
    with pytest.raises(DecryptionError, match=repr(field)):
        suite.open_room(room_key, sealed)


@pytest.mark.parametrize("iv_size", [0, 8, 11, 13, 16])
def test_room_open_wrong_iv_size_fails(suite: WebcryptoSuite, iv_size: int) -> None:
    room_key = suite.new_room_key()
    sealed = suite.seal_room(room_key, b"secret")
    sealed["I"] = bytes(iv_size)
    with pytest.raises(DecryptionError, match="IV must be 12 bytes"):
        suite.open_room(room_key, sealed)


def test_room_open_short_ciphertext_fails(suite: WebcryptoSuite) -> None:
    room_key = suite.new_room_key()
    with pytest.raises(DecryptionError):
        suite.open_room(room_key, {"E": b"short", "I": bytes(12)})


def test_room_open_wrong_key_size_fails(suite: WebcryptoSuite) -> None:
    sealed = suite.seal_room(suite.new_room_key(), b"secret")
    with pytest.raises(DecryptionError, match="32 bytes"):
        suite.open_room(bytes(16), sealed)


def test_room_seal_wrong_key_size_fails(suite: WebcryptoSuite) -> None:
    with pytest.raises(CryptoError, match="32 bytes"):
        suite.seal_room(bytes(16), b"secret")


# Direct messages.


@ROUND_TRIPS
@given(plaintext=st.binary(max_size=4096))
def test_direct_round_trip(
    suite: WebcryptoSuite,
    alice: WebcryptoIdentity,
    bob: WebcryptoIdentity,
    alice_peer: WebcryptoPeer,
    bob_peer: WebcryptoPeer,
    plaintext: bytes,
) -> None:
    sealed = suite.seal_direct(alice, bob_peer, plaintext)
    assert tuple(sealed) == WebcryptoSuite.direct_fields
    assert len(sealed["V"]) == 12
    assert len(sealed["K"]) == 512
    assert len(sealed["G"]) == 512
    assert len(sealed["P"]) == len(plaintext) + 16
    assert suite.open_direct(bob, alice_peer, sealed) == plaintext


def test_direct_open_by_other_receiver_fails(
    suite: WebcryptoSuite,
    alice: WebcryptoIdentity,
    alice_peer: WebcryptoPeer,
    bob_peer: WebcryptoPeer,
) -> None:
    sealed = suite.seal_direct(alice, bob_peer, b"for bob")
    with pytest.raises(DecryptionError, match="unwrapped"):
        suite.open_direct(alice, alice_peer, sealed)


def test_direct_open_with_wrong_sender_fails(
    suite: WebcryptoSuite,
    alice: WebcryptoIdentity,
    bob: WebcryptoIdentity,
    bob_peer: WebcryptoPeer,
) -> None:
    sealed = suite.seal_direct(alice, bob_peer, b"from alice")
    with pytest.raises(DecryptionError, match="signature"):
        suite.open_direct(bob, bob_peer, sealed)


def test_direct_open_without_sender_skips_signature(
    suite: WebcryptoSuite,
    alice: WebcryptoIdentity,
    bob: WebcryptoIdentity,
    alice_peer: WebcryptoPeer,
    bob_peer: WebcryptoPeer,
) -> None:
    sealed = suite.seal_direct(alice, bob_peer, b"first answer")
    unsigned = {**sealed, "G": bytes(512)}
    assert suite.open_direct(bob, None, unsigned) == b"first answer"
    assert not suite.verify_direct(alice_peer, unsigned)
    assert suite.verify_direct(alice_peer, sealed)


def test_verify_direct_checks_sender(
    suite: WebcryptoSuite,
    alice: WebcryptoIdentity,
    alice_peer: WebcryptoPeer,
    bob_peer: WebcryptoPeer,
) -> None:
    sealed = suite.seal_direct(alice, bob_peer, b"from alice")
    assert suite.verify_direct(alice_peer, sealed)
    assert not suite.verify_direct(bob_peer, sealed)


@pytest.mark.parametrize("field", ["P", "G"])
@pytest.mark.parametrize("bad_value", [None, "text", b"", b"\x00" * 512])
def test_verify_direct_rejects_malformed(
    suite: WebcryptoSuite,
    alice: WebcryptoIdentity,
    alice_peer: WebcryptoPeer,
    bob_peer: WebcryptoPeer,
    field: str,
    bad_value: Any,
) -> None:
    fields: dict[str, Any] = dict(suite.seal_direct(alice, bob_peer, b"secret"))
    if bad_value is None:
        del fields[field]
    else:
        fields[field] = bad_value
    assert suite.verify_direct(alice_peer, fields) is False


@pytest.mark.parametrize("field", ["V", "K", "P", "G"])
def test_direct_open_missing_field_fails(
    suite: WebcryptoSuite,
    alice: WebcryptoIdentity,
    bob: WebcryptoIdentity,
    alice_peer: WebcryptoPeer,
    bob_peer: WebcryptoPeer,
    field: str,
) -> None:
    sealed = suite.seal_direct(alice, bob_peer, b"secret")
    del sealed[field]
    with pytest.raises(DecryptionError, match=repr(field)):
        suite.open_direct(bob, alice_peer, sealed)


@pytest.mark.parametrize("field", ["V", "K", "P", "G"])
@pytest.mark.parametrize("bad_value", [b"", b"\x00" * 12, b"\x00" * 600])
def test_direct_open_garbage_field_fails(
    suite: WebcryptoSuite,
    alice: WebcryptoIdentity,
    bob: WebcryptoIdentity,
    alice_peer: WebcryptoPeer,
    bob_peer: WebcryptoPeer,
    field: str,
    bad_value: bytes,
) -> None:
    sealed = suite.seal_direct(alice, bob_peer, b"secret")
    sealed[field] = bad_value
    with pytest.raises(DecryptionError):
        suite.open_direct(bob, alice_peer, sealed)


def test_direct_open_swapped_key_fails(
    suite: WebcryptoSuite,
    alice: WebcryptoIdentity,
    bob: WebcryptoIdentity,
    alice_peer: WebcryptoPeer,
    bob_peer: WebcryptoPeer,
) -> None:
    # G covers P only, so a K taken from another message passes the signature check
    # and has to fail at decryption.
    first = suite.seal_direct(alice, bob_peer, b"first")
    second = suite.seal_direct(alice, bob_peer, b"second")
    mixed = {**first, "K": second["K"]}
    with pytest.raises(DecryptionError, match="failed authentication"):
        suite.open_direct(bob, alice_peer, mixed)


# The cipher suite conformance tests.


class TestWebcryptoConformance(CipherSuiteConformance):
    @pytest.fixture
    def cipher_suite(self) -> CipherSuite:
        return WebcryptoSuite()
