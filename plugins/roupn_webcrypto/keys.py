"""Key containers of the ``webcrypto`` suite, and key loading in WebCrypto formats.

Public keys travel as base64 text: RSA keys as SubjectPublicKeyInfo DER, the ECDH key
as the raw 65-byte uncompressed P-256 point. Private keys load from base64 PKCS#8 DER,
the format of WebCrypto's ``exportKey("pkcs8", ...)``.
"""

from __future__ import annotations

import binascii
from base64 import b64decode, b64encode
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from roupn.errors import CryptoError

__all__ = [
    "EXCHANGE_KEY_SIZE",
    "RSA_KEY_SIZE",
    "WebcryptoIdentity",
    "WebcryptoPeer",
    "decode_b64",
    "encode_b64",
    "load_exchange_private",
    "load_exchange_public",
    "load_rsa_private",
    "load_rsa_public",
]

RSA_KEY_SIZE = 4096
EXCHANGE_KEY_SIZE = 65


# Key containers.


@dataclass(frozen=True, slots=True)
class WebcryptoIdentity:
    """This client's private keys, with its public keys exported once.

    ``public_encrypt_key`` and ``public_sign_key`` are base64 SPKI DER, and
    ``public_exchange_key`` is the base64 raw uncompressed point, as sent in ``_X0``.
    """

    encrypt_key: rsa.RSAPrivateKey = field(repr=False)
    sign_key: rsa.RSAPrivateKey = field(repr=False)
    exchange_key: ec.EllipticCurvePrivateKey = field(repr=False)
    public_encrypt_key: str
    public_sign_key: str
    public_exchange_key: str
    exchange_key_bytes: bytes = field(repr=False)

    @classmethod
    def from_keys(
        cls,
        encrypt_key: rsa.RSAPrivateKey,
        sign_key: rsa.RSAPrivateKey,
        exchange_key: ec.EllipticCurvePrivateKey,
    ) -> WebcryptoIdentity:
        """Wrap three private keys and export their public keys."""
        exchange_key_bytes = exchange_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return cls(
            encrypt_key=encrypt_key,
            sign_key=sign_key,
            exchange_key=exchange_key,
            public_encrypt_key=_export_spki(encrypt_key.public_key()),
            public_sign_key=_export_spki(sign_key.public_key()),
            public_exchange_key=encode_b64(exchange_key_bytes),
            exchange_key_bytes=exchange_key_bytes,
        )


@dataclass(frozen=True, slots=True)
class WebcryptoPeer:
    """A peer's public keys, loaded from its ``_X0`` or ``_X1`` message."""

    encrypt_key: rsa.RSAPublicKey = field(repr=False)
    sign_key: rsa.RSAPublicKey = field(repr=False)
    exchange_key: ec.EllipticCurvePublicKey = field(repr=False)
    exchange_key_bytes: bytes


# Encoding and key loading helpers.


def encode_b64(data: bytes) -> str:
    """Encode bytes as standard base64 text with padding."""
    return b64encode(data).decode("ascii")


def _export_spki(key: rsa.RSAPublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return encode_b64(der)


def decode_b64(value: Any, name: str) -> bytes:
    """Decode a base64 string, raising CryptoError that names ``name``."""
    if not isinstance(value, str):
        raise CryptoError(f"{name} must be a base64 string, got {type(value).__name__}")
    try:
        return b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError(f"{name} is not valid base64: {exc}") from None


def _check_rsa_size(key_size: int, name: str) -> None:
    if key_size != RSA_KEY_SIZE:
        raise CryptoError(
            f"{name} is a {key_size}-bit RSA key, but roupn 0.1 uses "
            f"{RSA_KEY_SIZE}-bit keys"
        )


def load_rsa_public(value: Any, name: str) -> rsa.RSAPublicKey:
    """Load a 4096-bit RSA public key from base64 SPKI DER.

    Raises:
        CryptoError: the value is not such a key. The message names ``name``.
    """
    der = decode_b64(value, name)
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"{name} is not a valid SPKI DER public key: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise CryptoError(f"{name} must be an RSA public key, got {type(key).__name__}")
    _check_rsa_size(key.key_size, name)
    return key


def load_exchange_public(
    value: Any, name: str
) -> tuple[ec.EllipticCurvePublicKey, bytes]:
    """Load a P-256 public key from a base64 raw point and return it with the bytes.

    Raises:
        CryptoError: the value is not such a key. The message names ``name``.
    """
    raw = decode_b64(value, name)

    # WebCrypto exports the uncompressed point only, so a compressed one is rejected.
    if len(raw) != EXCHANGE_KEY_SIZE or raw[0] != 0x04:
        raise CryptoError(
            f"{name} must be a {EXCHANGE_KEY_SIZE}-byte uncompressed P-256 point, "
            f"got {len(raw)} bytes"
        )
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError as exc:
        raise CryptoError(f"{name} is not a valid P-256 point: {exc}") from None
    return key, raw


def _load_pkcs8(value: Any, name: str) -> Any:
    der = decode_b64(value, name)
    try:
        return serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"{name} is not a valid PKCS#8 private key: {exc}") from None


def load_rsa_private(value: Any, name: str) -> rsa.RSAPrivateKey:
    """Load a 4096-bit RSA private key from base64 PKCS#8 DER.

    Raises:
        CryptoError: the value is not such a key. The message names ``name``.
    """
    key = _load_pkcs8(value, name)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CryptoError(
            f"{name} must be an RSA private key, got {type(key).__name__}"
        )
    _check_rsa_size(key.key_size, name)
    return key


def load_exchange_private(value: Any, name: str) -> ec.EllipticCurvePrivateKey:
    """Load a P-256 private key from base64 PKCS#8 DER.

    Raises:
        CryptoError: the value is not such a key. The message names ``name``.
    """
    key = _load_pkcs8(value, name)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise CryptoError(f"{name} must be a P-256 private key")
    return key
