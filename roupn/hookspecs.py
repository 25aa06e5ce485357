"""Hook specifications: one hook per backend kind.

A plugin module implements any of these hooks and is registered through the ``roupn``
entry point group. Each hook returns :class:`~roupn.plugins.Backend` records, which
name an implementation without importing it, so a backend whose dependency is missing
is still listed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .plugins import Backend

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("roupn")
hookimpl = pluggy.HookimplMarker("roupn")


@hookspec
def roupn_transports() -> Iterable[Backend]:
    """Return the transports (relay server and client sockets) this plugin provides."""


@hookspec
def roupn_cipher_suites() -> Iterable[Backend]:
    """Return the cipher suites (key exchange, room and direct encryption) provided."""


@hookspec
def roupn_serializers() -> Iterable[Backend]:
    """Return the serializers (message to bytes and back) this plugin provides."""


@hookspec
def roupn_diff_strategies() -> Iterable[Backend]:
    """Return the diff strategies (shared document changes) this plugin provides."""


@hookspec
def roupn_backplanes() -> Iterable[Backend]:
    """Return the backplanes (where a relay keeps its rooms) this plugin provides."""
