"""roupn: end-to-end encrypted rooms and shared state through an untrusting relay."""

from __future__ import annotations

from .client import ClientConnector, create_client_connector
from .errors import *  # noqa: F403
from .errors import __all__ as _error_names
from .messages import ConnectionState, MessageType
from .plugins import Backend, BackendKind, get_registry
from .relay import RoomTicket
from .server import RoomInfo, ServerConnector, create_server_connector
from .session import Message
from .settings import Settings
from .synchronizer import ClientSynchronizer, create_client_synchronizer

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendKind",
    "ClientConnector",
    "ClientSynchronizer",
    "ConnectionState",
    "Message",
    "MessageType",
    "RoomInfo",
    "RoomTicket",
    "ServerConnector",
    "Settings",
    "__version__",
    "create_client_connector",
    "create_client_synchronizer",
    "create_server_connector",
    "get_registry",
    *_error_names,
]
