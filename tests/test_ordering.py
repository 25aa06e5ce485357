"""Update ordering: any arrival order ends in key order."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roupn.errors import MessageError
from roupn.ordering import UpdateKey, UpdateLog


class Trace:
    """A document that is the list of applied update names, to watch the order."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.blocked: set[str] = set()

    def apply(self, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for change in changes:
            if change["type"] == "push":
                if change["name"] == "bad" or change["name"] in self.blocked:
                    raise MessageError("invalid change")
                self.applied.append(change["name"])
            else:
                assert self.applied.pop() == change["name"]
        return [{"type": "pop", "name": c["name"]} for c in reversed(changes)]


def push(name: str) -> list[dict[str, Any]]:
    return [{"type": "push", "name": name}]


keys = st.lists(
    st.tuples(
        st.integers(0, 20),
        st.sampled_from("abc"),
        st.text("xyz", min_size=1, max_size=3),
    ),
    unique=True,
    max_size=25,
)


@given(keys)
def test_any_arrival_order_sorted(arrivals: list[UpdateKey]) -> None:
    trace = Trace()
    log = UpdateLog(trace.apply, window_per_user=100)
    for key in arrivals:
        assert log.insert(key, push(repr(key)))
    assert trace.applied == [repr(key) for key in sorted(arrivals)]
    assert log.keys() == sorted(arrivals)


def test_repeat_ignored() -> None:
    trace = Trace()
    log = UpdateLog(trace.apply)
    assert log.insert((1, "a", "x"), push("one"))
    assert not log.insert((1, "a", "x"), push("one"))
    assert trace.applied == ["one"]


def test_late_update_rolls_back() -> None:
    trace = Trace()
    log = UpdateLog(trace.apply)
    log.insert((3, "a", "x"), push("three"))
    log.insert((5, "b", "x"), push("five"))
    log.insert((1, "c", "x"), push("one"))
    assert trace.applied == ["one", "three", "five"]
    assert log.rollbacks == 1


def test_own_update_behind_remote() -> None:
    trace = Trace()
    log = UpdateLog(trace.apply)
    log.insert((10, "remote", "x"), push("remote"))
    undo = trace.apply(push("own"))
    log.add_applied((4, "own", "y"), push("own"), undo)
    assert trace.applied == ["own", "remote"]


def test_update_that_fails_is_kept() -> None:
    trace = Trace()
    log = UpdateLog(trace.apply)
    log.insert((1, "a", "x"), push("one"))
    log.insert((3, "a", "y"), push("bad"))
    assert trace.applied == ["one"]
    assert log.keys() == [(1, "a", "x"), (3, "a", "y")]


def test_failed_update_retried_after_dependency() -> None:
    trace = Trace()
    trace.blocked = {"needs-two"}
    log = UpdateLog(trace.apply)
    log.insert((1, "a", "x"), push("one"))
    log.insert((5, "b", "x"), push("needs-two"))
    assert trace.applied == ["one"]
    trace.blocked = set()
    log.insert((2, "a", "y"), push("two"))
    assert trace.applied == ["one", "two", "needs-two"]


def test_window_forgets_oldest_only() -> None:
    trace = Trace()
    log = UpdateLog(trace.apply, window_per_user=2)
    for time in range(5):
        log.insert((time, "a", "x"), push(str(time)))
    assert log.keys() == [(3, "a", "x"), (4, "a", "x")]
    log.insert((1, "b", "x"), push("late"))
    # Older than everything kept: applied before the kept updates.
    assert trace.applied == ["0", "1", "2", "late", "3", "4"]


def test_drop_through_returns_later() -> None:
    trace = Trace()
    log = UpdateLog(trace.apply)
    for time in (1, 2, 5, 7):
        log.insert((time, "a", "x"), push(str(time)))
    later = log.drop_through((4, "creator", ""))
    assert [key for key, _ in later] == [(5, "a", "x"), (7, "a", "x")]
    assert len(log) == 0


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        UpdateLog(Trace().apply, window_per_user=0)
