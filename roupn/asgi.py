"""The relay as an ASGI 3 application, for uvicorn, hypercorn, Starlette or FastAPI.

The application turns ASGI events into the :class:`~roupn.interfaces.HttpRequest`
and :class:`~roupn.interfaces.Connection` objects that a relay transport hands to a
:class:`~roupn.server.ServerConnector`, so it routes rooms exactly like
``roupn serve``. Run it directly::

    uvicorn --factory roupn.asgi:create_app

or mount it in a host application and enter :meth:`RelayApp.lifespan` from the
host's lifespan, because Starlette does not pass lifespan events to mounted apps.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from .asgi_connection import (
    DEFAULT_MAX_MESSAGE_SIZE,
    GOING_AWAY,
    INTERNAL_ERROR,
    AsgiConnection,
    AsgiMessage,
    Receive,
    Scope,
    Send,
    make_request,
    reject_websocket,
    response_headers,
)
from .interfaces import HttpRequest, HttpResponse
from .server import ServerConnector

__all__ = ["AsgiConnection", "AsgiMessage", "RelayApp", "create_app"]

logger = logging.getLogger(__name__)

NOT_RUNNING = (
    "the relay is not running: start it through the ASGI lifespan, or enter "
    "RelayApp.lifespan() in the lifespan of the application that mounts it"
)


class RelayApp:
    """An ASGI 3 application serving create-room requests and room sockets.

    Every request goes to the :class:`~roupn.server.ServerConnector`, which must
    be made with ``listen=False``. The connector runs its background tasks (room
    expiry among them) only while :meth:`lifespan` is entered. The ASGI lifespan
    protocol enters it when this is the top-level application. A host application
    that mounts this one must enter it from its own lifespan. Until then,
    create-room gets HTTP 503 and sockets are rejected with HTTP 503.

    NOTE: rooms live in the memory of this process, so a server with several
    worker processes splits them: run one worker.

    Args:
        connector: the relay that routes the rooms.
        max_message_size: maximum size in bytes of a received WebSocket message,
            text counted in UTF-8. A larger one closes the socket with 1009. None
            turns the check off and leaves only the ASGI server's own limit.
        close_timeout: seconds a close waits for a send in progress to finish.
    """

    def __init__(
        self,
        connector: ServerConnector,
        *,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        close_timeout: float = 5.0,
    ) -> None:
        if connector.listen:
            raise ValueError(
                "the connector opens its own listener: make it with listen=False "
                "to serve it through ASGI"
            )
        if max_message_size is not None and max_message_size < 1:
            raise ValueError(
                f"max_message_size must be at least 1 byte or None, "
                f"not {max_message_size}"
            )
        self.connector = connector
        self.max_message_size = max_message_size
        self.close_timeout = close_timeout
        self._running = False
        self._sockets: set[AsgiConnection] = set()

    @property
    def running(self) -> bool:
        """Whether :meth:`lifespan` is entered, so that requests are served."""
        return self._running

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Run the connector's background tasks while the block runs.

        Pass this method as the ``lifespan`` of a Starlette or FastAPI application
        (``app`` is that application, and unused), or enter it from the host's
        own lifespan. On exit, the sockets still open are closed with 1001.

        Raises:
            RuntimeError: the relay is already running.
        """
        if self._running:
            raise RuntimeError(
                "the relay is already running: enter RelayApp.lifespan() once, "
                "either through the ASGI lifespan or from the host application"
            )
        async with self.connector:
            self._running = True
            try:
                yield
            finally:
                self._running = False
                await self._close_sockets()

    async def _close_sockets(self) -> None:
        if not self._sockets:
            return
        logger.info("closing %d room sockets: relay stopping", len(self._sockets))
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.close_timeout):
            async with anyio.create_task_group() as group:
                for connection in list(self._sockets):
                    group.start_soon(
                        connection.close, GOING_AWAY, "relay shutting down"
                    )

    # The ASGI entry point.

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection: HTTP, WebSocket or lifespan.

        Raises:
            ValueError: the scope type is not http, websocket or lifespan.
        """
        kind = scope["type"]
        if kind == "http":
            await self._serve_http(scope, send)
        elif kind == "websocket":
            await self._serve_websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._serve_lifespan(receive, send)
        else:
            raise ValueError(
                f"unsupported ASGI scope type {kind!r}: the relay serves http, "
                "websocket and lifespan"
            )

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        started = False
        try:
            async with self.lifespan():
                started = True
                await send({"type": "lifespan.startup.complete"})
                while message["type"] != "lifespan.shutdown":
                    message = await receive()
        except Exception as exc:
            logger.exception("relay lifespan failed")
            kind = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": kind, "message": repr(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})

    async def _serve_http(self, scope: Scope, send: Send) -> None:
        request = make_request(scope)
        if not self._running:
            response = self._not_running()
        else:
            try:
                response = await self.connector.handle_http(request)
            except Exception:
                logger.exception(
                    "handle_http failed for %s %s from %s",
                    request.method,
                    request.path,
                    request.remote_address,
                )
                response = HttpResponse(500, b"Internal Server Error\n")
        body = b"" if request.method == "HEAD" else response.body
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": response_headers(response),
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _serve_websocket(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            # The client left before the handshake finished.
            return
        request = make_request(scope)
        rejection = self._not_running() if not self._running else None
        if rejection is None:
            try:
                rejection = self.connector.check_upgrade(request)
            except Exception:
                logger.exception(
                    "check_upgrade failed for %s from %s",
                    request.path,
                    request.remote_address,
                )
                rejection = HttpResponse(500, b"Internal Server Error\n")
        if rejection is not None:
            # The connector logs the rejections that limits make, rate-limited,
            # and the ASGI server's access log records each one.
            logger.debug(
                "rejected the upgrade of %s from %s with HTTP %d",
                request.path,
                request.remote_address,
                rejection.status,
            )
            await reject_websocket(scope, send, rejection)
            return

        await send({"type": "websocket.accept"})
        connection = AsgiConnection(
            receive,
            send,
            request.remote_address,
            max_message_size=self.max_message_size,
            close_timeout=self.close_timeout,
        )
        self._sockets.add(connection)
        try:
            await self._run_socket(request, connection)
        finally:
            self._sockets.discard(connection)

    async def _run_socket(
        self, request: HttpRequest, connection: AsgiConnection
    ) -> None:
        try:
            await self.connector.handle_socket(request, connection)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await connection.close(GOING_AWAY, "relay shutting down")
            raise
        except Exception:
            logger.exception("handle_socket failed for %s", request.remote_address)
            await connection.close(INTERNAL_ERROR, "internal error")
        else:
            await connection.close(1000)

    def _not_running(self) -> HttpResponse:
        connector = self.connector
        assert connector.serialize is not None
        body = connector.serialize({"error": NOT_RUNNING})
        return HttpResponse(503, body, [("Content-Type", connector.content_type)])


def create_app(
    connector: ServerConnector | None = None,
    *,
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    close_timeout: float = 5.0,
    **server_options: Any,
) -> RelayApp:
    """Make the relay's ASGI application.

    ``server_options`` are the options of :class:`~roupn.server.ServerConnector`
    (limits, endpoints, settings, listeners) except ``host``, ``port`` and
    ``listen``, because the ASGI server listens. Pass ``connector`` instead to
    serve a connector made with ``listen=False``.

    Raises:
        TypeError: an option is unknown, is one the ASGI server sets, or is given
            together with ``connector``.
        ValueError: ``connector`` opens its own listener, or a limit is invalid.
    """
    for name in ("host", "port", "listen"):
        if name in server_options:
            raise TypeError(
                f"create_app() does not take {name!r}: the ASGI server listens, so "
                "set the address with its own options (for example uvicorn "
                "--host and --port)"
            )
    if connector is None:
        connector = ServerConnector(listen=False, **server_options)
    elif server_options:
        names = ", ".join(sorted(server_options))
        raise TypeError(
            f"create_app() got a connector and the options {names}: set them on "
            "the connector instead"
        )
    return RelayApp(
        connector, max_message_size=max_message_size, close_timeout=close_timeout
    )
