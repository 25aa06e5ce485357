"""Event listeners for relay and client connectors."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

__all__ = ["EventEmitter", "Listener"]

logger = logging.getLogger(__name__)

Listener = Callable[..., Any]


class EventEmitter:
    """Calls listeners by event name; async listeners run in the owner's task group.

    A listener that raises is logged and does not stop the others or the owner.
    """

    def __init__(self, event_names: Iterable[str]) -> None:
        self._listeners: dict[str, list[Listener]] = {name: [] for name in event_names}
        # Starts an async function in the owner's task group, like ``start_soon``.
        self._spawn: Callable[..., object] | None = None

    def add_listener_options(self, listeners: dict[str, Listener], owner: str) -> None:
        """Add listeners passed as keyword options such as ``on_message=...``.

        Raises:
            TypeError: an option is not one of this emitter's events.
        """
        for event, listener in listeners.items():
            if event not in self._listeners:
                names = ", ".join(self._listeners)
                raise TypeError(
                    f"unknown option {event!r}: see {owner} for the options; "
                    f"listeners are {names}"
                )
            self.add_listener(event, listener)

    @property
    def event_names(self) -> list[str]:
        """The names of the events listeners can be added for."""
        return list(self._listeners)

    def _listeners_of(self, event: str) -> list[Listener]:
        try:
            return self._listeners[event]
        except KeyError:
            names = ", ".join(self._listeners)
            raise ValueError(
                f"unknown event {event!r}: known events are {names}"
            ) from None

    def add_listener(self, event: str, listener: Listener) -> None:
        """Call ``listener`` whenever ``event`` happens."""
        self._listeners_of(event).append(listener)

    def remove_listener(self, event: str, listener: Listener) -> None:
        """Stop calling ``listener`` for ``event``; does nothing if it was not added."""
        listeners = self._listeners_of(event)
        if listener in listeners:
            listeners.remove(listener)

    def emit(self, event: str, *args: Any) -> None:
        """Call every listener of ``event`` with ``args``."""
        for listener in list(self._listeners[event]):
            try:
                result = listener(*args)
            except Exception:
                logger.exception("listener %r for %s raised", listener, event)
                continue
            if inspect.isawaitable(result):
                if self._spawn is None:
                    logger.error(
                        "async listener for %s called with no task group", event
                    )
                    if inspect.iscoroutine(result):
                        result.close()
                    continue
                self._spawn(_guarded, result, event)


async def _guarded(awaitable: Awaitable[Any], event: str) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("async listener for %s raised", event)
