"""The ``snapshot`` diff strategy: compare the document with a private copy."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from roupn.changes import (
    Change,
    apply_changes,
    comparable_copy,
    copy_json,
    diff,
    revert_changes,
)
from roupn.errors import MessageError

__all__ = ["SnapshotStrategy", "SnapshotTracker"]

logger = logging.getLogger(__name__)


class SnapshotTracker:
    """Tracks a plain dict by comparing it with a copy of the state last taken.

    The copy is the state the other members have: the document as of the last
    :meth:`take_changes`, plus the changes applied since. It is a
    :func:`~roupn.changes.comparable_copy`, so taking the changes skips the
    unchanged parts of the document with ``==``, which runs in C.
    """

    def __init__(self, document: dict[str, Any]) -> None:
        self._document = document
        self._snapshot: dict[str, Any] = comparable_copy(document)

    @property
    def document(self) -> dict[str, Any]:
        """The tracked dict itself, edited in place."""
        return self._document

    def take_changes(self) -> list[Change]:
        """Return the changes since the last call, from comparing with the copy.

        Raises:
            TypeError: the document contains something that is not JSON.
        """
        changes = diff(self._snapshot, self._document, comparable_old=True)
        if changes:
            apply_changes(
                self._snapshot, changes, copy_new=comparable_copy, inverse=False
            )
        return changes

    def apply(self, changes: list[Change]) -> list[Change]:
        """Apply changes from any sender to the document and to the copy.

        If the changes apply to the document but not to the copy, because they
        conflict with changes not taken yet, the copy stays as it was, as it
        would on a member that rejected them. The next :meth:`take_changes` then
        carries their effect.

        Raises:
            MessageError: a change does not apply to the document; nothing changed.
        """
        inverse = apply_changes(self._document, changes)
        try:
            apply_changes(
                self._snapshot, changes, copy_new=comparable_copy, inverse=False
            )
        except MessageError as exc:
            logger.debug("changes apply to the document but not to its copy: %s", exc)
        return inverse

    def revert(self, changes: list[Change]) -> None:
        """Undo changes in the document and in the copy, from their ``old`` values.

        Raises:
            MessageError: a change does not fit the document; nothing changed.
        """
        revert_changes(self._document, changes)
        try:
            revert_changes(self._snapshot, changes, copy_new=comparable_copy)
        except MessageError as exc:
            logger.debug("changes revert in the document but not in its copy: %s", exc)

    def replace(self, document: dict[str, Any]) -> None:
        """Make the document and the copy equal to ``document``.

        Raises:
            TypeError: ``document`` contains something that is not JSON.
        """
        items = copy_json(document)
        self._snapshot = comparable_copy(document)
        self._document.clear()
        self._document.update(items)


class SnapshotStrategy:
    """Finds changes by comparing the document with a copy of the last state.

    The user edits the dict passed to :meth:`track` as an ordinary dict. Taking
    the changes costs a walk over the whole document, and the copy doubles the
    memory the document takes.
    """

    name: ClassVar[str] = "snapshot"

    def track(self, document: dict[str, Any]) -> SnapshotTracker:
        """Track ``document`` in place.

        Raises:
            TypeError: ``document`` contains something that is not JSON.
        """
        return SnapshotTracker(document)

    def diff(self, old: Any, new: Any) -> list[Change]:
        """Return the changes that turn ``old`` into ``new``; mutate neither."""
        return diff(old, new)
