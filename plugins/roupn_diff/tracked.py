"""The ``tracked`` diff strategy: record each change as the user makes it."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any, ClassVar

from roupn.changes import (
    Change,
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

        The recorded changes describe edits to the state before ``changes``. If
        any are waiting to be taken, they are replaced by the difference between
        that state with ``changes`` applied and the new document. That costs a
        copy of the document, which applying with nothing waiting does not.

        Raises:
            MessageError: a change does not apply to the document; nothing changed.
        """
        log = self._log
        if not log.changes:
            return self._apply_unrecorded(changes)

        # The state the other members have: the document without the waiting
        # changes. It gets ``changes`` unless they do not apply to it, as on
        # those members.
        shared = copy_json(self._document)
        revert_changes(shared, log.changes)
        inverse = self._apply_unrecorded(changes)
        try:
            apply_changes(shared, changes, inverse=False)
        except MessageError as exc:
            logger.debug(
                "changes apply to the document but not without the "
                "changes waiting to be taken: %s",
                exc,
            )
        log.changes = diff(shared, self._document, copy_old=False)
        return inverse

    def _apply_unrecorded(self, changes: list[Change]) -> list[Change]:
        log = self._log
        log.recording = False
        try:
            return apply_changes(
                self._document,
                changes,
                copy_new=self._convert,
                copy_removed=copy_json,
            )
        finally:
            log.recording = True

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
