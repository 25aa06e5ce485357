"""The backplane interface: where a relay keeps its rooms.

A backplane decides whether a room lives in one relay process (``memory``) or is
shared by several relay processes (``redis``). The :class:`ServerConnector
<roupn.server.ServerConnector>` gets the room state machine it drives from its
backplane (:meth:`Backplane.create_state`) and, while it serves, for a
:class:`RoomLink` that creates and joins rooms. Everything else (routing frames,
leaving, expiry) goes through the state machine's synchronous methods, so a
backplane that needs I/O for them queues it inside its state and performs it in
the link's own tasks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from .relay import Action, JoinRefused, RelayState, RoomTicket

__all__ = [
    "DEFAULT_REDIS_URL",
    "AdmitUser",
    "Backplane",
    "BackplaneOptions",
    "ObserveLatency",
    "RoomLink",
    "RunActions",
]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

# Called with a joining user's id right before the first frame for it is produced,
# so that the caller can register the user's socket under that id.
AdmitUser = Callable[[str], None]

# Runs actions of the state machine that a backplane produced on its own, such as
# frames that another relay process published.
RunActions = Callable[[list[Action]], None]

# Records how long one operation on the backplane's store took, in seconds.
ObserveLatency = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class BackplaneOptions:
    """The options of a backplane, of which each backplane reads the ones it needs.

    Args:
        name: the registered backplane name: ``memory`` or ``redis``.
        url: where the shared store is, such as ``redis://127.0.0.1:6379/0``.
        key_prefix: the prefix of every key and channel in the shared store, so
            that several relay clusters can share one Redis database.
        heartbeat_interval: seconds between a relay process's heartbeats, and
            between its checks for relay processes that stopped sending them.
        node_timeout: seconds without a heartbeat after which a relay process
            counts as dead and the others remove its members from their rooms.
    """

    name: str = "memory"
    url: str = DEFAULT_REDIS_URL
    key_prefix: str = "roupn"
    heartbeat_interval: float = 1.0
    node_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.heartbeat_interval > 0:
            raise ValueError(
                "heartbeat_interval must be more than 0 seconds, "
                f"not {self.heartbeat_interval}"
            )
        if not self.node_timeout > self.heartbeat_interval:
            raise ValueError(
                f"node_timeout ({self.node_timeout} s) must be longer than "
                f"heartbeat_interval ({self.heartbeat_interval} s), or live relay "
                "processes would count as dead"
            )
        if not self.key_prefix or any(c in self.key_prefix for c in " \n"):
            raise ValueError(
                f"invalid key_prefix {self.key_prefix!r}: use a non-empty word "
                "without spaces"
            )

    def to_arguments(self) -> list[str]:
        """Return the ``roupn serve`` options that select this backplane.

        A launcher of worker processes passes them to each worker, so that every
        worker joins the same rooms.
        """
        if self.name == "memory":
            return ["--backplane", "memory"]
        return [
            "--backplane",
            self.name,
            "--redis-url",
            self.url,
            "--backplane-prefix",
            self.key_prefix,
            "--heartbeat-interval",
            f"{self.heartbeat_interval:g}",
            "--node-timeout",
            f"{self.node_timeout:g}",
        ]


class RoomLink(Protocol):
    """A running backplane: creates and joins rooms for one relay process."""

    # Waits while the backplane has too much queued output, or None if it never does.
    wait_writable: Callable[[], Awaitable[None]] | None

    async def create_room(self, limit: int | None) -> RoomTicket:
        """Make a room and return the creator's ticket.

        Raises:
            ValueError: ``limit`` is less than 1.
            RoomLimitError: the relay already has its maximum of rooms.
        """
        ...

    async def join(
        self, room_code: str | None, creator_secret: str | None, admit: AdmitUser
    ) -> tuple[str, list[Action]] | JoinRefused:
        """Admit a socket to a room and return its user id and the actions to run.

        ``admit`` is called with the user id before any frame for that user is
        produced. A refused join returns how to close the socket instead.
        """
        ...


class Backplane(Protocol):
    """A registered backplane, which the registry creates with no arguments."""

    name: ClassVar[str]

    def create_state(
        self, options: BackplaneOptions, **relay_options: Any
    ) -> RelayState:
        """Return the room state machine, made with :class:`RelayState`'s options."""
        ...

    def connect(
        self,
        state: RelayState,
        options: BackplaneOptions,
        run: RunActions,
        observe_latency: ObserveLatency | None = None,
    ) -> AbstractAsyncContextManager[RoomLink]:
        """Start serving ``state``'s rooms, with the link working while the block runs.

        ``observe_latency``, when given, is called with the duration of each
        operation on the backplane's store, such as a pipeline of commands.

        Raises:
            BackplaneError: the backplane cannot start here, for example because
                its store is unreachable or the event loop is not supported.
        """
        ...
