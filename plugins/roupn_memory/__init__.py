"""The ``memory`` transport: relays and clients in one process, without sockets."""

from __future__ import annotations

from collections.abc import Iterable

from roupn.hookspecs import hookimpl
from roupn.plugins import Backend

from .connection import MemoryConnection
from .transport import MemoryTransport

__all__ = ["MemoryConnection", "MemoryTransport"]


@hookimpl
def roupn_transports() -> Iterable[Backend]:
    return [
        Backend(
            "memory",
            "roupn_memory:MemoryTransport",
            summary="in-process connections without sockets, for tests and simulations",
        )
    ]
