"""Conformance tests for diff strategies: take, apply, revert and replace."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..changes import Change, apply_changes, copy_json, json_equal, revert_changes
from ..errors import MessageError
from ..interfaces import DiffStrategy
from ..plugins import BackendKind
from ..settings import Settings
from .edits import edit_all
from .rooms import quick_cipher_suite, registered_name, run_shared_document
from .values import documents

__all__ = ["DiffStrategyConformance"]

PROPERTIES = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
        HealthCheck.differing_executors,
    ],
)

START = {
    "todos": [{"text": "buy milk", "done": False}, {"text": "walk dog", "done": True}],
    "title": "list",
    "meta": {"count": 2, "tags": ["a", None]},
}
TODO_0 = {"text": "buy milk", "done": False}


def replayed(start: dict[str, Any], changes: list[Change]) -> dict[str, Any]:
    """Return a copy of ``start`` with ``changes`` applied by the reference code."""
    document: dict[str, Any] = copy_json(start)
    apply_changes(document, changes)
    return document


class DiffStrategyConformance:
    """Tests for a :class:`~roupn.interfaces.DiffStrategy` and its trackers.

    Provide a ``diff_strategy`` fixture that returns the strategy to test. The
    changes it reports are checked against :mod:`roupn.changes`, which defines
    how every member applies them.
    """

    @pytest.fixture
    def diff_strategy(self) -> DiffStrategy:
        raise NotImplementedError(
            "define a 'diff_strategy' fixture in your subclass of "
            "DiffStrategyConformance"
        )

    @pytest.fixture(params=["asyncio", "trio"])
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    # The interface.

    def test_matches_interface(self, diff_strategy: DiffStrategy) -> None:
        assert isinstance(diff_strategy.name, str)
        assert diff_strategy.name
        tracker = diff_strategy.track(copy_json(START))
        assert tracker.document == START
        assert tracker.document is tracker.document
        assert tracker.take_changes() == []

    def test_diff_applies(self, diff_strategy: DiffStrategy) -> None:
        new = {"todos": [{"text": "walk dog", "done": True}], "title": None}
        start = copy_json(START)
        changes = diff_strategy.diff(start, new)
        assert replayed(START, changes) == new
        assert start == START

    # Taking the user's changes.

    def test_take_changes_starts_new_set(self, diff_strategy: DiffStrategy) -> None:
        tracker = diff_strategy.track(copy_json(START))
        tracker.document["title"] = "groceries"
        assert tracker.take_changes() == [
            {"type": "set", "path": ["title"], "new": "groceries", "old": "list"}
        ]
        assert tracker.take_changes() == []
        tracker.document["todos"][0]["done"] = True
        assert tracker.take_changes() == [
            {"type": "set", "path": ["todos", "0", "done"], "new": True, "old": False}
        ]

    def test_changes_share_nothing_with_document(
        self, diff_strategy: DiffStrategy
    ) -> None:
        tracker = diff_strategy.track(copy_json(START))
        document = tracker.document
        document["meta"]["tags"] = [{"a": 1}]
        document["new"] = {"list": [1, 2]}
        changes = tracker.take_changes()
        text = json.dumps(changes)
        document["meta"]["tags"][0]["a"] = 2
        document["new"]["list"].append(3)
        assert json.dumps(changes) == text

    def test_non_json_value_raises(self, diff_strategy: DiffStrategy) -> None:
        tracker = diff_strategy.track({})
        with pytest.raises(TypeError, match="not a JSON value"):
            tracker.document["a"] = {"b": (1, 2)}
            tracker.take_changes()

    # Applying other members' changes.

    def test_apply_not_recorded(self, diff_strategy: DiffStrategy) -> None:
        tracker = diff_strategy.track(copy_json(START))
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

    def test_apply_invalid_changes_nothing(self, diff_strategy: DiffStrategy) -> None:
        tracker = diff_strategy.track(copy_json(START))
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

    def test_apply_keeps_pending_changes(self, diff_strategy: DiffStrategy) -> None:
        tracker = diff_strategy.track(copy_json(START))
        tracker.document["title"] = "local"
        tracker.apply([{"type": "set", "path": ["meta", "count"], "new": 3}])
        assert tracker.take_changes() == [
            {"type": "set", "path": ["title"], "new": "local", "old": "list"}
        ]

    def test_apply_rebases_pending_on_shift(self, diff_strategy: DiffStrategy) -> None:
        # A local edit of the second to-do, then another member removes the first:
        # the edit must reach the others at the to-do's new index.
        tracker = diff_strategy.track(copy_json(START))
        tracker.document["todos"][1]["done"] = False
        remote = [{"type": "delete", "path": ["todos", "0"]}]
        tracker.apply(remote)
        assert tracker.document["todos"] == [{"text": "walk dog", "done": False}]

        others = replayed(START, remote)
        assert replayed(others, tracker.take_changes()) == tracker.document

    def test_apply_conflict_with_pending(self, diff_strategy: DiffStrategy) -> None:
        # The remote append fits the local document only because of a local append,
        # so the others (without the local append) reject it. The next changes must
        # bring them to this document anyway.
        tracker = diff_strategy.track(copy_json(START))
        tracker.document["todos"].append({"text": "local"})
        remote = [{"type": "set", "path": ["todos", "3"], "new": {"text": "remote"}}]
        tracker.apply(remote)
        texts = [t["text"] for t in tracker.document["todos"]]
        assert texts == ["buy milk", "walk dog", "local", "remote"]

        others = copy_json(START)
        with pytest.raises(MessageError):
            apply_changes(others, remote)
        assert replayed(others, tracker.take_changes()) == tracker.document

    # Reverting the user's own changes.

    def test_revert_own_changes(self, diff_strategy: DiffStrategy) -> None:
        tracker = diff_strategy.track(copy_json(START))
        tracker.document["todos"].pop(0)
        tracker.document["meta"]["count"] = 1
        changes = tracker.take_changes()
        tracker.revert(changes)
        assert json_equal(tracker.document, START)
        assert tracker.take_changes() == []

    def test_revert_keeps_pending_changes(self, diff_strategy: DiffStrategy) -> None:
        tracker = diff_strategy.track(copy_json(START))
        tracker.document["todos"].pop(0)
        sent = tracker.take_changes()
        tracker.document["todos"][0]["done"] = False
        tracker.revert(sent)
        assert tracker.document["todos"] == [
            TODO_0,
            {"text": "walk dog", "done": False},
        ]

        # The others revert the sent changes too, so they hold START again.
        assert replayed(START, tracker.take_changes()) == tracker.document

    def test_revert_invalid_changes_nothing(self, diff_strategy: DiffStrategy) -> None:
        tracker = diff_strategy.track(copy_json(START))
        tracker.document["title"] = "local"
        with pytest.raises(MessageError, match="cannot revert change 0"):
            tracker.revert([{"type": "delete", "path": ["absent", "x"], "old": 1}])
        assert tracker.document["title"] == "local"
        assert tracker.take_changes() == [
            {"type": "set", "path": ["title"], "new": "local", "old": "list"}
        ]

    # Full syncs.

    def test_replace_discards_pending(self, diff_strategy: DiffStrategy) -> None:
        tracker = diff_strategy.track(copy_json(START))
        document = tracker.document
        document["title"] = "local"
        state: dict[str, Any] = {"title": "synced", "todos": [{"text": "t"}]}
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

    # Properties on random documents and edit sequences.

    @PROPERTIES
    @given(start=documents, target=documents)
    def test_diff_turns_old_into_new(
        self, diff_strategy: DiffStrategy, start: dict[str, Any], target: Any
    ) -> None:
        old, new = copy_json(start), copy_json(target)
        changes = diff_strategy.diff(old, new)
        assert json_equal(replayed(start, changes), target)
        assert json_equal(old, start)
        assert json_equal(new, target)

    @PROPERTIES
    @given(start=documents, data=st.data())
    def test_taken_changes_replay_and_revert(
        self, diff_strategy: DiffStrategy, start: dict[str, Any], data: st.DataObject
    ) -> None:
        tracker = diff_strategy.track(copy_json(start))
        reference = copy_json(start)
        state = copy_json(start)
        for _ in range(2):
            edit_all(data, [tracker], reference)
            changes = tracker.take_changes()
            assert json_equal(replayed(state, changes), reference)
            reverted = copy_json(reference)
            revert_changes(reverted, changes)
            assert json_equal(reverted, state)
            state = copy_json(reference)

    @PROPERTIES
    @given(start=documents, data=st.data())
    def test_changes_replay_on_other_tracker(
        self, diff_strategy: DiffStrategy, start: dict[str, Any], data: st.DataObject
    ) -> None:
        tracker = diff_strategy.track(copy_json(start))
        reference = copy_json(start)
        edit_all(data, [tracker], reference)
        changes = tracker.take_changes()
        text = json.dumps(changes)

        other = diff_strategy.track(copy_json(start))
        inverse = other.apply(json.loads(text))
        assert json_equal(other.document, reference)
        assert other.take_changes() == []
        other.apply(inverse)
        assert json_equal(other.document, start)
        assert other.take_changes() == []

        # Later edits must not reach into the changes already taken.
        edit_all(data, [tracker], reference)
        assert json.dumps(changes) == text

    @PROPERTIES
    @given(start=documents, target=documents)
    def test_apply_inverse_undoes_exactly(
        self, diff_strategy: DiffStrategy, start: dict[str, Any], target: Any
    ) -> None:
        changes = diff_strategy.diff(start, target)
        tracker = diff_strategy.track(copy_json(start))
        inverse = tracker.apply(changes)
        assert json_equal(tracker.document, target)
        tracker.apply(inverse)
        assert json_equal(tracker.document, start)
        assert tracker.take_changes() == []

    @PROPERTIES
    @given(start=documents, data=st.data())
    def test_remote_changes_between_edits(
        self, diff_strategy: DiffStrategy, start: dict[str, Any], data: st.DataObject
    ) -> None:
        # Others hold ``start``; this member edits, then applies another member's
        # changes before taking its own. The taken changes must bring the others,
        # who applied the same remote changes (or rejected them), to this document.
        remote_target = copy_json(start)
        edit_all(data, [], remote_target)
        remote = diff_strategy.diff(start, remote_target)
        tracker = diff_strategy.track(copy_json(start))
        reference = copy_json(start)
        edit_all(data, [tracker], reference)
        try:
            tracker.apply(remote)
        except MessageError:
            assert json_equal(tracker.document, reference)
            return
        others = copy_json(start)
        try:
            apply_changes(others, remote)
        except MessageError:
            others = copy_json(start)
        assert json_equal(replayed(others, tracker.take_changes()), tracker.document)

    @PROPERTIES
    @given(start=documents, data=st.data())
    def test_revert_sent_with_pending(
        self, diff_strategy: DiffStrategy, start: dict[str, Any], data: st.DataObject
    ) -> None:
        # Undoing changes already sent, with newer edits waiting: the waiting
        # changes must bring the others, who undo the same sent changes, to this
        # document.
        tracker = diff_strategy.track(copy_json(start))
        reference = copy_json(start)
        edit_all(data, [tracker], reference)
        sent = tracker.take_changes()
        edit_all(data, [tracker], reference)
        try:
            tracker.revert(sent)
        except MessageError:
            assert json_equal(tracker.document, reference)
            return
        assert json_equal(replayed(start, tracker.take_changes()), tracker.document)

    @PROPERTIES
    @given(start=documents, target=documents)
    def test_replace_then_edit(
        self, diff_strategy: DiffStrategy, start: dict[str, Any], target: Any
    ) -> None:
        tracker = diff_strategy.track(copy_json(start))
        tracker.document["pending"] = 1
        tracker.replace(copy_json(target))
        assert json_equal(tracker.document, target)
        assert tracker.take_changes() == []
        tracker.document["after"] = [1]
        assert replayed(target, tracker.take_changes()) == tracker.document

    # In a room.

    @pytest.mark.anyio
    async def test_shared_document_in_room(self, diff_strategy: DiffStrategy) -> None:
        # Skipped unless the strategy is registered under its name.
        name = registered_name(BackendKind.DIFF_STRATEGY, diff_strategy)
        settings = Settings(
            transport="memory", cipher_suite=quick_cipher_suite(), diff_strategy=name
        )
        await run_shared_document(settings)
