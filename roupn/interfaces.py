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
    "MAX_CLOSE_REASON_BYTES",
    "Change",
    "CipherSuite",
    "Connection",
    "DiffStrategy",
    "DocumentTracker",
    "EncodingConnection",
    "HttpRequest",
    "HttpResponse",
    "Identity",
    "KeepaliveConnection",
    "MessageContext",
    "MessageHeader",
    "PeerKeys",
    "RelayApplication",
    "Serializer",
    "Transport",
    "check_close",
]


@dataclass(frozen=True, slots=True)
class MessageContext:
    """The room, sender, key epoch and counter a cipher suite may bind into a message.

    Suites that protect against replay and misrouting put these in the nonce or the
    associated data; the roupn 0.1 suite ignores them.
    """

    room_code: str
    sender_id: str
    epoch: int = 0
    counter: int = 0
    pairwise_key: bytes | None = None


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """The sender, key epoch and counter a frame names, read before decryption.

    A suite that carries none of them returns ``MessageHeader(None, 0, None)``.
    Nothing here is trusted until the message opens with the key it names.
    """

    sender_id: str | None
    epoch: int
    counter: int | None


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
    # The joiner commits to its keys before the creator reveals its own, and the
    # creator replies in clear; see roupn.session for the two handshakes.
    commits_keys: ClassVar[bool]
    # The creator makes a new room key whenever a member leaves.
    rekeys: ClassVar[bool]

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

    def pairwise_key(
        self, identity: Identity, peer: PeerKeys, room_code: str = ""
    ) -> bytes:
        """Derive the key this client shares with one peer in one room."""
        ...

    def commitment(self, identity: Identity) -> str:
        """Return a hash of the own public keys, sent before they are revealed."""
        ...

    def check_commitment(self, fields: Mapping[str, Any], commitment: Any) -> bool:
        """Check that revealed public key fields match an earlier commitment."""
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

    def seal_room(
        self, room_key: bytes, plaintext: bytes, context: MessageContext | None = None
    ) -> dict[str, bytes]:
        """Encrypt a room message; return its binary frame fields."""
        ...

    def room_header(self, fields: Mapping[str, bytes]) -> MessageHeader:
        """Read the sender, key epoch and counter a room message names.

        Raises:
            DecryptionError: the fields are too short to hold a header.
        """
        ...

    def open_room(
        self,
        room_key: bytes,
        fields: Mapping[str, bytes],
        context: MessageContext | None = None,
    ) -> bytes:
        """Decrypt a room message from its binary frame fields.

        Raises:
            DecryptionError: the ciphertext failed authentication.
        """
        ...

    def seal_direct(
        self,
        identity: Identity,
        peer: PeerKeys,
        plaintext: bytes,
        context: MessageContext | None = None,
    ) -> dict[str, bytes]:
        """Encrypt and authenticate a direct message to one peer; return its fields."""
        ...

    def direct_header(self, fields: Mapping[str, bytes]) -> MessageHeader:
        """Read the sender and counter a direct message names, where it carries them."""
        ...

    def open_direct(
        self,
        identity: Identity,
        peer: PeerKeys | None,
        fields: Mapping[str, bytes],
        context: MessageContext | None = None,
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
    """An HTTP request as the relay receives it, upgrades included."""

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


# A close frame carries at most 125 bytes: a 2-byte code and the reason.
MAX_CLOSE_REASON_BYTES = 123


def check_close(code: int, reason: str) -> None:
    """Check that a close code and reason may be sent in a WebSocket close frame.

    Raises:
        ValueError: the code is reserved or out of range, or the reason is too long.
    """
    if not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
        raise ValueError(
            f"invalid close code {code}: use 1000-1003, 1007-1014 or 3000-4999"
        )
    size = len(reason.encode("utf-8"))
    if size > MAX_CLOSE_REASON_BYTES:
        raise ValueError(
            f"close reason is {size} bytes long in UTF-8; the maximum is "
            f"{MAX_CLOSE_REASON_BYTES} bytes"
        )


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


@runtime_checkable
class EncodingConnection(Connection, Protocol):
    """A connection that writes messages encoded once for many connections.

    The relay encodes a frame that it sends to many members once per
    ``wire_format`` and hands the same bytes to each of their connections, which
    write several queued messages at once.
    """

    @property
    def wire_format(self) -> str | None:
        """A name equal for connections whose :meth:`encode` returns equal bytes.

        None means this connection cannot share encoded messages, for example a
        client, which masks each frame, or one with a compression extension. The
        relay then uses :meth:`Connection.send`.
        """
        ...

    def encode(self, message: str | bytes) -> bytes:
        """Return the bytes that carry ``message`` on this connection."""
        ...

    async def send_encoded(self, messages: list[bytes]) -> None:
        """Write messages that :meth:`encode` returned, in order.

        Raises:
            ConnectionClosedError: the connection is closed.
        """
        ...


@runtime_checkable
class KeepaliveConnection(Connection, Protocol):
    """A connection that can ping its peer and records when the peer last sent a frame.

    The relay pings a quiet member over such a connection and counts every frame
    from it, pongs and other control frames included, as activity for its idle
    timeout. Over a plain :class:`Connection`, only messages count.
    """

    @property
    def last_activity(self) -> float:
        """The ``time.monotonic()`` value when the last frame of any kind arrived."""
        ...

    async def ping(self) -> None:
        """Send a ping frame; the peer's pong updates :attr:`last_activity`.

        Raises:
            ConnectionClosedError: the connection is closed or closing.
        """
        ...


class RelayApplication(Protocol):
    """The application a server transport serves: HTTP requests and upgraded sockets."""

    async def handle_http(self, request: HttpRequest) -> HttpResponse:
        """Return the response to a request that is not a WebSocket upgrade."""
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

        A transport that listens on TCP may also accept ``reuse_port: bool``, a
        keyword that sets ``SO_REUSEPORT``. The relay passes it only when several
        processes share one port (``roupn serve --workers``).
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

# A change to a shared document: ``{"type": "set", "path": [...], "new": value,
# "old": value}`` or ``{"type": "delete", "path": [...], "old": value}``. Path items
# are strings, array indices too; ``old`` is absent when the key did not exist.
# roupn.changes defines how changes apply.
Change: TypeAlias = dict[str, Any]


class DocumentTracker(Protocol):
    """The live document of one member and the changes its user made to it."""

    @property
    def document(self) -> dict[str, Any]:
        """The live document that the user edits, one object for the tracker's life."""
        ...

    def take_changes(self) -> list[Change]:
        """Return the user's changes since the last call and start a new change set.

        The first call returns the changes since tracking began or since the last
        :meth:`replace`. The changes apply cleanly in order, first to last, to the
        document as it was at the start of the change set.
        """
        ...

    def apply(self, changes: list[Change]) -> list[Change]:
        """Apply changes from any sender without recording them as the user's.

        Returns the changes that undo exactly what this call did, to be applied in
        the returned order. They are computed from the local values that were
        replaced, not from the sender's ``old`` values.

        Raises:
            MessageError: a change is invalid (a malformed change, a path through a
                missing key or a scalar, an array index out of range). The message
                names the change and why; the changes before it are undone, so
                the document is as it was.
        """
        ...

    def revert(self, changes: list[Change]) -> None:
        """Undo changes applied to the document, from their ``old`` values, unrecorded.

        Used for the user's own changes, whose ``old`` values are this document's.

        Raises:
            MessageError: a change does not fit the document; nothing changed.
        """
        ...

    def replace(self, document: dict[str, Any]) -> None:
        """Make the live document equal to ``document`` in place (a full sync).

        The replacement is not recorded as the user's change, and the user's
        changes not yet taken are discarded.
        """
        ...


class DiffStrategy(Protocol):
    """A way of finding the changes a user makes to a shared document."""

    name: ClassVar[str]

    def track(self, document: dict[str, Any]) -> DocumentTracker:
        """Start tracking the user's changes to a document.

        The user edits the tracker's :attr:`~DocumentTracker.document`, which may
        be a different object from ``document``.
        """
        ...

    def diff(self, old: Any, new: Any) -> list[Change]:
        """Return the changes that turn ``old`` into ``new``; mutate neither."""
        ...
