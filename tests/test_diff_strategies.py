"""The snapshot and tracked diff strategies, their trackers and tracked containers."""

from __future__ import annotations

import copy
import json
import pickle
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from roupn_diff.snapshot import SnapshotStrategy
from roupn_diff.tracked import TrackedDict, TrackedList, TrackedStrategy
from test_changes import json_values, keys

from roupn.changes import (
    Change,
    apply_changes,
    copy_json,
    diff,
    json_equal,
    revert_changes,
)
from roupn.errors import MessageError
from roupn.interfaces import DiffStrategy, DocumentTracker
from roupn.plugins import BackendKind, get_registry

STRATEGIES: list[DiffStrategy] = [SnapshotStrategy(), TrackedStrategy()]
by_name = pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.name)

START = {
    "todos": [{"text": "buy milk", "done": False}, {"text": "walk dog", "done": True}],
    "title": "list",
    "meta": {"count": 2, "tags": ["a", None]},
}


def replayed(start: dict[str, Any], changes: list[Change]) -> dict[str, Any]:
    document = copy_json(start)
    apply_changes(document, changes)
    return document


def tracked(document: dict[str, Any] | None = None) -> tuple[Any, TrackedDict]:
    tracker = TrackedStrategy().track(
        copy_json(START if document is None else document)
    )
    return tracker, tracker.document


# Registration and the interface.


def test_strategies_registered() -> None:
    registry = get_registry()
    assert {"snapshot", "tracked"} <= set(registry.names(BackendKind.DIFF_STRATEGY))
    for name in ("snapshot", "tracked"):
        strategy = registry.load(BackendKind.DIFF_STRATEGY, name)
        assert strategy.name == name


@by_name
def test_tracker_matches_protocol(strategy: DiffStrategy) -> None:
    tracker: DocumentTracker = strategy.track(copy_json(START))
    assert tracker.document == START
    assert tracker.document is tracker.document
    assert tracker.take_changes() == []


@by_name
def test_strategy_diff_applies(strategy: DiffStrategy) -> None:
    new = {"todos": [{"text": "walk dog", "done": True}], "title": None}
    changes = strategy.diff(START, new)
    assert replayed(START, changes) == new


@by_name
def test_take_changes_starts_new_set(strategy: DiffStrategy) -> None:
    tracker = strategy.track(copy_json(START))
    tracker.document["title"] = "groceries"
    assert tracker.take_changes() == [
        {"type": "set", "path": ["title"], "new": "groceries", "old": "list"}
    ]
    assert tracker.take_changes() == []
    tracker.document["todos"][0]["done"] = True
    assert tracker.take_changes() == [
        {"type": "set", "path": ["todos", "0", "done"], "new": True, "old": False}
    ]


@by_name
def test_apply_not_recorded(strategy: DiffStrategy) -> None:
    tracker = strategy.track(copy_json(START))
    inverse = tracker.apply(
        [
            {"type": "set", "path": ["todos", "2"], "new": {"text": "x"}},
            {"type": "delete", "path": ["todos", "0"]},
            {"type": "set", "path": ["title"], "new": "remote", "old": "ignored"},
        ]
    )
    assert tracker.take_changes() == []
    assert tracker.document["title"] == "remote"
    assert [t["text"] for t in tracker.document["todos"]] == ["walk dog", "x"]

    tracker.apply(inverse)
    assert json_equal(tracker.document, START)
    assert tracker.take_changes() == []


@by_name
def test_apply_invalid_changes_nothing(strategy: DiffStrategy) -> None:
    tracker = strategy.track(copy_json(START))
    with pytest.raises(
        MessageError, match=r"change 1 \(set at path \['todos', '5'\]\)"
    ):
        tracker.apply(
            [
                {"type": "set", "path": ["title"], "new": "x"},
                {"type": "set", "path": ["todos", "5"], "new": 1},
            ]
        )
    assert json_equal(tracker.document, START)
    tracker.document["title"] = "local"
    assert tracker.take_changes() == [
        {"type": "set", "path": ["title"], "new": "local", "old": "list"}
    ]


