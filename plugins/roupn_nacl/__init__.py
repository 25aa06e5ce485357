"""The ``nacl`` cipher suite: fast, compact and replay-safe, for Python-only rooms.

- X25519 agrees the pairwise key. BLAKE2b, keyed with the shared secret, derives it
  from both public keys (in byte order) and the room code, so a key made for one pair
  in one room is useless anywhere else.
- Ed25519 signs the exchange key in the handshake.
- XChaCha20-Poly1305 encrypts room messages (room key) and direct messages (pairwise
  key). The 24-byte nonce is the message header, sent in clear and authenticated:
  the sender's 16-byte id, the key epoch (all ones for direct messages) and the
  sender's counter, so a receiver rejects a replayed, reordered or relabelled
  message, and the room code in the associated data stops a message moved between
  rooms.
- The joiner commits to a BLAKE2b hash of its public keys before the creator reveals
  its own, so a relay in the middle cannot choose keys that make the two
  verification codes match.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
import struct
import uuid
from base64 import b64decode, b64encode
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from roupn.errors import CryptoError, DecryptionError
from roupn.hookspecs import hookimpl
from roupn.interfaces import MessageContext, MessageHeader
from roupn.messages import CODE_ALPHABET
from roupn.plugins import Backend

__all__ = ["NaclIdentity", "NaclPeer", "NaclSuite"]

NONCE_SIZE = 24
KEY_SIZE = 32
DIRECT_EPOCH = 0xFFFFFFFF
MAX_CODE_LENGTH = 32
_HEADER = struct.Struct(">16sII")


@dataclass(slots=True)
class NaclIdentity:
    """This client's X25519 and Ed25519 key pairs."""

    exchange_key: Any = field(repr=False)
    signing_key: Any = field(repr=False)


@dataclass(frozen=True, slots=True)
class NaclPeer:
    """A peer's public X25519 exchange key and Ed25519 verify key."""

    exchange_key: bytes
    verify_key: Any


def _decode(value: Any, name: str, size: int) -> bytes:
    if not isinstance(value, str):
        raise CryptoError(f"handshake field {name!r} is missing or not a string")
    try:
        raw = b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CryptoError(f"handshake field {name!r} is not valid base64") from None
    if len(raw) != size:
        raise CryptoError(f"handshake field {name!r} has {len(raw)} bytes, not {size}")
    return raw


def _b64(data: bytes) -> str:
    return b64encode(data).decode("ascii")


@functools.lru_cache(maxsize=1024)
def _sender_id(sender: bytes) -> str:
    return str(uuid.UUID(bytes=sender))


@functools.lru_cache(maxsize=1024)
def _sender_bytes(sender_id: str) -> bytes:
    try:
        return uuid.UUID(sender_id).bytes
    except ValueError:
        raise CryptoError(f"sender id {sender_id!r} is not a UUID") from None


