"""Changes to a shared JSON document: how they apply, revert and are computed.

A change is ``{"type": "set", "path": [...], "new": value, "old": value}`` or
``{"type": "delete", "path": [...], "old": value}``. Path items are strings, array
indices too (``"2"``), and ``old`` is absent when the key did not exist.

- ``set`` on an object key adds or replaces it. On an array index equal to the
  array's length it appends, below it replaces, and past it the change is invalid.
  A ``set`` with an empty path replaces the whole document, which must be an object.
- ``delete`` removes an object key, or removes an array element so that the later
  elements move down one index (a splice). Its path is never empty.
- A path through a missing key or index, or through a scalar, is invalid.

Values compare as JSON values. A boolean never equals a number, so ``True`` and ``1``
differ, even though ``==`` in Python calls them equal. Numbers compare by value
whatever their Python type, because JSON and JavaScript have one number type:
``1``, ``1.0`` and ``1.00`` are the same value, and so are ``0.0`` and ``-0.0``.
``None`` is a value, distinct from an absent key.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from itertools import compress, islice
from typing import Any, Final

from .errors import MessageError
from .interfaces import Change

__all__ = [
    "Change",
    "Copier",
    "apply_changes",
    "comparable_copy",
    "copy_json",
    "diff",
    "json_equal",
    "plain_copy",
    "revert_changes",
    "validate_change",
]

_MISSING: Final = object()
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
# The JSON type of each scalar type: int and float are both numbers.
_SCALAR_KINDS: Final[dict[type, type]] = {
    str: str,
    int: int,
    float: int,
    bool: bool,
    type(None): type(None),
}
_CHANGE_TYPES: Final = ("set", "delete")

Path = tuple[str, ...]
# A function that returns the value to store for a given value, usually a copy.
Copier = Callable[[Any], Any]

# How many elements ahead the array diff searches for the element that the new
# array has at a changed position. The elements skipped to reach it become
# deletes. A longer run of removed elements shows as changes to the elements that
# move into their places.
_LOOKAHEAD: Final = 8


# Copying and comparing JSON values.


def copy_json(value: Any) -> Any:
    """Return a deep copy of a JSON value made of plain dicts and lists.

    Scalars are immutable, so the copy shares them. Dict and list subclasses are
    copied as plain dicts and lists, and a container that appears twice in
    ``value`` becomes two separate copies.

    Raises:
        TypeError: ``value`` contains something that is not JSON (a tuple, bytes,
            a non-string key).
    """
    kind = type(value)
    if kind is dict:
        return _copy_dict(value)
    if kind is list:
        return _copy_list(value)
    if kind in _SCALARS:
        return value
    return _copy_other(value)


def _copy_dict(source: dict[Any, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in source.items():
        if type(key) is not str:
            raise TypeError(
                f"object key {key!r} is a {type(key).__name__}, not a str: "
                "JSON object keys are strings"
            )
        kind = type(value)
        if kind is dict:
            value = _copy_dict(value)
        elif kind is list:
            value = _copy_list(value)
        elif kind not in _SCALARS:
            value = _copy_other(value)
        result[key] = value
    return result


def _copy_list(source: list[Any]) -> list[Any]:
    result: list[Any] = []
    append = result.append
    for value in source:
        kind = type(value)
        if kind is dict:
            value = _copy_dict(value)
        elif kind is list:
            value = _copy_list(value)
        elif kind not in _SCALARS:
            value = _copy_other(value)
        append(value)
    return result


def _copy_other(value: Any) -> Any:
    if isinstance(value, dict):
        return _copy_dict(value)
    if isinstance(value, list):
        return _copy_list(value)
    if isinstance(value, str | int | float):
        return value
    raise TypeError(
        f"a {type(value).__name__} is not a JSON value: use dicts, lists, str, "
        "int, float, bool or None"
    )


def _kind(value: Any) -> type:
    """Return the JSON type of a value, as a Python type.

    Dict and list subclasses count as dict and list, and every number as ``int``.
    """
    kind = type(value)
    if kind is dict or kind is list:
        return kind
    scalar = _SCALAR_KINDS.get(kind)
    if scalar is not None:
        return scalar
    if isinstance(value, dict):
        return dict
    if isinstance(value, list):
        return list
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int
    return kind


def json_equal(a: Any, b: Any) -> bool:
    """Return whether two JSON values are equal as JSON.

    ``True`` and ``1`` are different values here, while ``==`` treats them as
    equal, also inside dicts and lists. ``1`` and ``1.0`` are equal, as they are
    in JSON.
    """
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        kind = _kind(a)
        if kind is not _kind(b):
            return False
    if kind is dict:
        if len(a) != len(b):
            return False
        for key, value in a.items():
            other = b.get(key, _MISSING)
            if value is not other and (
                other is _MISSING or not json_equal(value, other)
            ):
                return False
        return True
    if kind is list:
        if len(a) != len(b):
            return False
        for value, other in zip(a, b, strict=True):
            if value is not other and not json_equal(value, other):
                return False
        return True
    return bool(a == b)


# Copies that ``==`` compares as JSON.


class _Exact:
    """A boolean, or a number equal to 0 or 1, inside a comparable copy.

    Its ``==`` also requires both sides to be booleans or both numbers, so the
    ``==`` of dicts and lists, which runs in C, distinguishes ``True`` from ``1``.
    """

    __slots__ = ("value",)

    def __init__(self, value: bool | int | float) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        if type(other) is _Exact:
            other = other.value
        value = self.value
        return (type(other) is bool) is (type(value) is bool) and bool(other == value)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"_Exact({self.value!r})"


_EXACT_TRUE: Final = _Exact(True)
_EXACT_FALSE: Final = _Exact(False)
_EXACT_ONE: Final = _Exact(1)
_EXACT_ZERO: Final = _Exact(0)


def _exact(value: Any) -> Any:
    """Wrap the scalars that Python's ``==`` mixes up with booleans."""
    if value is True:
        return _EXACT_TRUE
    if value is False:
        return _EXACT_FALSE
    kind = type(value)
    if kind is int:
        if value == 1:
            return _EXACT_ONE
        if value == 0:
            return _EXACT_ZERO
    elif kind is float and (value == 1 or value == 0):
        return _Exact(value)
    return value


