"""The ``webcrypto`` cipher suite: the algorithms of the JavaScript roupn 0.1 client.

The JavaScript client uses the browser's WebCrypto API. This suite does the same with
the ``cryptography`` package, byte for byte:

- RSA-OAEP 4096 with SHA-256 (and MGF1-SHA-256) wraps the one-time key of a direct
  message. RSASSA-PKCS1-v1_5 4096 with SHA-256 signs direct messages and the exchange
  key. Both public keys travel as base64 SubjectPublicKeyInfo DER.
- ECDH on P-256 gives the pairwise key. The public key travels as the base64 raw
  65-byte uncompressed point, and the 32-byte shared secret is the key, without a KDF.
- AES-256-GCM with a 12-byte IV encrypts room and direct messages. The 16-byte tag is
  appended to the ciphertext, as WebCrypto lays it out.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from roupn.errors import CryptoError, DecryptionError
from roupn.hookspecs import hookimpl
from roupn.interfaces import MessageContext, MessageHeader
from roupn.messages import CODE_ALPHABET
from roupn.plugins import Backend

from .keys import (
    RSA_KEY_SIZE,
    WebcryptoIdentity,
    WebcryptoPeer,
    decode_b64,
    encode_b64,
    load_exchange_private,
    load_exchange_public,
    load_rsa_private,
    load_rsa_public,
)

__all__ = ["WebcryptoIdentity", "WebcryptoPeer", "WebcryptoSuite"]

logger = logging.getLogger(__name__)

RSA_PUBLIC_EXPONENT = 65537
AES_KEY_SIZE = 32
GCM_IV_SIZE = 12

# A verification code takes one character per digest byte, so SHA-256 caps its length.
MAX_CODE_LENGTH = hashlib.sha256().digest_size

_OAEP = padding.OAEP(
    mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


# Message helpers.


def _field_bytes(fields: Mapping[str, bytes], key: str, label: str) -> bytes:
    """Return a binary frame field, raising DecryptionError if absent or not bytes."""
    value = fields.get(key)
    if value is None:
        raise DecryptionError(f"{label} has no {key!r} field")
    if not isinstance(value, bytes):
        raise DecryptionError(
            f"{label} field {key!r} must be bytes, got {type(value).__name__}"
        )
    return value


def _aes_gcm(key: bytes, error: type[CryptoError], label: str) -> AESGCM:
    if not isinstance(key, bytes) or len(key) != AES_KEY_SIZE:
        size = len(key) if isinstance(key, bytes) else type(key).__name__
        raise error(f"{label} must be {AES_KEY_SIZE} bytes, got {size}")
    return AESGCM(key)


def _gcm_decrypt(aes: AESGCM, iv: bytes, ciphertext: bytes, label: str) -> bytes:
    if len(iv) != GCM_IV_SIZE:
        raise DecryptionError(f"{label} IV must be {GCM_IV_SIZE} bytes, got {len(iv)}")
    try:
        return aes.decrypt(iv, ciphertext, None)
    except InvalidTag:
        raise DecryptionError(
            f"{label} failed authentication. It was altered or encrypted with "
            "another key."
        ) from None


def _signature_valid(peer: WebcryptoPeer, ciphertext: bytes, signature: bytes) -> bool:
    # G signs the raw ciphertext bytes of P (tag included), not their base64 text and
    # not the plaintext. The signatures of the recorded JavaScript frames verify over
    # these bytes only.
    try:
        peer.sign_key.verify(signature, ciphertext, _PKCS1V15, _SHA256)
    except InvalidSignature:
        return False
    return True


# The cipher suite.


class WebcryptoSuite:
    """The cipher suite that the JavaScript roupn 0.1 client uses."""

    name: ClassVar[str] = "webcrypto"
    room_fields: ClassVar[tuple[str, ...]] = ("E", "I")
    direct_fields: ClassVar[tuple[str, ...]] = ("V", "K", "P", "G")
    commits_keys: ClassVar[bool] = False
    rekeys: ClassVar[bool] = False

    # Identities and peers.

    def generate_identity(self) -> WebcryptoIdentity:
        """Generate the three key pairs.

        RSA-4096 generation is slow, so callers run this in a worker thread.
        """
        started = time.perf_counter()
        identity = WebcryptoIdentity.from_keys(
            encrypt_key=rsa.generate_private_key(RSA_PUBLIC_EXPONENT, RSA_KEY_SIZE),
            sign_key=rsa.generate_private_key(RSA_PUBLIC_EXPONENT, RSA_KEY_SIZE),
            exchange_key=ec.generate_private_key(ec.SECP256R1()),
        )
        logger.debug("generated identity in %.2f s", time.perf_counter() - started)
        return identity

    @staticmethod
    def identity_from_private_keys(
        encrypt_pkcs8_b64: str, sign_pkcs8_b64: str, exchange_pkcs8_b64: str
    ) -> WebcryptoIdentity:
        """Load an identity from private keys that WebCrypto exported as PKCS#8.

        Each argument is the base64 of the PKCS#8 DER export: the RSA-OAEP key, the
        RSASSA-PKCS1-v1_5 key and the ECDH P-256 key.

        Raises:
            CryptoError: a key is not valid base64 PKCS#8 of the expected type and
                size. The message names the argument.
        """
        return WebcryptoIdentity.from_keys(
            encrypt_key=load_rsa_private(encrypt_pkcs8_b64, "encrypt_pkcs8_b64"),
            sign_key=load_rsa_private(sign_pkcs8_b64, "sign_pkcs8_b64"),
            exchange_key=load_exchange_private(
                exchange_pkcs8_b64, "exchange_pkcs8_b64"
            ),
        )

    def public_fields(self, identity: WebcryptoIdentity) -> dict[str, str]:
        return {
            "publicEncryptKey": identity.public_encrypt_key,
            "publicExchangeKey": identity.public_exchange_key,
            "publicSignKey": identity.public_sign_key,
        }

    def sign_exchange(self, identity: WebcryptoIdentity) -> str:
        """Sign the raw exchange key bytes and return the base64 ``signature`` field."""
        signature = identity.sign_key.sign(
            identity.exchange_key_bytes, _PKCS1V15, _SHA256
        )
        return encode_b64(signature)

    def load_peer(self, fields: Mapping[str, Any]) -> WebcryptoPeer:
        """Load a peer's public keys from the fields of its handshake message.

        Raises:
            CryptoError: a key field is missing, not a base64 string, or not a key of
                the expected type and size. The message names the field.
        """
        for name in ("publicEncryptKey", "publicExchangeKey", "publicSignKey"):
            if name not in fields:
                raise CryptoError(f"handshake field {name!r} is missing")
        exchange_key, exchange_key_bytes = load_exchange_public(
            fields["publicExchangeKey"], "handshake field 'publicExchangeKey'"
        )
        return WebcryptoPeer(
            encrypt_key=load_rsa_public(
                fields["publicEncryptKey"], "handshake field 'publicEncryptKey'"
            ),
            sign_key=load_rsa_public(
                fields["publicSignKey"], "handshake field 'publicSignKey'"
            ),
            exchange_key=exchange_key,
            exchange_key_bytes=exchange_key_bytes,
        )

    def verify_exchange(self, peer: WebcryptoPeer, signature: Any) -> bool:
        """Return whether ``signature`` (base64) signs the peer's raw exchange key.

        A value that is not a base64 string gives False, as a wrong signature does.
        """
        try:
            raw = decode_b64(signature, "signature")
            peer.sign_key.verify(raw, peer.exchange_key_bytes, _PKCS1V15, _SHA256)
        except (CryptoError, InvalidSignature):
            return False
        return True

    # Pairwise keys and verification codes.

    def pairwise_key(
        self, identity: WebcryptoIdentity, peer: WebcryptoPeer, room_code: str = ""
    ) -> bytes:
        """Return the 32-byte ECDH shared secret, used as the key without a KDF."""
        return identity.exchange_key.exchange(ec.ECDH(), peer.exchange_key)

    def verification_code(
        self, room_code: str, pairwise_key: bytes, length: int
    ) -> str:
        """Derive the code from SHA-256 of the room code and the base64 pairwise key.

        Character ``i`` is ``CODE_ALPHABET[digest[i] % 30]``.

        Raises:
            ValueError: ``length`` is not between 1 and 32.
        """
        if not 1 <= length <= MAX_CODE_LENGTH:
            raise ValueError(
                f"verification code length must be between 1 and {MAX_CODE_LENGTH} "
                f"(one character per SHA-256 digest byte), got {length}"
            )
        text = room_code + encode_b64(pairwise_key)
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        alphabet_size = len(CODE_ALPHABET)
        return "".join(CODE_ALPHABET[byte % alphabet_size] for byte in digest[:length])

    # Room keys and room messages.

    def new_room_key(self) -> bytes:
        return os.urandom(AES_KEY_SIZE)

    def export_room_key(self, room_key: bytes) -> str:
        return encode_b64(room_key)

    def import_room_key(self, value: Any) -> bytes:
        """Decode a ``sharedKey`` field: base64 of a 32-byte AES key.

        Raises:
            CryptoError: the value is not a base64 string of 32 bytes.
        """
        room_key = decode_b64(value, "room key")
        if len(room_key) != AES_KEY_SIZE:
            raise CryptoError(
                f"room key must be {AES_KEY_SIZE} bytes, got {len(room_key)}"
            )
        return room_key

    def commitment(self, identity: WebcryptoIdentity) -> str:
        """Return an empty commitment: roupn 0.1 signs the exchange key instead."""
        return ""

    def check_commitment(self, fields: Mapping[str, Any], commitment: Any) -> bool:
        """Return True: roupn 0.1 has no commitment step."""
        return True

    def room_header(self, fields: Mapping[str, bytes]) -> MessageHeader:
        """Return an empty header: roupn 0.1 room messages carry no counter."""
        return MessageHeader(None, 0, None)

    def direct_header(self, fields: Mapping[str, bytes]) -> MessageHeader:
        """Return an empty header: the sender is inside the encrypted message."""
        return MessageHeader(None, 0, None)

    def seal_room(
        self, room_key: bytes, plaintext: bytes, context: MessageContext | None = None
    ) -> dict[str, bytes]:
        """Encrypt a room message under a fresh random IV.

        Raises:
            CryptoError: the room key is not 32 bytes.
        """
        aes = _aes_gcm(room_key, CryptoError, "room key")
        iv = os.urandom(GCM_IV_SIZE)

        # The JavaScript client writes ``I`` before ``E``, and this order matches it.
        return {"I": iv, "E": aes.encrypt(iv, plaintext, None)}

    def open_room(
        self,
        room_key: bytes,
        fields: Mapping[str, bytes],
        context: MessageContext | None = None,
    ) -> bytes:
        """Decrypt a room message from its ``E`` and ``I`` fields.

        Raises:
            DecryptionError: a field is missing, the IV is not 12 bytes, the room key
                is not 32 bytes, or the ciphertext failed authentication.
        """
        ciphertext = _field_bytes(fields, "E", "room message")
        iv = _field_bytes(fields, "I", "room message")
        aes = _aes_gcm(room_key, DecryptionError, "room key")
        return _gcm_decrypt(aes, iv, ciphertext, "room message")

    # Direct messages.

    def seal_direct(
        self,
        identity: WebcryptoIdentity,
        peer: WebcryptoPeer,
        plaintext: bytes,
        context: MessageContext | None = None,
    ) -> dict[str, bytes]:
        """Encrypt a direct message to ``peer`` under a one-time key, and sign it.

        ``K`` carries the one-time key, wrapped with the peer's RSA-OAEP key.
        """
        one_time_key = AESGCM.generate_key(bit_length=AES_KEY_SIZE * 8)
        iv = os.urandom(GCM_IV_SIZE)
        ciphertext = AESGCM(one_time_key).encrypt(iv, plaintext, None)
        wrapped_key = peer.encrypt_key.encrypt(one_time_key, _OAEP)

        # G signs the raw bytes of P, as _signature_valid checks.
        signature = identity.sign_key.sign(ciphertext, _PKCS1V15, _SHA256)
        return {"V": iv, "K": wrapped_key, "P": ciphertext, "G": signature}

    def open_direct(
        self,
        identity: WebcryptoIdentity,
        peer: WebcryptoPeer | None,
        fields: Mapping[str, bytes],
        context: MessageContext | None = None,
    ) -> bytes:
        """Unwrap the one-time key and decrypt, checking the signature first if given.

        ``peer`` is the sender. With None, the signature is not checked, and the caller
        checks it with :meth:`verify_direct` once it has the sender's keys. The
        creator's keys arrive inside its first direct message, so a joiner cannot check
        that message beforehand. Checking the signature first spares a forged message
        the RSA decryption.

        Raises:
            DecryptionError: a field is missing, the signature does not verify, the
                one-time key cannot be unwrapped, or the ciphertext failed
                authentication.
        """
        iv = _field_bytes(fields, "V", "direct message")
        wrapped_key = _field_bytes(fields, "K", "direct message")
        ciphertext = _field_bytes(fields, "P", "direct message")
        signature = _field_bytes(fields, "G", "direct message")
        if peer is not None and not _signature_valid(peer, ciphertext, signature):
            raise DecryptionError(
                "direct message signature does not verify with the sender's signing key"
            )
        try:
            one_time_key = identity.encrypt_key.decrypt(wrapped_key, _OAEP)
        except ValueError:
            raise DecryptionError(
                "direct message key could not be unwrapped with this client's "
                "encryption key"
            ) from None
        aes = _aes_gcm(one_time_key, DecryptionError, "direct message one-time key")
        return _gcm_decrypt(aes, iv, ciphertext, "direct message")

    def verify_direct(self, peer: WebcryptoPeer, fields: Mapping[str, bytes]) -> bool:
        """Return whether ``G`` is the sender's signature over ``P``.

        A missing or non-bytes ``P`` or ``G`` gives False, as a wrong signature does.
        """
        ciphertext = fields.get("P")
        signature = fields.get("G")
        if not isinstance(ciphertext, bytes) or not isinstance(signature, bytes):
            return False
        return _signature_valid(peer, ciphertext, signature)


@hookimpl
def roupn_cipher_suites() -> Iterable[Backend]:
    return [
        Backend(
            "webcrypto",
            "roupn_webcrypto:WebcryptoSuite",
            summary="RSA-OAEP, RSASSA-PKCS1-v1_5, ECDH P-256 and AES-GCM "
            "(roupn 0.1 compatible)",
        )
    ]
