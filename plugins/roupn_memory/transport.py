"""The ``memory`` transport: relays and clients in one process, without sockets."""

from __future__ import annotations

import errno
import itertools
import logging
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import ClassVar

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from roupn.errors import ConnectionClosedError
from roupn.interfaces import Connection, HttpRequest, HttpResponse, RelayApplication

from .connection import MemoryConnection, connection_pair

__all__ = ["MemoryTransport"]

logger = logging.getLogger(__name__)

# Accepted connections waiting for the relay to start their handlers.
ACCEPT_BACKLOG = 64

# Characters of a rejection's response body kept in the error's reason.
MAX_REJECTION_TEXT = 200

_Accepted = tuple[HttpRequest, MemoryConnection]


@dataclass(slots=True)
class _MemoryRelay:
    """A serving application, as registered under its address."""

    address: str
    application: RelayApplication
    accepted: MemoryObjectSendStream[_Accepted]


# Every memory relay of the process, by "host:port".
_relays: dict[str, _MemoryRelay] = {}
_port_numbers = itertools.count(1)
_client_numbers = itertools.count(1)


def format_address(host: str, port: int) -> str:
    host = host.lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def rejection_reason(status: int, body: bytes) -> str:
    """Describe a rejected upgrade as the ``websockets`` transport does."""
    text = " ".join(body.decode("utf-8", errors="replace").split())
    reason = f"upgrade rejected with HTTP {status}"
    if text:
        reason += f": {text[:MAX_REJECTION_TEXT]}"
    return reason


class MemoryTransport:
    """In-process relay server and client for tests and simulations.

    :meth:`serve` registers the application under ``memory://HOST:PORT`` in a
    process-wide table until cancelled. Connections are pairs of bounded memory
    object streams and close as WebSockets do: the first close code and reason of
    either end reach the other end, and a received message longer than
    ``max_size`` bytes closes the connection with 1009.

    Args:
        max_size: maximum size of a received message in bytes (text counts as
            UTF-8); None disables the limit.
        buffer_size: messages each end buffers before a sender has to wait.
    """

    name: ClassVar[str] = "memory"

    def __init__(self, *, max_size: int | None = 2**20, buffer_size: int = 16) -> None:
        self.max_size = max_size
        self.buffer_size = buffer_size

    async def serve(
        self,
        application: RelayApplication,
        host: str,
        port: int,
        *,
        task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve ``application`` until cancelled. Port 0 picks an unused number.

        Socket handlers run in a task group owned by this call, so cancelling it
        ends them, and their connections close with 1001.

        Raises:
            OSError: another memory relay already serves ``host`` and ``port``.
        """
        send_stream, receive_stream = anyio.create_memory_object_stream[_Accepted](
            ACCEPT_BACKLOG
        )
        try:
            relay = _register(application, host, port, send_stream)
        except OSError:
            send_stream.close()
            receive_stream.close()
            raise
        url = f"memory://{relay.address}"
        try:
            async with anyio.create_task_group() as task_group:
                logger.debug("memory relay listening on %s", url)
                task_status.started(url)
                async for request, connection in receive_stream:
                    task_group.start_soon(
                        self._run_socket, application, request, connection
                    )
        finally:
            del _relays[relay.address]
            send_stream.close()
            # Connections accepted in the last moment close like running ones.
            with receive_stream:
                for _request, connection in _drain(receive_stream):
                    connection.close_now(1001, "relay shutting down")
            logger.info("memory relay on %s stopped", url)

    async def http_get(self, url: str) -> HttpResponse:
        """Call the relay's ``handle_http`` in the calling task.

        Raises:
            ValueError: ``url`` is not a ``memory://HOST:PORT`` URL.
            ConnectionClosedError: no memory relay serves that address.
        """
        relay, request = _resolve(url)
        try:
            response = await relay.application.handle_http(request)
        except Exception:
            logger.exception(
                "handle_http failed for %s %s", request.method, request.path
            )
            response = HttpResponse(500, b"Internal Server Error\n")
        return HttpResponse(response.status, response.body, list(response.headers))

    def connect(self, url: str) -> AbstractAsyncContextManager[Connection]:
        """Open a connection to the relay at ``url``, closing it with 1000 on exit.

        Raises:
            ValueError: ``url`` is not a ``memory://HOST:PORT`` URL.
            ConnectionClosedError: no memory relay serves that address, or it
                rejected the upgrade. The reason of a rejection contains the HTTP
                status.
        """
        return self._connect(url)

    @asynccontextmanager
    async def _connect(self, url: str) -> AsyncIterator[MemoryConnection]:
        relay, request = _resolve(url)
        request.headers += [("Upgrade", "websocket"), ("Connection", "Upgrade")]
        rejection = _check_upgrade(relay.application, request)
        if rejection is not None:
            reason = rejection_reason(rejection.status, rejection.body)
            raise ConnectionClosedError(1006, reason)

        client, server_side = connection_pair(
            request.remote_address,
            relay.address,
            buffer_size=self.buffer_size,
            max_size=self.max_size,
        )
        try:
            await relay.accepted.send((request, server_side))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            server_side.close_now(1001, "relay shutting down")
            raise ConnectionClosedError(
                1006, f"cannot reach {url}: the memory relay stopped"
            ) from None
        try:
            yield client
        finally:
            client.close_now(1000)

    async def _run_socket(
        self,
        application: RelayApplication,
        request: HttpRequest,
        connection: MemoryConnection,
    ) -> None:
        try:
            await application.handle_socket(request, connection)
        except anyio.get_cancelled_exc_class():
            connection.close_now(1001, "relay shutting down")
            raise
        except Exception:
            logger.exception("handle_socket failed for %s", request.remote_address)
            connection.close_now(1011, "internal error")
        else:
            connection.close_now(1000)


def _register(
    application: RelayApplication,
    host: str,
    port: int,
    accepted: MemoryObjectSendStream[_Accepted],
) -> _MemoryRelay:
    if port == 0:
        port = next(_port_numbers)
        while format_address(host, port) in _relays:
            port = next(_port_numbers)
    address = format_address(host, port)
    if address in _relays:
        raise OSError(
            errno.EADDRINUSE,
            f"memory address {address} is already in use; serve on port 0 for a "
            "free one",
        )
    relay = _MemoryRelay(address, application, accepted)
    _relays[address] = relay
    return relay


def _resolve(url: str) -> tuple[_MemoryRelay, HttpRequest]:
    """Find the relay for ``url`` and build the request a client would send."""
    split = urllib.parse.urlsplit(url)
    if split.scheme != "memory" or not split.hostname or split.port is None:
        raise ValueError(f"invalid memory URL {url!r}: use memory://HOST:PORT/PATH")
    address = format_address(split.hostname, split.port)
    relay = _relays.get(address)
    if relay is None:
        raise ConnectionClosedError(
            1006, f"cannot reach {url}: no memory relay serves {address}"
        )
    request = HttpRequest(
        method="GET",
        path=split.path or "/",
        query=dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True)),
        headers=[("Host", address)],
        remote_address=f"memory-client-{next(_client_numbers)}",
    )
    return relay, request


def _check_upgrade(
    application: RelayApplication, request: HttpRequest
) -> HttpResponse | None:
    try:
        return application.check_upgrade(request)
    except Exception:
        logger.exception("check_upgrade failed for %s", request.path)
        return HttpResponse(500, b"Internal Server Error\n")


def _drain(stream: MemoryObjectReceiveStream[_Accepted]) -> list[_Accepted]:
    """Take the items already buffered in ``stream`` without waiting."""
    items: list[_Accepted] = []
    while True:
        try:
            items.append(stream.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            return items