def _mark(value: Any) -> Any:
    """Wrap, in place, the values of a fresh plain copy that need it."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            marked = _mark(item)
            if marked is not item:
                value[key] = marked
        return value
    if kind is list:
        for index, item in enumerate(value):
            marked = _mark(item)
            if marked is not item:
                value[index] = marked
        return value
    return _exact(value)


def comparable_copy(value: Any) -> Any:
    """Return a deep copy of a JSON value that Python's ``==`` compares as JSON.

    ``comparable_copy(a) == b`` is true exactly when ``json_equal(a, b)`` is, for
    any JSON value ``b``, and runs at the speed of ``==`` on plain containers.
    The copy stores booleans, and numbers equal to 0 or 1, in a wrapper:
    :func:`plain_copy` turns it back into plain JSON, and :func:`diff` takes one
    as ``old`` with ``comparable_old=True``.

    Raises:
        TypeError: ``value`` contains something that is not JSON.
    """
    return _mark(copy_json(value))


def plain_copy(value: Any) -> Any:
    """Return a plain deep copy of a value made by :func:`comparable_copy`."""
    kind = type(value)
    if kind is _Exact:
        return value.value
    if kind is dict:
        return {key: plain_copy(item) for key, item in value.items()}
    if kind is list:
        return [plain_copy(item) for item in value]
    return value


# Computing changes.


def diff(
    old: Any, new: Any, *, copy_old: bool = True, comparable_old: bool = False
) -> list[Change]:
    """Return the changes that turn ``old`` into ``new``, in an order that applies.

    Neither value is mutated. The ``new`` values in the changes are copies. The
    ``old`` values are copies too, unless ``copy_old`` is false: then they are
    parts of ``old`` itself, for a caller that applies the changes to ``old`` and
    so detaches those parts from it.

    With ``comparable_old``, ``old`` is a :func:`comparable_copy`. Equal parts of
    the two values are then skipped with ``==``, which runs in C, and the
    ``old`` values in the changes are plain copies.

    Arrays compare element by element after their equal prefix. An element
    that the new array no longer has, found by looking a few elements ahead,
    becomes a ``delete``, so removing one element is one ``delete`` even when
    others are appended. Other differing elements are compared in place. A
    shrinking array deletes its surplus from the highest index down, and a
    growing one appends with ``set`` at its length, its length plus one, and
    so on. Inserting before the end shows as changes to every later element,
    because changes cannot insert.

    Raises:
        TypeError: a changed value is not JSON, or a path has a non-string key.
    """
    if comparable_old:
        differ = _Differ(plain_copy, operator.eq)
    else:
        differ = _Differ(copy_json if copy_old else _same_value, json_equal)
    differ.compare(old, new, (), None)
    return differ.changes


def _same_value(value: Any) -> Any:
    return value


def _path_item(key: Any) -> str:
    if type(key) is not str:
        raise TypeError(
            f"object key {key!r} is a {type(key).__name__}, not a str: "
            "JSON object keys are strings"
        )
    return key


class _Differ:
    """Collects the changes between two values while walking both."""

    __slots__ = ("changes", "copy_old", "equal")

    def __init__(self, copy_old: Copier, equal: Callable[[Any, Any], bool]) -> None:
        self.changes: list[Change] = []
        self.copy_old = copy_old
        self.equal = equal

    def compare(self, old: Any, new: Any, path: Path, key: str | None) -> None:
        """Add the changes that turn ``old`` into ``new`` at ``path`` plus ``key``."""
        kind = type(new)
        if kind is not type(old):
            if type(old) is _Exact:
                if old != new:
                    self.set(path, key, new, old)
                return
            kind = _kind(new)
            if kind is not _kind(old):
                self.set(path, key, new, old)
                return
        if kind is dict:
            self.dicts(old, new, path if key is None else (*path, key))
        elif kind is list:
            self.lists(old, new, path if key is None else (*path, key))
        elif old != new:
            self.set(path, key, new, old)

    def set(self, path: Path, key: str | None, new: Any, old: Any = _MISSING) -> None:
        full_path = list(path) if key is None else [*path, key]
        change: Change = {"type": "set", "path": full_path, "new": copy_json(new)}
        if old is not _MISSING:
            change["old"] = self.copy_old(old)
        self.changes.append(change)

    def delete(self, path: Path, key: str, old: Any) -> None:
        self.changes.append(
            {"type": "delete", "path": [*path, key], "old": self.copy_old(old)}
        )

    def dicts(self, old: dict[str, Any], new: dict[str, Any], path: Path) -> None:
        found = 0
        for key, new_value in new.items():
            old_value = old.get(key, _MISSING)
            if old_value is new_value:
                found += 1
                continue
            if old_value is _MISSING:
                self.set(path, _path_item(key), new_value)
                continue
            found += 1
            kind = type(new_value)
            if kind is type(old_value) and kind in _SCALARS:
                if old_value != new_value:
                    self.set(path, key, new_value, old_value)
                continue
            if self.equal is operator.eq and old_value == new_value:
                continue
            self.compare(old_value, new_value, path, _path_item(key))

        # Every key of ``old`` that ``new`` has was counted, so a shortfall means
        # some keys were removed.
        if found != len(old):
            for key, old_value in old.items():
                if key not in new:
                    self.delete(path, _path_item(key), old_value)

    def lists(self, old: list[Any], new: list[Any], path: Path) -> None:
        old_length = len(old)
        new_length = len(new)
        start = self.equal_run(old, 0, new, 0, min(old_length, new_length))

        # A shrinking array keeps its equal suffix, so that a run of removed
        # elements becomes deletes. A growing one does not, because it would
        # need inserts before the suffix, which changes cannot express.
        old_end = old_length
        new_end = new_length
        if new_length < old_length:
            suffix = self.equal_tail(old, new, new_length - start)
            old_end -= suffix
            new_end -= suffix

        # The array is new[:index] + old[old_index:] here, and its index-th
        # element is next to change.
        old_index = start
        index = start
        while old_index < old_end and index < new_end:
            run = self.equal_run(
                old, old_index, new, index, min(old_end - old_index, new_end - index)
            )
            if run:
                old_index += run
                index += run
                continue
            old_value = old[old_index]
            new_value = new[index]
            # With a suffix kept, never delete more than the surplus.
            limit = _LOOKAHEAD
            if old_end < old_length:
                limit = min(limit, (old_end - old_index) - (new_end - index))
            removed = self.removed_before(old, old_index, old_end, new_value, limit)
            if removed:
                for position in range(index + removed - 1, index - 1, -1):
                    self.delete(path, str(position), old[old_index + position - index])
                old_index += removed
                continue
            self.items(old_value, new_value, path, index)
            old_index += 1
            index += 1

        for position in range(index, new_end):
            self.set(path, str(position), new[position])
        surplus = old_end - old_index
        for position in range(index + surplus - 1, index - 1, -1):
            self.delete(path, str(position), old[old_index + position - index])

    def equal_run(
        self, old: list[Any], old_start: int, new: list[Any], new_start: int, count: int
    ) -> int:
        """Return how many of the next ``count`` elements are equal in both arrays."""
        if self.equal is operator.eq:
            # Comparing in C: the index of the first pair that differs.
            pairs = map(
                operator.ne,
                islice(old, old_start, old_start + count),
                islice(new, new_start, new_start + count),
            )
            return next(compress(range(count), pairs), count)
        run = 0
        while run < count and json_equal(old[old_start + run], new[new_start + run]):
            run += 1
        return run

    def equal_tail(self, old: list[Any], new: list[Any], count: int) -> int:
        """Return how many of the last ``count`` elements are equal in both arrays."""
        if self.equal is operator.eq:
            pairs = map(
                operator.ne, islice(reversed(old), count), islice(reversed(new), count)
            )
            return next(compress(range(count), pairs), count)
        run = 0
        while run < count and json_equal(old[-1 - run], new[-1 - run]):
            run += 1
        return run

    def removed_before(
        self, old: list[Any], start: int, end: int, value: Any, limit: int
    ) -> int:
        """Return how many elements of ``old`` from ``start`` on precede ``value``.

        Looks at most ``limit`` elements ahead, and returns 0 if none there is
        equal to ``value``.
        """
        for count in range(1, min(limit, end - start - 1) + 1):
            if self.equal(old[start + count], value):
                return count
        return 0

    def items(self, old_value: Any, new_value: Any, path: Path, index: int) -> None:
        if old_value is new_value:
            return
        kind = type(new_value)
        if kind is type(old_value) and kind in _SCALARS:
            if old_value != new_value:
                self.set(path, str(index), new_value, old_value)
            return
        self.compare(old_value, new_value, path, str(index))


# Applying and reverting changes.


def validate_change(change: Any, index: int = 0) -> Change:
    """Check the shape of one change; return it unchanged.

    ``index`` is the change's position in its list, for the error message.

    Raises:
        MessageError: the change is not an object, its ``type`` is not ``set`` or
            ``delete``, its ``path`` is not a list of strings, a ``set`` has no
            ``new`` value, or a ``delete`` has an empty path.
    """
    if not isinstance(change, dict):
        raise MessageError(
            f"change {index} is a {type(change).__name__}, not an object"
        )
    kind = change.get("type")
    if kind not in _CHANGE_TYPES:
        raise MessageError(
            f"change {index} has an invalid type {kind!r}: expected 'set' or 'delete'"
        )
    path = change.get("path")
    if not isinstance(path, list) or not all(type(item) is str for item in path):
        raise MessageError(
            f"change {index} has an invalid path {path!r}: expected a list of strings"
        )
    if kind == "set" and "new" not in change:
        raise MessageError(f"change {index} (set at path {path!r}) has no new value")
    if kind == "delete" and not path:
        raise MessageError(
            f"change {index} deletes the empty path: only a set can replace the "
            "whole document"
        )
    return change


def apply_changes(
    document: dict[str, Any],
    changes: list[Change],
    *,
    copy_new: Copier = copy_json,
    copy_removed: Copier | None = None,
    inverse: bool = True,
) -> list[Change]:
    """Apply changes to ``document`` in order; return the changes that undo them.

    The inverse changes are computed from the values that ``document`` held, not
    from the changes' ``old`` values, and undo everything when applied in the
    returned order. They may share values with ``changes``, never with
    ``document``. Changes cannot insert, so undoing a ``delete`` of an array
    element below the end takes one ``set`` per element after it, with copies of
    those elements. Pass ``inverse=False`` to skip building the inverse and get an
    empty list.

    ``copy_new`` makes the value that goes into ``document`` from a change's
    ``new`` value, so that ``document`` never shares values with ``changes``.
    ``copy_removed``, if given, makes the value that goes into the inverse from a
    value removed from ``document``; by default the removed value itself goes in.

    Raises:
        MessageError: change k is invalid; changes 0 to k-1 are undone first, so
            ``document`` is as it was.
    """
    if not isinstance(changes, list):
        raise MessageError(f"changes are a {type(changes).__name__}, not a list")
    applier = _Applier(document, copy_new, copy_removed, inverse, reverting=False)
    try:
        for index, change in enumerate(changes):
            applier.start(index, validate_change(change, index))
            if change["type"] == "set":
                applier.set(change["path"], change["new"], insert="old" not in change)
            else:
                applier.delete(change["path"])
    except Exception:
        applier.roll_back()
        raise
    return applier.inverse()


def revert_changes(
    document: dict[str, Any], changes: list[Change], *, copy_new: Copier = copy_json
) -> None:
    """Undo changes that were applied to ``document``, from their ``old`` values.

    The changes are undone last to first. A ``set`` with an ``old`` value sets it
    back, a ``set`` without one deletes the key or element, and a ``delete`` puts
    its ``old`` value back, inserting it if the parent is an array. ``copy_new``
    makes the values that go into ``document``, as in :func:`apply_changes`.

    Raises:
        MessageError: a change is invalid, a ``delete`` has no ``old`` value, or a
            path does not fit ``document``. The changes already reverted are
            applied again first, so ``document`` is as it was.
    """
    if not isinstance(changes, list):
        raise MessageError(f"changes are a {type(changes).__name__}, not a list")
    applier = _Applier(document, copy_new, None, inverse=False, reverting=True)
    try:
        for index in range(len(changes) - 1, -1, -1):
            change = applier.start(index, validate_change(changes[index], index))
            path = change["path"]
            if change["type"] == "set":
                if "old" in change:
                    applier.set(path, change["old"])
                else:
                    applier.delete(path)
            elif "old" in change:
                applier.put_back(path, change["old"])
            else:
                raise applier.invalid("it has no old value to put back")
    except Exception:
        applier.roll_back()
        raise


def _array_index(item: str) -> int | None:
    """Return an array index written as a canonical decimal string, else None."""
    if item.isascii() and item.isdigit() and (item == "0" or item[0] != "0"):
        return int(item)
    return None


# What to do to undo one step: (operation, container, key, value).
_SET_BACK: Final = 0  # container[key] = value
_REMOVE: Final = 1  # del container[key]
_INSERT: Final = 2  # container.insert(key, value)
_RESTORE_ROOT: Final = 3  # container.clear(); container.update(value)


class _Applier:
    """Applies steps to a document, remembering how to undo them."""

    def __init__(
        self,
        document: dict[str, Any],
        copy_new: Copier,
        copy_removed: Copier | None,
        inverse: bool,
        reverting: bool,
    ) -> None:
        self.document = document
        self.copy_new = copy_new
        self.copy_removed = copy_removed or _same_value
        self.reverting = reverting
        self.undo: list[tuple[int, Any, Any, Any]] = []
        # Each step's inverse changes, in the order that undoes that step.
        self.groups: list[list[Change]] | None = [] if inverse else None
        self.index = 0
        self.change: Change = {}

    def start(self, index: int, change: Change) -> Change:
        """Note which change the next steps come from, for error messages."""
        self.index = index
        self.change = change
        return change

    def invalid(self, reason: str) -> MessageError:
        kind = self.change["type"]
        what = f"change {self.index} ({kind} at path {self.change['path']!r})"
        if self.reverting:
            return MessageError(f"cannot revert {what}: {reason}")
        return MessageError(f"{what} is invalid: {reason}")

    def inverse(self) -> list[Change]:
        if self.groups is None:
            return []
        return [change for group in reversed(self.groups) for change in group]

    def roll_back(self) -> None:
        for operation, container, key, value in reversed(self.undo):
            if operation == _SET_BACK:
                container[key] = value
            elif operation == _REMOVE:
                del container[key]
            elif operation == _INSERT:
                container.insert(key, value)
            else:
                container.clear()
                container.update(value)
        self.undo.clear()

    # Finding what a path points at.

    def parent(self, path: list[str]) -> Any:
        """Return the container that contains the last item of ``path``."""
        node: Any = self.document
        for depth in range(len(path) - 1):
            item = path[depth]
            if isinstance(node, dict):
                child = node.get(item, _MISSING)
                if child is _MISSING:
                    raise self.invalid(f"key {item!r} not found")
                node = child
            elif isinstance(node, list):
                node = node[self.position(node, item)]
            else:
                raise self.invalid(_scalar_reason(path[:depth], node))
        if not isinstance(node, dict | list):
            raise self.invalid(_scalar_reason(path[:-1], node))
        return node

    def position(self, array: list[Any], item: str, allow_end: bool = False) -> int:
        """Return ``item`` as an index into ``array``, or its length if allowed."""
        position = _array_index(item)
        if position is None:
            raise self.invalid(f"{item!r} is not an array index")
        length = len(array)
        if position > length or (position == length and not allow_end):
            raise self.invalid(
                f"index {position} is past the end of the array (length {length})"
            )
        return position

    def value(self, value: Any) -> Any:
        try:
            return self.copy_new(value)
        except TypeError as exc:
            raise self.invalid(f"the value is not JSON: {exc}") from None

    # Steps.

    def set(self, path: list[str], new: Any, insert: bool = False) -> None:
        if not path:
            self.set_root(new)
            return
        container = self.parent(path)
        key: str | int = path[-1]
        if isinstance(container, dict):
            previous = container.get(key, _MISSING)
            container[key] = self.value(new)
        else:
            key = self.position(container, path[-1], allow_end=True)
            if key == len(container) or insert:
                # A set without ``old`` was made where the element did not exist:
                # a concurrent append ordered before it took the index, so it is
                # inserted there and neither element is lost.
                previous = _MISSING
                container.insert(key, self.value(new))
            else:
                previous = container[key]
                container[key] = self.value(new)

        if previous is _MISSING:
            self.undo.append((_REMOVE, container, key, None))
            self.add_inverse({"type": "delete", "path": path, "old": new})
        else:
            self.undo.append((_SET_BACK, container, key, previous))
            self.add_inverse(
                {
                    "type": "set",
                    "path": path,
                    "new": self.copy_removed(previous),
                    "old": new,
                }
            )

    def set_root(self, new: Any) -> None:
        if not isinstance(new, dict):
            raise self.invalid(
                f"the document must be an object, not a {type(new).__name__}"
            )
        value = self.value(new)
        previous = dict(self.document)
        self.document.clear()
        self.document.update(value)
        self.undo.append((_RESTORE_ROOT, self.document, None, previous))
        self.add_inverse(
            {"type": "set", "path": [], "new": self.copy_removed(previous), "old": new}
        )

    def delete(self, path: list[str]) -> None:
        container = self.parent(path)
        item = path[-1]
        if isinstance(container, dict):
            if item not in container:
                raise self.invalid(f"key {item!r} not found")
            previous = container.pop(item)
            self.undo.append((_SET_BACK, container, item, previous))
            self.add_inverse(
                {"type": "set", "path": path, "new": self.copy_removed(previous)}
            )
            return

        position = self.position(container, item)
        previous = container.pop(position)
        self.undo.append((_INSERT, container, position, previous))
        if self.groups is not None:
            self.groups.append(
                _reinsert(container, path, position, self.copy_removed(previous))
            )

    def put_back(self, path: list[str], old: Any) -> None:
        """Undo a ``delete``: set the key, or insert the array element."""
        container = self.parent(path)
        if isinstance(container, dict):
            self.set(path, old)
            return
        position = self.position(container, path[-1], allow_end=True)
        container.insert(position, self.value(old))
        self.undo.append((_REMOVE, container, position, None))

    def add_inverse(self, change: Change) -> None:
        if self.groups is not None:
            self.groups.append([change])


def _scalar_reason(prefix: list[str], node: Any) -> str:
    return f"the value at {prefix!r} is a {type(node).__name__}, not an object or array"


def _reinsert(
    container: list[Any], path: list[str], position: int, previous: Any
) -> list[Change]:
    """Return the changes that insert ``previous`` back at ``position``.

    Changes cannot insert, so every element from ``position`` on moves up one
    index with a ``set``, the last one appended.
    """
    length = len(container)
    if position == length:
        return [{"type": "set", "path": path, "new": previous}]
    base = path[:-1]
    moved = [copy_json(container[i]) for i in range(position, length)]
    group: list[Change] = [
        {"type": "set", "path": [*base, str(length)], "new": moved[-1]}
    ]
    for i in range(length - 1, position, -1):
        group.append(
            {
                "type": "set",
                "path": [*base, str(i)],
                "new": moved[i - 1 - position],
                "old": moved[i - position],
            }
        )
    group.append({"type": "set", "path": path, "new": previous, "old": moved[0]})
    return group
