"""The ``tracked`` diff strategy: record each change as the user makes it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, TypeVar

from roupn.changes import (
    Change,
    Copier,
    apply_changes,
    copy_json,
    diff,
    revert_changes,
)
from roupn.errors import MessageError

from .containers import (
    ChangeLog,
    TrackedDict,
    TrackedList,
    convert,
    convert_items,
    make_root,
)

__all__ = ["TrackedDict", "TrackedList", "TrackedStrategy", "TrackedTracker"]

logger = logging.getLogger(__name__)

_Result = TypeVar("_Result")


class TrackedTracker:
    """Tracks a :class:`TrackedDict` that records each change into a change log.

    Taking the changes costs time in proportion to the number of changes, and no
    copy of the document is kept.
    """

    def __init__(self, document: dict[str, Any]) -> None:
        self._log = ChangeLog()
        self._document = make_root(document, self._log)
        self._convert = partial(convert, log=self._log)

    @property
    def document(self) -> TrackedDict:
        """The tracked copy of the document passed to :meth:`TrackedStrategy.track`."""
        return self._document

    def take_changes(self) -> list[Change]:
        """Return the changes recorded since the last call, in the order made."""
        changes = self._log.changes
        self._log.changes = []
        return changes

    def apply(self, changes: list[Change]) -> list[Change]:
        """Apply changes from any sender to the document without recording them.

        Changes waiting to be taken are rebased onto the result, as described
        in :meth:`_rebase`.

        Raises:
            MessageError: a change does not apply to the document; nothing changed.
        """
        return self._rebase(
            lambda document, copy_new: apply_changes(
                document, changes, copy_new=copy_new, copy_removed=copy_json
            )
        )

    def revert(self, changes: list[Change]) -> None:
        """Undo changes in the document from their ``old`` values, unrecorded.

        Changes waiting to be taken are rebased onto the result, as described
        in :meth:`_rebase`.

        Raises:
            MessageError: a change does not fit the document; nothing changed.
        """
        self._rebase(
            lambda document, copy_new: revert_changes(
                document, changes, copy_new=copy_new
            )
        )

    def _rebase(
        self, operation: Callable[[dict[str, Any], Copier], _Result]
    ) -> _Result:
        """Run an unrecorded operation on the document, keeping waiting changes right.

        The recorded changes describe edits to the state the other members have.
        When any are waiting to be taken, that state is rebuilt by reverting them
        on a copy of the document, ``operation`` runs on it too, and the waiting
        changes become the difference from it to the new document. That costs a
        copy of the document, which an operation with nothing waiting does not.
        If ``operation`` fails on the rebuilt state only, that state stays as it
        was, as it would on a member that rejected the changes.
        """
        log = self._log
        shared = None
        if log.changes:
            shared = copy_json(self._document)
            revert_changes(shared, log.changes)

        log.recording = False
        try:
            result = operation(self._document, self._convert)
        finally:
            log.recording = True

        if shared is not None:
            try:
                operation(shared, copy_json)
            except MessageError as exc:
                logger.debug(
                    "changes fit the document but not the state without the "
                    "changes waiting to be taken: %s",
                    exc,
                )
            log.changes = diff(shared, self._document, copy_old=False)
        return result

    def replace(self, document: dict[str, Any]) -> None:
        """Make the document equal to ``document`` and drop the changes waiting.

        Raises:
            TypeError: ``document`` contains something that is not JSON.
        """
        items = convert_items(document, self._log)
        self._document._replace_items(items)
        self._log.changes = []


class TrackedStrategy:
    """Records each change to the document as it is made.

    :meth:`track` returns a tracker whose document is a :class:`TrackedDict`, a
    copy of the dict passed in; the user edits that copy. A dict or list stored
    into it is converted, so storing one and then editing the original does not
    change the document.
    """

    name: ClassVar[str] = "tracked"

    def track(self, document: dict[str, Any]) -> TrackedTracker:
        """Track a tracked copy of ``document``.

        Raises:
            TypeError: ``document`` contains something that is not JSON.
        """
        return TrackedTracker(document)

    def diff(self, old: Any, new: Any) -> list[Change]:
        """Return the changes that turn ``old`` into ``new``; mutate neither."""
        return diff(old, new)
