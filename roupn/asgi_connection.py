"""The ASGI side of a relay socket: the Connection adapter and scope conversions.

:mod:`roupn.asgi` serves the relay with these; they hold no relay logic.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

from .errors import ConnectionClosedError
from .interfaces import HttpRequest, HttpResponse, check_close

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "AsgiConnection",
    "AsgiMessage",
    "Receive",
    "Scope",
    "Send",
    "make_request",
    "reject_websocket",
    "remote_address",
    "response_headers",
    "route_path",
]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
AsgiMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[AsgiMessage]]
Send = Callable[[AsgiMessage], Awaitable[None]]

# The same default as the websockets transport of ``roupn serve``: 1 MiB.
DEFAULT_MAX_MESSAGE_SIZE = 2**20

GOING_AWAY = 1001
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
CONNECTION_LOST = 1006

# Headers that the ASGI server sets itself from the body it is given.
FRAMING_HEADERS = frozenset({"content-length", "connection", "transfer-encoding"})

# The ASGI extension that lets an application reject a WebSocket with any response.
HTTP_RESPONSE_EXTENSION = "websocket.http.response"


class AsgiConnection:
    """One accepted ASGI WebSocket, seen through the relay's Connection interface.

    Messages larger than ``max_message_size`` bytes (text counted in UTF-8) close
    the socket with 1009, like the websockets transport does.
    """

    def __init__(
        self,
        receive: Receive,
        send: Send,
        remote_address: str,
        *,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        close_timeout: float = 5.0,
    ) -> None:
        self._receive = receive
        self._send = send
        self._remote_address = remote_address
        self._max_message_size = max_message_size
        self._close_timeout = close_timeout
        self._send_lock = anyio.Lock()
        # The error that receive and send raise once either side closed the socket.
        self._closed: ConnectionClosedError | None = None
        # Scopes of the receives in progress, which a local close cancels.
        self._receive_scopes: set[anyio.CancelScope] = set()
        # Set once the close message went to the server, or the client left.
        self._close_done = anyio.Event()

    @property
    def remote_address(self) -> str:
        """The client's address as ``host:port``, from the ASGI scope."""
        return self._remote_address

    @property
    def is_open(self) -> bool:
        """Whether messages may still be sent."""
        return self._closed is None

    async def send(self, message: str | bytes) -> None:
        """Send a text message for ``str``, a binary message for ``bytes``.

        Raises:
            ConnectionClosedError: the connection is closed.
        """
        if isinstance(message, str):
            event: AsgiMessage = {"type": "websocket.send", "text": message}
        else:
            event = {"type": "websocket.send", "bytes": bytes(message)}
        async with self._send_lock:
            if self._closed is not None:
                raise self._closed
            try:
                await self._send(event)
            except OSError as exc:
                # uvicorn raises ClientDisconnected, an OSError, once the client left.
                logger.info("lost %s while writing: %r", self._remote_address, exc)
                self._closed = ConnectionClosedError(CONNECTION_LOST, "client left")
                self._close_done.set()
                raise self._closed from exc

    async def receive(self) -> str | bytes:
        """Wait for the next text or binary message.

        Raises:
            ConnectionClosedError: the connection closed. The error has the code
                and reason that the ASGI server reported, or those of the local
                close.
        """
        while True:
            if self._closed is not None:
                raise self._closed
            event: AsgiMessage | None = None
            with anyio.CancelScope() as scope:
                self._receive_scopes.add(scope)
                try:
                    event = await self._receive()
                finally:
                    self._receive_scopes.discard(scope)
            if event is None:
                continue

            kind = event.get("type")
            if kind == "websocket.receive":
                message = self._message_of(event)
                if message is not None:
                    await self._check_size(message)
                    return message
            elif kind == "websocket.disconnect":
                code = int(event.get("code", 1005))
                reason = event.get("reason") or ""
                if self._closed is None:
                    self._closed = ConnectionClosedError(code, reason)
                    self._close_done.set()
            else:
                logger.debug(
                    "ignored ASGI event %r from %s", kind, self._remote_address
                )

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Ask the ASGI server to close the socket with a code and reason.

        The server runs the closing handshake. On a connection that is already
        closing, this waits, up to the close timeout, until the first close
        reached the server, and sends nothing.

        Raises:
            ValueError: the code or reason cannot be sent in a close frame.
        """
        check_close(code, reason)
        if self._closed is not None:
            # An application that returns before its close reached the server
            # makes servers such as uvicorn drop the socket without a close frame.
            with anyio.move_on_after(self._close_timeout):
                await self._close_done.wait()
            return
        self._closed = ConnectionClosedError(code, reason)
        for scope in self._receive_scopes:
            scope.cancel()
        # A send stuck on a client that stops reading holds the lock, and the
        # server may wait for the client to read before it takes the close, so
        # the timeout covers both.
        try:
            with anyio.move_on_after(self._close_timeout) as timeout:
                async with self._send_lock:
                    await self._send(
                        {"type": "websocket.close", "code": code, "reason": reason}
                    )
            if timeout.cancelled_caught:
                logger.info(
                    "closing %s timed out after %s s: the client reads too slowly",
                    self._remote_address,
                    self._close_timeout,
                )
        except OSError as exc:
            logger.debug("%s left before the close: %r", self._remote_address, exc)
        finally:
            self._close_done.set()

    def _message_of(self, event: AsgiMessage) -> str | bytes | None:
        data = event.get("bytes")
        if data is not None:
            return bytes(data)
        text = event.get("text")
        if isinstance(text, str):
            return text
        logger.debug("ignored a message without data from %s", self._remote_address)
        return None

    async def _check_size(self, message: str | bytes) -> None:
        limit = self._max_message_size
        if limit is None or not _is_over(message, limit):
            return
        size = len(message.encode("utf-8") if isinstance(message, str) else message)
        logger.info(
            "closing %s: message of %d bytes is over the limit of %d bytes",
            self._remote_address,
            size,
            limit,
        )
        reason = f"message of {size} bytes is over the limit of {limit} bytes"
        await self.close(MESSAGE_TOO_BIG, reason)
        raise ConnectionClosedError(MESSAGE_TOO_BIG, reason)


def _is_over(message: str | bytes, limit: int) -> bool:
    """Return whether a message is over ``limit`` bytes, text counted in UTF-8."""
    if isinstance(message, bytes) or len(message) > limit:
        return len(message) > limit
    # A character takes at most 4 bytes in UTF-8, so short texts need no encoding.
    if len(message) * 4 <= limit:
        return False
    return len(message.encode("utf-8")) > limit


# Conversions between ASGI and the relay's HTTP records.


def route_path(scope: Scope) -> str:
    """Return the request path below the mount point that ``root_path`` names.

    Servers and frameworks differ on whether ``path`` includes ``root_path``: it
    is removed when it is there, and the path is used as it is otherwise.
    """
    path: str = scope.get("path") or "/"
    root_path: str = scope.get("root_path") or ""
    if root_path and (path == root_path or path.startswith(root_path + "/")):
        return path[len(root_path) :] or "/"
    return path


def remote_address(scope: Scope) -> str:
    """Return the client's ``host:port`` from the ASGI scope, or ``unknown``."""
    client = scope.get("client")
    if not client:
        return "unknown"
    host, port = str(client[0]), client[1]
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def make_request(scope: Scope) -> HttpRequest:
    """Convert an HTTP or WebSocket scope. The last value of a repeated key wins."""
    query_string: bytes = scope.get("query_string") or b""
    query = dict(
        urllib.parse.parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    )
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope.get("headers") or ()
    ]
    return HttpRequest(
        method=scope.get("method", "GET"),
        path=route_path(scope),
        query=query,
        headers=headers,
        remote_address=remote_address(scope),
    )


def response_headers(response: HttpResponse) -> list[tuple[bytes, bytes]]:
    """Return a response's headers for ASGI, with the body's ``content-length``."""
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers
        if name.lower() not in FRAMING_HEADERS
    ]
    headers.append((b"content-length", str(len(response.body)).encode("ascii")))
    return headers


async def reject_websocket(scope: Scope, send: Send, response: HttpResponse) -> None:
    """Reject a WebSocket handshake with ``response``.

    Without the ASGI server's support for HTTP responses to WebSocket requests,
    the server sends HTTP 403 instead, with no body.
    """
    extensions = scope.get("extensions") or {}
    if HTTP_RESPONSE_EXTENSION not in extensions:
        await send({"type": "websocket.close", "code": 1008})
        return
    await send(
        {
            "type": "websocket.http.response.start",
            "status": response.status,
            "headers": response_headers(response),
        }
    )
    await send({"type": "websocket.http.response.body", "body": response.body})
