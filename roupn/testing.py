"""Helpers for tests and scripts that drive clients and wait for their events."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from .events import EventEmitter
from .messages import ConnectionState

if TYPE_CHECKING:
    from .client import ClientConnector

__all__ = ["EventRecorder", "admit", "connected", "disconnected"]


def connected(state: ConnectionState) -> bool:
    """Return whether an ``on_connection`` state is ``CONNECTED``."""
    return state is ConnectionState.CONNECTED


def disconnected(state: ConnectionState) -> bool:
    """Return whether an ``on_connection`` state is ``DISCONNECTED``."""
    return state is ConnectionState.DISCONNECTED


class EventRecorder:
    """Records every event of a client or relay so that a caller can wait for one."""

    def __init__(self, emitter: EventEmitter, timeout: float = 30.0) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.timeout = timeout
        self._changed = anyio.Event()
        for event in emitter.event_names:
            emitter.add_listener(event, self._recorder(event))

    def _recorder(self, event: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.events.append((event, args))
            self._changed.set()

        return record

    def of(self, event: str) -> list[tuple[Any, ...]]:
        """Return the arguments of every recorded ``event``, oldest first."""
        return [args for name, args in self.events if name == event]

    async def wait_for(
        self, event: str, test: Callable[..., bool] = lambda *args: True
    ) -> tuple[Any, ...]:
        """Return the arguments of the first ``event`` that passes ``test``.

        Events recorded before the call count too.

        Raises:
            TimeoutError: no such event within ``timeout`` seconds.
        """
        seen = 0
        with anyio.fail_after(self.timeout):
            while True:
                for name, args in self.events[seen:]:
                    if name == event and test(*args):
                        return args
                seen = len(self.events)
                self._changed = anyio.Event()
                await self._changed.wait()

    async def wait_for_count(self, event: str, count: int) -> list[tuple[Any, ...]]:
        """Wait until ``event`` was recorded at least ``count`` times; return them all.

        Raises:
            TimeoutError: fewer than ``count`` within ``timeout`` seconds.
        """
        with anyio.fail_after(self.timeout):
            while len(self.of(event)) < count:
                self._changed = anyio.Event()
                await self._changed.wait()
        return self.of(event)


async def admit(
    creator: ClientConnector,
    creator_events: EventRecorder,
    joiner: ClientConnector,
    joiner_events: EventRecorder,
) -> None:
    """Verify a joiner as a person would: read the joiner's code to the creator.

    Returns once the joiner is ``CONNECTED``.
    """
    (shown,) = await joiner_events.wait_for("on_user_verification_code")
    assert joiner.user_id is not None
    await creator_events.wait_for(
        "on_user_verification_code", lambda event: event["userId"] == joiner.user_id
    )
    assert await creator.verify_user(joiner.user_id, shown["code"])
    await joiner_events.wait_for("on_connection", connected)
