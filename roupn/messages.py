"""Message types and connection states: every wire string lives here."""

from __future__ import annotations

import enum
import string

__all__ = [
    "CODE_ALPHABET",
    "ConnectionState",
    "MessageType",
]

# Room and verification codes use 30 characters that are hard to confuse aloud:
# no I, J, L, O, 0 or 1.
CODE_ALPHABET = "ABCDEFGHKMNPQRSTUVWXYZ23456789"

IDENTIFIER_ALPHABET = string.ascii_letters + string.digits


class MessageType(enum.StrEnum):
    """The ``type`` field of a message."""

    ROOM_JOINED = "_RJ"
    USER_JOINED = "_UJ"
    USER_LEFT = "_UL"
    USER_VERIFIED = "_UV"
    USER_KICK = "_UK"
    ROOM_CLOSED = "_RC"
    EXCHANGE_0 = "_X0"
    EXCHANGE_1 = "_X1"
    EXCHANGE_2 = "_X2"
    EXCHANGE_3 = "_X3"
    EXCHANGE_4 = "_X4"
    STATE_UPDATE = "_SU"
    STATE_SYNC = "_SS"
    ERROR = "_ER"
    MESSAGE = "_MS"
    ROOM_LEFT = "_RL"
    ROOM_REMOVED = "_RR"


class ConnectionState(enum.StrEnum):
    """The connection states a client reports."""

    DISCONNECTED = "DISCONNECTED"
    CONNECTING = "CONNECTING"
    PENDING_VERIFICATION = "PENDING_VERIFICATION"
    CONNECTED = "CONNECTED"
    DISCONNECTING = "DISCONNECTING"
