"""The interfaces that each kind of backend implements.

Backends are plain classes that match these protocols structurally; they need not
inherit from them. The kernel only ever calls the methods listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeAlias, runtime_checkable

import anyio.abc

__all__ = [
    "CipherSuite",
    "Connection",
    "DiffStrategy",
    "HttpRequest",
    "HttpResponse",
    "Identity",
    "PeerKeys",
    "RelayApplication",
    "Serializer",
    "Transport",
]

# Cipher suites define their own key containers; the kernel passes them back unopened.
Identity: TypeAlias = Any
PeerKeys: TypeAlias = Any


# Serializers.


@runtime_checkable
class Serializer(Protocol):
    """Turns messages (JSON-like values) into bytes and back."""

    name: ClassVar[str]
    content_type: ClassVar[str]
    binary: ClassVar[bool]

    def dumps(self, message: Any) -> bytes:
        """Encode a message.

        Raises:
            MessageError: the value cannot be encoded (an unsupported type).
        """
        ...

    def loads(self, data: bytes) -> Any:
        """Decode a message.

        Raises:
            MessageError: the bytes are not a valid encoding.
        """
        ...


# Cipher suites.


@runtime_checkable
class CipherSuite(Protocol):
    """Key exchange, verification codes, and room and direct message encryption.

    Binary frame fields are returned and taken as raw bytes, keyed by their frame key
    (for example ``{"E": ciphertext, "I": iv}``); the framing encodes them. Every
    method but :meth:`generate_identity` is quick enough to call on the event loop.
    """

    name: ClassVar[str]
    room_fields: ClassVar[tuple[str, ...]]
    direct_fields: ClassVar[tuple[str, ...]]

    def generate_identity(self) -> Identity:
        """Make this client's key pairs; slow, so callers run it in a worker thread."""
        ...

    def public_fields(self, identity: Identity) -> dict[str, str]:
        """Return the public keys to put in the first handshake message."""
        ...

    def sign_exchange(self, identity: Identity) -> str:
        """Return the ``signature`` field: a signature over the own exchange key."""
        ...

    def load_peer(self, fields: Mapping[str, Any]) -> PeerKeys:
        """Load a peer's public keys from its handshake message.

        Raises:
            CryptoError: a key is missing or malformed.
        """
        ...

    def verify_exchange(self, peer: PeerKeys, signature: Any) -> bool:
        """Check the peer's signature over its own exchange key."""
        ...

    def pairwise_key(self, identity: Identity, peer: PeerKeys) -> bytes:
        """Derive the key this client shares with one peer."""
        ...

    def verification_code(
        self, room_code: str, pairwise_key: bytes, length: int
    ) -> str:
        """Derive the code both sides of a pairwise key show to their users."""
        ...

    def new_room_key(self) -> bytes:
        """Make a fresh random room key."""
        ...

    def export_room_key(self, room_key: bytes) -> str:
        """Encode the room key for the ``sharedKey`` handshake field."""
        ...

    def import_room_key(self, value: Any) -> bytes:
        """Decode a ``sharedKey`` handshake field.

        Raises:
            CryptoError: the value is not a valid room key.
        """
        ...

    def seal_room(self, room_key: bytes, plaintext: bytes) -> dict[str, bytes]:
        """Encrypt a room message; return its binary frame fields."""
        ...

    def open_room(self, room_key: bytes, fields: Mapping[str, bytes]) -> bytes:
        """Decrypt a room message from its binary frame fields.

        Raises:
            DecryptionError: the ciphertext failed authentication.
        """
        ...

    def seal_direct(
        self, identity: Identity, peer: PeerKeys, plaintext: bytes
    ) -> dict[str, bytes]:
        """Encrypt and sign a direct message to one peer; return its frame fields."""
        ...

    def open_direct(
        self, identity: Identity, peer: PeerKeys | None, fields: Mapping[str, bytes]
    ) -> bytes:
        """Decrypt a direct message; check the sender's signature unless peer is None.

        Raises:
            DecryptionError: the signature or the ciphertext failed to verify.
        """
        ...

    def verify_direct(self, peer: PeerKeys, fields: Mapping[str, bytes]) -> bool:
        """Check the sender's signature on a direct message's frame fields."""
        ...


# Transports.


@dataclass(slots=True)
class HttpRequest:
    """An HTTP request as the relay sees it, upgrades included."""

    method: str
    path: str
    query: dict[str, str]
    headers: list[tuple[str, str]] = field(default_factory=list)
    remote_address: str = ""

    def header(self, name: str) -> str | None:
        """Return the first value of a header, matched case-insensitively."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


@dataclass(slots=True)
class HttpResponse:
    """An HTTP response."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


class Connection(Protocol):
    """One open WebSocket-like connection carrying text and binary messages."""

    @property
    def remote_address(self) -> str:
        """The peer's address as ``host:port``, or a name for in-process peers."""
        ...

    async def send(self, message: str | bytes) -> None:
        """Send one message.

        Raises:
            ConnectionClosedError: the connection is closed.
        """
        ...

    async def receive(self) -> str | bytes:
        """Wait for the next message.

        Raises:
            ConnectionClosedError: the connection closed; the error has the close code.
        """
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with a close code and reason, if still open."""
        ...


class RelayApplication(Protocol):
    """What a server transport serves: plain HTTP requests and upgraded sockets."""

    async def handle_http(self, request: HttpRequest) -> HttpResponse:
        """Answer a request that is not a WebSocket upgrade."""
        ...

    def check_upgrade(self, request: HttpRequest) -> HttpResponse | None:
        """Return None to accept a WebSocket upgrade, or the rejecting response."""
        ...

    async def handle_socket(self, request: HttpRequest, connection: Connection) -> None:
        """Serve an accepted socket; the transport closes it when this returns."""
        ...


class Transport(Protocol):
    """Carries frames between clients and a relay."""

    name: ClassVar[str]

    async def serve(
        self,
        application: RelayApplication,
        host: str,
        port: int,
        *,
        task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve ``application`` until cancelled.

        Once listening, calls ``task_status.started`` with the base URL clients use
        (for example ``http://127.0.0.1:3000``; port 0 picks a free port).
        """
        ...

    async def http_get(self, url: str) -> HttpResponse:
        """Make a GET request to the relay.

        Raises:
            ConnectionClosedError: the relay could not be reached.
        """
        ...

    def connect(self, url: str) -> AbstractAsyncContextManager[Connection]:
        """Open a socket to ``url`` (an ``http`` or ``https`` URL is upgraded).

        Raises:
            ConnectionClosedError: the relay could not be reached or refused the
                upgrade.
        """
        ...


# Diff strategies.


class DiffStrategy(Protocol):
    """Finds the changes made to a shared document, and applies or reverts changes.

    A change is ``{"type": "set", "path": [...], "new": value, "old": value}`` or
    ``{"type": "delete", "path": [...], "old": value}``, with path items as strings;
    ``old`` is absent when the key did not exist.
    """

    name: ClassVar[str]

    def track(self, document: Any) -> Any:
        """Start tracking ``document``; return the object the user edits."""
        ...

    def take_changes(self, tracked: Any) -> list[dict[str, Any]]:
        """Return the changes since the last call and start a new change set."""
        ...

    def apply(self, tracked: Any, changes: list[dict[str, Any]]) -> None:
        """Apply changes from any sender to the tracked document."""
        ...

    def revert(self, tracked: Any, changes: list[dict[str, Any]]) -> None:
        """Undo changes previously applied, restoring their ``old`` values."""
        ...
