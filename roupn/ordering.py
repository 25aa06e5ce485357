"""Deterministic ordering of state updates, with rollback for late arrivals.

Every member orders updates by the same key, taken from the update message itself:
the sender's ``senderTime``, then the sender's id, then the update's identifier. An
update that arrives after updates with greater keys is put in its place by rolling
those back with their undo records, applying it, and applying them again. Once every
update has been delivered, every member has applied the same updates in the same
order, so their documents are equal.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import MessageError

__all__ = ["UpdateKey", "UpdateLog"]

logger = logging.getLogger(__name__)

Change = dict[str, Any]
UpdateKey = tuple[int, str, str]


@dataclass(slots=True)
class _Entry:
    key: UpdateKey
    changes: list[Change]
    # None: undone by reverting ``changes`` from their own ``old`` values.
    undo: list[Change] | None = field(default_factory=list)


class UpdateLog:
    """The recent updates in key order, each with the undo record of its last apply.

    Args:
        apply: applies changes to the document and returns the changes that undo
            exactly what it did; raises on an invalid change without applying any.
        window_per_user: how many recent updates are kept for rollback, per
            sender seen in the window. An update older than everything kept is
            applied before the kept updates but after the forgotten ones, so members
            may order it differently; a full sync repairs that.
    """

    def __init__(
        self,
        apply: Callable[[list[Change]], list[Change]],
        window_per_user: int = 16,
        revert: Callable[[list[Change]], None] | None = None,
    ) -> None:
        if window_per_user < 1:
            raise ValueError(
                f"window_per_user must be at least 1, not {window_per_user}"
            )
        self._apply = apply
        self._revert = revert
        self.window_per_user = window_per_user
        self._entries: list[_Entry] = []
        self._keys: list[UpdateKey] = []
        self.rollbacks = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: UpdateKey) -> bool:
        index = bisect.bisect_left(self._keys, key)
        return index < len(self._keys) and self._keys[index] == key

    def keys(self) -> list[UpdateKey]:
        """Return the kept keys, oldest first."""
        return list(self._keys)

    def add_applied(
        self, key: UpdateKey, changes: list[Change], undo: list[Change] | None = None
    ) -> None:
        """Record an update already applied to the document, such as the user's own.

        Its key must be greater than every kept key; otherwise it is inserted with
        :meth:`insert`, after undoing it.
        """
        if self._keys and key <= self._keys[-1]:
            self._undo(_Entry(key, changes, undo))
            self.insert(key, changes)
            return
        self._entries.append(_Entry(key, changes, undo))
        self._keys.append(key)
        self._trim()

    def insert(self, key: UpdateKey, changes: list[Change]) -> bool:
        """Apply an update in key order; return False if it was already applied.

        An update that does not apply where it belongs (for example a delete of a
        key that an update still in flight creates) is kept without effect and
        tried again whenever an earlier update makes the log re-apply it. Every
        member applies the same updates in the same order, so the outcome is the
        same everywhere.
        """
        if key in self:
            return False
        index = bisect.bisect_right(self._keys, key)
        later = self._entries[index:]
        if later:
            self.rollbacks += 1
            logger.debug("rolling back %d updates for a late update", len(later))
        for entry in reversed(later):
            self._undo(entry)
        entry = _Entry(key, changes)
        self._reapply([entry, *later])
        self._entries.insert(index, entry)
        self._keys.insert(index, key)
        self._trim()
        return True

    def _undo(self, entry: _Entry) -> None:
        if entry.undo is not None:
            self._apply(entry.undo)
        elif self._revert is not None:
            self._revert(entry.changes)
        else:
            raise ValueError("an update recorded without undo needs a revert function")

    def _reapply(self, entries: list[_Entry]) -> None:
        for entry in entries:
            try:
                entry.undo = self._apply(entry.changes)
            except MessageError as exc:
                logger.debug(
                    "update %s does not apply at its place: %s", entry.key[2], exc
                )
                entry.undo = []

    def _trim(self) -> None:
        # Only the oldest updates are forgotten, so everything kept is newer than
        # everything forgotten and a rollback never skips over a forgotten update.
        senders = {key[1] for key in self._keys}
        excess = len(self._keys) - self.window_per_user * len(senders)
        if excess > 0:
            del self._keys[:excess]
            del self._entries[:excess]

    def drop_through(self, key: UpdateKey) -> list[tuple[UpdateKey, list[Change]]]:
        """Forget every update up to ``key``; return the later ones with their changes.

        Used when a full sync replaces the document: the updates it already covers
        are dropped, and the caller applies the later ones again.
        """
        index = bisect.bisect_right(self._keys, key)
        later = [(entry.key, entry.changes) for entry in self._entries[index:]]
        self._entries.clear()
        self._keys.clear()
        return later
