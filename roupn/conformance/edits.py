"""Random edits of a JSON document, drawn once and made on several documents.

The diff strategy conformance tests make the same edits on a tracker's document
and on a plain reference document, then compare what the tracker reports.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from ..changes import json_equal
from ..interfaces import DocumentTracker
from .values import keys

__all__ = ["DICT_EDITS", "LIST_EDITS", "Edit", "draw_edit", "edit_all", "make_edit"]

small_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.text(max_size=2),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3)
    ),
    max_leaves=5,
)

DICT_EDITS = [
    "set",
    "set_new",
    "del",
    "pop",
    "popitem",
    "clear",
    "update",
    "setdefault",
    "ior",
    "move",
    "move_out",
    "edit_removed",
]
LIST_EDITS = [
    "set",
    "set_negative",
    "set_slice",
    "set_extended_slice",
    "del",
    "del_slice",
    "append",
    "extend",
    "iadd",
    "imul",
    "insert",
    "pop",
    "remove",
    "clear",
    "sort",
    "reverse",
    "move",
    "move_out",
]


@dataclass
class Edit:
    """One random mutation, drawn once and then made on several documents."""

    path: list[Any]
    action: str
    arguments: tuple[Any, ...]


def containers(value: Any, path: list[Any]) -> list[list[Any]]:
    """Return the paths of every dict and list in ``value``, itself first."""
    found = [path]
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        if isinstance(child, dict | list):
            found.extend(containers(child, [*path, key]))
    return found


def resolve(document: Any, path: list[Any]) -> Any:
    for key in path:
        document = document[key]
    return document


def draw_edit(data: st.DataObject, document: dict[str, Any]) -> Edit:
    paths = containers(document, [])
    path = data.draw(st.sampled_from(paths))
    container = resolve(document, path)
    value = data.draw(small_values)
    source = data.draw(st.sampled_from(paths))
    if isinstance(container, dict):
        action = data.draw(st.sampled_from(DICT_EDITS))
        existing = sorted(container)
        key = data.draw(st.sampled_from(existing)) if existing else data.draw(keys)
        if action == "set_new" or not existing:
            key = data.draw(keys)
        if (
            action in ("del", "pop", "popitem", "move_out", "edit_removed")
            and not existing
        ):
            action = "set"
        return Edit(path, action, (key, value, source, data.draw(keys)))

    action = data.draw(st.sampled_from(LIST_EDITS))
    length = len(container)
    if length == 0 and action in (
        "set",
        "set_negative",
        "del",
        "pop",
        "remove",
        "move",
        "move_out",
    ):
        action = "append"
    index = data.draw(st.integers(0, max(length - 1, 0)))
    start = data.draw(st.integers(-length - 1, length + 1))
    stop = data.draw(st.integers(-length - 1, length + 1))
    step = data.draw(st.sampled_from([2, -1, -2]))
    values = data.draw(st.lists(small_values, max_size=3))
    count = data.draw(st.integers(0, 2))
    return Edit(path, action, (index, value, source, start, stop, step, values, count))


def make_edit(document: dict[str, Any], edit: Edit, plain: bool) -> None:
    """Make ``edit`` on ``document``.

    On a plain document, values taken from the document are deep-copied first:
    a tracked document copies them itself, and a plain one would otherwise hold
    one container in two places.
    """
    container = resolve(document, edit.path)
    action = edit.action
    # Each document gets its own copy of the drawn values.
    arguments = copy.deepcopy(edit.arguments)

    def fresh(value: Any) -> Any:
        return copy.deepcopy(value) if plain else value

    if isinstance(container, dict):
        key, value, source, other_key = arguments
        if action in ("set", "set_new"):
            container[key] = value
        elif action == "del":
            del container[key]
        elif action == "pop":
            container.pop(key)
        elif action == "popitem":
            container.popitem()
        elif action == "clear":
            container.clear()
        elif action == "update":
            container.update({key: value}, **{other_key + "_": copy.deepcopy(value)})
        elif action == "setdefault":
            container.setdefault(key, value)
        elif action == "ior":
            container |= {key: value}
        elif action == "move":
            container[key] = fresh(resolve(document, source))
        elif action == "move_out":
            removed = container.pop(key)
            container[other_key] = removed
        elif action == "edit_removed":
            removed = container.pop(key)
            if isinstance(removed, dict):
                removed["z"] = 1
            elif isinstance(removed, list):
                removed.append(1)
        return

    index, value, source, start, stop, step, values, count = arguments
    length = len(container)
    if action == "set":
        container[index] = value
    elif action == "set_negative":
        container[index - length] = value
    elif action == "set_slice":
        container[start:stop] = values
    elif action == "set_extended_slice":
        positions = range(*slice(start, stop, step).indices(length))
        container[start:stop:step] = [copy.deepcopy(value) for _ in positions]
    elif action == "del":
        del container[index]
    elif action == "del_slice":
        del container[start:stop:step]
    elif action == "append":
        container.append(value)
    elif action == "extend":
        container.extend(values)
    elif action == "iadd":
        container += values
    elif action == "imul":
        if plain:
            copies = [copy.deepcopy(list(container)) for _ in range(max(count - 1, 0))]
            if count <= 0:
                container.clear()
            for items in copies:
                container.extend(items)
        else:
            container *= count
    elif action == "insert":
        container.insert(start, value)
    elif action == "pop":
        container.pop(index)
    elif action == "remove":
        container.remove(container[index])
    elif action == "clear":
        container.clear()
    elif action == "sort":
        container.sort(key=lambda item: json.dumps(item, sort_keys=True))
    elif action == "reverse":
        container.reverse()
    elif action == "move":
        container[index] = fresh(resolve(document, source))
    elif action == "move_out":
        removed = container.pop(index)
        container.insert(start, removed)


def edit_all(
    data: st.DataObject,
    trackers: list[DocumentTracker],
    reference: dict[str, Any],
    plain: Callable[[DocumentTracker], bool] = lambda tracker: True,
) -> None:
    """Make the same random edits on every tracker's document and on ``reference``.

    ``plain`` returns whether a tracker's document needs values taken from it
    copied before they are put back (see :func:`make_edit`). The default copies
    them for every tracker, which any strategy handles.
    """
    for _ in range(data.draw(st.integers(1, 8))):
        drawn = draw_edit(data, reference)
        make_edit(reference, drawn, plain=True)
        for tracker in trackers:
            make_edit(
                tracker.document,
                drawn,
                plain=plain(tracker),
            )
            assert json_equal(tracker.document, reference), drawn