class NaclSuite:
    """X25519, Ed25519 and XChaCha20-Poly1305 from PyNaCl; needs ``roupn[nacl]``."""

    name: ClassVar[str] = "nacl"
    room_fields: ClassVar[tuple[str, ...]] = ("E",)
    direct_fields: ClassVar[tuple[str, ...]] = ("P",)
    commits_keys: ClassVar[bool] = True
    rekeys: ClassVar[bool] = True

    def __init__(self) -> None:
        import nacl.bindings
        import nacl.exceptions
        import nacl.public
        import nacl.signing
        import nacl.utils

        self._bindings = nacl.bindings
        self._public = nacl.public
        self._signing = nacl.signing
        self._random_bytes = nacl.utils.random
        self._crypto_errors = (nacl.exceptions.CryptoError, ValueError, TypeError)

    # Keys and the handshake.

    def generate_identity(self) -> NaclIdentity:
        return NaclIdentity(
            self._public.PrivateKey.generate(), self._signing.SigningKey.generate()
        )

    def _exchange_public(self, identity: NaclIdentity) -> bytes:
        return bytes(identity.exchange_key.public_key)

    def public_fields(self, identity: NaclIdentity) -> dict[str, str]:
        return {
            "publicExchangeKey": _b64(self._exchange_public(identity)),
            "publicSignKey": _b64(bytes(identity.signing_key.verify_key)),
        }

    def sign_exchange(self, identity: NaclIdentity) -> str:
        signed = identity.signing_key.sign(self._exchange_public(identity))
        return _b64(signed.signature)

    def load_peer(self, fields: Mapping[str, Any]) -> NaclPeer:
        exchange = _decode(fields.get("publicExchangeKey"), "publicExchangeKey", 32)
        verify = _decode(fields.get("publicSignKey"), "publicSignKey", 32)
        try:
            verify_key = self._signing.VerifyKey(verify)
        except self._crypto_errors:
            raise CryptoError(
                "handshake field 'publicSignKey' is not an Ed25519 key"
            ) from None
        return NaclPeer(exchange, verify_key)

    def verify_exchange(self, peer: NaclPeer, signature: Any) -> bool:
        try:
            raw = _decode(signature, "signature", 64)
            peer.verify_key.verify(peer.exchange_key, raw)
        except (CryptoError, *self._crypto_errors):
            return False
        return True

    @staticmethod
    def _hash(data: bytes, key: bytes = b"", size: int = 32) -> bytes:
        return hashlib.blake2b(data, key=key, digest_size=size).digest()

    def commitment(self, identity: NaclIdentity) -> str:
        fields = self.public_fields(identity)
        return _b64(self._commit(fields))

    def _commit(self, fields: Mapping[str, Any]) -> bytes:
        exchange = _decode(fields.get("publicExchangeKey"), "publicExchangeKey", 32)
        verify = _decode(fields.get("publicSignKey"), "publicSignKey", 32)
        return self._hash(b"roupn commitment\x00" + exchange + verify)

    def check_commitment(self, fields: Mapping[str, Any], commitment: Any) -> bool:
        try:
            expected = _decode(commitment, "commitment", 32)
            actual = self._commit(fields)
        except CryptoError:
            return False
        return hmac.compare_digest(expected, actual)

    def pairwise_key(
        self, identity: NaclIdentity, peer: NaclPeer, room_code: str = ""
    ) -> bytes:
        own = self._exchange_public(identity)
        try:
            shared = self._bindings.crypto_scalarmult(
                bytes(identity.exchange_key), peer.exchange_key
            )
        except self._crypto_errors:
            raise CryptoError(
                "the peer's exchange key gives no shared secret"
            ) from None
        first, second = sorted((own, peer.exchange_key))
        material = (
            b"roupn pairwise\x00" + room_code.encode("utf-8") + b"\x00" + first + second
        )
        return self._hash(material, key=shared)

    def verification_code(
        self, room_code: str, pairwise_key: bytes, length: int
    ) -> str:
        if not 1 <= length <= MAX_CODE_LENGTH:
            raise ValueError(
                f"verification code length {length} is invalid: "
                f"use 1 to {MAX_CODE_LENGTH}"
            )
        # Rejection sampling keeps every character equally likely: bytes of 240 and
        # over would favour the first 16 characters of the 30.
        stream = self._hash(
            b"roupn code\x00" + room_code.encode("utf-8"), key=pairwise_key, size=64
        )
        characters = [CODE_ALPHABET[b % 30] for b in stream if b < 240]
        while len(characters) < length:
            stream = self._hash(stream, key=pairwise_key, size=64)
            characters += [CODE_ALPHABET[b % 30] for b in stream if b < 240]
        return "".join(characters[:length])

    def new_room_key(self) -> bytes:
        key: bytes = self._random_bytes(KEY_SIZE)
        return key

    def export_room_key(self, room_key: bytes) -> str:
        return _b64(room_key)

    def import_room_key(self, value: Any) -> bytes:
        return _decode(value, "sharedKey", KEY_SIZE)

    # Messages.

    def _header(self, data: bytes | None, what: str) -> tuple[bytes, MessageHeader]:
        if not isinstance(data, bytes) or len(data) < NONCE_SIZE + 16:
            raise DecryptionError(f"{what} is too short to hold a header and a tag")
        sender, epoch, counter = _HEADER.unpack(data[:NONCE_SIZE])
        return data[:NONCE_SIZE], MessageHeader(_sender_id(sender), epoch, counter)

    def _seal(
        self, key: bytes, nonce: bytes, plaintext: bytes, associated: bytes
    ) -> bytes:
        if len(key) != KEY_SIZE:
            raise CryptoError(f"key has {len(key)} bytes, not {KEY_SIZE}")
        sealed: bytes = self._bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, associated, nonce, key
        )
        return nonce + sealed

    def _open(self, key: bytes, data: bytes, associated: bytes, what: str) -> bytes:
        try:
            plaintext: bytes = (
                self._bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                    data[NONCE_SIZE:], associated, data[:NONCE_SIZE], key
                )
            )
        except self._crypto_errors:
            raise DecryptionError(
                f"{what} failed authentication: it was changed, moved from another "
                "room or sender, or uses another key"
            ) from None
        return plaintext

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _associated_for(kind: bytes, room_code: str) -> bytes:
        return b"roupn " + kind + b"\x00" + room_code.encode("utf-8")

    def _associated(self, kind: bytes, context: MessageContext | None) -> bytes:
        return self._associated_for(kind, context.room_code if context else "")

    def seal_room(
        self, room_key: bytes, plaintext: bytes, context: MessageContext | None = None
    ) -> dict[str, bytes]:
        if context is None:
            raise CryptoError(
                "the nacl suite needs the room, sender and counter to seal"
            )
        nonce = _HEADER.pack(
            _sender_bytes(context.sender_id), context.epoch, context.counter
        )
        return {
            "E": self._seal(
                room_key, nonce, plaintext, self._associated(b"room", context)
            )
        }

    def room_header(self, fields: Mapping[str, bytes]) -> MessageHeader:
        return self._header(fields.get("E"), "room message")[1]

    def open_room(
        self,
        room_key: bytes,
        fields: Mapping[str, bytes],
        context: MessageContext | None = None,
    ) -> bytes:
        data = fields.get("E")
        self._header(data, "room message")
        assert data is not None
        return self._open(
            room_key, data, self._associated(b"room", context), "room message"
        )

    def seal_direct(
        self,
        identity: NaclIdentity,
        peer: NaclPeer,
        plaintext: bytes,
        context: MessageContext | None = None,
    ) -> dict[str, bytes]:
        if context is None or context.pairwise_key is None:
            raise CryptoError(
                "the nacl suite needs the pairwise key to seal a direct message"
            )
        nonce = _HEADER.pack(
            _sender_bytes(context.sender_id), DIRECT_EPOCH, context.counter
        )
        associated = self._associated(b"direct", context)
        return {"P": self._seal(context.pairwise_key, nonce, plaintext, associated)}

    def direct_header(self, fields: Mapping[str, bytes]) -> MessageHeader:
        header = self._header(fields.get("P"), "direct message")[1]
        if header.epoch != DIRECT_EPOCH:
            raise DecryptionError("direct message header is not marked as direct")
        return header

    def open_direct(
        self,
        identity: NaclIdentity,
        peer: NaclPeer | None,
        fields: Mapping[str, bytes],
        context: MessageContext | None = None,
    ) -> bytes:
        if context is None or context.pairwise_key is None:
            raise DecryptionError("direct message from a peer with no pairwise key")
        data = fields.get("P")
        self._header(data, "direct message")
        assert data is not None
        associated = self._associated(b"direct", context)
        return self._open(context.pairwise_key, data, associated, "direct message")

    def verify_direct(self, peer: NaclPeer, fields: Mapping[str, bytes]) -> bool:
        """Return True: the pairwise key's tag already proves the sender."""
        return True


@hookimpl
def roupn_cipher_suites() -> Iterable[Backend]:
    return [
        Backend(
            "nacl",
            "roupn_nacl:NaclSuite",
            summary="X25519, Ed25519, XChaCha20-Poly1305, replay-safe (native)",
            requires=("nacl",),
            extra="nacl",
        )
    ]
