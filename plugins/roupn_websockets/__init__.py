"""The ``websockets`` transport: WebSocket over TCP for asyncio and trio."""

from __future__ import annotations

from collections.abc import Iterable

from roupn.hookspecs import hookimpl
from roupn.plugins import Backend

from .connection import WebsocketConnection
from .transport import WebsocketsTransport

__all__ = ["WebsocketConnection", "WebsocketsTransport"]


@hookimpl
def roupn_transports() -> Iterable[Backend]:
    return [
        Backend(
            "websockets",
            "roupn_websockets:WebsocketsTransport",
            summary="WebSocket over TCP, with optional TLS (asyncio and trio)",
            requires=("websockets", "httpx"),
        )
    ]
