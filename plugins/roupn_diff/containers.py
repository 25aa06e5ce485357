"""Dicts and lists that record each change made to them into a shared change log.

A tracked document is a tree of :class:`TrackedDict` and :class:`TrackedList`
containers. Each container stores its parent and its key there, so a mutation
computes its path by walking up to the root and records one change in the
:class:`ChangeLog` of the tree. A container that was removed from the tree has no
parent any more, so its later mutations are not recorded.

Values stored into a tracked container are converted: plain dicts and lists become
new tracked containers, so nested edits are recorded too. A tracked container that
already sits in the tree is copied, so no container is in two places. One that was
removed from the tree is moved in as it is.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any, Final, Self, SupportsIndex, TypeVar

from roupn.changes import Change, copy_json

__all__ = [
    "ChangeLog",
    "TrackedDict",
    "TrackedList",
    "convert",
    "convert_items",
    "make_root",
]

_MISSING: Final = object()
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


class ChangeLog:
    """The changes recorded in one tracked document since they were last taken."""

    __slots__ = ("changes", "recording")

    def __init__(self) -> None:
        self.changes: list[Change] = []
        # False while changes from other members are applied.
        self.recording = True


# The log of containers made outside a tracker, which record nothing.
_UNTRACKED: Final = ChangeLog()
_UNTRACKED.recording = False


class _Tracked:
    """The place in the tree of a tracked dict or list, and what follows from it."""

    __slots__ = ()

    _log: ChangeLog
    _parent: _Tracked | None
    _key: str | int
    _is_root: bool

    def _path(self) -> list[str] | None:
        """Return this container's path, or None if it is not in the document."""
        items: list[str] = []
        node = self
        while True:
            parent = node._parent
            if parent is None:
                if not node._is_root:
                    return None
                items.reverse()
                return items
            key = node._key
            items.append(key if type(key) is str else str(key))
            node = parent

    def _recording_path(self) -> list[str] | None:
        """Return the path to record changes under, or None to record nothing."""
        if not self._log.recording:
            return None
        return self._path()

    def _store(self, value: Any, key: str | int) -> Any:
        """Return ``value`` converted for storing under ``key`` in this container."""
        kind = type(value)
        if kind in _SCALARS:
            return value
        if (kind is TrackedDict or kind is TrackedList) and value._is_free(self._log):
            value._parent = self
            value._key = key
            return value
        return _convert(value, self._log, self, key)

    def _is_free(self, log: ChangeLog) -> bool:
        """Return whether this container is out of the tree and may move in as it is."""
        return self._parent is None and not self._is_root and self._log is log


def _check_key(key: Any) -> None:
    if type(key) is not str:
        raise TypeError(f"document keys must be str, not {type(key).__name__}: {key!r}")


def _detach(value: Any) -> None:
    if isinstance(value, TrackedDict | TrackedList):
        value._parent = None


def _same_scalar(a: Any, b: Any) -> bool:
    kind = type(a)
    return kind is type(b) and kind in _SCALARS and bool(a == b)


def _set_change(path: list[str], new: Any, old: Any = _MISSING) -> Change:
    change: Change = {"type": "set", "path": path, "new": copy_json(new)}
    if old is not _MISSING:
        change["old"] = copy_json(old)
    return change


def _delete_change(path: list[str], old: Any) -> Change:
    return {"type": "delete", "path": path, "old": copy_json(old)}


class TrackedDict(_Tracked, dict[str, Any]):
    """A JSON object in a tracked document; a dict that records its changes.

    It serializes with ``json`` and ``msgpack`` and compares equal to plain
    dicts. :func:`copy.deepcopy` and pickling give plain dicts and lists.
    """

    __slots__ = ("_is_root", "_key", "_log", "_parent")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Make a dict outside any tracker, which records nothing.

        Storing it into a tracked document stores a tracked copy.
        """
        _place(self, _UNTRACKED, None, "")
        dict.__init__(self, *args, **kwargs)

    def __setitem__(self, key: str, value: Any) -> None:
        _check_key(key)
        previous = dict.get(self, key, _MISSING)
        if previous is value or _same_scalar(previous, value):
            return
        node = self._store(value, key)
        dict.__setitem__(self, key, node)
        _detach(previous)
        path = self._recording_path()
        if path is not None:
            path.append(key)
            self._log.changes.append(_set_change(path, node, previous))

    def __delitem__(self, key: str) -> None:
        previous = dict.pop(self, key)
        self._removed(key, previous)

    def _removed(self, key: str, previous: Any) -> None:
        _detach(previous)
        path = self._recording_path()
        if path is not None:
            path.append(key)
            self._log.changes.append(_delete_change(path, previous))

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        if key not in self:
            if default is _MISSING:
                raise KeyError(key)
            return default
        previous = dict.pop(self, key)
        self._removed(key, previous)
        return previous

    def popitem(self) -> tuple[str, Any]:
        key, previous = dict.popitem(self)
        self._removed(key, previous)
        return key, previous

    def clear(self) -> None:
        removed = list(dict.items(self))
        dict.clear(self)
        for _, value in removed:
            _detach(value)
        path = self._recording_path()
        if path is not None:
            changes = self._log.changes
            for key, value in removed:
                changes.append(_delete_change([*path, key], value))

    def update(self, other: Any = (), /, **values: Any) -> None:
        if hasattr(other, "keys"):
            for key in list(other.keys()):
                self[key] = other[key]
        else:
            for key, value in list(other):
                self[key] = value
        for key, value in values.items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key``, first storing ``default`` there if absent.

        The stored value is returned, so a dict or list default comes back as
        the tracked container that is now in the document.
        """
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    # mypy checks in-place operators against the generic overloads of dict.__or__
    # and list.__add__, whose result types no subclass's Self matches.
    def __ior__(self, other: Any) -> Self:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        result: dict[str, Any] = copy_json(self)
        return result

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (dict, (dict(self),))

    def _replace_items(self, items: dict[str, Any]) -> None:
        """Replace every item without recording; ``items`` contains free containers."""
        for value in dict.values(self):
            _detach(value)
        dict.clear(self)
        for key, value in items.items():
            dict.__setitem__(self, key, self._store(value, key))