@by_name
def test_apply_keeps_pending_changes(strategy: DiffStrategy) -> None:
    tracker = strategy.track(copy_json(START))
    tracker.document["title"] = "local"
    tracker.apply([{"type": "set", "path": ["meta", "count"], "new": 3}])
    assert tracker.take_changes() == [
        {"type": "set", "path": ["title"], "new": "local", "old": "list"}
    ]


@by_name
def test_apply_rebases_pending_on_shift(strategy: DiffStrategy) -> None:
    # A local edit of the second to-do, then another member removes the first:
    # the edit must reach the others at the to-do's new index.
    tracker = strategy.track(copy_json(START))
    tracker.document["todos"][1]["done"] = False
    remote = [{"type": "delete", "path": ["todos", "0"]}]
    tracker.apply(remote)
    assert tracker.document["todos"] == [{"text": "walk dog", "done": False}]

    others = replayed(START, remote)
    assert replayed(others, tracker.take_changes()) == tracker.document


@by_name
def test_apply_conflict_with_pending(strategy: DiffStrategy) -> None:
    # The remote append fits the local document only because of a local append,
    # so the others (without the local append) reject it. The next changes must
    # bring them to this document anyway.
    tracker = strategy.track(copy_json(START))
    tracker.document["todos"].append({"text": "local"})
    remote = [{"type": "set", "path": ["todos", "3"], "new": {"text": "remote"}}]
    tracker.apply(remote)
    texts = [t["text"] for t in tracker.document["todos"]]
    assert texts == ["buy milk", "walk dog", "local", "remote"]

    others = copy_json(START)
    with pytest.raises(MessageError):
        apply_changes(others, remote)
    assert replayed(others, tracker.take_changes()) == tracker.document


@by_name
def test_revert_own_changes(strategy: DiffStrategy) -> None:
    tracker = strategy.track(copy_json(START))
    tracker.document["todos"].pop(0)
    tracker.document["meta"]["count"] = 1
    changes = tracker.take_changes()
    tracker.revert(changes)
    assert json_equal(tracker.document, START)
    assert tracker.take_changes() == []


@by_name
def test_revert_keeps_pending_changes(strategy: DiffStrategy) -> None:
    tracker = strategy.track(copy_json(START))
    tracker.document["todos"].pop(0)
    sent = tracker.take_changes()
    tracker.document["todos"][0]["done"] = False
    tracker.revert(sent)
    assert tracker.document["todos"] == [TODO_0, {"text": "walk dog", "done": False}]

    # The others revert the sent changes too, so they hold START again.
    assert replayed(START, tracker.take_changes()) == tracker.document


@by_name
def test_revert_invalid_changes_nothing(strategy: DiffStrategy) -> None:
    tracker = strategy.track(copy_json(START))
    tracker.document["title"] = "local"
    with pytest.raises(MessageError, match="cannot revert change 0"):
        tracker.revert([{"type": "delete", "path": ["absent", "x"], "old": 1}])
    assert tracker.document["title"] == "local"
    assert tracker.take_changes() == [
        {"type": "set", "path": ["title"], "new": "local", "old": "list"}
    ]


@by_name
def test_replace_discards_pending(strategy: DiffStrategy) -> None:
    tracker = strategy.track(copy_json(START))
    document = tracker.document
    document["title"] = "local"
    state = {"title": "synced", "todos": [{"text": "t"}]}
    tracker.replace(state)
    assert tracker.document is document
    assert document == state
    assert tracker.take_changes() == []

    state["todos"][0]["text"] = "edited after replace"
    assert document["todos"][0]["text"] == "t"
    document["todos"][0]["text"] = "u"
    assert tracker.take_changes() == [
        {"type": "set", "path": ["todos", "0", "text"], "new": "u", "old": "t"}
    ]


@by_name
def test_changes_share_nothing_with_document(strategy: DiffStrategy) -> None:
    tracker = strategy.track(copy_json(START))
    document = tracker.document
    document["meta"]["tags"] = [{"a": 1}]
    document["new"] = {"list": [1, 2]}
    changes = tracker.take_changes()
    text = json.dumps(changes)
    document["meta"]["tags"][0]["a"] = 2
    document["new"]["list"].append(3)
    assert json.dumps(changes) == text


