"""An open WebSocket over an anyio byte stream, driven by the websockets protocol."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State

from roupn.errors import ConnectionClosedError
from roupn.interfaces import check_close

__all__ = [
    "WebsocketConnection",
    "format_address",
    "format_host",
]

logger = logging.getLogger(__name__)

# Maximum bytes taken from the stream per read. The protocol buffers partial frames.
READ_SIZE = 65536

# The wire format of server connections without extensions: unmasked frames, the
# same bytes on every such connection.
PLAIN_SERVER_FRAMES = "websocket-server"

# Errors that mean the peer or the network dropped the byte stream.
STREAM_ERRORS = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)


class WebsocketConnection:
    """One open WebSocket, client or server side, carrying text and binary messages.

    Only :meth:`receive` and :meth:`close` read from the stream, so the protocol
    replies to pings, records pongs and reads a peer's close frame only while a task
    waits in one of them. Both sides of the protocol use this class.

    A server connection without extensions is an
    :class:`~roupn.interfaces.EncodingConnection`: a relay encodes a frame for
    many members once, and writes each member's queued frames in one call.
    """

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        protocol: Protocol,
        remote_address: str,
        *,
        close_timeout: float,
    ) -> None:
        self._stream = stream
        self._protocol = protocol
        self._remote_address = remote_address
        self._close_timeout = close_timeout
        self._messages: deque[str | bytes] = deque()
        self._fragments: list[bytes] = []
        self._fragment_opcode: Opcode | None = None
        # Uncontended locks are taken without yielding to other tasks, so that
        # queued messages are handed out and written without a task switch each.
        self._receive_lock = anyio.Lock(fast_acquire=True)
        self._send_lock = anyio.Lock(fast_acquire=True)
        self._eof_received = False
        self._stream_closed = False
        self._closed_locally = False
        self._last_activity = time.monotonic()
        # Scopes of the stream reads and writes in progress, which closing the
        # stream cancels. Some anyio releases (4.4 on asyncio) leave a write to a
        # closed socket waiting for buffer space.
        self._stream_waits: set[anyio.CancelScope] = set()

    @property
    def remote_address(self) -> str:
        """The peer's address as ``host:port``."""
        return self._remote_address

    @property
    def last_activity(self) -> float:
        """The ``time.monotonic()`` value when the last frame of any kind arrived.

        Pings, pongs and close frames count, as do messages. Until the first
        frame arrives, it is the time of the opening handshake.
        """
        return self._last_activity

    @property
    def is_open(self) -> bool:
        """Whether messages may still be sent."""
        return self._protocol.state is State.OPEN and not self._closed_locally

    # Public methods for messages.

    async def send(self, message: str | bytes) -> None:
        """Send a text frame for ``str``, a binary frame for ``bytes``.

        Raises:
            ConnectionClosedError: the connection is closed or closing.
        """
        async with self._send_lock:
            if not self.is_open:
                raise self._closed_error()
            if isinstance(message, str):
                self._protocol.send_text(message.encode("utf-8"))
            else:
                self._protocol.send_binary(bytes(message))
            await self._flush_locked()
        if self._stream_closed:
            raise self._closed_error()

    @property
    def wire_format(self) -> str | None:
        """``websocket-server`` for a server connection without extensions, or None.

        Clients mask each frame with a fresh key, and extensions such as
        compression change the bytes, so those connections share no encodings.
        """
        if self._protocol.side is Side.SERVER and not self._protocol.extensions:
            return PLAIN_SERVER_FRAMES
        return None

    def encode(self, message: str | bytes) -> bytes:
        """Return the unmasked frame for ``message``: text for ``str``, else binary.

        The bytes are valid on every connection with the same :attr:`wire_format`.
        """
        if isinstance(message, str):
            frame = Frame(Opcode.TEXT, message.encode("utf-8"))
        else:
            frame = Frame(Opcode.BINARY, bytes(message))
        return frame.serialize(mask=False)

    async def send_encoded(self, messages: list[bytes]) -> None:
        """Write frames from :meth:`encode` in one write, after pending replies.

        Only connections whose :attr:`wire_format` is not None may take them.

        Raises:
            ConnectionClosedError: the connection is closed or closing.
        """
        async with self._send_lock:
            if not self.is_open:
                raise self._closed_error()
            # Replies the protocol queued (pongs) go first, as they came first.
            await self._flush_locked()
            data = messages[0] if len(messages) == 1 else b"".join(messages)
            await self._write_locked(data)
        if self._stream_closed:
            raise self._closed_error()

    async def receive(self) -> str | bytes:
        """Wait for the next text or binary message.

        Messages that arrived before the peer's close frame are returned first.
        A message that is already queued is returned without yielding to other
        tasks, so a reader handles all messages of one chunk in a row.

        Raises:
            ConnectionClosedError: the connection closed. The error has the close
                code and reason from the close frame, or 1006 if the stream
                dropped without one.
        """
        if self._messages and not self._closed_locally:
            return self._messages.popleft()
        async with self._receive_lock:
            while True:
                if self._closed_locally:
                    raise self._closed_error()
                if self._messages:
                    return self._messages.popleft()
                if self._protocol.state is State.CLOSED:
                    raise self._closed_error()
                await self._read_once()

    async def ping(self) -> None:
        """Send a ping frame; the peer's pong updates :attr:`last_activity`.

        Raises:
            ConnectionClosedError: the connection is closed or closing.
        """
        async with self._send_lock:
            if not self.is_open:
                raise self._closed_error()
            self._protocol.send_ping(b"")
            await self._flush_locked()
        if self._stream_closed:
            raise self._closed_error()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame, wait for the peer's reply, then close the stream.

        The close timeout bounds the whole handshake. Closing the stream also ends
        a send that is waiting in another task. Calling this on a closed connection
        does nothing.

        Raises:
            ValueError: the code or reason cannot be sent in a close frame.
        """
        check_close(code, reason)
        if self._closed_locally:
            return
        self._closed_locally = True
        # A send stuck on a peer that stops reading holds the send lock, so the
        # timeout covers sending the close frame too.
        with anyio.move_on_after(self._close_timeout):
            async with self._send_lock:
                if self._protocol.state is State.OPEN:
                    self._protocol.send_close(code, reason)
                await self._flush_locked()
            async with self._receive_lock:
                while self._protocol.state is not State.CLOSED:
                    await self._read_once()
        await self._close_stream()
        self._feed_eof()

    async def abort(self) -> None:
        """Close the stream at once, without a closing handshake."""
        self._closed_locally = True
        await self._close_stream()
        self._feed_eof()

    # Methods for the server and client handshakes.

    def handle_events(self, events: Iterable[object]) -> None:
        """Queue the messages among protocol events and drop the other events.

        Messages parsed before a close frame or a protocol error are kept, because
        the peer sent them while the connection was open.
        """
        for event in events:
            if isinstance(event, Frame) and not self._handle_frame(event):
                break

    async def flush(self) -> None:
        """Write the bytes the protocol has produced."""
        async with self._send_lock:
            await self._flush_locked()

    # Private methods.

    def _handle_frame(self, frame: Frame) -> bool:
        """Add a data frame to the current message.

        Returns False if a text message was invalid UTF-8, which fails the
        connection with 1007.
        """
        if frame.opcode is Opcode.TEXT or frame.opcode is Opcode.BINARY:
            self._fragment_opcode = frame.opcode
            self._fragments = [bytes(frame.data)]
        elif frame.opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
        else:
            # The protocol itself queues the replies to pings and close frames.
            return True
        if not frame.fin:
            return True

        data = b"".join(self._fragments)
        self._fragments = []
        if self._fragment_opcode is Opcode.BINARY:
            self._messages.append(data)
            return True
        try:
            self._messages.append(data.decode("utf-8"))
        except UnicodeDecodeError:
            logger.info(
                "closing %s: invalid UTF-8 in text message", self._remote_address
            )
            self._protocol.fail(1007, "invalid UTF-8 in text message")
            return False
        return True

    async def _read_once(self) -> None:
        """Read one chunk from the stream, queue its messages and send replies."""
        data = b""
        # Once a close frame went either way, the peer must end the stream soon.
        timeout = self._close_timeout if self._protocol.close_expected() else math.inf
        with anyio.move_on_after(timeout) as scope:
            self._stream_waits.add(scope)
            try:
                with contextlib.suppress(*STREAM_ERRORS):
                    data = await self._stream.receive(READ_SIZE)
            finally:
                self._stream_waits.discard(scope)
        if self._eof_received:
            return

        if data:
            self._protocol.receive_data(data)
            events = self._protocol.events_received()
            if events:
                self._last_activity = time.monotonic()
            self.handle_events(events)
        else:
            # End of stream, a dropped stream and a timeout all end the protocol.
            self._feed_eof()
        await self.flush()
        if self._protocol.state is State.CLOSED:
            await self._close_stream()

    async def _flush_locked(self) -> None:
        for chunk in self._protocol.data_to_send():
            if self._stream_closed:
                return
            await self._write_locked(chunk)

    async def _write_locked(self, chunk: bytes) -> None:
        """Write bytes to the stream, or half-close it for an empty chunk."""
        if self._stream_closed:
            return
        with anyio.CancelScope() as scope:
            self._stream_waits.add(scope)
            try:
                if chunk:
                    await self._stream.send(chunk)
                else:
                    await self._send_eof()
            except STREAM_ERRORS as exc:
                logger.info("lost %s while writing: %r", self._remote_address, exc)
                await self._close_stream()
            finally:
                self._stream_waits.discard(scope)
        if self._stream_closed:
            self._feed_eof()

    async def _send_eof(self) -> None:
        if isinstance(self._stream, TLSStream):
            # TLS streams cannot half-close, so the whole stream closes here.
            await self._close_stream()
            self._feed_eof()
        else:
            await self._stream.send_eof()

    def _feed_eof(self) -> None:
        if self._eof_received:
            return
        self._eof_received = True
        self._protocol.receive_eof()
        # The protocol may still queue an EOF to send, which is moot now.
        if self._stream_closed:
            self._protocol.data_to_send()

    async def _close_stream(self) -> None:
        if self._stream_closed:
            return
        self._stream_closed = True
        for scope in self._stream_waits:
            scope.cancel()
        await anyio.aclose_forcefully(self._stream)

    def _closed_error(self) -> ConnectionClosedError:
        protocol = self._protocol
        if protocol.close_rcvd is not None:
            return ConnectionClosedError(
                protocol.close_rcvd.code, protocol.close_rcvd.reason
            )
        if protocol.close_sent is not None:
            return ConnectionClosedError(
                protocol.close_sent.code, protocol.close_sent.reason
            )
        return ConnectionClosedError(1006, "connection lost without a close frame")


def format_host(host: str) -> str:
    """Return ``host`` as it appears in a URL, with IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host else host


def format_address(address: Any) -> str:
    """Format a socket address as ``host:port``, or as text for other families."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{format_host(str(address[0]))}:{address[1]}"
    return str(address)
