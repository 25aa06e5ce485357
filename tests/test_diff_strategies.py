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
    json_equal,
    revert_changes,
)
from roupn.conformance import DiffStrategyConformance
from roupn.conformance.edits import edit_all
from roupn.interfaces import DiffStrategy, DocumentTracker
from roupn.plugins import BackendKind, get_registry

STRATEGIES: list[DiffStrategy] = [SnapshotStrategy(), TrackedStrategy()]

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


class TestSnapshotStrategy(DiffStrategyConformance):
    @pytest.fixture
    def diff_strategy(self) -> DiffStrategy:
        return SnapshotStrategy()


class TestTrackedStrategy(DiffStrategyConformance):
    @pytest.fixture
    def diff_strategy(self) -> DiffStrategy:
        return TrackedStrategy()


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


def is_plain(tracker: DocumentTracker) -> bool:
    """Whether edits must copy values they move within the tracker's document.

    A tracked document copies a container put back into it itself, so the
    random edits move containers there without copying, to test that.
    """
    return not isinstance(tracker.document, TrackedDict)


@PROPERTY_SETTINGS
@given(start=documents, data=st.data())
def test_strategies_agree_on_edits(start: dict[str, Any], data: st.DataObject) -> None:
    trackers = [strategy.track(copy_json(start)) for strategy in STRATEGIES]
    reference = copy_json(start)
    state = copy_json(start)
    for _ in range(2):
        edit_all(data, trackers, reference, is_plain)
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
        edit_all(data, [tracker], reference, is_plain)
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
        edit_all(data, [tracker], reference, is_plain)
        assert json.dumps(changes) == text