class TrackedList(_Tracked, list[Any]):
    """A JSON array in a tracked document; a list that records its changes.

    Removing an element records one ``delete``. Changes cannot insert, so
    inserting before the end records a ``set`` for every element from there on,
    and sorting or reversing records a ``set`` for every element that moved.
    """

    __slots__ = ("_is_root", "_key", "_log", "_parent")

    def __init__(self, values: Iterable[Any] = ()) -> None:
        """Make a list outside any tracker, which records nothing.

        Storing it into a tracked document stores a tracked copy.
        """
        _place(self, _UNTRACKED, None, "")
        list.__init__(self, values)

    # Keeping the children's keys right.

    def _renumber(self, start: int) -> None:
        """Give the containers from ``start`` on their current index as key."""
        for index, child in enumerate(islice(self, start, None), start):
            kind = type(child)
            if kind is TrackedDict or kind is TrackedList:
                child._key = index

    def _position(self, index: SupportsIndex, action: str) -> int:
        length = len(self)
        position = operator.index(index)
        if position < 0:
            position += length
        if not 0 <= position < length:
            raise IndexError(f"list {action} index out of range")
        return position

    # Recording.

    def _record_rewrite(self, before: list[Any], start: int) -> None:
        """Record the changes that turn ``before`` into the current elements.

        The first ``start`` elements must be unchanged. Elements compare by
        identity, so an element that moved counts as changed where it now is.
        """
        path = self._recording_path()
        if path is None:
            return
        changes = self._log.changes
        old_length = len(before)
        new_length = len(self)
        prefix = start
        shorter = min(old_length, new_length)
        while prefix < shorter and before[prefix] is list.__getitem__(self, prefix):
            prefix += 1
        suffix = 0
        if new_length < old_length:
            while suffix < new_length - prefix and before[
                old_length - 1 - suffix
            ] is list.__getitem__(self, new_length - 1 - suffix):
                suffix += 1
        for index in range(prefix, min(old_length, new_length) - suffix):
            old = before[index]
            new = list.__getitem__(self, index)
            if old is not new and not _same_scalar(old, new):
                changes.append(_set_change([*path, str(index)], new, old))
        for index in range(old_length, new_length):
            changes.append(
                _set_change([*path, str(index)], list.__getitem__(self, index))
            )
        for index in range(old_length - suffix - 1, new_length - suffix - 1, -1):
            changes.append(_delete_change([*path, str(index)], before[index]))

    def _removed(self, position: int, previous: Any) -> None:
        _detach(previous)
        self._renumber(position)
        path = self._recording_path()
        if path is not None:
            path.append(str(position))
            self._log.changes.append(_delete_change(path, previous))

    # Mutating methods.

    def __setitem__(self, index: SupportsIndex | slice, value: Any) -> None:
        if isinstance(index, slice):
            self._set_slice(index, value)
            return
        position = self._position(index, "assignment")
        previous = list.__getitem__(self, position)
        if previous is value or _same_scalar(previous, value):
            return
        node = self._store(value, position)
        list.__setitem__(self, position, node)
        _detach(previous)
        path = self._recording_path()
        if path is not None:
            path.append(str(position))
            self._log.changes.append(_set_change(path, node, previous))

    def _set_slice(self, index: slice, values: Iterable[Any]) -> None:
        items = list(values)
        start, stop, step = index.indices(len(self))
        if step != 1:
            positions = range(start, stop, step)
            if len(items) != len(positions):
                raise ValueError(
                    f"attempt to assign sequence of size {len(items)} to extended "
                    f"slice of size {len(positions)}"
                )
            for position, value in zip(positions, items, strict=True):
                self[position] = value
            return
        before = list(self)
        nodes = [self._store(value, start) for value in items]
        list.__setitem__(self, slice(start, stop), nodes)
        for value in before[start : max(start, stop)]:
            _detach(value)
        self._renumber(start)
        self._record_rewrite(before, start)

    def __delitem__(self, index: SupportsIndex | slice) -> None:
        if not isinstance(index, slice):
            position = self._position(index, "assignment")
            self._removed(position, list.pop(self, position))
            return
        positions = sorted(range(*index.indices(len(self))), reverse=True)
        if not positions:
            return
        removed = [list.__getitem__(self, position) for position in positions]
        list.__delitem__(self, index)
        for value in removed:
            _detach(value)
        self._renumber(positions[-1])
        path = self._recording_path()
        if path is not None:
            changes = self._log.changes
            for position, value in zip(positions, removed, strict=True):
                changes.append(_delete_change([*path, str(position)], value))

    def append(self, value: Any) -> None:
        position = len(self)
        node = self._store(value, position)
        list.append(self, node)
        path = self._recording_path()
        if path is not None:
            path.append(str(position))
            self._log.changes.append(_set_change(path, node))

    def extend(self, values: Iterable[Any]) -> None:
        for value in list(values):
            self.append(value)

    def __iadd__(self, values: Iterable[Any]) -> Self:  # type: ignore[misc]
        self.extend(values)
        return self

    def __imul__(self, count: SupportsIndex) -> Self:
        times = operator.index(count)
        if times <= 0:
            self.clear()
            return self
        items = list(self)
        for _ in range(times - 1):
            self.extend(items)
        return self

    def insert(self, index: SupportsIndex, value: Any) -> None:
        length = len(self)
        position = operator.index(index)
        if position < 0:
            position = max(0, position + length)
        if position >= length:
            self.append(value)
            return
        before = list(self)
        list.insert(self, position, self._store(value, position))
        self._renumber(position)
        self._record_rewrite(before, position)

    def pop(self, index: SupportsIndex = -1) -> Any:
        if not self:
            raise IndexError("pop from empty list")
        position = self._position(index, "pop")
        previous = list.pop(self, position)
        self._removed(position, previous)
        return previous

    def remove(self, value: Any) -> None:
        position = self.index(value)
        self._removed(position, list.pop(self, position))

    def clear(self) -> None:
        if not self:
            return
        removed = list(self)
        list.clear(self)
        for value in removed:
            _detach(value)
        path = self._recording_path()
        if path is not None:
            self._log.changes.append(_set_change(path, [], removed))

    def sort(
        self, *, key: Callable[[Any], Any] | None = None, reverse: bool = False
    ) -> None:
        before = list(self)
        list.sort(self, key=key, reverse=reverse)
        self._renumber(0)
        self._record_rewrite(before, 0)

    def reverse(self) -> None:
        before = list(self)
        list.reverse(self)
        self._renumber(0)
        self._record_rewrite(before, 0)

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        result: list[Any] = copy_json(self)
        return result

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (list, (list(self),))