@by_name
def test_non_json_value_raises(strategy: DiffStrategy) -> None:
    tracker = strategy.track({})
    with pytest.raises(TypeError, match="not a JSON value"):
        tracker.document["a"] = {"b": (1, 2)}
        tracker.take_changes()


def test_snapshot_tracks_given_dict() -> None:
    document = copy_json(START)
    tracker = SnapshotStrategy().track(document)
    assert tracker.document is document


def test_tracked_copies_given_dict() -> None:
    document = copy_json(START)
    tracker = TrackedStrategy().track(document)
    assert tracker.document is not document
    assert isinstance(tracker.document, TrackedDict)
    assert isinstance(tracker.document["todos"], TrackedList)
    document["title"] = "not tracked"
    assert tracker.document["title"] == "list"


# Tracked containers: behaving as dicts and lists.


def test_tracked_serializes_as_plain() -> None:
    _, document = tracked()
    assert json.dumps(document) == json.dumps(START)
    assert msgpack.unpackb(msgpack.packb(document)) == START
    plain = copy_json(START)
    assert document == plain
    assert plain == document


def test_tracked_copies_are_plain() -> None:
    _, document = tracked()
    deep = copy.deepcopy(document)
    assert type(deep) is dict
    assert type(deep["todos"]) is list
    assert type(deep["todos"][0]) is dict
    assert deep == START
    unpickled = pickle.loads(pickle.dumps(document))
    assert type(unpickled) is dict
    assert type(unpickled["todos"]) is list
    assert unpickled == START
    assert type(copy.copy(document)) is dict
    assert type(copy.copy(document["todos"])) is list


def test_tracked_rejects_non_string_key() -> None:
    tracker, document = tracked()
    with pytest.raises(TypeError, match="document keys must be str"):
        document[1] = "x"  # type: ignore[index]
    with pytest.raises(TypeError, match="document keys must be str"):
        document["meta"] = {2: "x"}
    assert tracker.take_changes() == []


def test_tracked_list_errors_match_list() -> None:
    tracker, document = tracked()
    todos = document["todos"]
    with pytest.raises(IndexError, match="list assignment index out of range"):
        todos[2] = 1
    with pytest.raises(IndexError, match="list assignment index out of range"):
        del todos[-3]
    with pytest.raises(IndexError, match="pop index out of range"):
        todos.pop(5)
    with pytest.raises(IndexError, match="pop from empty list"):
        document["meta"]["tags"].clear()
        document["meta"]["tags"].pop()
    with pytest.raises(ValueError, match="extended slice of size 1"):
        todos[::2] = [1, 2]
    with pytest.raises(ValueError):
        todos.remove("absent")
    with pytest.raises(KeyError):
        del document["absent"]
    with pytest.raises(KeyError):
        document.pop("absent")
    assert document.pop("absent", 5) == 5
    assert tracker.take_changes() == [
        {"type": "set", "path": ["meta", "tags"], "new": [], "old": ["a", None]}
    ]


# Tracked containers: what each mutation records.


@dataclass
class Case:
    """One mutation of the START document and the changes it must record."""

    name: str
    edit: Any
    changes: list[Change]


def _setitem_nested(d: Any) -> None:
    d["todos"][1]["text"] = "walk cat"


def _setitem_new(d: Any) -> None:
    d["owner"] = {"name": "ann"}


def _setitem_list(d: Any) -> None:
    d["todos"][-1] = "gone"


def _delitem_dict(d: Any) -> None:
    del d["title"]


def _delitem_list(d: Any) -> None:
    del d["todos"][0]


def _del_slice(d: Any) -> None:
    d["meta"]["tags"].extend(["b", "c"])
    del d["meta"]["tags"][::2]


def _pop_dict(d: Any) -> None:
    d.pop("meta")


def _popitem(d: Any) -> None:
    d["meta"].popitem()


def _clear_dict(d: Any) -> None:
    d["meta"].clear()


def _update(d: Any) -> None:
    d["meta"].update({"count": 3}, tags=None)


