"""The relay's endpoints for operators: health checks and Prometheus metrics."""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .errors import RoupnError
from .interfaces import Connection, HttpRequest, HttpResponse, Transport
from .metrics import RelayMetrics

if TYPE_CHECKING:
    from .server import ServerConnector

__all__ = [
    "OperationsApplication",
    "health_response",
    "listen_function",
    "metrics_response",
]

PLAIN_TEXT = ("Content-Type", "text/plain; charset=utf-8")

READ_METHODS = ("GET", "HEAD")


def _method_not_allowed(request: HttpRequest) -> HttpResponse | None:
    if request.method in READ_METHODS:
        return None
    body = f"use GET or HEAD for {request.path}\n".encode()
    return HttpResponse(405, body, [PLAIN_TEXT, ("Allow", "GET, HEAD")])


def health_response(request: HttpRequest, shutting_down: bool) -> HttpResponse:
    """Return 200 while the relay serves and 503 once it is shutting down.

    The body contains the state and the process id, so that callers can tell
    apart the workers that share one port.
    """
    rejection = _method_not_allowed(request)
    if rejection is not None:
        return rejection
    status = "shutting_down" if shutting_down else "serving"
    body = json.dumps({"status": status, "pid": os.getpid()}).encode() + b"\n"
    return HttpResponse(
        503 if shutting_down else 200,
        body,
        [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
    )


def metrics_response(request: HttpRequest, metrics: RelayMetrics) -> HttpResponse:
    """Return the relay's metrics in the format that the ``Accept`` header requests.

    The response is 404 when metrics are off.
    """
    rejection = _method_not_allowed(request)
    if rejection is not None:
        return rejection
    rendered = metrics.render(request.header("Accept"))
    if rendered is None:
        body = b"metrics are off on this relay\n"
        return HttpResponse(404, body, [PLAIN_TEXT])
    body, content_type = rendered
    return HttpResponse(
        200, body, [("Content-Type", content_type), ("Cache-Control", "no-store")]
    )


class OperationsApplication:
    """The health and metrics endpoints of a relay, for a port of their own.

    The port serves nothing else, so it can stay closed to the public while the
    relay's port is open.
    """

    def __init__(self, server: ServerConnector) -> None:
        self._server = server

    async def handle_http(self, request: HttpRequest) -> HttpResponse:
        if request.path == self._server.health_endpoint:
            return health_response(request, self._server.shutting_down)
        if request.path == self._server.metrics_endpoint:
            return metrics_response(request, self._server.metrics)
        body = f"no endpoint at {request.path} on the metrics port\n".encode()
        return HttpResponse(404, body, [PLAIN_TEXT])

    def check_upgrade(self, request: HttpRequest) -> HttpResponse | None:
        body = b"the metrics port does not accept WebSocket connections\n"
        return HttpResponse(404, body, [PLAIN_TEXT])

    async def handle_socket(self, request: HttpRequest, connection: Connection) -> None:
        # check_upgrade rejects every upgrade, so no socket gets here.
        await connection.close(1008, "no sockets on the metrics port")


def listen_function(
    transport: Transport, reuse_port: bool
) -> Callable[..., Coroutine[Any, Any, None]]:
    """Return the transport's ``serve``, set to share its port if ``reuse_port``.

    Raises:
        RoupnError: ``reuse_port`` is set, but the transport's ``serve`` has no
            ``reuse_port`` option.
    """
    if not reuse_port:
        return transport.serve
    if "reuse_port" not in inspect.signature(transport.serve).parameters:
        raise RoupnError(
            f"the {transport.name!r} transport cannot share a port between "
            "processes because its serve() has no reuse_port option; run one "
            "process, or choose a transport that listens on TCP such as 'websockets'"
        )
    serve: Callable[..., Coroutine[Any, Any, None]] = transport.serve
    return functools.partial(serve, reuse_port=True)
