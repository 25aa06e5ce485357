"""Connected pairs of in-process sockets over anyio memory object streams."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from roupn.errors import ConnectionClosedError
from roupn.interfaces import check_close

__all__ = ["MemoryConnection", "connection_pair"]


@dataclass(slots=True)
class _Link:
    """State shared by the two ends of one connection."""

    close_code: int | None = None
    close_reason: str = ""


class MemoryConnection:
    """One end of an in-process connection that behaves like a WebSocket.

    Each direction is a bounded memory object stream, so a sender waits while the
    receiver's buffer is full. Closing either end lets the other end receive the
    messages sent before the close, then raise
    :class:`~roupn.errors.ConnectionClosedError` with the close code and reason.
    Unlike a socket, a send raises as soon as the other end has closed.
    """

    def __init__(
        self,
        send_stream: MemoryObjectSendStream[str | bytes],
        receive_stream: MemoryObjectReceiveStream[str | bytes],
        link: _Link,
        remote_address: str,
        max_size: int | None,
    ) -> None:
        self._send_stream = send_stream
        self._receive_stream = receive_stream
        self._link = link
        self._remote_address = remote_address
        self._max_size = max_size
        # Scopes of the sends and receives now waiting, which a close cancels.
        # Closing a memory stream wakes its own waiting tasks only in recent anyio
        # releases (4.16 does, 4.4 does not), so this does not rely on it.
        self._waiting: set[anyio.CancelScope] = set()

    @property
    def remote_address(self) -> str:
        """The other end's name: the relay's address, or a client's name."""
        return self._remote_address

    @property
    def is_open(self) -> bool:
        """Whether neither end has closed the connection."""
        return self._link.close_code is None

    async def send(self, message: str | bytes) -> None:
        """Send one message, waiting while the other end's buffer is full.

        Raises:
            ConnectionClosedError: either end has closed the connection, or this
                end closed it while the send was waiting.
        """
        if not self.is_open:
            raise self._closed_error()
        if not isinstance(message, str):
            message = bytes(message)
        with anyio.CancelScope() as scope:
            self._waiting.add(scope)
            try:
                await self._send_stream.send(message)
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                raise self._closed_error() from None
            finally:
                self._waiting.discard(scope)
        # Only close_now() cancels the scope, so the connection is closed here.
        raise self._closed_error()

    async def receive(self) -> str | bytes:
        """Wait for the next message.

        Raises:
            ConnectionClosedError: the connection closed, or the message was longer
                than the size limit, which closes the connection with 1009.
        """
        message: str | bytes | None = None
        with anyio.CancelScope() as scope:
            self._waiting.add(scope)
            try:
                message = await self._receive_stream.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                # This end closes too, as a WebSocket replies to a close frame.
                self.close_now(1000)
                raise self._closed_error() from None
            finally:
                self._waiting.discard(scope)
        if message is None:
            # close_now() cancelled the wait.
            raise self._closed_error()

        size = oversize(message, self._max_size)
        if size is not None:
            reason = f"message of {size} bytes exceeds the limit of {self._max_size}"
            self.close_now(1009, reason)
            raise self._closed_error()
        return message

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close both directions, sending this code and reason to the other end.

        Raises:
            ValueError: the code or reason is not valid in a WebSocket close frame.
        """
        self.close_now(code, reason)
        await anyio.lowlevel.checkpoint()

    def close_now(self, code: int, reason: str = "") -> None:
        """Close without waiting. The first close of either end sets the code."""
        check_close(code, reason)
        if self._link.close_code is None:
            self._link.close_code = code
            self._link.close_reason = reason
        self._send_stream.close()
        self._receive_stream.close()
        for scope in self._waiting:
            scope.cancel()

    def _closed_error(self) -> ConnectionClosedError:
        if self._link.close_code is None:
            return ConnectionClosedError(1006, "connection lost without a close frame")
        return ConnectionClosedError(self._link.close_code, self._link.close_reason)


def oversize(message: str | bytes, max_size: int | None) -> int | None:
    """Return the message's size in bytes (UTF-8 for text) if above ``max_size``."""
    if max_size is None:
        return None
    if isinstance(message, str):
        # A character takes at most 4 bytes, so short text needs no encoding.
        if len(message) * 4 <= max_size:
            return None
        size = len(message.encode("utf-8"))
    else:
        size = len(message)
    return size if size > max_size else None


def connection_pair(
    client_name: str, server_name: str, *, buffer_size: int, max_size: int | None
) -> tuple[MemoryConnection, MemoryConnection]:
    """Return the client and server ends of a new connection.

    Each end buffers up to ``buffer_size`` messages that it has not received yet.
    """
    link = _Link()
    to_server_send, to_server_receive = anyio.create_memory_object_stream[str | bytes](
        buffer_size
    )
    to_client_send, to_client_receive = anyio.create_memory_object_stream[str | bytes](
        buffer_size
    )
    client = MemoryConnection(
        to_server_send, to_client_receive, link, server_name, max_size
    )
    server = MemoryConnection(
        to_client_send, to_server_receive, link, client_name, max_size
    )
    return client, server