def _update_pairs(d: Any) -> None:
    d["meta"].update([("count", 4)])


def _setdefault(d: Any) -> None:
    d.setdefault("title", "unused")
    d.setdefault("extra", []).append(1)


def _ior(d: Any) -> None:
    meta = d["meta"]
    meta |= {"count": 0}


def _append(d: Any) -> None:
    d["todos"].append({"text": "new"})


def _extend(d: Any) -> None:
    d["meta"]["tags"].extend(iter([1, 2]))


def _iadd(d: Any) -> None:
    tags = d["meta"]["tags"]
    tags += [True]


def _imul(d: Any) -> None:
    tags = d["meta"]["tags"]
    tags *= 2


def _imul_zero(d: Any) -> None:
    tags = d["meta"]["tags"]
    tags *= 0


def _insert_front(d: Any) -> None:
    d["todos"].insert(0, {"text": "first"})


def _insert_end(d: Any) -> None:
    d["todos"].insert(10, {"text": "last"})


def _pop_list(d: Any) -> None:
    d["todos"].pop(0)


def _pop_last(d: Any) -> None:
    d["todos"].pop()


def _remove(d: Any) -> None:
    d["meta"]["tags"].remove("a")


def _clear_list(d: Any) -> None:
    d["todos"].clear()


def _sort(d: Any) -> None:
    d["todos"].sort(key=lambda todo: todo["done"], reverse=True)


def _reverse(d: Any) -> None:
    d["meta"]["tags"].reverse()


def _set_slice(d: Any) -> None:
    d["meta"]["tags"][0:1] = ["x", "y"]


def _set_slice_shrink(d: Any) -> None:
    d["todos"][0:1] = []


def _set_extended_slice(d: Any) -> None:
    d["meta"]["tags"][::-1] = ["p", "q"]


def _same_value(d: Any) -> None:
    d["title"] = "list"
    d["todos"][0] = d["todos"][0]


TODO_0 = {"text": "buy milk", "done": False}
TODO_1 = {"text": "walk dog", "done": True}


def _set(path: list[str], new: Any, *old: Any) -> Change:
    change: Change = {"type": "set", "path": path, "new": new}
    if old:
        change["old"] = old[0]
    return change


def _delete(path: list[str], old: Any) -> Change:
    return {"type": "delete", "path": path, "old": old}


