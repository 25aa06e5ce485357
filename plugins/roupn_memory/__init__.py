"""The ``memory`` transport and backplane: everything in one process, no sockets."""

from __future__ import annotations

from collections.abc import Iterable

from roupn.hookspecs import hookimpl
from roupn.plugins import Backend

from .backplane import MemoryBackplane
from .connection import MemoryConnection
from .transport import MemoryTransport

__all__ = ["MemoryBackplane", "MemoryConnection", "MemoryTransport"]


@hookimpl
def roupn_transports() -> Iterable[Backend]:
    return [
        Backend(
            "memory",
            "roupn_memory:MemoryTransport",
            summary="in-process connections without sockets, for tests and simulations",
        )
    ]


@hookimpl
def roupn_backplanes() -> Iterable[Backend]:
    return [
        Backend(
            "memory",
            "roupn_memory:MemoryBackplane",
            summary="rooms live in one relay process (the default)",
        )
    ]
