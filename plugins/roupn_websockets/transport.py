"""The ``websockets`` transport: WebSocket over TCP for asyncio and trio."""

from __future__ import annotations

import ssl
from contextlib import AbstractAsyncContextManager
from typing import ClassVar

import anyio
import anyio.abc

from roupn.interfaces import Connection, HttpResponse, RelayApplication

from .client import ClientOptions, connect, http_get
from .server import RelayServer, ServerOptions

__all__ = ["WebsocketsTransport"]


class WebsocketsTransport:
    """WebSocket relay server and client on anyio sockets.

    The WebSocket protocol comes from the ``websockets`` library's Sans-I/O layer
    and plain GET requests from ``httpx``, so it runs on asyncio and on trio.

    Args:
        max_size: maximum size of a received message in bytes; a larger one closes
            the connection with 1009. None disables the limit.
        request_timeout: seconds a client has to send its HTTP request (and finish
            the TLS handshake) before the relay drops it.
        open_timeout: seconds a client waits to connect and for the handshake
            response, and the timeout of :meth:`http_get`.
        close_timeout: seconds :meth:`WebsocketConnection.close` waits for the
            peer's close frame and for the peer to close the stream.
        ssl_context: TLS settings for wss and https URLs; None uses the system's
            trusted certificates.
        server_ssl_context: TLS settings of the relay; when set, :meth:`serve`
            accepts only TLS and reports an https URL.
    """

    name: ClassVar[str] = "websockets"

    def __init__(
        self,
        *,
        max_size: int | None = 2**20,
        request_timeout: float = 10.0,
        open_timeout: float = 10.0,
        close_timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        server_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.server_options = ServerOptions(
            max_size=max_size,
            request_timeout=request_timeout,
            close_timeout=close_timeout,
            ssl_context=server_ssl_context,
        )
        self.client_options = ClientOptions(
            max_size=max_size,
            open_timeout=open_timeout,
            close_timeout=close_timeout,
            ssl_context=ssl_context,
        )

    async def serve(
        self,
        application: RelayApplication,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve ``application`` on ``host`` and ``port`` until cancelled.

        Reports ``http://HOST:PORT`` (``https`` with a server TLS context) with the
        bound port through ``task_status``. Port 0 picks a free port.
        ``reuse_port`` sets ``SO_REUSEPORT``, so that several processes can listen
        on one port; Linux then spreads new connections over them.
        """
        server = RelayServer(application, self.server_options)
        await server.serve(host, port, reuse_port=reuse_port, task_status=task_status)

    async def http_get(self, url: str) -> HttpResponse:
        """Make a GET request to the relay.

        Raises:
            ValueError: the URL's scheme is not http, https, ws or wss.
            ConnectionClosedError: the relay could not be reached.
        """
        return await http_get(url, self.client_options)

    def connect(self, url: str) -> AbstractAsyncContextManager[Connection]:
        """Open a WebSocket to ``url``, mapping http to ws and https to wss.

        Raises:
            ValueError: the URL's scheme is not ws, wss, http or https.
            ConnectionClosedError: the relay could not be reached or rejected the
                upgrade. The reason of a rejection contains the HTTP status.
        """
        return connect(url, self.client_options)
