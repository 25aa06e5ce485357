"""Change semantics: validation, apply, revert, inverse and diff."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roupn.changes import (
    Change,
    apply_changes,
    comparable_copy,
    copy_json,
    diff,
    json_equal,
    plain_copy,
    revert_changes,
    validate_change,
)
from roupn.errors import MessageError

# Random JSON documents. Small integers and floats make values that ``==`` mixes
# up with each other and with booleans (0, 0.0, False; 1, 1.0, True) common.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=3)
    | st.sampled_from([0.0, 1.0, -0.5])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers()
    | st.text(max_size=4)
)
keys = st.text(alphabet="abcd", max_size=2)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=16,
)
documents = st.dictionaries(keys, json_values, max_size=5)

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def applied(document: dict[str, Any], changes: list[Change]) -> dict[str, Any]:
    copy = copy_json(document)
    apply_changes(copy, changes)
    return copy


def set_change(path: list[str], new: Any, **old: Any) -> Change:
    change: Change = {"type": "set", "path": path, "new": new}
    change.update(old)
    return change


# Validation.


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("set", "is a str, not an object"),
        ({"type": "move", "path": ["a"]}, "invalid type 'move'"),
        ({"path": ["a"], "new": 1}, "invalid type None"),
        ({"type": "set", "path": "a", "new": 1}, "invalid path 'a'"),
        ({"type": "set", "path": ["a", 0], "new": 1}, "invalid path ['a', 0]"),
        ({"type": "set", "new": 1}, "invalid path None"),
        ({"type": "set", "path": ["a"]}, "has no new value"),
        ({"type": "delete", "path": [], "old": 1}, "deletes the empty path"),
    ],
)
def test_validate_rejects_malformed(change: Any, message: str) -> None:
    with pytest.raises(MessageError, match="change 3") as info:
        validate_change(change, 3)
    assert message in str(info.value)


def test_validate_accepts_both_types() -> None:
    change = {"type": "delete", "path": ["a", "0"]}
    assert validate_change(change) is change
    assert validate_change(set_change([], {})) == set_change([], {})


def test_apply_rejects_non_list() -> None:
    with pytest.raises(MessageError, match="not a list"):
        apply_changes({}, {"type": "set"})  # type: ignore[arg-type]


# Applying.


def test_set_adds_and_replaces_key() -> None:
    document: dict[str, Any] = {"a": 1}
    apply_changes(document, [set_change(["b"], 2), set_change(["a"], 3, old=1)])
    assert document == {"a": 3, "b": 2}


def test_set_none_is_value() -> None:
    document: dict[str, Any] = {}
    apply_changes(document, [set_change(["a"], None)])
    assert document == {"a": None}
    assert "a" in document


def test_set_array_index_replaces() -> None:
    document: dict[str, Any] = {"a": [1, 2]}
    apply_changes(document, [set_change(["a", "1"], 5, old=2)])
    assert document == {"a": [1, 5]}


def test_set_array_length_appends() -> None:
    document: dict[str, Any] = {"a": [1, 2]}
    apply_changes(document, [set_change(["a", "2"], 3), set_change(["a", "3"], 4)])
    assert document == {"a": [1, 2, 3, 4]}


def test_set_past_array_end_invalid() -> None:
    document: dict[str, Any] = {"a": [1, 2]}
    with pytest.raises(MessageError) as info:
        apply_changes(document, [set_change(["a", "3"], 3)])
    message = str(info.value)
    assert "['a', '3']" in message
    assert "index 3 is past the end of the array (length 2)" in message
    assert document == {"a": [1, 2]}


@pytest.mark.parametrize("item", ["x", "-1", "01", " 1", "1.0", "\u0661"])
def test_non_index_on_array_invalid(item: str) -> None:
    document: dict[str, Any] = {"a": [1, 2]}
    with pytest.raises(MessageError, match="is not an array index"):
        apply_changes(document, [set_change(["a", item], 3)])
    with pytest.raises(MessageError, match="is not an array index"):
        apply_changes(document, [set_change(["a", item, "b"], 3)])


def test_array_index_is_key_on_object() -> None:
    document: dict[str, Any] = {"a": {"0": "x"}}
    apply_changes(document, [set_change(["a", "0"], "y", old="x")])
    assert document == {"a": {"0": "y"}}


def test_path_through_missing_key_invalid() -> None:
    document: dict[str, Any] = {"a": {}}
    with pytest.raises(MessageError, match="key 'b' not found"):
        apply_changes(document, [set_change(["a", "b", "c"], 1)])


def test_path_through_scalar_invalid() -> None:
    document: dict[str, Any] = {"a": {"b": 5}}
    with pytest.raises(MessageError, match="is a int, not an object or array"):
        apply_changes(document, [set_change(["a", "b", "c"], 1)])
    with pytest.raises(MessageError, match="is a int, not an object or array"):
        apply_changes(document, [set_change(["a", "b", "c", "d"], 1)])
    with pytest.raises(MessageError, match="is a NoneType"):
        apply_changes({"a": None}, [{"type": "delete", "path": ["a", "b"]}])


def test_path_through_missing_index_invalid() -> None:
    document: dict[str, Any] = {"a": [{"b": 1}]}
    with pytest.raises(MessageError, match="index 1 is past the end"):
        apply_changes(document, [set_change(["a", "1", "b"], 2)])


def test_set_empty_path_replaces_document() -> None:
    document: dict[str, Any] = {"a": 1}
    inverse = apply_changes(document, [set_change([], {"b": [2]})])
    assert document == {"b": [2]}
    apply_changes(document, inverse)
    assert document == {"a": 1}


def test_set_empty_path_needs_object() -> None:
    document: dict[str, Any] = {"a": 1}
    with pytest.raises(MessageError, match="must be an object, not a list"):
        apply_changes(document, [set_change([], [1])])
    assert document == {"a": 1}


def test_delete_removes_key() -> None:
    document: dict[str, Any] = {"a": 1, "b": None}
    apply_changes(document, [{"type": "delete", "path": ["b"], "old": None}])
    assert document == {"a": 1}


def test_delete_missing_key_invalid() -> None:
    with pytest.raises(MessageError, match="key 'b' not found"):
        apply_changes({"a": 1}, [{"type": "delete", "path": ["b"]}])


def test_delete_array_element_splices() -> None:
    document: dict[str, Any] = {"a": ["x", "y", "z"]}
    apply_changes(document, [{"type": "delete", "path": ["a", "0"]}])
    assert document == {"a": ["y", "z"]}


def test_delete_past_array_end_invalid() -> None:
    document: dict[str, Any] = {"a": ["x"]}
    with pytest.raises(MessageError, match="index 1 is past the end"):
        apply_changes(document, [{"type": "delete", "path": ["a", "1"]}])


def test_invalid_value_rejected() -> None:
    document: dict[str, Any] = {}
    with pytest.raises(MessageError, match="the value is not JSON"):
        apply_changes(document, [set_change(["a"], b"bytes")])
    with pytest.raises(MessageError, match="the value is not JSON"):
        apply_changes(document, [set_change(["a"], {1: "x"})])
    assert document == {}


def test_apply_is_atomic() -> None:
    original = {"a": [1, 2, 3], "b": {"c": True}, "d": "x"}
    document = copy_json(original)
    inner = document["b"]
    changes = [
        set_change(["d"], "y", old="x"),
        {"type": "delete", "path": ["a", "0"], "old": 1},
        set_change(["b"], 7, old={"c": True}),
        set_change(["e"], []),
        {"type": "delete", "path": ["a", "0"], "old": 2},
        set_change([], {"z": 1}),
        set_change(["b", "c"], False),
    ]
    with pytest.raises(MessageError) as info:
        apply_changes(document, changes)
    assert str(info.value).startswith("change 6 (set at path ['b', 'c']) is invalid")
    assert json_equal(document, original)
    assert document["b"] is inner


def test_apply_keeps_no_reference_to_changes() -> None:
    new = {"list": [1]}
    change = set_change(["a"], new)
    document: dict[str, Any] = {}
    apply_changes(document, [change])
    new["list"].append(2)
    assert document == {"a": {"list": [1]}}


def test_apply_accepts_javascript_order() -> None:
    # Removing the first of two to-dos, as the JavaScript diff lists it.
    document = {
        "todos": [
            {"text": "buy milk", "done": True},
            {"text": "walk dog", "done": False},
        ]
    }
    changes = [
        set_change(["meta"], {"count": 1}),
        {"type": "delete", "path": ["todos", "1"], "old": {"text": "walk dog"}},
        set_change(["todos", "0", "done"], False, old=True),
        set_change(["todos", "0", "text"], "walk dog", old="buy milk"),
    ]
    apply_changes(document, changes)
    assert document == {
        "todos": [{"text": "walk dog", "done": False}],
        "meta": {"count": 1},
    }


# Inverse changes.


def test_inverse_uses_local_values() -> None:
    document: dict[str, Any] = {"a": "local", "b": [1, 2]}
    inverse = apply_changes(
        document,
        [
            set_change(["a"], "remote", old="what the sender had"),
            {"type": "delete", "path": ["b", "1"], "old": "what the sender had"},
        ],
    )
    assert inverse == [
        set_change(["b", "1"], 2),
        set_change(["a"], "local", old="remote"),
    ]
    apply_changes(document, inverse)
    assert document == {"a": "local", "b": [1, 2]}


def test_inverse_of_added_key_deletes() -> None:
    document: dict[str, Any] = {"l": []}
    inverse = apply_changes(document, [set_change(["a"], 1), set_change(["l", "0"], 2)])
    assert inverse == [
        {"type": "delete", "path": ["l", "0"], "old": 2},
        {"type": "delete", "path": ["a"], "old": 1},
    ]


def test_inverse_reinserts_middle_element() -> None:
    document: dict[str, Any] = {"l": [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}]}
    inverse = apply_changes(
        document,
        [
            {"type": "delete", "path": ["l", "1"]},
            set_change(["l", "1", "n"], 20, old=2),
        ],
    )
    assert document == {"l": [{"n": 0}, {"n": 20}, {"n": 3}]}

    # Changes cannot insert: every element from index 1 on moves up with a set.
    assert [c["path"] for c in inverse] == [
        ["l", "1", "n"],
        ["l", "3"],
        ["l", "2"],
        ["l", "1"],
    ]
    document["l"][2]["n"] = "edited after apply"
    apply_changes(document, inverse[:1])
    document["l"][2]["n"] = 3
    apply_changes(document, inverse[1:])
    assert document == {"l": [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}]}


def test_inverse_shares_nothing_with_document() -> None:
    document: dict[str, Any] = {"l": [{"n": 0}, {"n": 1}, {"n": 2}]}
    inverse = apply_changes(document, [{"type": "delete", "path": ["l", "0"]}])
    before = json.dumps(inverse)
    for element in document["l"]:
        element["n"] = "changed"
    assert json.dumps(inverse) == before


def test_apply_without_inverse_returns_empty() -> None:
    document: dict[str, Any] = {"a": [1, 2, 3]}
    changes = [{"type": "delete", "path": ["a", "0"]}]
    assert apply_changes(document, changes, inverse=False) == []
    assert document == {"a": [2, 3]}


# Reverting.


def test_revert_restores_old_values() -> None:
    before = {"a": 1, "b": [1, 2, 3], "c": {"d": None}}
    after = {"a": 2, "b": [1, 3, 4], "e": True, "c": {}}
    changes = [
        set_change(["a"], 2, old=1),
        {"type": "delete", "path": ["b", "1"], "old": 2},
        set_change(["b", "2"], 4),
        set_change(["e"], True),
        {"type": "delete", "path": ["c", "d"], "old": None},
    ]
    document = applied(before, changes)
    assert document == after
    revert_changes(document, changes)
    assert json_equal(document, before)


def test_revert_delete_inserts_in_array() -> None:
    document: dict[str, Any] = {"l": ["a", "c"]}
    revert_changes(document, [{"type": "delete", "path": ["l", "1"], "old": "b"}])
    assert document == {"l": ["a", "b", "c"]}


def test_revert_delete_needs_old() -> None:
    document: dict[str, Any] = {"l": ["a", "c"], "x": 1}
    changes = [set_change(["x"], 1, old=0), {"type": "delete", "path": ["l", "1"]}]
    with pytest.raises(MessageError, match="it has no old value to put back"):
        revert_changes(document, changes)
    assert document == {"l": ["a", "c"], "x": 1}


def test_revert_is_atomic() -> None:
    document: dict[str, Any] = {"a": 1, "l": [1, 2]}
    changes = [
        set_change(["gone", "x"], 1),
        set_change(["a"], 1, old=0),
        set_change(["l", "1"], 2),
    ]
    with pytest.raises(MessageError) as info:
        revert_changes(document, changes)
    assert str(info.value) == (
        "cannot revert change 0 (set at path ['gone', 'x']): key 'gone' not found"
    )
    assert document == {"a": 1, "l": [1, 2]}


# Computing changes.


def test_diff_equal_documents_empty() -> None:
    document = {"a": [1, {"b": None}], "c": "x"}
    assert diff(document, copy_json(document)) == []
    assert diff(document, document) == []


def test_diff_object_keys() -> None:
    changes = diff({"a": 1, "b": 2, "c": None}, {"a": 1, "b": 3, "d": None})
    assert changes == [
        set_change(["b"], 3, old=2),
        set_change(["d"], None),
        {"type": "delete", "path": ["c"], "old": None},
    ]


def test_diff_nested_path() -> None:
    changes = diff({"a": {"b": [0, {"c": 1}]}}, {"a": {"b": [0, {"c": 2}]}})
    assert changes == [set_change(["a", "b", "1", "c"], 2, old=1)]


def test_diff_growing_array_appends() -> None:
    changes = diff({"l": [1]}, {"l": [1, 2, 3]})
    assert changes == [set_change(["l", "1"], 2), set_change(["l", "2"], 3)]


def test_diff_shrinking_array_deletes_from_end() -> None:
    changes = diff({"l": [1, 2, 3, 4]}, {"l": [1, 2]})
    assert changes == [
        {"type": "delete", "path": ["l", "3"], "old": 4},
        {"type": "delete", "path": ["l", "2"], "old": 3},
    ]


def test_diff_removed_middle_element_one_delete() -> None:
    old = {"l": [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}]}
    new = {"l": [{"id": 1}, {"id": 3}, {"id": 4}]}
    assert diff(old, new) == [{"type": "delete", "path": ["l", "1"], "old": {"id": 2}}]


def test_diff_removal_and_append() -> None:
    old = {"l": [{"id": i} for i in range(10)]}
    new = {"l": [{"id": i} for i in range(10) if i != 3] + [{"id": 10}]}
    assert diff(old, new) == [
        {"type": "delete", "path": ["l", "3"], "old": {"id": 3}},
        set_change(["l", "9"], {"id": 10}),
    ]


def test_diff_removals_between_edits() -> None:
    old = {"l": list(range(20))}
    new = {"l": [0, 1, 2, "x", 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]}
    changes = diff(old, new)
    assert applied(old, changes) == new
    assert [c["type"] for c in changes] == ["set", "delete", "delete", "delete", "set"]


def test_diff_long_removed_run_applies() -> None:
    # More removed elements in a row than the diff looks ahead, in an array that
    # also grows: correct, written as changes to the elements that move.
    old = {"l": list(range(30))}
    new = {"l": list(range(20, 30)) + list(range(100, 125))}
    changes = diff(old, new)
    assert applied(old, changes) == new
    revert_changes(document := applied(old, changes), changes)
    assert document == old


def test_diff_shrink_with_edits_applies() -> None:
    old = {"l": [1, 2, 3, 4, 5, 6]}
    new = {"l": [1, 9, 4, 6]}
    changes = diff(old, new)
    assert applied(old, changes) == new
    assert [c["type"] for c in changes].count("delete") == 2


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"a": 1}, [1]),
        ([1], {"0": 1}),
        ("x", {"x": 1}),
        ({"x": 1}, None),
        ([], 0),
    ],
)
def test_diff_type_change_one_set(old: Any, new: Any) -> None:
    assert diff({"v": old}, {"v": new}) == [set_change(["v"], new, old=old)]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (True, 1),
        (1, True),
        (False, 0),
        (0.0, False),
        (1.0, True),
        (None, False),
        ("1", 1),
    ],
)
def test_diff_compares_types(old: Any, new: Any) -> None:
    assert diff({"v": old}, {"v": new}) == [set_change(["v"], new, old=old)]
    changes = diff({"v": [{"w": old}]}, {"v": [{"w": new}]})
    assert changes == [set_change(["v", "0", "w"], new, old=old)]
    snapshot = comparable_copy({"v": [{"w": old}]})
    changes = diff(snapshot, {"v": [{"w": new}]}, comparable_old=True)
    assert changes == [set_change(["v", "0", "w"], new, old=old)]
    assert type(changes[0]["old"]) is type(old)


@pytest.mark.parametrize(("old", "new"), [(2, 2.0), (0, -0.0), (1.0, 1)])
def test_diff_compares_numbers_by_value(old: Any, new: Any) -> None:
    assert diff({"v": [old]}, {"v": [new]}) == []
    assert diff(comparable_copy({"v": [old]}), {"v": [new]}, comparable_old=True) == []


def test_diff_none_distinct_from_absent() -> None:
    assert diff({}, {"a": None}) == [set_change(["a"], None)]
    assert diff({"a": None}, {}) == [{"type": "delete", "path": ["a"], "old": None}]


def test_diff_root_values() -> None:
    assert diff([1, 2], [1]) == [{"type": "delete", "path": ["1"], "old": 2}]
    assert diff(1, "x") == [set_change([], "x", old=1)]
    assert diff(None, None) == []


def test_diff_mutates_neither() -> None:
    old = {"a": [1, 2, 3], "b": {"c": 1}}
    new = {"a": [2], "b": {"c": 2, "d": [1]}}
    old_text, new_text = json.dumps(old), json.dumps(new)
    diff(old, new)
    assert json.dumps(old) == old_text
    assert json.dumps(new) == new_text


def test_diff_values_are_copies() -> None:
    old: dict[str, Any] = {"a": {"x": [1]}, "b": [[1]]}
    new: dict[str, Any] = {"c": {"x": [1]}, "b": []}
    changes = diff(old, new)
    text = json.dumps(changes)
    old["a"]["x"].append(2)
    old["b"][0].append(2)
    new["c"]["x"].append(2)
    assert json.dumps(changes) == text


def test_diff_copy_old_false_shares_old() -> None:
    old: dict[str, Any] = {"a": {"x": 1}}
    changes = diff(old, {}, copy_old=False)
    assert changes[0]["old"] is old["a"]


def test_diff_non_string_key_raises() -> None:
    with pytest.raises(TypeError, match="not a str"):
        diff({}, {1: "x"})
    with pytest.raises(TypeError, match="not a str"):
        diff({"a": {}}, {"a": {1: "x"}})


# Copying and comparing.


def test_copy_json_is_deep() -> None:
    shared = [1]
    value = {"a": shared, "b": shared, "c": {"d": [shared]}}
    copy = copy_json(value)
    assert copy == value
    assert copy["a"] is not shared
    assert copy["a"] is not copy["b"]
    assert copy["c"]["d"][0] is not shared


@pytest.mark.parametrize("value", [(1, 2), {1: "x"}, b"x", {1.5}, [object()]])
def test_copy_json_rejects_non_json(value: Any) -> None:
    with pytest.raises(TypeError):
        copy_json(value)


def test_copy_json_makes_plain_containers() -> None:
    class Sub(dict[str, Any]):
        pass

    copy = copy_json({"a": Sub(b=[1])})
    assert type(copy["a"]) is dict


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (True, 1, False),
        ([True], [1], False),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": 1}, {"a": True}, False),
        ({"a": {"b": [0]}}, {"a": {"b": [False]}}, False),
        ({"a": None}, {}, False),
        ({"a": None}, {"b": None}, False),
        (0.0, -0.0, True),
        ({"a": [1, {"b": "x"}]}, {"a": [1, {"b": "x"}]}, True),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True),
    ],
)
def test_json_equal(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal
    assert json_equal(b, a) is equal


# Properties on random documents.


@PROPERTY_SETTINGS
@given(old=documents, new=documents)
def test_diff_applies_and_reverts(old: dict[str, Any], new: dict[str, Any]) -> None:
    changes = diff(old, new)
    document = copy_json(old)
    apply_changes(document, changes)
    assert json_equal(document, new)
    revert_changes(document, changes)
    assert json_equal(document, old)


@PROPERTY_SETTINGS
@given(a=json_values, b=json_values)
def test_comparable_copy_compares_as_json(a: Any, b: Any) -> None:
    copy = comparable_copy(a)
    assert (copy == b) is json_equal(a, b)
    assert (b == copy) is json_equal(a, b)
    assert copy == comparable_copy(b) if json_equal(a, b) else copy != b
    plain = plain_copy(copy)
    assert plain == a
    assert repr(plain) == repr(a)


@PROPERTY_SETTINGS
@given(old=documents, new=documents)
def test_diff_from_comparable_copy_matches(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    changes = diff(comparable_copy(old), new, comparable_old=True)
    assert repr(changes) == repr(diff(old, new))


@PROPERTY_SETTINGS
@given(old=documents, new=documents)
def test_diff_survives_json_encoding(old: dict[str, Any], new: dict[str, Any]) -> None:
    changes = json.loads(json.dumps(diff(old, new)))
    document = copy_json(old)
    apply_changes(document, changes)
    assert json_equal(document, new)


@PROPERTY_SETTINGS
@given(old=documents, new=documents)
def test_inverse_undoes_exactly(old: dict[str, Any], new: dict[str, Any]) -> None:
    changes = diff(old, new)
    document = copy_json(old)
    inverse = apply_changes(document, changes)
    apply_changes(document, inverse)
    assert json_equal(document, old)
    revert_changes(document, inverse)
    assert json_equal(document, new)


@PROPERTY_SETTINGS
@given(document=documents, data=st.data())
def test_diff_of_one_edit(document: dict[str, Any], data: st.DataObject) -> None:
    # Documents that differ in one place exercise the nested paths.
    edited = copy_json(document)
    container: Any = edited
    while True:
        if isinstance(container, dict) and container:
            key = data.draw(st.sampled_from(sorted(container)))
        elif isinstance(container, list) and container:
            key = data.draw(st.integers(0, len(container) - 1))
        else:
            break
        if not isinstance(container[key], dict | list) or data.draw(st.booleans()):
            break
        container = container[key]
    action = data.draw(st.sampled_from(["set", "delete", "add"]))
    if action == "add" or not container:
        if isinstance(container, dict):
            container[data.draw(keys)] = data.draw(json_values)
        else:
            container.append(data.draw(json_values))
    elif action == "set":
        container[key] = data.draw(json_values)
    else:
        del container[key]

    changes = diff(document, edited)
    assert json_equal(applied(document, changes), edited)
    assert diff(edited, edited) == []


@PROPERTY_SETTINGS
@given(old=documents, new=documents)
def test_apply_stops_at_invalid_change(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    changes = diff(old, new)
    changes.append({"type": "delete", "path": ["no such key", "x"]})
    document = copy_json(old)
    with pytest.raises(MessageError):
        apply_changes(document, changes)
    assert json_equal(document, old)


def test_set_without_old_inserts_in_list() -> None:
    """Two members append at the same index: the later one inserts, both survive."""
    document: dict[str, Any] = {"todos": ["milk"]}
    concurrent = [{"type": "set", "path": ["todos", "0"], "new": "bread"}]
    inverse = apply_changes(document, concurrent)
    assert document == {"todos": ["bread", "milk"]}
    apply_changes(document, inverse)
    assert document == {"todos": ["milk"]}


def test_set_with_old_replaces_in_list() -> None:
    document: dict[str, Any] = {"todos": ["milk"]}
    apply_changes(
        document, [{"type": "set", "path": ["todos", "0"], "old": "milk", "new": "oat"}]
    )
    assert document == {"todos": ["oat"]}
