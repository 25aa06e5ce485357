"""The shared document of a room, kept in update order, without I/O."""

from __future__ import annotations

import logging
from typing import Any

from .changes import validate_change
from .errors import MessageError, RoupnError
from .interfaces import DiffStrategy
from .ordering import UpdateKey, UpdateLog

__all__ = ["SharedDocument", "update_key"]

logger = logging.getLogger(__name__)

Change = dict[str, Any]


class SharedDocument:
    """A document that local edits and other members' updates both change.

    Local edits are taken with :meth:`take_local` and, once sent, recorded with
    :meth:`record_local`. Updates from others go through :meth:`receive_update`,
    which puts them in key order; full syncs through :meth:`receive_sync`.

    The ``senderTime`` of a local update is at least :meth:`next_time`, later
    than every update this member has seen (a hybrid logical clock). So every
    member orders an update after the updates its sender built it on, even when
    the sender's clock runs behind or both were sent in the same millisecond.
    """

    def __init__(
        self,
        strategy: DiffStrategy,
        document: dict[str, Any],
        window_per_user: int = 16,
    ) -> None:
        self._tracker = strategy.track(document)
        self.log = UpdateLog(self._tracker.apply, window_per_user, self._tracker.revert)
        self.latest_time = 0

    @property
    def document(self) -> dict[str, Any]:
        """The live document; edit it in place."""
        document: dict[str, Any] = self._tracker.document
        return document

    def take_local(self) -> list[Change]:
        """Return the local edits made since the last call."""
        return self._tracker.take_changes()

    def next_time(self) -> int:
        """Return the earliest ``senderTime`` a local update may have."""
        return self.latest_time + 1

    def record_local(self, key: UpdateKey, changes: list[Change]) -> None:
        """Record local edits that were sent under ``key``."""
        self.latest_time = max(self.latest_time, key[0])
        self.log.add_applied(key, changes)

    def receive_update(self, data: dict[str, Any]) -> bool:
        """Apply a ``_SU`` message in key order; return False if already applied.

        Raises:
            MessageError: the message or the shape of one of its changes is
                invalid; nothing was applied.
        """
        identifier = data.get("identifier")
        changes = data.get("stateDelta")
        if not isinstance(identifier, str) or not identifier:
            raise MessageError(
                f"state update has an invalid identifier: {identifier!r}"
            )
        if not isinstance(changes, list):
            raise MessageError(f"state update {identifier} has no stateDelta list")
        for index, change in enumerate(changes):
            validate_change(change, index)
        key = update_key(data, identifier)
        self.latest_time = max(self.latest_time, key[0])
        return self.log.insert(key, changes)

    def receive_sync(self, data: dict[str, Any]) -> None:
        """Replace the document with a ``_SS`` full sync, then re-apply later updates.

        Updates ordered after the sync (by the same key) may not be in it yet, so
        they are applied again on top; one that no longer applies is dropped.

        Raises:
            MessageError: the message is invalid.
        """
        state = data.get("state")
        if not isinstance(state, dict):
            raise MessageError(
                f"full sync state is a {type(state).__name__}, not an object"
            )
        key = update_key(data, "")
        self.latest_time = max(self.latest_time, key[0])
        later = self.log.drop_through(key)
        self._tracker.replace(state)
        for key, changes in later:
            try:
                self.log.insert(key, changes)
            except RoupnError as exc:
                logger.debug(
                    "update %s does not apply after a full sync: %s", key[2], exc
                )


def update_key(data: dict[str, Any], identifier: str) -> UpdateKey:
    """Return the ordering key of an update or sync message.

    Raises:
        MessageError: ``senderTime`` or ``sender`` is missing or has the wrong type.
    """
    sender_time = data.get("senderTime")
    sender = data.get("sender")
    if not isinstance(sender_time, int) or isinstance(sender_time, bool):
        raise MessageError(f"message has an invalid senderTime: {sender_time!r}")
    if not isinstance(sender, str):
        raise MessageError(f"message has an invalid sender: {sender!r}")
    return (sender_time, sender, identifier)