# Building tracked trees.

_Container = TypeVar("_Container", TrackedDict, TrackedList)


def _convert(
    value: Any, log: ChangeLog, parent: _Tracked | None, key: str | int
) -> Any:
    """Return ``value`` as tracked containers under ``parent``, copying as needed."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if (kind is TrackedDict or kind is TrackedList) and value._is_free(log):
        value._parent = parent
        value._key = key
        return value
    if isinstance(value, dict):
        mapping = TrackedDict.__new__(TrackedDict)
        items: dict[str, Any] = {}
        for item_key, item in value.items():
            _check_key(item_key)
            items[item_key] = (
                item
                if type(item) in _SCALARS
                else _convert(item, log, mapping, item_key)
            )
        dict.update(mapping, items)
        return _place(mapping, log, parent, key)
    if isinstance(value, list):
        array = TrackedList.__new__(TrackedList)
        list.extend(
            array,
            [
                item if type(item) in _SCALARS else _convert(item, log, array, index)
                for index, item in enumerate(value)
            ],
        )
        return _place(array, log, parent, key)
    if isinstance(value, str | int | float):
        return value
    raise TypeError(
        f"a {type(value).__name__} is not a JSON value: use dicts, lists, str, "
        "int, float, bool or None"
    )


def _place(
    node: _Container, log: ChangeLog, parent: _Tracked | None, key: str | int
) -> _Container:
    node._log = log
    node._parent = parent
    node._key = key
    node._is_root = False
    return node


def convert(value: Any, log: ChangeLog) -> Any:
    """Return ``value`` as a free tracked tree for ``log``, ready to be stored.

    Raises:
        TypeError: ``value`` contains something that is not JSON.
    """
    return _convert(value, log, None, "")


def convert_items(document: dict[str, Any], log: ChangeLog) -> dict[str, Any]:
    """Return the items of ``document`` as free tracked values for ``log``.

    Raises:
        TypeError: ``document`` contains something that is not JSON.
    """
    items: dict[str, Any] = {}
    for key, value in document.items():
        _check_key(key)
        items[key] = convert(value, log)
    return items


def make_root(document: dict[str, Any], log: ChangeLog) -> TrackedDict:
    """Return a tracked copy of ``document`` that records into ``log``.

    Raises:
        TypeError: ``document`` contains something that is not JSON.
    """
    items = convert_items(document, log)
    root = TrackedDict.__new__(TrackedDict)
    root._log = log
    root._parent = None
    root._key = ""
    root._is_root = True
    root._replace_items(items)
    return root