MUTATIONS = [
    Case(
        "setitem_nested",
        _setitem_nested,
        [_set(["todos", "1", "text"], "walk cat", "walk dog")],
    ),
    Case("setitem_new", _setitem_new, [_set(["owner"], {"name": "ann"})]),
    Case("setitem_list", _setitem_list, [_set(["todos", "1"], "gone", TODO_1)]),
    Case("delitem_dict", _delitem_dict, [_delete(["title"], "list")]),
    Case("delitem_list", _delitem_list, [_delete(["todos", "0"], TODO_0)]),
    Case(
        "del_slice",
        _del_slice,
        [
            _set(["meta", "tags", "2"], "b"),
            _set(["meta", "tags", "3"], "c"),
            _delete(["meta", "tags", "2"], "b"),
            _delete(["meta", "tags", "0"], "a"),
        ],
    ),
    Case("pop_dict", _pop_dict, [_delete(["meta"], START["meta"])]),
    Case("popitem", _popitem, [_delete(["meta", "tags"], ["a", None])]),
    Case(
        "clear_dict",
        _clear_dict,
        [_delete(["meta", "count"], 2), _delete(["meta", "tags"], ["a", None])],
    ),
    Case(
        "update",
        _update,
        [_set(["meta", "count"], 3, 2), _set(["meta", "tags"], None, ["a", None])],
    ),
    Case("update_pairs", _update_pairs, [_set(["meta", "count"], 4, 2)]),
    Case("setdefault", _setdefault, [_set(["extra"], []), _set(["extra", "0"], 1)]),
    Case("ior", _ior, [_set(["meta", "count"], 0, 2)]),
    Case("append", _append, [_set(["todos", "2"], {"text": "new"})]),
    Case(
        "extend",
        _extend,
        [_set(["meta", "tags", "2"], 1), _set(["meta", "tags", "3"], 2)],
    ),
    Case("iadd", _iadd, [_set(["meta", "tags", "2"], True)]),
    Case(
        "imul",
        _imul,
        [_set(["meta", "tags", "2"], "a"), _set(["meta", "tags", "3"], None)],
    ),
    Case("imul_zero", _imul_zero, [_set(["meta", "tags"], [], ["a", None])]),
    Case(
        "insert_front",
        _insert_front,
        [
            _set(["todos", "0"], {"text": "first"}, TODO_0),
            _set(["todos", "1"], TODO_0, TODO_1),
            _set(["todos", "2"], TODO_1),
        ],
    ),
    Case("insert_end", _insert_end, [_set(["todos", "2"], {"text": "last"})]),
    Case("pop_list", _pop_list, [_delete(["todos", "0"], TODO_0)]),
    Case("pop_last", _pop_last, [_delete(["todos", "1"], TODO_1)]),
    Case("remove", _remove, [_delete(["meta", "tags", "0"], "a")]),
    Case("clear_list", _clear_list, [_set(["todos"], [], [TODO_0, TODO_1])]),
    Case(
        "sort",
        _sort,
        [_set(["todos", "0"], TODO_1, TODO_0), _set(["todos", "1"], TODO_0, TODO_1)],
    ),
    Case(
        "reverse",
        _reverse,
        [
            _set(["meta", "tags", "0"], None, "a"),
            _set(["meta", "tags", "1"], "a", None),
        ],
    ),
    Case(
        "set_slice",
        _set_slice,
        [
            _set(["meta", "tags", "0"], "x", "a"),
            _set(["meta", "tags", "1"], "y", None),
            _set(["meta", "tags", "2"], None),
        ],
    ),
    Case("set_slice_shrink", _set_slice_shrink, [_delete(["todos", "0"], TODO_0)]),
    Case(
        "set_extended_slice",
        _set_extended_slice,
        [_set(["meta", "tags", "1"], "p", None), _set(["meta", "tags", "0"], "q", "a")],
    ),
    Case("same_value", _same_value, []),
]


@pytest.mark.parametrize("case", MUTATIONS, ids=lambda case: case.name)
def test_mutation_recorded(case: Case) -> None:
    tracker, document = tracked()
    expected = copy_json(START)
    case.edit(expected)
    case.edit(document)
    assert json_equal(document, expected)

    changes = tracker.take_changes()
    assert changes == case.changes
    assert json_equal(replayed(START, changes), expected)
    reverted = copy_json(expected)
    revert_changes(reverted, changes)
    assert json_equal(reverted, START)


@pytest.mark.parametrize("case", MUTATIONS, ids=lambda case: case.name)
def test_mutation_matches_snapshot(case: Case) -> None:
    snapshot = SnapshotStrategy().track(copy_json(START))
    case.edit(snapshot.document)
    assert json_equal(replayed(START, snapshot.take_changes()), snapshot.document)


def test_paths_follow_shifts() -> None:
    tracker, document = tracked()
    second = document["todos"][1]
    document["todos"].insert(0, {"text": "first"})
    tracker.take_changes()
    second["done"] = False
    document["todos"].pop(0)
    second["text"] = "walk cat"
    assert tracker.take_changes() == [
        _set(["todos", "2", "done"], False, True),
        _delete(["todos", "0"], {"text": "first"}),
        _set(["todos", "1", "text"], "walk cat", "walk dog"),
    ]


def test_paths_follow_sort() -> None:
    tracker, document = tracked()
    first = document["todos"][0]
    document["todos"].reverse()
    tracker.take_changes()
    first["text"] = "x"
    assert tracker.take_changes() == [_set(["todos", "1", "text"], "x", "buy milk")]


def test_removed_container_not_recorded() -> None:
    tracker, document = tracked()
    meta = document.pop("meta")
    todo = document["todos"].pop()
    tracker.take_changes()
    meta["count"] = 5
    meta["tags"].append("b")
    todo["done"] = False
    assert tracker.take_changes() == []
    assert "meta" not in document


