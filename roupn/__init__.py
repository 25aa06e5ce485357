"""roupn: end-to-end encrypted rooms and shared state through an untrusting relay."""

from __future__ import annotations

from .errors import *  # noqa: F403
from .errors import __all__ as _error_names
from .messages import ConnectionState, MessageType
from .plugins import Backend, BackendKind, get_registry
from .settings import Settings

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendKind",
    "ConnectionState",
    "MessageType",
    "Settings",
    "__version__",
    "get_registry",
    *_error_names,
]
