"""The exceptions that roupn raises.

Every error derives from :class:`RoupnError`::

    RoupnError
    ├── BackendError
    │   ├── UnknownBackendError
    │   ├── MissingDependencyError
    │   └── BackplaneError
    ├── ProtocolError
    │   ├── ProfileError
    │   ├── ReplayError
    │   ├── FrameError
    │   └── MessageError
    ├── CryptoError
    │   └── DecryptionError
    ├── ConnectionClosedError
    ├── RoomError
    │   ├── RoomNotFoundError
    │   ├── RoomFullError
    │   ├── RoomLimitError
    │   └── JoinRejectedError
    │       └── JoinTimeoutError
    ├── VerificationError
    └── StateError
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackplaneError",
    "ConnectionClosedError",
    "CryptoError",
    "DecryptionError",
    "FrameError",
    "JoinRejectedError",
    "JoinTimeoutError",
    "MessageError",
    "MissingDependencyError",
    "ProfileError",
    "ProtocolError",
    "ReplayError",
    "RoomError",
    "RoomFullError",
    "RoomLimitError",
    "RoomNotFoundError",
    "RoupnError",
    "StateError",
    "UnknownBackendError",
    "VerificationError",
]


class RoupnError(Exception):
    """Base class of every error roupn raises."""


class BackendError(RoupnError):
    """A backend could not be selected or loaded."""


class UnknownBackendError(BackendError, LookupError):
    """No backend of the requested kind is registered under the requested name."""

    def __init__(self, kind: str, name: str, available: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.available = available
        names = ", ".join(available) or "none"
        super().__init__(
            f"unknown {kind} backend {name!r}: registered {kind} backends are {names}; "
            f"install the plugin that provides {name!r} or choose one of those"
        )


class MissingDependencyError(BackendError, ImportError):
    """A backend is registered, but a package it needs is not installed."""

    def __init__(self, kind: str, name: str, module: str, extra: str | None) -> None:
        self.kind = kind
        self.backend = name
        self.module = module
        self.extra = extra
        fix = f"pip install 'roupn[{extra}]'" if extra else f"install {module!r}"
        super().__init__(
            f"the {kind} backend {name!r} needs the module {module!r}, "
            f"which is not installed: run {fix}"
        )


class BackplaneError(BackendError):
    """A backplane cannot start, or lost the store that it shares rooms through."""


class ProtocolError(RoupnError):
    """A peer sent something the protocol does not allow."""


class ProfileError(ProtocolError):
    """A peer speaks another protocol profile (cipher suite or serializer)."""


class FrameError(ProtocolError, ValueError):
    """A frame could not be decoded."""


class MessageError(ProtocolError, ValueError):
    """A decoded message has a missing, unknown or wrongly typed field."""


class ReplayError(ProtocolError):
    """A message was received twice, out of order, or after messages were lost."""


class CryptoError(RoupnError):
    """A key could not be loaded, or a signature or key exchange failed."""


class DecryptionError(CryptoError):
    """A ciphertext failed authentication: it was tampered with or used a wrong key."""


class ConnectionClosedError(RoupnError):
    """The connection closed; ``code`` and ``reason`` come from the close frame."""

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        detail = f": {reason}" if reason else ""
        super().__init__(f"connection closed with code {code}{detail}")


class RoomError(RoupnError):
    """A room could not be created, joined or used."""


class RoomNotFoundError(RoomError, LookupError):
    """No room exists under the given code."""


class RoomFullError(RoomError):
    """The room already has its maximum number of users."""


class RoomLimitError(RoomError):
    """The relay already has its maximum number of rooms."""


class JoinRejectedError(RoomError):
    """The relay or the room's creator rejected the join."""


class JoinTimeoutError(JoinRejectedError, TimeoutError):
    """The relay did not admit the socket in time."""


class VerificationError(RoupnError):
    """A verification code or verification callback did not match."""


class StateError(RoupnError, RuntimeError):
    """A method was called in a connection state that does not allow it."""