def test_removed_container_moves_in() -> None:
    tracker, document = tracked()
    meta = document.pop("meta")
    document["todos"].append(meta)
    assert document["todos"][2] is meta
    tracker.take_changes()
    meta["tags"].append("b")
    assert tracker.take_changes() == [_set(["todos", "2", "tags", "2"], "b")]


def test_attached_container_is_copied() -> None:
    tracker, document = tracked()
    document["copy"] = document["meta"]
    assert document["copy"] is not document["meta"]
    tracker.take_changes()
    document["copy"]["count"] = 9
    assert document["meta"]["count"] == 2
    assert tracker.take_changes() == [_set(["copy", "count"], 9, 2)]

    document["todos"].append(document["todos"][0])
    document["todos"][2]["done"] = True
    assert document["todos"][0]["done"] is False


def test_assigned_plain_value_is_converted() -> None:
    tracker, document = tracked()
    plain = {"list": [{"a": 1}]}
    document["x"] = plain
    plain["list"].append("not in the document")
    assert document["x"] == {"list": [{"a": 1}]}
    assert isinstance(document["x"]["list"][0], TrackedDict)
    tracker.take_changes()
    document["x"]["list"][0]["a"] = 2
    assert tracker.take_changes() == [_set(["x", "list", "0", "a"], 2, 1)]


def test_document_into_itself_copied() -> None:
    tracker, document = tracked({"a": 1})
    document["self"] = document
    assert document == {"a": 1, "self": {"a": 1}}
    assert tracker.take_changes() == [_set(["self"], {"a": 1})]


def test_other_tracker_container_copied() -> None:
    _, document = tracked()
    second, other = tracked({"x": []})
    meta = document.pop("meta")
    other["x"].append(meta)
    assert other["x"][0] is not meta
    assert second.take_changes() == [_set(["x", "0"], START["meta"])]
    meta["count"] = 1
    assert second.take_changes() == []


def test_containers_made_outside_tracker() -> None:
    tracker, document = tracked({})
    mapping = TrackedDict(x={"y": 1})
    mapping["z"] = [1]
    array = TrackedList([1, {"k": 2}])
    array.append(3)
    document["mapping"] = mapping
    document["array"] = array
    assert document["mapping"] is not mapping
    assert tracker.take_changes() == [
        _set(["mapping"], {"x": {"y": 1}, "z": [1]}),
        _set(["array"], [1, {"k": 2}, 3]),
    ]
    document["mapping"]["x"]["y"] = 5
    assert mapping == {"x": {"y": 1}, "z": [1]}
    assert tracker.take_changes() == [_set(["mapping", "x", "y"], 5, 1)]


def test_tracked_apply_does_not_record_nested() -> None:
    tracker, document = tracked()
    tracker.apply([{"type": "set", "path": ["todos", "2"], "new": {"text": "remote"}}])
    assert isinstance(document["todos"][2], TrackedDict)
    document["todos"][2]["text"] = "local"
    assert tracker.take_changes() == [_set(["todos", "2", "text"], "local", "remote")]


def test_tracked_inverse_is_plain() -> None:
    tracker, _ = tracked()
    inverse = tracker.apply([{"type": "delete", "path": ["meta"]}])
    assert inverse == [_set(["meta"], START["meta"])]
    assert type(inverse[0]["new"]) is dict
    assert type(inverse[0]["new"]["tags"]) is list


# Properties on random documents and edit sequences.

PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

documents = st.dictionaries(keys, json_values, max_size=4)
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
    data: st.DataObject, trackers: list[DocumentTracker], reference: dict[str, Any]
) -> None:
    """Make the same random edits on every tracker's document and on ``reference``."""
    for _ in range(data.draw(st.integers(1, 8))):
        drawn = draw_edit(data, reference)
        make_edit(reference, drawn, plain=True)
        for tracker in trackers:
            make_edit(
                tracker.document,
                drawn,
                plain=not isinstance(tracker.document, TrackedDict),
            )
            assert json_equal(tracker.document, reference), drawn


