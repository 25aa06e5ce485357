"""The relay side: plain HTTP requests and WebSocket upgrades on an anyio listener."""

from __future__ import annotations

import contextlib
import email.utils
import http
import logging
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import cast

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSStream
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.protocol import Event
from websockets.server import ServerProtocol

from roupn.interfaces import HttpRequest, HttpResponse, RelayApplication

from .connection import (
    READ_SIZE,
    STREAM_ERRORS,
    WebsocketConnection,
    format_address,
    format_host,
)

__all__ = ["RelayServer", "ServerOptions"]

logger = logging.getLogger(__name__)

# Seconds to wait after accept() fails before trying again.
ACCEPT_RETRY_DELAY = 0.5

# Headers the server sets itself on every plain HTTP response.
FRAMING_HEADERS = frozenset({"content-length", "connection", "transfer-encoding"})


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """Limits and timeouts of a relay server, with times in seconds."""

    max_size: int | None
    request_timeout: float
    close_timeout: float
    ssl_context: ssl.SSLContext | None = None


class RelayServer:
    """Serves one relay application on a TCP listener until cancelled.

    Each accepted stream is handled in its own task, and every error in it is
    logged there, so one bad client never stops the listener.
    """

    def __init__(self, application: RelayApplication, options: ServerOptions) -> None:
        self._application = application
        self._options = options

    async def serve(
        self,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host`` and ``port``, then report the base URL and serve."""
        listener = await anyio.create_tcp_listener(
            local_host=host or None, local_port=port, reuse_port=reuse_port
        )
        async with listener, anyio.create_task_group() as task_group:
            bound_port = listener.extra(SocketAttribute.local_port)
            scheme = "https" if self._options.ssl_context is not None else "http"
            url = f"{scheme}://{format_host(host)}:{bound_port}"
            logger.debug("relay listening on %s", url)
            try:
                # A host name may resolve to several addresses, each with a socket.
                # create_tcp_listener() combines only socket listeners.
                for child in listener.listeners:
                    socket_listener = cast(anyio.abc.SocketListener, child)
                    task_group.start_soon(self._accept, socket_listener, task_group)
                task_status.started(url)
                await anyio.sleep_forever()
            finally:
                logger.info("relay on %s stopped", url)

    async def _accept(
        self,
        listener: anyio.abc.SocketListener,
        task_group: anyio.abc.TaskGroup,
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                # Too many open files, for example, so wait for some to close.
                logger.warning(
                    "accepting a connection failed: %r; retrying in %s s",
                    exc,
                    ACCEPT_RETRY_DELAY,
                )
                await anyio.sleep(ACCEPT_RETRY_DELAY)
                continue
            task_group.start_soon(self._handle_stream, stream)

    # Handling of one accepted stream.

    async def _handle_stream(self, stream: anyio.abc.SocketStream) -> None:
        remote = format_address(stream.extra(SocketAttribute.remote_address))
        try:
            await self._serve_stream(stream, remote)
        except STREAM_ERRORS as exc:
            # Errors of the application are caught where it is called, so these
            # come from I/O.
            logger.info("lost %s: %r", remote, exc)
        except Exception:
            logger.exception("connection from %s failed", remote)
        finally:
            await anyio.aclose_forcefully(stream)

    async def _serve_stream(self, stream: anyio.abc.SocketStream, remote: str) -> None:
        protocol = ServerProtocol(max_size=self._options.max_size)
        # The protocol's debug lines would show message payloads.
        protocol.debug = False
        timeout = self._options.request_timeout

        byte_stream: anyio.abc.ByteStream = stream
        events: list[Event] | None = None
        with anyio.move_on_after(timeout) as scope:
            if self._options.ssl_context is not None:
                tls_stream = await self._wrap_tls(stream, remote)
                if tls_stream is None:
                    return
                byte_stream = tls_stream
            events = await self._read_request(byte_stream, protocol, remote)
        if scope.cancelled_caught:
            logger.info(
                "dropped %s: no complete HTTP request within %s s", remote, timeout
            )
            return
        if not events or not isinstance(events[0], Request):
            return

        request = events[0]
        try:
            http_request = make_http_request(request, remote)
        except ValueError as exc:
            logger.info("rejected a request from %s: invalid target: %s", remote, exc)
            response = make_response(bad_request(f"invalid target: {exc}"))
            await send_chunks(byte_stream, [response.serialize()])
            await self._end_response(byte_stream)
            return

        if is_upgrade(request):
            await self._upgrade(byte_stream, protocol, request, http_request, events)
        else:
            await self._answer_http(byte_stream, http_request)

    async def _wrap_tls(
        self, stream: anyio.abc.SocketStream, remote: str
    ) -> TLSStream | None:
        """Run the TLS handshake and return the TLS stream, or None if it failed."""
        try:
            return await TLSStream.wrap(
                stream,
                server_side=True,
                ssl_context=self._options.ssl_context,
                standard_compatible=False,
            )
        except STREAM_ERRORS as exc:
            logger.info("TLS handshake with %s failed: %r", remote, exc)
            return None

    async def _read_request(
        self, stream: anyio.abc.ByteStream, protocol: ServerProtocol, remote: str
    ) -> list[Event] | None:
        """Read until the protocol parses a request, and return its events.

        Returns None when the client left first or sent a malformed request, which
        gets a 400 response (or the 414 or 431 that the protocol writes itself).
        """
        while True:
            try:
                data = await stream.receive(READ_SIZE)
            except STREAM_ERRORS:
                return None
            protocol.receive_data(data)
            events = protocol.events_received()
            if events:
                return events

            error = protocol.handshake_exc
            if error is not None:
                detail = (
                    f"{error}: {error.__cause__}" if error.__cause__ else str(error)
                )
                logger.info("rejected a malformed request from %s: %s", remote, detail)
                chunks = [chunk for chunk in protocol.data_to_send() if chunk]
                if not chunks:
                    response = bad_request(str(error.__cause__ or error))
                    chunks = [make_response(response).serialize()]
                await send_chunks(stream, chunks)
                await self._end_response(stream)
                return None

    async def _answer_http(
        self, stream: anyio.abc.ByteStream, request: HttpRequest
    ) -> None:
        try:
            response = await self._application.handle_http(request)
        except Exception:
            logger.exception(
                "handle_http failed for %s %s from %s",
                request.method,
                request.path,
                request.remote_address,
            )
            response = HttpResponse(500, b"Internal Server Error\n")
        head = request.method == "HEAD"
        # Written without protocol.send_response(), which logs every plain
        # response at INFO, load balancers' health checks included.
        await send_chunks(stream, [make_response(response, head=head).serialize()])
        await self._end_response(stream)

    async def _upgrade(
        self,
        stream: anyio.abc.ByteStream,
        protocol: ServerProtocol,
        request: Request,
        http_request: HttpRequest,
        events: list[Event],
    ) -> None:
        remote = http_request.remote_address
        response = protocol.accept(request)
        if response.status_code != 101:
            logger.info(
                "rejected an invalid upgrade from %s: %s",
                remote,
                protocol.handshake_exc,
            )
        else:
            rejection = self._check_upgrade(http_request)
            if rejection is not None:
                logger.info(
                    "rejected the upgrade of %s from %s with HTTP %d",
                    http_request.path,
                    remote,
                    rejection.status,
                )
                response = make_response(rejection)

        protocol.send_response(response)
        if response.status_code != 101:
            await send_chunks(stream, protocol.data_to_send())
            await self._end_response(stream)
            return

        connection = WebsocketConnection(
            stream, protocol, remote, close_timeout=self._options.close_timeout
        )
        # A client may send frames right behind its request, before the 101.
        connection.handle_events(events[1:])
        await connection.flush()
        await self._run_socket(http_request, connection)

    async def _end_response(self, stream: anyio.abc.ByteStream) -> None:
        with anyio.move_on_after(self._options.close_timeout):
            await end_response(stream)

    def _check_upgrade(self, request: HttpRequest) -> HttpResponse | None:
        try:
            return self._application.check_upgrade(request)
        except Exception:
            logger.exception(
                "check_upgrade failed for %s from %s",
                request.path,
                request.remote_address,
            )
            return HttpResponse(500, b"Internal Server Error\n")

    async def _run_socket(
        self, request: HttpRequest, connection: WebsocketConnection
    ) -> None:
        """Run the application's socket handler, then close the socket."""
        close_timeout = self._options.close_timeout
        try:
            await self._application.handle_socket(request, connection)
        except anyio.get_cancelled_exc_class():
            with anyio.move_on_after(close_timeout, shield=True):
                await connection.close(1001, "relay shutting down")
            raise
        except Exception:
            logger.exception("handle_socket failed for %s", request.remote_address)
            await connection.close(1011, "internal error")
        else:
            await connection.close(1000)


# HTTP helpers.


def make_http_request(request: Request, remote: str) -> HttpRequest:
    """Convert a parsed request. The last value of a repeated query key wins.

    Raises:
        ValueError: the request target is not a valid URL.
    """
    path, _, query_string = request.path.partition("?")
    if not path.startswith("/") and "://" in path:
        # Clients of proxies send absolute URLs, of which the path and query count.
        target = urllib.parse.urlsplit(request.path)
        path, query_string = target.path or "/", target.query
    query = dict(urllib.parse.parse_qsl(query_string, keep_blank_values=True))
    return HttpRequest(
        method=request.method,
        path=path,
        query=query,
        headers=list(request.headers.raw_items()),
        remote_address=remote,
    )


def is_upgrade(request: Request) -> bool:
    """Return whether the request has an ``Upgrade: websocket`` header."""
    return any(
        token.strip().lower() == "websocket"
        for value in request.headers.get_all("Upgrade")
        for token in value.split(",")
    )


def make_response(response: HttpResponse, *, head: bool = False) -> Response:
    """Build a response that ends the connection, with its Content-Length set."""
    headers = Headers(
        [(k, v) for k, v in response.headers if k.lower() not in FRAMING_HEADERS]
    )
    if "Date" not in headers:
        headers["Date"] = email.utils.formatdate(usegmt=True)
    headers["Content-Length"] = str(len(response.body))
    headers["Connection"] = "close"
    try:
        phrase = http.HTTPStatus(response.status).phrase
    except ValueError:
        phrase = ""
    body = b"" if head else response.body
    return Response(response.status, phrase, headers, body)


def bad_request(detail: str) -> HttpResponse:
    body = f"Bad Request: {detail}\n".encode()
    return HttpResponse(400, body, [("Content-Type", "text/plain; charset=utf-8")])


async def send_chunks(stream: anyio.abc.ByteStream, chunks: list[bytes]) -> None:
    """Send bytes from the protocol, skipping its end-of-stream marker."""
    for chunk in chunks:
        if chunk:
            await stream.send(chunk)


async def end_response(stream: anyio.abc.ByteStream) -> None:
    """Half-close the stream, then discard input until the client closes too.

    Closing a socket with unread input makes the kernel send a reset, which can
    destroy the response before the client reads it. Callers bound the wait.
    """
    if isinstance(stream, TLSStream):
        # TLS streams cannot half-close, and closing them sends no reset.
        return
    try:
        await stream.send_eof()
    except STREAM_ERRORS:
        return
    with contextlib.suppress(*STREAM_ERRORS):
        while True:
            await stream.receive(READ_SIZE)