@PROPERTY_SETTINGS
@given(start=documents, data=st.data())
def test_strategies_agree_on_edits(start: dict[str, Any], data: st.DataObject) -> None:
    trackers = [strategy.track(copy_json(start)) for strategy in STRATEGIES]
    reference = copy_json(start)
    state = copy_json(start)
    for _ in range(2):
        edit_all(data, trackers, reference)
        for tracker in trackers:
            assert json_equal(tracker.document, reference)

        for tracker in trackers:
            changes = tracker.take_changes()
            assert json_equal(replayed(state, changes), reference)
            reverted = copy_json(reference)
            revert_changes(reverted, changes)
            assert json_equal(reverted, state)
        state = copy_json(reference)


@PROPERTY_SETTINGS
@given(start=documents, data=st.data())
def test_changes_replay_on_other_tracker(
    start: dict[str, Any], data: st.DataObject
) -> None:
    for strategy in STRATEGIES:
        tracker = strategy.track(copy_json(start))
        reference = copy_json(start)
        edit_all(data, [tracker], reference)
        changes = tracker.take_changes()
        text = json.dumps(changes)

        for receiving in STRATEGIES:
            other = receiving.track(copy_json(start))
            inverse = other.apply(json.loads(text))
            assert json_equal(other.document, reference)
            assert other.take_changes() == []
            other.apply(inverse)
            assert json_equal(other.document, start)
            assert other.take_changes() == []

        # Later edits must not reach into the changes already taken.
        edit_all(data, [tracker], reference)
        assert json.dumps(changes) == text


@PROPERTY_SETTINGS
@given(start=documents, data=st.data())
def test_apply_inverse_undoes_exactly(
    start: dict[str, Any], data: st.DataObject
) -> None:
    target = data.draw(documents)
    changes = diff(start, target)
    for strategy in STRATEGIES:
        tracker = strategy.track(copy_json(start))
        inverse = tracker.apply(changes)
        assert json_equal(tracker.document, target)
        tracker.apply(inverse)
        assert json_equal(tracker.document, start)
        assert tracker.take_changes() == []


@PROPERTY_SETTINGS
@given(start=documents, data=st.data())
def test_remote_changes_between_edits(
    start: dict[str, Any], data: st.DataObject
) -> None:
    # Others hold ``start``; this member edits, then applies another member's
    # changes before taking its own. The taken changes must bring the others,
    # who applied the same remote changes (or rejected them), to this document.
    remote_target = copy_json(start)
    edit_all(data, [], remote_target)
    remote = diff(start, remote_target)
    for strategy in STRATEGIES:
        tracker = strategy.track(copy_json(start))
        reference = copy_json(start)
        edit_all(data, [tracker], reference)
        try:
            tracker.apply(remote)
        except MessageError:
            assert json_equal(tracker.document, reference)
            continue
        others = copy_json(start)
        try:
            apply_changes(others, remote)
        except MessageError:
            others = copy_json(start)
        assert json_equal(replayed(others, tracker.take_changes()), tracker.document)


@PROPERTY_SETTINGS
@given(start=documents, data=st.data())
def test_revert_sent_with_pending(start: dict[str, Any], data: st.DataObject) -> None:
    # Undoing changes already sent, with newer edits waiting: the waiting
    # changes must bring the others, who undo the same sent changes, to this
    # document.
    for strategy in STRATEGIES:
        tracker = strategy.track(copy_json(start))
        reference = copy_json(start)
        edit_all(data, [tracker], reference)
        sent = tracker.take_changes()
        edit_all(data, [tracker], reference)
        try:
            tracker.revert(sent)
        except MessageError:
            assert json_equal(tracker.document, reference)
            continue
        assert json_equal(replayed(start, tracker.take_changes()), tracker.document)


@PROPERTY_SETTINGS
@given(start=documents, target=documents)
def test_replace_then_edit(start: dict[str, Any], target: dict[str, Any]) -> None:
    for strategy in STRATEGIES:
        tracker = strategy.track(copy_json(start))
        tracker.document["pending"] = 1
        tracker.replace(target)
        assert json_equal(tracker.document, target)
        assert tracker.take_changes() == []
        tracker.document["after"] = [1]
        assert replayed(target, tracker.take_changes()) == tracker.document
